"""The HTML report as a person sees it: opened in headless Chromium (Debian's), driven by Selenium."""

import re

import pytest

from corolla.evaluate import evaluate

pytestmark = pytest.mark.slow


def test_report_shows_the_confusion_matrix_and_the_per_class_table(trained_run, browser):
    from selenium.webdriver.common.by import By

    evaluate(trained_run, verbose=False)
    page = trained_run / "report" / "index.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the report must not load anything from the network"
    browser.get(page.resolve().as_uri())
    assert browser.title == "corolla report — shapes-run"
    for element_id in ("confusion-matrix", "reliability", "training-curves"):
        image = browser.find_element(By.ID, element_id)
        assert image.is_displayed()
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 200, element_id
    rows = browser.find_elements(By.CSS_SELECTOR, "#per-class tr")
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows[1:]] == ["blue", "green", "red"]
    assert [cell.text for cell in rows[0].find_elements(By.TAG_NAME, "th")] == ["class", "precision", "recall", "F1", "support"]
    assert "model: convnet" in browser.find_element(By.ID, "config").text
