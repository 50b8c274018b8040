"""`corolla predict` on files and folders: bad files are reported one by one, the rest still predicted."""

import csv
import io
import json
import pathlib
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from corolla.cli import app
from corolla.predict import predict
from tests.conftest import COLOURS, encode, noisy_colour

BAD = {"red/truncated.jpg", "green/empty.png", "blue/notes.txt"}


def by_name(results, root):
    return {str(pathlib.Path(result["image"]).relative_to(root)): result for result in results}


def test_folder_with_bad_files(exported, image_folder):
    results = by_name(predict([image_folder], model=exported.parent, top_k=2), image_folder)
    assert len(results) == 63 and not any(".DS_Store" in name for name in results)  # 60 images + 3 bad, hidden skipped
    assert {name for name, result in results.items() if "error" in result} == BAD
    assert results["green/empty.png"]["error"] == "empty file"
    assert results["red/truncated.jpg"]["error"].startswith("cannot be decoded")
    good = {name: result for name, result in results.items() if name not in BAD}
    assert all(len(result["top"]) == 2 for result in good.values())
    right = sum(result["top"][0]["label"] == name.split("/")[0] for name, result in good.items())
    assert right >= 57


def test_run_folder_without_export_uses_the_checkpoint(trained_run, keras_predict, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export", "report"))
    image = tmp_path / "x.png"
    image.write_bytes(encode(noisy_colour(np.random.default_rng(2), COLOURS["green"])))
    result, missing = predict([image, tmp_path / "missing.jpg"], model=run, top_k=3)
    expected = keras_predict(image.read_bytes())
    assert [entry["label"] for entry in result["top"]] == [["blue", "green", "red"][i] for i in np.argsort(-expected)]
    assert result["top"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert missing == {"image": str(tmp_path / "missing.jpg"), "error": "No such file or directory"}


def test_cli_json_and_csv_for_scripts(exported, image_folder):
    runner = CliRunner()
    files = [str(image_folder / "red" / "1.jpg"), str(image_folder / "red" / "truncated.jpg")]
    as_json = runner.invoke(app, ["predict", *files, "--model", str(exported.parent), "--format", "json", "--top-k", "1"])
    assert as_json.exit_code == 1  # one file failed: scripts can tell
    rows = json.loads(as_json.stdout)
    assert rows[0]["top"][0]["label"] == "red" and "cannot be decoded" in rows[1]["error"]
    as_csv = runner.invoke(app, ["predict", files[0], "--model", str(exported.parent), "--format", "csv", "--top-k", "2"])
    assert as_csv.exit_code == 0
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["rank"] for row in table] == ["1", "2"] and table[0]["label"] == "red" and table[0]["error"] == ""
