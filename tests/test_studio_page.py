"""corolla studio's page as a person uses it: headless Chromium (Debian's) drives a real `corolla studio`.

One walk through the loop: create a project, make three classes and upload pictures into their
cards, train and watch the curve grow while the run is still running, start the export, open a
confusion-matrix cell and relabel a mistake with the keyboard (and undo), try a picture and the
(fake) webcam, read the export's parity table, serve, retrain with the same settings, compare the
runs, stop the new one.

Two of the classes ("green" and "lime") are pictures of one colour, so the model cannot tell them
apart and the eval split always has mistakes to review. A screenshot is saved after each step
under pytest's tmp folder; with STUDIO_SCREENSHOTS=1 they are also copied to tests/artifacts/studio/
and the review step is written, small, to docs/images/studio.png (the README's picture).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from tests.conftest import encode, noisy_colour

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLASSES = {"red": (210, 40, 40), "green": (40, 190, 60), "lime": (40, 190, 60)}  # lime looks exactly like green
PER_CLASS = 12
PROJECT = "colours"
TIMEOUT = 240  # seconds for a job step on a slow machine (the whole test takes far less)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A real `corolla studio WORKDIR --port PORT` on loopback; yields (url, workdir)."""
    workdir = tmp_path_factory.mktemp("studio-work")
    port = free_port()
    log = open(workdir.parent / "studio.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "corolla.cli", "studio", str(workdir), "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"corolla studio did not start: {(workdir.parent / 'studio.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    yield url, workdir
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def camera_browser():
    """Headless Chromium as the shared `browser` fixture makes it, plus a fake webcam that needs no permission click."""
    from tests.conftest import chromium_driver

    driver = chromium_driver("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", window="1280,960", browser_log=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """PER_CLASS small PNGs per class, a red picture to try, and a file that is no picture."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(3)
    files = {}
    for name, colour in CLASSES.items():
        files[name] = []
        for index in range(PER_CLASS):
            path = folder / f"{name}-{index}.png"
            path.write_bytes(encode(noisy_colour(rng, colour, 32, 32)))
            files[name].append(path)
    (folder / "try-red.png").write_bytes(encode(noisy_colour(rng, CLASSES["red"], 40, 40)))
    (folder / "notes.png").write_text("not a picture at all")
    return folder, files


def test_the_whole_loop_in_the_page(studio, camera_browser, pictures, tmp_path):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, workdir = studio
    folder, files = pictures
    browser = camera_browser
    shots = tmp_path / "screenshots"
    shots.mkdir()
    started = time.monotonic()

    def find(selector):
        return browser.find_element(By.CSS_SELECTOR, selector)

    def find_all(selector):
        return browser.find_elements(By.CSS_SELECTOR, selector)

    def text(selector):
        return find(selector).text

    def until(condition, timeout=60, what="the page"):
        """Wait for `condition()`; an error the page shows fails at once, with its message."""
        def check(_):
            banner = find("#error")
            if banner.is_displayed():
                pytest.fail(f"the page showed an error while waiting for {what}: {banner.text}")
            return condition()
        return WebDriverWait(browser, timeout, poll_frequency=0.2, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(check, message=what)

    def tab(name):
        find(f'#tabs [data-tab="{name}"]').click()
        until(lambda: find(f"#tab-{name}").is_displayed(), what=f"the {name} tab")

    def shot(name):
        browser.save_screenshot(str(shots / f"{name}.png"))
        print(f"{time.monotonic() - started:5.1f} s  {name}")

    def cli():
        return find("#cli").get_attribute("textContent")

    def press(key):
        ActionChains(browser).send_keys(key).perform()

    # --- the page loads nothing from outside and carries its CSRF token ---
    page = httpx.get(f"{url}/")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "the page must load nothing from the network"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "{{csrf}}" not in page.text and re.search(r'<meta name="csrf-token" content="[0-9a-f]{64}">', page.text)

    # --- 1. a project ---
    browser.get(f"{url}/")
    until(lambda: find("#tab-projects").is_displayed())
    find("#project-input").send_keys(PROJECT, Keys.ENTER)
    until(lambda: text("#project-name") == PROJECT and find("#tab-data").is_displayed(), what="the new project")
    assert f"mkdir -p {workdir / PROJECT}" in cli()

    # --- 2. classes and pictures (Selenium uploads by typing paths into the card's hidden file input) ---
    for name in CLASSES:
        find("#class-input").send_keys(name, Keys.ENTER)
        card = f'.card[data-class="{name}"]'
        until(lambda: find_all(card), what=f"the {name} card")
        chosen = [*files[name], folder / "notes.png"] if name == "red" else files[name]
        find(f"{card} input[type=file]").send_keys("\n".join(str(path) for path in chosen))
        until(lambda: text(f"{card} .count") == f"{PER_CLASS} pictures", what=f"{name}'s count")
        until(lambda: len(find_all(f"{card} .sheet img")) == 8)
    refused = text('.card[data-class="red"] .refused')
    assert "notes.png" in refused and "12 added, 1 refused" in text('.card[data-class="red"] .upload-note')
    assert text("#data-summary").startswith(f"{3 * PER_CLASS} pictures in 3 classes")
    assert f"cp FILES {workdir / PROJECT / 'pictures' / 'lime'}/" in cli()
    until(lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image) for image in find_all(".sheet img")),
          what="the contact sheets")
    shot("1-data")

    # --- 3. train: settings, then the live curve while the run is still running ---
    tab("train")
    until(lambda: "convnet" in [option.get_attribute("value") for option in find_all("#model option")], timeout=120, what="the model list")
    assert "Recommended:" in text("#model-why")
    Select(find("#model")).select_by_value("convnet")
    for field, value in (("#epochs", "2"), ("#image-size", "32")):
        find(field).clear()
        find(field).send_keys(value)
    find("#more-settings summary").click()
    find("#batch-size").send_keys("8")
    find("#train-button").click()
    until(lambda: text("#run-title") == "Run 001", what="the run to start")
    assert "corolla train" in cli() and "--epochs 2 --batch-size 8" in cli() and "corolla evaluate" in cli()
    until(lambda: int(find("#loss-chart").get_attribute("data-points")) >= 1, timeout=TIMEOUT, what="the first epoch on the curve")
    assert text("#run-state") == "running", "the curve must grow while the run goes on (the job still evaluates after training)"
    assert re.fullmatch(r"[12] / 2( \(step \d of 5\))?", text("#stat-epoch")) and re.fullmatch(r"[\d,]+", text("#stat-speed")), (text("#stat-epoch"), text("#stat-speed"))
    assert text("#stat-loss") != "–" and re.search(r"\d+s", text("#stat-eta"))
    assert find("#stop-button").is_displayed()
    shot("2-training")
    until(lambda: text("#run-state") == "finished", timeout=TIMEOUT, what="the run to finish")
    assert find("#loss-chart").get_attribute("data-points") == "2" and find("#accuracy-chart").get_attribute("data-points") == "2"
    assert not find("#stop-button").is_displayed()

    # --- 6a. ship it: the export runs (tens of seconds) while the run is reviewed and tried ---
    tab("ship")
    find("#export-button").click()
    until(lambda: re.search(r"export: (queued|running)", text("#export-state")), what="the export to start")
    assert find("#export-button").get_attribute("disabled") is not None

    # --- 4. review: a confusion-matrix cell, a mistake relabelled with the keyboard, undo, again ---
    tab("review")
    until(lambda: len(find_all("#confusion td.cell")) == 9, what="the confusion matrix")
    assert [cell.text for cell in find_all("#confusion thead th")][1:] == ["green", "lime", "red"]  # the run's class order
    cells = find_all("#confusion td.cell")
    counts = [int(cell.get_attribute("data-count")) for cell in cells]
    assert sum(counts) == 3  # one eval picture per class (12 × 10%)
    mistakes = [cell for cell in cells if "diagonal" not in cell.get_attribute("class") and int(cell.get_attribute("data-count"))]
    assert mistakes, "green and lime look alike: the eval split must hold a mistake"
    cell = mistakes[0]
    label, predicted, count = cell.get_attribute("data-row"), cell.get_attribute("data-col"), int(cell.get_attribute("data-count"))
    cell.click()
    until(lambda: len(find_all("#gallery .thumb")) == count and find("#picked").is_displayed(), what="the cell's pictures")
    assert text("#gallery-title") == f"{count} {label} picture{'s' if count > 1 else ''} predicted {predicted}"
    assert f"labelled {label} · predicted {predicted}" in text("#picked-info")
    key = find("#gallery .thumb.selected").get_attribute("data-key")
    digit = find(f'#picked-actions button.relabel[data-label="{predicted}"]').text.split(" ")[0]
    thumb = f'#gallery .thumb[data-key="{key}"] .badge'
    press(digit)
    until(lambda: find_all(thumb) and find(thumb).text == f"→ {predicted}", what="the relabel")
    press("u")
    until(lambda: not find_all(thumb), what="the undo")
    press(digit)
    until(lambda: find_all(thumb) and find(thumb).text == f"→ {predicted}", what="the relabel again")
    assert "1 picture relabelled or excluded" in text("#review-note")
    assert httpx.get(f"{url}/api/projects/{PROJECT}").json()["overrides"] == [{"key": key, "label": predicted}]
    find('#lists [data-list="confident"]').click()
    until(lambda: "most confident first" in text("#gallery-title"))
    assert len(find_all("#gallery .thumb")) == sum(counts) - sum(int(c.get_attribute("data-count")) for c in find_all("#confusion td.diagonal"))
    browser.execute_script("window.scrollTo(0, 0)")
    shot("3-review")

    # --- 5. try it: a picture, top-5 bars, add it to the data; then the (fake) webcam ---
    tab("try")
    find("#try-file").send_keys(str(folder / "try-red.png"))
    until(lambda: len(find_all("#bars .bar")) == 3, what="the bars")
    bars = find_all("#bars .bar")
    shown = [float(bar.get_attribute("data-probability")) for bar in bars]
    assert {bar.get_attribute("data-label") for bar in bars} == set(CLASSES)
    assert shown == sorted(shown, reverse=True) and sum(shown) == pytest.approx(1, abs=1e-4)
    assert bars[0].find_element(By.CLASS_NAME, "value").text == f"{shown[0] * 100:.1f}%"
    assert "corolla predict PICTURE --model" in cli()
    Select(find("#try-class")).select_by_value("red")
    find("#try-add-button").click()
    until(lambda: text("#try-note") == "Added to red: the next training uses it.", what="the picture added")
    assert {entry["name"]: entry["count"] for entry in httpx.get(f"{url}/api/projects/{PROJECT}").json()["classes"]}["red"] == PER_CLASS + 1
    before = find("#try-preview").get_attribute("src")
    find("#camera-start").click()
    until(lambda: browser.execute_script("return document.getElementById('camera').videoWidth") > 0, what="the camera")
    find("#camera-snap").click()
    until(lambda: find("#try-preview").get_attribute("src") != before and len(find_all("#bars .bar")) == 3, what="the camera's picture")
    shot("4-try")
    find("#camera-stop").click()

    # --- 6b. ship it: the parity table; serve and its curl / Python lines ---
    tab("ship")
    until(lambda: find("#parity").is_displayed() and find_all("#parity tbody tr"), timeout=TIMEOUT, what="the parity table")
    rows = {row.get_attribute("data-format"): row for row in find_all("#parity tbody tr")}
    assert {"saved_model", "onnx", "litert"} <= set(rows), list(rows)
    for name, row in rows.items():
        assert float(row.find_element(By.CLASS_NAME, "max-diff").text) < 1e-3, name
        assert re.fullmatch(r"\d+\.\d\d%", row.find_element(By.CLASS_NAME, "agreement").text), name
    assert "on 3 eval pictures" in text("#parity caption") and "version 1" in text("#export-state")
    assert f"corolla export {workdir / PROJECT / 'runs' / '001'}" in cli()
    port = free_port()
    find("#serve-port").clear()
    find("#serve-port").send_keys(str(port))
    find("#serve-start").click()
    until(lambda: f"127.0.0.1:{port}/v1/models/001:predict" in text("#serve-curl"), what="the serve lines")
    assert "import base64, httpx" in text("#serve-python") and f"--port {port}" in cli()
    shot("5-ship")
    find("#serve-stop").click()
    until(lambda: text("#serve-state") == "not serving", what="the server to stop")

    # --- 7. retrain with the same settings, compare the runs, stop the new one ---
    tab("review")
    find("#retrain-button").click()
    until(lambda: text("#run-title") == "Run 002" and find("#tab-train").is_displayed(), what="the retrain")
    assert f"--out {workdir / PROJECT / 'runs' / '002'} --model convnet --epochs 2 --batch-size 8" in cli()
    tab("runs")
    until(lambda: len(find_all("#runs-table tbody tr")) == 2, what="two runs")
    first, second = find_all("#runs-table tbody tr")
    assert first.get_attribute("data-run") == "001" and "finished" in first.text and "%" in first.text
    assert second.get_attribute("data-run") == "002" and re.search(r"queued|running", second.text)
    assert [cell.text for cell in find_all("#runs-table thead th")][-5:-2] == ["F1 green", "F1 lime", "F1 red"]
    shot("6-runs")
    tab("train")
    find("#stop-button").click()
    until(lambda: text("#run-state") == "stopped", timeout=TIMEOUT, what="the stop")
    assert find("#resume-button").is_displayed()

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE" and entry.get("source") == "javascript"]
    assert not errors, errors
    if os.environ.get("STUDIO_SCREENSHOTS"):
        keep_screenshots(shots)
    print(f"studio page walk: {time.monotonic() - started:.0f} s")


def keep_screenshots(shots: pathlib.Path) -> None:
    """Copy the screenshots to tests/artifacts/studio/ and write the review one, small, as the README's picture."""
    from PIL import Image

    artifacts = ROOT / "tests" / "artifacts" / "studio"
    artifacts.mkdir(parents=True, exist_ok=True)
    for path in shots.iterdir():
        shutil.copy(path, artifacts / path.name)
    (ROOT / "docs" / "images").mkdir(exist_ok=True)
    with Image.open(shots / "3-review.png") as image:
        image.convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(ROOT / "docs" / "images" / "studio.png", optimize=True)
