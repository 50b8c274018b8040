"""The command line: help texts, and one clear line (no traceback) for bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest


def corolla(*args):
    return subprocess.run([sys.executable, "-m", "corolla.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_stage():
    result = corolla("--help")
    assert result.returncode == 0
    for command in ("prepare", "train", "evaluate", "export", "serve", "predict", "demo", "datasets"):
        assert command in result.stdout



@pytest.mark.parametrize(
    "command, shown",
    [
        (["train"], "[default: auto]"),  # Rich reads "[...]" as markup unless escaped: the defaults vanished once
        (["prepare"], "[default: a new shard every ~100 MB]"),
        (["bench-serve"], "[default: small generated JPEGs]"),
    ],
)
def test_help_shows_the_defaults_written_in_brackets(command, shown):
    result = subprocess.run([sys.executable, "-m", "corolla.cli", *command, "--help"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "COLUMNS": "400"})  # fmt: skip
    assert shown in result.stdout

def test_the_cli_loads_no_heavy_library_before_a_command_needs_it():
    """`corolla --help` and a typo answer at once: TensorFlow, Keras and FastAPI load on use."""
    heavy = ("tensorflow", "keras", "fastapi", "apache_beam")
    code = f"import sys, corolla, corolla.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "/no/such/data"], "Data folder not found: /no/such/data"),
        (["evaluate", "/no/such/run"], "is not a training run"),
        (["prepare", "/no/such/photos", "--out", "/tmp/x"], "not a folder, not a .csv file"),
        (["predict", "/no/such.jpg", "--url", "http://127.0.0.1:9"], "Image file not found"),
        (["datasets", "fetch", "nope"], "Unknown dataset 'nope'"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = corolla(*args)
    assert result.returncode == 1
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_unknown_model_lists_the_available_ones(prepared, tmp_path):
    result = corolla("train", str(prepared), "--model", "nope", "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "Unknown model 'nope'. Available: " in message and "convnet, dense" in message


def test_data_inspect_shows_counts_skipped_files_and_writes_a_contact_sheet(prepared, tmp_path):
    from PIL import Image

    sheet = tmp_path / "sheet.png"
    result = corolla("data", "inspect", str(prepared), "--per-class", "4", "--out", str(sheet))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "3 skipped file(s)" in text and "red/truncated.jpg" in text and "empty file" in text
    assert "blue" in text and "total" in text
    with Image.open(sheet) as image:
        assert image.size == (140 + 4 * 96, 3 * 96)  # label column + 4 samples, one row per class
        row = np.asarray(image.convert("RGB"))[96 * 2 : 96 * 3, 140:]  # the 'red' row is mostly red
        assert row[..., 0].mean() > row[..., 2].mean() + 30
