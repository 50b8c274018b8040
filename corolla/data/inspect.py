"""`corolla data inspect`: what a prepared dataset holds, at a glance.

Per-class counts, the files `prepare` skipped and why, duplicate groups, and a contact sheet
PNG with sample images of every class (one row per class; a clip shows its middle frame).

Example:
    report = inspect("data/fm")          # writes data/fm/contact_sheet.png
    report["contact_sheet"]
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from corolla.data import storage
from corolla.data.manifest import Manifest

LABEL_WIDTH = 140


def inspect(data_dir: str | os.PathLike, *, per_class: int = 8, thumb_size: int = 96, out: str | os.PathLike | None = None) -> dict:
    """Summarise `data_dir` and write its contact sheet (default DATA_DIR/contact_sheet.png)."""
    manifest = Manifest.load(data_dir)
    samples = _samples(manifest, per_class)
    sheet = contact_sheet(samples, manifest.classes, thumb_size=thumb_size, per_class=per_class)
    path = str(out) if out else storage.join(manifest.directory, "contact_sheet.png")
    with storage.open_file(path, "wb") as file:
        sheet.save(file, format="PNG")
    return {
        "classes": manifest.classes,
        "counts": {split: info.per_class for split, info in manifest.splits.items()},
        "skipped": manifest.skipped,
        "duplicates": manifest.duplicates,
        "notes": manifest.notes,
        "contact_sheet": str(path),
    }


def _samples(manifest: Manifest, per_class: int) -> dict[int, list[np.ndarray]]:
    """Up to `per_class` decoded images of each class, reading shards only until every class has them."""
    import tensorflow as tf

    from corolla.data import records
    from corolla.data.pipeline import decode

    samples: dict[int, list[np.ndarray]] = {label: [] for label in range(manifest.num_classes)}
    needed = manifest.num_classes
    paths = [path for split in manifest.splits for path in manifest.shard_paths(split)]
    clips = manifest.kind == "clips"
    for serialized in tf.data.TFRecordDataset(paths):
        features = records.parse_clip_example(serialized) if clips else records.parse_example(serialized)
        label = int(features[records.LABEL])
        if len(samples[label]) < per_class:
            # A clip shows its middle frame: the sheet is for checking labels at a glance.
            encoded = features[records.FRAMES][tf.shape(features[records.FRAMES])[0] // 2] if clips else features[records.IMAGE]
            samples[label].append(decode(encoded, channels=manifest.channels).numpy())
            needed -= len(samples[label]) == per_class
            if needed == 0:
                break
    return samples


def contact_sheet(samples: dict[int, list[np.ndarray]], classes: list[str], *, thumb_size: int = 96, per_class: int = 8) -> Image.Image:
    """One row per class: its name, then its sample images scaled to fit `thumb_size` squares."""
    sheet = Image.new("RGB", (LABEL_WIDTH + per_class * thumb_size, len(classes) * thumb_size), "white")
    draw = ImageDraw.Draw(sheet)
    for row, name in enumerate(classes):
        draw.text((6, row * thumb_size + thumb_size // 2 - 6), f"{name} ({row})", fill="black")
        for column, pixels in enumerate(samples.get(row, [])):
            image = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).convert("RGB")
            image.thumbnail((thumb_size - 4, thumb_size - 4), Image.Resampling.LANCZOS if max(image.size) > thumb_size else Image.Resampling.NEAREST)
            if max(image.size) < thumb_size // 2:  # tiny images (28 px): enlarge so they can be seen
                factor = (thumb_size - 4) // max(image.size)
                image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
            x = LABEL_WIDTH + column * thumb_size + (thumb_size - image.width) // 2
            sheet.paste(image, (x, row * thumb_size + (thumb_size - image.height) // 2))
    return sheet
