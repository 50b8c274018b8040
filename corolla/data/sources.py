"""Turn what the user points at (a folder, a CSV, a built-in dataset name) into labelled items.

Listing happens here, in the driver; reading and validating the bytes happens in the Beam
pipeline (`corolla.data.prepare`), so a 10,000-image folder is listed in a second.

Example:
    source = resolve_source("photos/")           # photos/roses/*.jpg, photos/tulips/*.jpg, ...
    source.classes, len(source.items), source.skipped
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
import pathlib
import random

from corolla.errors import CorollaError

TRAIN, EVAL = "train", "eval"


@dataclasses.dataclass(frozen=True)
class SourceItem:
    key: str  # where the image came from, as reported to the user
    label: int
    path: str  # local path, any tf.io.gfile URL (gs://…), or builtin://<dataset>/<split>/<index>
    split: str | None = None  # fixed by the source (official test sets), else assigned by `split_items`
    question: str = ""  # clips for question answering: the question asked (the label is its answer)


@dataclasses.dataclass
class Source:
    description: str
    classes: list[str]
    items: list[SourceItem]
    channels: int = 3
    native_size: int | None = None  # all images already this size (built-in datasets)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    kind: str = "images"  # or "clips" (corolla.data.clip_sources)
    task: str = "classify"  # or "qa": clips with questions, the labels being the answers


def resolve_source(spec: str, *, labels_file: str | None = None, kind: str = "auto") -> Source:
    """Dispatch on what `spec` is: a folder, a `.csv` file, or a built-in dataset name.

    `kind` "auto" reads clips from a folder holding video files or a CSV naming them (or with a
    question column), images otherwise; "clips" also takes GIFs and frame folders as clips.
    """
    from corolla.data import datasets

    if kind not in ("auto", "images", "clips"):
        raise CorollaError(f"Unknown kind of data '{kind}'. Expected one of: auto, images, clips. Received: kind={kind!r}")
    path = pathlib.Path(spec).expanduser()
    if kind == "clips" or (kind == "auto" and _names_clips(path)):
        from corolla.data.clip_sources import clip_source

        return clip_source(spec, labels_file=labels_file)
    if path.is_dir():
        return folder_source(path, labels_file=labels_file)
    if path.is_file() and path.suffix.lower() in (".csv", ".txt"):
        return csv_source(path, labels_file=labels_file)
    if spec in {dataset.name for dataset in datasets.list_datasets()}:
        return builtin_source(spec)
    names = ", ".join(dataset.name for dataset in datasets.list_datasets())
    raise CorollaError(
        f"Cannot use {spec!r} as a source: it is not a folder, not a .csv file, and not a built-in dataset. "
        f"Expected a folder of class sub-folders, a CSV of `path,label` lines, or one of: {names}. "
        f"Received: source={spec!r}"
    )


def _names_clips(path: pathlib.Path) -> bool:
    """A folder holding videos, or a CSV whose first path is a video or whose rows have a question column."""
    from corolla.data.clip_sources import has_videos
    from corolla.data.video import VIDEO_SUFFIXES

    if path.is_dir():
        return has_videos(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".txt"):
        rows = [row for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))) if any(cell.strip() for cell in row)]
        for row in rows[:2]:  # a header, then the first line
            cells = [cell.strip().lower() for cell in row]
            if len(cells) == 3 or cells[0].endswith(tuple(suffix for suffix in VIDEO_SUFFIXES if suffix != ".gif")):
                return True
    return False


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def folder_source(root: pathlib.Path, *, labels_file: str | None = None) -> Source:
    """Each non-hidden sub-folder is a class; every non-hidden file below it is a candidate image."""
    found = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not _hidden(entry.name))
    classes = _class_order(found, labels_file)
    if not classes:
        raise CorollaError(f"{root} has no class sub-folders. Expected {root}/<label>/<image files>.")
    items = []
    for label, name in enumerate(classes):
        for directory, subdirs, files in os.walk(root / name):
            subdirs[:] = sorted(d for d in subdirs if not _hidden(d))
            for file in sorted(f for f in files if not _hidden(f)):
                path = os.path.join(directory, file)
                items.append(SourceItem(key=os.path.relpath(path, root), label=label, path=path))
    return Source(description=str(root), classes=classes, items=items)


def csv_source(csv_path: pathlib.Path, *, labels_file: str | None = None) -> Source:
    """Lines of `path,label`; paths absolute, relative to the CSV, or gs:// (any tf.io.gfile scheme)."""
    rows, skipped = [], []
    text = csv_path.read_text(encoding="utf-8-sig")
    for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise CorollaError(
                f"{csv_path}, line {line_number}: expected two columns `path,label`. Received: {','.join(row)!r}"
            )
        image_path, label = row[0].strip(), row[1].strip()
        if line_number == 1 and (image_path.lower(), label.lower()) in {("path", "label"), ("image", "label"), ("filename", "label")}:
            continue  # header
        if "://" not in image_path and not os.path.isabs(image_path):
            image_path = str(csv_path.parent / image_path)
        if "://" not in image_path and not os.path.isfile(image_path):
            skipped.append({"source": image_path, "reason": f"file not found (CSV line {line_number})"})
            continue
        rows.append((image_path, label))
    classes = _class_order(sorted({label for _, label in rows}), labels_file)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for _, label in rows if label not in index})
    if unknown:
        raise CorollaError(f"{csv_path} uses labels missing from {labels_file}: {', '.join(unknown)}.")
    items = [SourceItem(key=path, label=index[label], path=path) for path, label in rows]
    return Source(description=str(csv_path), classes=classes, items=items, skipped=skipped)


BUILTIN = "builtin://"


def builtin_source(name: str) -> Source:
    """A built-in dataset; its official test set stays the eval split, so accuracies compare.

    Items are references (builtin://name/split/index) that each pipeline worker resolves from
    its own cached copy of the arrays, so no image data travels inside the Beam pipeline.
    """
    from corolla.data import datasets

    dataset = datasets.get_dataset(name)
    if dataset.reader == "folder-archive":
        photos = folder_source(datasets.dataset_folder(name))
        return dataclasses.replace(photos, description=name)
    items = []
    arrays = datasets.load_arrays(name)
    for split, (_, labels) in arrays.items():
        split_name = (TRAIN if split == "train" else EVAL) if "test" in arrays else None  # no test set: split later
        for index, label in enumerate(labels.tolist()):
            items.append(SourceItem(key=f"{name}/{split}/{index}", label=label, path=f"{BUILTIN}{name}/{split}/{index}", split=split_name))
    channels = 3 if arrays["train"][0].ndim == 4 else 1
    return Source(description=name, classes=list(dataset.labels), items=items, channels=channels, native_size=dataset.image_size)


@functools.lru_cache(maxsize=4)
def _arrays(name: str) -> dict:
    from corolla.data import datasets

    return datasets.load_arrays(name)


def builtin_image(uri: str) -> bytes:
    """PNG bytes of builtin://<dataset>/<split>/<index>."""
    from PIL import Image

    name, split, index = uri[len(BUILTIN) :].split("/")
    buffer = io.BytesIO()
    Image.fromarray(_arrays(name)[split][0][int(index)]).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _class_order(found: list[str], labels_file: str | None) -> list[str]:
    if labels_file is None:
        return found
    classes = [line.strip() for line in pathlib.Path(labels_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(classes)) != len(classes):
        raise CorollaError(f"{labels_file} lists a label twice; each line must be a distinct label.")
    return classes


def split_items(items: list[SourceItem], *, eval_fraction: float = 0.1, seed: int = 42) -> list[SourceItem]:
    """Give every item without a split one: a seeded round(n × eval_fraction) of each class goes to eval.

    Items come back in a seeded shuffled order, so classes are mixed inside every shard.
    """
    rng = random.Random(seed)
    by_class: dict[int, list[SourceItem]] = {}
    result = [item for item in items if item.split]
    for item in items:
        if not item.split:
            by_class.setdefault(item.label, []).append(item)
    for _, members in sorted(by_class.items()):
        members = sorted(members, key=lambda item: item.key)
        rng.shuffle(members)
        n_eval = round(len(members) * eval_fraction)
        result += [dataclasses.replace(item, split=EVAL if i < n_eval else TRAIN) for i, item in enumerate(members)]
    rng.shuffle(result)
    return result


def with_eval_source(train: Source, evaluation: Source) -> Source:
    """Merge a separately given eval set (`--eval SOURCE`) into the training source."""
    unknown = sorted(set(evaluation.classes) - set(train.classes))
    if unknown:
        raise CorollaError(
            f"The eval set {evaluation.description} has classes the training set lacks: {', '.join(unknown)}. "
            f"Expected a subset of: {', '.join(train.classes)}."
        )
    index = {name: i for i, name in enumerate(train.classes)}
    relabel = [
        dataclasses.replace(item, label=index[evaluation.classes[item.label]], split=EVAL) for item in evaluation.items
    ]
    fixed = [dataclasses.replace(item, split=item.split or TRAIN) for item in train.items]
    return dataclasses.replace(train, items=fixed + relabel, skipped=train.skipped + evaluation.skipped)
