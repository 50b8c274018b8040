"""Session-scoped fixtures: one small image folder, prepared, trained and exported once for all tests;
the clip modules' `moves` and `handled` (module-scoped); a headless Chromium."""

from __future__ import annotations

import io
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}
PER_CLASS = 20
# The shared run: 6 epochs of 8 images is 36 steps, so solid colours separate on every seed tried
# (3 × 16 was on the edge: one CI machine got 78%).
TRAINED_EPOCHS, TRAINED_BATCH = 6, 8


def encode(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noisy_colour(rng: np.random.Generator, colour, height: int = 40, width: int = 48) -> np.ndarray:
    return (rng.normal(0, 25, (height, width, 3)) + colour).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """3 classes × 20 images (JPEG and PNG, some nested), plus files prepare must skip or ignore."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        for index in range(PER_CLASS):
            folder = root / name / ("nested" if index % 5 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            pixels = noisy_colour(rng, colour)
            if index % 2:
                (folder / f"{index}.jpg").write_bytes(encode(pixels, "JPEG", quality=90))
            else:
                (folder / f"{index}.png").write_bytes(encode(pixels))
    jpeg = (root / "red" / "1.jpg").read_bytes()
    (root / "red" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "green" / "empty.png").write_bytes(b"")
    (root / "blue" / "notes.txt").write_text("not an image")
    (root / "blue" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "__MACOSX").mkdir()
    return root


@pytest.fixture(scope="session")
def prepared(image_folder, tmp_path_factory):
    from corolla.data.prepare import prepare

    out = tmp_path_factory.mktemp("data") / "shapes"
    prepare(str(image_folder), out=out, image_size=32, verbose=False)
    return out


@pytest.fixture(scope="session")
def trained_run(prepared, tmp_path_factory):
    from corolla.train import train

    out = tmp_path_factory.mktemp("runs") / "shapes-run"
    train(prepared, out=out, epochs=TRAINED_EPOCHS, batch_size=TRAINED_BATCH, verbose=False)
    return out


@pytest.fixture(scope="session")
def exported(trained_run):
    from corolla.export import export

    return export(trained_run)


@pytest.fixture(scope="session")
def keras_predict(trained_run):
    """The in-process reference: the run's Keras model on the training pipeline's decode/resize."""
    import tensorflow as tf

    from corolla.data.pipeline import decode_and_resize
    from corolla.run import Run

    run = Run(trained_run)
    model = run.load_model()

    def predict(data: bytes) -> np.ndarray:
        image = decode_and_resize(tf.constant(data), image_size=run.config.image_size, channels=run.config.channels)
        return model.predict_on_batch(image[None])[0]

    return predict


# --- the clips of tests/test_clips.py and tests/test_clips_qa.py (tests/clipkit.py) ---------------


@pytest.fixture(scope="module")
def moves(tmp_path_factory):
    """The clips of tests/clipkit.py: (root, one dict per clip) under root/{train,eval}/{left,right}/NN.mp4."""
    from tests.clipkit import SEED, write_moves

    root = tmp_path_factory.mktemp("moves")
    return root, write_moves(root, SEED)


@pytest.fixture(scope="module")
def handled(moves, tmp_path_factory) -> list:
    """Eval clips left/00 (red), left/01 (green), right/00, right/01, and awkward clips that must be answered: variable
    frame rate, a rotated phone video, fewer frames than the model takes (padded and masked), an odd 161×97 frame (VP9/WebM)."""
    from tests import clipgen
    from tests.clipkit import SOURCE_FRAMES

    root = tmp_path_factory.mktemp("handled")
    evals = [clip["path"] for clip in moves[1] if clip["split"] == "eval" and clip["index"] < 2]
    awkward = {
        "vfr.mp4": dict(direction="left", frames=SOURCE_FRAMES, variable_frame_rate=True, seed=1),
        "phone.mp4": dict(direction="right", frames=SOURCE_FRAMES, rotation=90, seed=2),
        "short.mp4": dict(direction="left", frames=5, seed=3),
        "odd.webm": dict(direction="right", frames=12, size=(161, 97), codec="libvpx-vp9", seed=4),
    }
    for name, options in awkward.items():
        clipgen.make_clip(root / name, colour=COLOURS["green"], **options)
    return [*evals, *(root / name for name in awkward)]


def chromium_driver(*arguments: str, window: str = "1200,2000", browser_log: bool = False):
    """Headless Debian Chromium under Selenium with extra command-line `arguments` (skips where it is not installed)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/install-system-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={window}", *arguments):
        options.add_argument(argument)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, shared by the page tests."""
    driver = chromium_driver()
    yield driver
    driver.quit()
