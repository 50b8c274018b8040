"""Listing sources: folders, CSVs, and the seeded per-class split."""

import pytest

from corolla.data.beam_steps import eval_threshold
from corolla.data.sources import csv_source, folder_source, resolve_source
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


def test_eval_threshold_takes_exactly_the_fraction():
    orders = [9, 3, 7, 1, 5, 11, 13, 15, 17, 19]
    threshold = eval_threshold(orders, 0.2)
    assert sorted(order for order in orders if order < threshold) == [1, 3]
    assert not [order for order in [4, 8] if order < eval_threshold([4, 8], 0.1)]  # round(0.2) = 0: all train
    assert len([o for o in orders if o < eval_threshold(orders, 0.0)]) == 0
