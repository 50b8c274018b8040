"""`prepare --overrides FILE`: relabel or exclude single items by their record key, before the split.

FILE is a CSV headed `key,label`. `key` is the key prepare stores for an item (`image/key`: for a
folder the path inside it, "roses/1.jpg"; for a CSV the path as resolved; the `key` column of
`report/predictions.csv`). `label` is the class to move it to — an existing one or a new one — or
empty to leave the item out. Keys that match nothing are reported, not fatal.

Example:
    overrides = read_overrides("fixes.csv")            # {"roses/1.jpg": "tulips", "roses/7.jpg": ""}
    source, summary = apply_overrides(source, overrides, path="fixes.csv", labels_file=None)
    summary                                            # {"file": …, "relabelled": 1, "excluded": 1, …}
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

from corolla.data.sources import Source
from corolla.errors import CorollaError

HEADER = ("key", "label")


def read_overrides(path: str | os.PathLike) -> dict[str, str]:
    """key → new label ("" to exclude) from a `key,label` CSV; a malformed file fails here, before any work."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            text = file.read()
    except FileNotFoundError:
        raise CorollaError(f"Overrides file not found: {path}. Expected a CSV with the header `key,label`. Received: overrides={str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CorollaError(f"Cannot read the overrides file {path} ({error}). Expected a UTF-8 CSV with the header `key,label`.") from None
    rows = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text)), start=1) if any(cell.strip() for cell in row)]
    if not rows or tuple(cell.strip().lower() for cell in rows[0][1]) != HEADER:
        header = ",".join(rows[0][1]) if rows else ""
        raise CorollaError(f"{path} must start with the header `key,label`. Received: {header!r}")
    overrides, lines = {}, {}
    for number, row in rows[1:]:
        if len(row) != 2 or not row[0].strip():
            raise CorollaError(f"{path}, line {number}: expected `key,label` (label empty to exclude the item). Received: {','.join(row)!r}")
        key, label = row[0].strip(), row[1].strip()
        if key in lines:
            raise CorollaError(f"{path} names the key {key!r} twice (lines {lines[key]} and {number}); each key may appear once.")
        overrides[key], lines[key] = label, number
    return overrides


def apply_overrides(source: Source, overrides: dict[str, str], *, path: str, labels_file: str | None = None) -> tuple[Source, dict]:
    """`source` with items relabelled or excluded, and a summary for the manifest.

    A new class joins the class list: in sorted place when the list is the sorted one a folder or
    CSV gives, else (a built-in dataset's official order) at the end. With `labels_file` the list
    is fixed, so a label outside it is an error. A class the overrides leave empty is dropped,
    unless `labels_file` fixes the list.
    """
    classes = list(source.classes)
    new = sorted({label for label in overrides.values() if label} - set(classes))
    if new and labels_file is not None:
        raise CorollaError(
            f"{path} relabels items to classes missing from {labels_file}: {', '.join(new)}. "
            f"Add them to {labels_file}, or use one of: {', '.join(classes)}."
        )
    relabelled = excluded = unchanged = 0
    kept, skipped, matched = [], [], set()
    for item in source.items:
        label = overrides.get(item.key)
        if label is None:
            kept.append((item, classes[item.label]))
            continue
        matched.add(item.key)
        if not label:
            excluded += 1
            skipped.append({"source": item.key, **({"split": item.split} if item.split else {}), "reason": f"excluded by overrides {path}"})
            continue
        relabelled += label != classes[item.label]
        unchanged += label == classes[item.label]
        kept.append((item, label))
    final = sorted(classes + new) if classes == sorted(classes) else classes + new
    if labels_file is None:
        used = {name for _, name in kept}
        before = {classes[item.label] for item in source.items}
        final = [name for name in final if name in used or name not in before]  # emptied by the overrides: dropped
    index = {name: i for i, name in enumerate(final)}
    items = [dataclasses.replace(item, label=index[name]) for item, name in kept]
    summary = {
        "file": str(path), "relabelled": relabelled, "excluded": excluded, "unchanged": unchanged,
        "new_classes": [name for name in new if name in index], "dropped_classes": [name for name in classes if name not in index],
        "unmatched": sorted(set(overrides) - matched),
    }
    return dataclasses.replace(source, classes=final, items=items, skipped=source.skipped + skipped), summary
