"""The web page with a clip model: headless Chromium uploads a video (and a question, for QA) and reads the bars."""

import httpx
import numpy as np
import pytest

from tests.clipgen import make_clip
from tests.test_serve_e2e import b64, thread_server

pytestmark = pytest.mark.slow
COLOURS = {"red": (210, 40, 40), "blue": (40, 60, 210)}


@pytest.fixture(scope="module")
def qa_export(tmp_path_factory):
    """A small clip QA model (a colour question and a direction question), exported as a SavedModel only."""
    from corolla.data.prepare import prepare
    from corolla.export import export
    from corolla.train import train

    root = tmp_path_factory.mktemp("page-clips")
    rows = ["path,question,answer"]
    for index in range(12):
        direction, colour = ("left", "right")[index % 2], ("red", "blue")[index // 2 % 2]
        name = f"{index}.mp4"
        make_clip(root / name, direction=direction, colour=COLOURS[colour], frames=6, size=(32, 32), seed=index)
        rows += [f"{name},what colour is the square,{colour}", f"{name},which way does it move,{direction}"]
    (root / "qa.csv").write_text("\n".join(rows) + "\n")
    data = prepare(str(root / "qa.csv"), out=root / "data", image_size=32, frames=6, verbose=False).directory
    train(data, out=root / "run", backbone="frame_cnn", epochs=1, batch_size=8, verbose=False)
    return export(root / "run", formats="saved_model", verbose=False), root


def test_upload_a_video_ask_a_question_and_read_the_answers(qa_export, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    version, root = qa_export
    clip = root / "3.mp4"
    with thread_server(version.parent, model_name="qa") as (url, _):
        question = "which way does it move"
        body = {"instances": [{"video_bytes": {"b64": b64(clip.read_bytes())}, "question": question}]}
        expected = httpx.post(f"{url}/v1/models/qa:predict", json=body, timeout=60).json()["predictions"][0]

        browser.get(f"{url}/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda driver: "answers" in driver.find_element(By.ID, "model").text)
        assert browser.find_element(By.ID, "ask").is_displayed() and "video" in browser.find_element(By.ID, "hint").text
        browser.find_element(By.ID, "file").send_keys(str(clip))
        status = browser.find_element(By.ID, "status")
        wait.until(lambda driver: "question" in status.text.lower())  # no question yet: the page asks for one, sends nothing
        assert browser.find_elements(By.CSS_SELECTOR, "#bars .bar") == []
        browser.find_element(By.ID, "question").send_keys(question)
        browser.find_element(By.ID, "again").click()
        wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 4)
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
        order = np.argsort(expected["probabilities"])[::-1]
        labels = [bar.find_element(By.CLASS_NAME, "label").text for bar in bars]
        assert labels == [sorted(["blue", "left", "red", "right"])[i] for i in order]
        shown = [float(bar.get_attribute("data-probability")) for bar in bars]
        np.testing.assert_allclose(shown, np.array(expected["probabilities"])[order], atol=1e-6)
        assert expected["labels"] in status.text
        assert browser.find_element(By.ID, "clip").get_attribute("src").startswith("blob:")
