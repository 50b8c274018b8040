"""The web page as a person uses it: headless Chromium (Debian's) uploads an image and reads the bars."""

import re

import httpx
import numpy as np
import pytest

from tests.conftest import encode, noisy_colour
from tests.test_serve_e2e import MODEL, b64, thread_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(exported):
    with thread_server(exported.parent, model_name=MODEL) as (url, _):
        yield url


def test_upload_an_image_and_read_the_top_labels(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = httpx.get(f"{server}/").text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must load nothing from the network"
    image = tmp_path / "red.png"
    image.write_bytes(encode(noisy_colour(np.random.default_rng(8), (210, 40, 40), 60, 80)))
    expected = httpx.post(f"{server}/v1/models/{MODEL}:predict", json={"instances": [{"b64": b64(image.read_bytes())}]}).json()["predictions"][0]

    browser.get(f"{server}/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda driver: MODEL in driver.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 3)
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    labels = [bar.find_element(By.CLASS_NAME, "label").text for bar in bars]
    shown = [float(bar.get_attribute("data-probability")) for bar in bars]
    order = np.argsort(expected["probabilities"])[::-1]
    assert labels == [["blue", "green", "red"][i] for i in order]
    np.testing.assert_allclose(shown, np.array(expected["probabilities"])[order], atol=1e-6)
    assert bars[0].find_element(By.CLASS_NAME, "value").text == f"{expected['probabilities'][order[0]] * 100:.1f}%"
    width = browser.execute_script("return arguments[0].querySelector('.fill').getBoundingClientRect().width / arguments[0].getBoundingClientRect().width", bars[0])
    assert width == pytest.approx(expected["probabilities"][order[0]], abs=0.02)  # the bar is as long as the probability
    preview = browser.find_element(By.ID, "preview")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", preview) == 80
    assert expected["labels"] in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_a_file_that_is_not_an_image_shows_the_servers_reason(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    browser.get(f"{server}/")
    WebDriverWait(browser, 30).until(lambda driver: MODEL in driver.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "file").send_keys(str(fake))
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda driver: "error" in status.get_attribute("class"))
    assert "not an image" in status.text
    assert browser.find_elements(By.CSS_SELECTOR, "#bars .bar") == []
