"""`prepare --overrides FILE`: items relabelled or excluded by record key before the split, bad files refused."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from corolla.data import records
from corolla.data.manifest import Manifest
from corolla.data.overrides import apply_overrides, read_overrides
from corolla.data.prepare import prepare
from corolla.data.sources import Source, SourceItem
from corolla.errors import CorollaError
from tests.conftest import COLOURS, encode, noisy_colour


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """a/0..5.png (red) and b/0..5.png (green), 16 px."""
    root = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(1)
    for name, colour in (("a", COLOURS["red"]), ("b", COLOURS["green"])):
        (root / name).mkdir()
        for index in range(6):
            (root / name / f"{index}.png").write_bytes(encode(noisy_colour(rng, colour, 16, 16)))
    return root


def write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def stored(directory) -> dict[str, tuple[str, int, str]]:
    """key → (split, label, label text) of every record prepare wrote."""
    manifest, found = Manifest.load(directory), {}
    for split in manifest.splits:
        for raw in tf.data.TFRecordDataset(manifest.shard_paths(split)):
            features = records.parse_example(raw)
            key = features[records.KEY].numpy().decode()
            assert key not in found
            found[key] = (split, int(features[records.LABEL]), features[records.LABEL_TEXT].numpy().decode())
    return found


def test_relabelled_items_land_in_their_new_class_and_excluded_ones_are_skipped(small_folder, tmp_path, capsys):
    fixes = write_csv(tmp_path / "fixes.csv", "key,label\na/0.png,b\na/1.png,\nb/2.png,aa\nb/3.png,aa\nb/4.png,b\ngone/9.png,a\n")
    out = tmp_path / "out"
    manifest = prepare(str(small_folder), out=out, image_size=16, eval_fraction=0.5, overrides=fixes, find_duplicates=False)
    assert manifest.classes == ["a", "aa", "b"]  # the new class joins the sorted list
    assert (out / "labels.txt").read_text() == "a\naa\nb\n"
    found = stored(out)
    assert len(found) == 11 and "a/1.png" not in found
    for key, name in {"a/0.png": "b", "b/2.png": "aa", "b/3.png": "aa", "b/4.png": "b", "a/2.png": "a", "b/0.png": "b"}.items():
        assert found[key][1:] == (manifest.classes.index(name), name), key
    # Overrides come before the split: the new class of two items has one of them held out.
    assert {split: manifest.splits[split].per_class for split in ("train", "eval")} == {
        "train": {"a": 2, "aa": 1, "b": 3}, "eval": {"a": 2, "aa": 1, "b": 2}
    }
    assert {key: split for key, (split, _, _) in found.items() if key in ("b/2.png", "b/3.png")} in (
        {"b/2.png": "train", "b/3.png": "eval"}, {"b/2.png": "eval", "b/3.png": "train"}
    )
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["skipped"] == [{"source": "a/1.png", "reason": f"excluded by overrides {fixes}"}]
    assert saved["overrides"] == {
        "file": str(fixes), "relabelled": 3, "excluded": 1, "unchanged": 1, "new_classes": ["aa"], "dropped_classes": [],
        "unmatched": ["gone/9.png"],
    }
    assert Manifest.load(out).overrides == saved["overrides"]
    assert "1 key(s) in" in capsys.readouterr().err  # the unknown key is a warning, not an error


def test_a_class_emptied_by_the_overrides_is_dropped(small_folder, tmp_path):
    fixes = write_csv(tmp_path / "merge.csv", "key,label\n" + "".join(f"a/{i}.png,b\n" for i in range(6)))
    manifest = prepare(str(small_folder), out=tmp_path / "out", image_size=16, overrides=fixes, verbose=False)
    assert manifest.classes == ["b"] and manifest.overrides["dropped_classes"] == ["a"]
    assert {label_text for _, _, label_text in stored(tmp_path / "out").values()} == {"b"}
    assert manifest.count("train") + manifest.count("eval") == 12


def source(classes, labels):
    return Source(description="test", classes=classes, items=[SourceItem(key=f"k{i}", label=label, path=f"p{i}") for i, label in enumerate(labels)])


def test_labels_file_fixes_the_class_list(tmp_path):
    labels = write_csv(tmp_path / "labels.txt", "b\na\n")
    with pytest.raises(CorollaError, match=r"classes missing from .*labels.txt: new"):
        apply_overrides(source(["b", "a"], [0, 1]), {"k0": "new"}, path="fixes.csv", labels_file=str(labels))
    fixed, summary = apply_overrides(source(["b", "a", "c"], [0, 1]), {"k0": "a"}, path="fixes.csv", labels_file=str(labels))
    assert fixed.classes == ["b", "a", "c"] and [item.label for item in fixed.items] == [1, 1]  # order and empty classes kept
    assert summary["relabelled"] == 1


def test_a_new_class_goes_last_when_the_order_is_not_sorted():
    fixed, _ = apply_overrides(source(["zebra", "ant"], [0, 1, 1]), {"k2": "bee"}, path="fixes.csv")
    assert fixed.classes == ["zebra", "ant", "bee"] and [item.label for item in fixed.items] == [0, 1, 2]


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "Overrides file not found"),
        ("path,label\na/0.png,b\n", "must start with the header `key,label`. Received: 'path,label'"),
        ("", "must start with the header `key,label`"),
        ("key,label\na/0.png,b\na/0.png,\n", r"names the key 'a/0.png' twice \(lines 2 and 3\)"),
        ("key,label\na/0.png,b,c\n", "line 2: expected `key,label`"),
    ],
)
def test_bad_overrides_files_are_refused_before_any_work(small_folder, tmp_path, text, message):
    fixes = tmp_path / "fixes.csv"
    if text is not None:
        write_csv(fixes, text)
    with pytest.raises(CorollaError, match=message):
        prepare(str(small_folder), out=tmp_path / "out", overrides=fixes, verbose=False)
    assert not (tmp_path / "out").exists()


def test_read_overrides_takes_a_bom_spaces_and_unicode(tmp_path):
    fixes = write_csv(tmp_path / "fixes.csv", "\ufeffKey , Label\n roses/1.jpg , tulipes rouges \nroses/é.jpg,\n\n")
    assert read_overrides(fixes) == {"roses/1.jpg": "tulipes rouges", "roses/é.jpg": ""}


def test_the_cli_takes_overrides_and_reports_a_bad_file_in_one_line(small_folder, tmp_path):
    def corolla(*args):
        return subprocess.run([sys.executable, "-m", "corolla.cli", *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "400"})  # fmt: skip

    assert "--overrides" in corolla("prepare", "--help").stdout
    bad = write_csv(tmp_path / "bad.csv", "key\n")
    result = corolla("prepare", str(small_folder), "--out", str(tmp_path / "bad-out"), "--overrides", str(bad))
    assert result.returncode == 1 and "header `key,label`" in result.stderr and "Traceback" not in result.stderr
    fixes = write_csv(tmp_path / "fixes.csv", "key,label\na/0.png,b\n")
    result = corolla("prepare", str(small_folder), "--out", str(tmp_path / "out"), "--image-size", "16", "--overrides", str(fixes))
    assert result.returncode == 0, result.stderr
    assert "1 relabelled, 0 excluded, 0 unmatched" in result.stdout
    assert stored(tmp_path / "out")["a/0.png"][2] == "b"


def test_clips_take_overrides_too(tmp_path):
    from tests.clipgen import make_clip

    for direction in ("left", "right"):
        (tmp_path / "moves" / direction).mkdir(parents=True)
        for index in range(3):
            make_clip(tmp_path / "moves" / direction / f"{index}.mp4", direction=direction, frames=4, size=(16, 16), seed=index)
    fixes = write_csv(tmp_path / "fixes.csv", "key,label\nleft/0.mp4,right\nright/2.mp4,\n")
    manifest = prepare(str(tmp_path / "moves"), out=tmp_path / "out", image_size=16, frames=4, eval_fraction=0, overrides=fixes, verbose=False)
    assert manifest.kind == "clips" and manifest.splits["train"].per_class == {"left": 2, "right": 3}
    texts = {}
    for raw in tf.data.TFRecordDataset(manifest.shard_paths("train")):
        features = records.parse_clip_example(raw, keys=(records.KEY, records.LABEL_TEXT))
        texts[features[records.KEY].numpy().decode()] = features[records.LABEL_TEXT].numpy().decode()
    assert texts["left/0.mp4"] == "right" and "right/2.mp4" not in texts
    assert manifest.skipped == [{"source": "right/2.mp4", "reason": f"excluded by overrides {fixes}"}]
