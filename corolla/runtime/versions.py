"""Which folders under an export base are complete versions, and their numbers.

A version folder is complete when its model_card.json lists every file with the size (and, when
asked, the SHA-256) found on disk: a folder still being copied never matches its card.

Example:
    complete_versions(pathlib.Path("runs/fm/export"))[-1]     # the newest complete version folder
"""

from __future__ import annotations

import json
import pathlib

from corolla.data.storage import sha256_file

MODEL_CARD = "model_card.json"  # written by corolla.export.card
INFO = "corolla.json"  # labels, image size, channels: written by corolla.export.card


def is_complete(version_dir: pathlib.Path, *, verify_hashes: bool = False) -> bool:
    """Every file named in model_card.json is there with its size (and SHA-256, if asked)."""
    try:
        files = json.loads((version_dir / MODEL_CARD).read_text(encoding="utf-8"))["files"]
        for name, entry in files.items():
            path = version_dir / name
            if path.stat().st_size != entry["bytes"] or (verify_hashes and sha256_file(path) != entry["sha256"]):
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return (version_dir / "saved_model.pb").is_file()


def complete_versions(base: pathlib.Path) -> list[pathlib.Path]:
    """Complete version folders under `base`, lowest version first."""
    try:
        children = [child for child in base.iterdir() if child.name.isdigit() and child.name.isascii()]
    except OSError:
        return []
    return sorted((child for child in children if is_complete(child)), key=lambda child: int(child.name))


def version_of(version_dir: pathlib.Path) -> int:
    """The version number a folder's name gives (1 for a SavedModel folder not named by a number)."""
    return int(version_dir.name) if version_dir.name.isdigit() and version_dir.name.isascii() else 1
