"""Clips a user points at: a folder of class sub-folders holding videos or frame folders, a CSV of
`path,label`, or a CSV of `path,question,answer` for question answering.

As for images, listing happens here and decoding in the Beam pipeline. Inside a class folder,
every video file is a clip, and every folder whose files are all images is one clip of numbered
frames (frame_0001.png, …). A video suffix decides only what is tried: a text file named `.mp4`
is skipped with its reason when decoded.

Example:
    source = clip_source("moves/")      # moves/left/*.mp4, moves/right/*.webm, moves/up/clip7/0001.png …
    source.kind, source.classes, len(source.items)
    source = clip_source("qa.csv")      # path,question,answer → task "qa", classes = the answers
"""

from __future__ import annotations

import csv
import io
import os
import pathlib

from corolla.data.sources import Source, SourceItem, _class_order, _hidden
from corolla.data.video import FRAME_SUFFIXES, VIDEO_SUFFIXES
from corolla.errors import CorollaError

FRAME_FOLDER = "frames://"  # an item path prefix: a folder of numbered frame images


def has_videos(root: pathlib.Path) -> bool:
    """Whether a folder holds any video file (GIFs excepted: they are images unless clips are asked for)."""
    suffixes = tuple(suffix for suffix in VIDEO_SUFFIXES if suffix != ".gif")
    return any(name.lower().endswith(suffixes) for _, _, files in os.walk(root) for name in files if not _hidden(name))


def clip_source(spec: str, *, labels_file: str | None = None) -> Source:
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        return clip_folder_source(path, labels_file=labels_file)
    if path.is_file() and path.suffix.lower() in (".csv", ".txt"):
        return clip_csv_source(path, labels_file=labels_file)
    raise CorollaError(f"Cannot read clips from {spec!r}: expected a folder of class sub-folders or a .csv file. Received: source={spec!r}")


def clip_folder_source(root: pathlib.Path, *, labels_file: str | None = None) -> Source:
    classes = _class_order(sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not _hidden(entry.name)), labels_file)
    if not classes:
        raise CorollaError(f"{root} has no class sub-folders. Expected {root}/<label>/<video files or frame folders>.")
    items, skipped = [], []
    for label, name in enumerate(classes):
        for directory, subdirs, files in os.walk(root / name):
            subdirs[:] = sorted(d for d in subdirs if not _hidden(d))
            files = sorted(f for f in files if not _hidden(f))
            frames = [f for f in files if f.lower().endswith(FRAME_SUFFIXES) and not f.lower().endswith(VIDEO_SUFFIXES)]
            if frames and len(frames) == len(files) and pathlib.Path(directory) != root / name and not subdirs:
                items.append(SourceItem(key=os.path.relpath(directory, root), label=label, path=FRAME_FOLDER + directory))
                continue
            for file in files:
                file_path = os.path.join(directory, file)
                key = os.path.relpath(file_path, root)
                if file.lower().endswith(VIDEO_SUFFIXES):
                    items.append(SourceItem(key=key, label=label, path=file_path))
                else:
                    skipped.append({"source": key, "reason": "not a video or a folder of frames"})
    return Source(description=str(root), classes=classes, items=items, skipped=skipped, kind="clips")


def clip_csv_source(csv_path: pathlib.Path, *, labels_file: str | None = None) -> Source:
    """`path,label` (classification) or `path,question,answer` (question answering) lines; header optional."""
    rows, skipped, columns = [], [], None
    for line_number, row in enumerate(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if line_number == 1 and cells[0].lower() in ("path", "video", "clip", "filename") and cells[-1].lower() in ("label", "answer"):
            columns = len(cells)
            continue  # header
        columns = columns or len(cells)
        if len(cells) != columns or columns not in (2, 3) or not cells[0] or not cells[-1]:
            expected = "`path,question,answer`" if columns == 3 else "`path,label`"
            raise CorollaError(f"{csv_path}, line {line_number}: expected {expected}. Received: {','.join(row)!r}")
        clip_path = cells[0]
        if "://" not in clip_path and not os.path.isabs(clip_path):
            clip_path = str(csv_path.parent / clip_path)
        if "://" not in clip_path and not os.path.exists(clip_path):
            skipped.append({"source": clip_path, "reason": f"file not found (CSV line {line_number})"})
            continue
        if columns == 3 and not cells[1]:
            skipped.append({"source": f"{clip_path} (CSV line {line_number})", "reason": "empty question"})
            continue
        if os.path.isdir(clip_path):
            clip_path = FRAME_FOLDER + clip_path
        rows.append((clip_path, cells[-1], cells[1] if columns == 3 else "", line_number))
    classes = _class_order(sorted({label for _, label, _, _ in rows}), labels_file)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for _, label, _, _ in rows if label not in index})
    if unknown:
        raise CorollaError(f"{csv_path} uses labels missing from {labels_file}: {', '.join(unknown)}.")
    # The same clip may be asked several questions: the key names the line, so each is its own example.
    items = [
        SourceItem(key=f"{path.removeprefix(FRAME_FOLDER)}#{line}" if columns == 3 else path.removeprefix(FRAME_FOLDER), label=index[label], path=path, question=question)
        for path, label, question, line in rows
    ]
    return Source(description=str(csv_path), classes=classes, items=items, skipped=skipped, kind="clips", task="qa" if columns == 3 else "classify")


def read_clip_item(path: str, *, image_size: int, frames: int | None, fps: float | None, max_seconds: float):
    """(source bytes or b"" for a frame folder, the sampled Clip) of one clip item."""
    from corolla.data.beam_steps import read_bytes
    from corolla.data.video import read_clip, read_frame_folder

    if path.startswith(FRAME_FOLDER):
        return b"", read_frame_folder(path[len(FRAME_FOLDER) :], frames=frames, fps=fps, image_size=image_size)
    data = read_bytes(path)
    return data, read_clip(data, frames=frames, fps=fps, image_size=image_size, max_seconds=max_seconds)
