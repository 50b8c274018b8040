import collections

"""Listing sources: folders, CSVs, and the seeded per-class split."""

import pytest

from corolla.data.sources import EVAL, csv_source, folder_source, resolve_source, split_items, with_eval_source
from corolla.errors import CorollaError


def test_folder_classes_ignore_hidden_and_include_nested(image_folder):
    source = folder_source(image_folder)
    assert source.classes == ["blue", "green", "red"]
    keys = [item.key for item in source.items]
    assert not any(".DS_Store" in key or "ipynb" in key or "MACOSX" in key for key in keys)
    assert any("nested" in key for key in keys)
    assert len(keys) == 3 * 20 + 3  # + truncated.jpg, empty.png, notes.txt: judged later, by content


def test_csv_with_header_relative_paths_and_missing_file(image_folder, tmp_path):
    csv_path = image_folder / "list.csv"
    csv_path.write_text("path,label\nred/1.jpg,rouge\n" + f"{image_folder}/blue/3.jpg,bleu\nred/missing.jpg,rouge\n\n")
    source = csv_source(csv_path)
    assert source.classes == ["bleu", "rouge"]
    assert [item.label for item in source.items] == [1, 0]
    assert source.skipped == [{"source": str(image_folder / "red/missing.jpg"), "reason": "file not found (CSV line 4)"}]
    csv_path.unlink()


def test_csv_bad_line_names_its_line_number(tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("a.jpg,cat\nb.jpg\n")
    with pytest.raises(CorollaError, match="line 2"):
        csv_source(csv_path)


def test_labels_file_fixes_class_order(image_folder, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    assert folder_source(image_folder, labels_file=str(labels)).classes == ["red", "green", "blue"]


def test_unknown_source_says_what_is_accepted():
    with pytest.raises(CorollaError, match="not a folder, not a .csv file"):
        resolve_source("/no/such/place")


def test_split_is_stratified_seeded_and_mixed(image_folder):
    source = folder_source(image_folder)
    items = split_items(source.items, eval_fraction=0.1, seed=1)
    counts = collections.Counter((item.label, item.split) for item in items)
    assert [counts[(label, EVAL)] for label in range(3)] == [2, 2, 2]  # round(21 × 0.1) of each class
    assert [item.key for item in split_items(source.items, eval_fraction=0.1, seed=1)] == [item.key for item in items]
    assert [item.label for item in items[:12]] != sorted(item.label for item in items[:12])  # classes interleaved


def test_eval_source_is_merged_by_label_name(image_folder, tmp_path):
    (tmp_path / "red").mkdir()
    (tmp_path / "red" / "x.png").write_bytes((image_folder / "red" / "2.png").read_bytes())
    merged = with_eval_source(folder_source(image_folder), folder_source(tmp_path))
    evaluation = [item for item in merged.items if item.split == EVAL]
    assert [(item.label, merged.classes[item.label]) for item in evaluation] == [(2, "red")]
    (tmp_path / "purple").mkdir()
    with pytest.raises(CorollaError, match="purple"):
        with_eval_source(folder_source(image_folder), folder_source(tmp_path))
