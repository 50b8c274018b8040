"""`manifest.json`: what `prepare` wrote, read by every later stage.

Nothing downstream (class count, image count, image size, label order) is ever typed twice.
`kind` says what one example is: an image, or a clip of `frames` sampled frames (with their
duration and frame-rate statistics in `clips`). For question answering (`task: qa`) the classes
are the answers, and the question vocabulary lies beside the manifest (`vocabulary.txt`).

Example:
    manifest = Manifest.load("data/fm")
    manifest.num_classes, manifest.count("train"), manifest.shard_paths("eval")
    manifest.kind, manifest.frames           # "clips", 16
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from corolla.data import storage
from corolla.errors import CorollaError

MANIFEST = "manifest.json"
LABELS = "labels.txt"
VOCABULARY = "vocabulary.txt"  # question answering: the question words, one per line, in TextVectorization's order
KINDS = ("images", "clips")
TASKS = ("classify", "qa")
FORMAT_VERSION = 1
FOLDER_IMAGE_SIZE = 224  # training size for direct-from-folder data, which has no manifest to say


@dataclasses.dataclass
class Shard:
    file: str
    records: int


@dataclasses.dataclass
class Split:
    count: int
    per_class: dict[str, int]
    shards: list[Shard]


@dataclasses.dataclass
class Manifest:
    source: str
    classes: list[str]
    image_size: int
    channels: int
    splits: dict[str, Split]
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[dict] = dataclasses.field(default_factory=list)  # groups of files with identical bytes
    # Images not stored at image_size × image_size (smaller than it); None: unknown (older data, folders).
    off_size_images: int | None = None
    directory: pathlib.Path | None = dataclasses.field(default=None, compare=False)
    format_version: int = FORMAT_VERSION
    # Direct-from-folder mode (no `prepare`): split → [(path, label)], read straight from the files.
    files: dict[str, list[tuple[str, int]]] | None = dataclasses.field(default=None, compare=False, repr=False)
    kind: str = "images"  # what one example is: an image, or a clip of `frames` frames
    frames: int = 0  # clips: frames per example the model takes (shorter clips are padded and masked)
    clips: dict | None = None  # clips: {"frames"|"duration_s"|"fps": {"min", "mean", "max"}, "sampling": …, "variable_frame_rate": n}
    task: str = "classify"  # or "qa": classes are the answers, questions use VOCABULARY
    question_length: int = 0  # qa: tokens per question the model takes
    # prepare --overrides: {"file", "relabelled", "excluded", "unchanged", "new_classes", "dropped_classes", "unmatched": [keys]}
    overrides: dict | None = None

    @property
    def vocabulary(self) -> list[str]:
        """qa: the question vocabulary (index 0 padding and 1 out-of-vocabulary are TextVectorization's own)."""
        if self.task != "qa":
            return []
        return [line for line in storage.read_text(storage.join(self.directory, VOCABULARY)).split("\n") if line]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def count(self, split: str) -> int:
        return self._split(split).count

    def shard_paths(self, split: str) -> list[str]:
        return [storage.join(self.directory, shard.file) for shard in self._split(split).shards]

    def _split(self, split: str) -> Split:
        if split not in self.splits:
            raise CorollaError(
                f"The dataset in {self.directory} has no '{split}' split. "
                f"Available: {', '.join(self.splits)}. Received: split={split!r}"
            )
        return self.splits[split]

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("directory")
        data.pop("files")
        return data

    def save(self, directory: str | os.PathLike) -> None:
        storage.write_text(storage.join(directory, LABELS), "".join(f"{name}\n" for name in self.classes))
        storage.write_text(storage.join(directory, MANIFEST), json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Manifest":
        """Read DATA_DIR/manifest.json (a local folder or a gs://… URL)."""
        directory = str(directory) if storage.is_remote(directory) else pathlib.Path(directory)
        path = storage.join(directory, MANIFEST)
        if not storage.exists(directory):
            raise CorollaError(
                f"Data folder not found: {directory}. Create it with `corolla prepare SOURCE --out {directory}`. "
                f"Received: data_dir={str(directory)!r}"
            )
        if not storage.exists(path):
            raise CorollaError(
                f"{directory} has no {MANIFEST}, so it was not written by `corolla prepare` (or preparation did not "
                f"finish). Run `corolla prepare SOURCE --out {directory}`."
            )
        try:
            data = json.loads(storage.read_text(path))
            splits = {
                name: Split(split["count"], split["per_class"], [Shard(**shard) for shard in split["shards"]])
                for name, split in data.pop("splits").items()
            }
            return cls(splits=splits, directory=directory, **data)
        except (ValueError, KeyError, TypeError) as error:
            raise CorollaError(f"{path} is damaged ({error}). Re-run `corolla prepare` into this folder.") from None


def describe(data_dir: str | os.PathLike, *, image_size: int | None = None, eval_fraction: float = 0.1, seed: int = 42) -> Manifest:
    """The manifest of prepared data, or one made on the fly for a raw folder or CSV (unvalidated)."""
    path = pathlib.Path(data_dir)
    if storage.is_remote(data_dir) or (path / MANIFEST).is_file() or not (path.is_dir() or path.suffix.lower() == ".csv"):
        return Manifest.load(data_dir)  # also gives the clear "not found / not prepared" errors
    from corolla.data.sources import resolve_source, split_items

    source = resolve_source(str(path))
    if source.kind == "clips":
        raise CorollaError(f"{path} holds clips, which are read from prepared shards. Run `corolla prepare {path} --out DATA_DIR` first.")
    items = split_items(source.items, eval_fraction=eval_fraction, seed=seed)
    files = {split: [(item.path, item.label) for item in items if item.split == split] for split in ("train", "eval")}
    splits = {
        split: Split(len(pairs), {name: sum(1 for _, label in pairs if label == i) for i, name in enumerate(source.classes)}, [])
        for split, pairs in files.items()
        if pairs
    }
    return Manifest(
        source=source.description, classes=source.classes, image_size=image_size or FOLDER_IMAGE_SIZE,
        channels=source.channels, splits=splits, skipped=source.skipped, directory=path, files=files,
    )
