"""What `prepare` adds to the manifest for clips: sampling, frame statistics, and the question vocabulary.

Example:
    clips = clip_sampling(source, frames=16, fps=None, max_seconds=None)    # {"frames": 16, "fps": None, "max_seconds": 120.0}
    manifest = with_clip_fields(manifest, work, items, source, clips)       # kind "clips", frames, clips stats, vocabulary.txt
"""

from __future__ import annotations

import dataclasses
import json

from corolla.data import storage
from corolla.data.manifest import VOCABULARY, Manifest
from corolla.data.sources import TRAIN, Source, SourceItem
from corolla.errors import CorollaError


def clip_sampling(source: Source, *, frames: int | None, fps: float | None, max_seconds: float | None) -> dict | None:
    """How each clip is sampled ({"frames", "fps", "max_seconds"}), None for images; bad choices fail here."""
    from corolla.data.video import DEFAULT_FRAMES, DEFAULT_MAX_SECONDS, MAX_FRAME_RATE

    if source.kind != "clips":
        if frames is not None or fps is not None:
            raise CorollaError(f"--frames and --fps apply to clips, and {source.description} holds images. Pass --kind clips to read it as clips.")
        return None
    if frames is not None and fps is not None:
        raise CorollaError(f"Pass --frames or --fps, not both. Received: frames={frames}, fps={fps}")
    if frames is not None and not 1 <= frames <= 512:
        raise CorollaError(f"frames must be between 1 and 512. Received: frames={frames}")
    if fps is not None and not 0 < fps <= MAX_FRAME_RATE:
        raise CorollaError(f"fps must be above 0 and at most {MAX_FRAME_RATE}. Received: fps={fps}")
    max_seconds = DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds
    if max_seconds <= 0:
        raise CorollaError(f"max_seconds must be positive. Received: max_seconds={max_seconds}")
    return {"frames": frames if frames is not None or fps is not None else DEFAULT_FRAMES, "fps": fps, "max_seconds": max_seconds}


def with_clip_fields(manifest: Manifest, work: str, items: list[SourceItem], source: Source, clips: dict) -> Manifest:
    """`manifest` with kind, frames per example, the clips' statistics and, for QA, the vocabulary."""
    from corolla.data.questions import learn_vocabulary

    stats = _merged_stats(work)
    most = int(stats.get("frames", {}).get("max", 0))
    frames = clips["frames"] if clips["frames"] is not None else most  # --fps: the longest clip's frame count
    summary = {name: {key: stats[name][key] for key in ("min", "max")} | {"mean": stats[name]["sum"] / stats[name]["count"]}
               for name in ("frames", "duration_s", "fps") if name in stats}  # fmt: skip
    summary["variable_frame_rate"] = stats.get("variable_frame_rate", 0)
    summary["sampling"] = {"frames": clips["frames"]} if clips["fps"] is None else {"fps": clips["fps"]}
    summary["max_seconds"] = clips["max_seconds"]
    notes = list(manifest.notes)
    if most and stats["frames"]["min"] < frames:
        notes.append(f"some clips have fewer than {frames} frames (shortest: {stats['frames']['min']}); the model masks the missing ones")
    question_length = 0
    if source.task == "qa":
        vocabulary, question_length = learn_vocabulary([item.question for item in items if item.split == TRAIN])
        storage.write_text(storage.join(manifest.directory, VOCABULARY), "".join(f"{word}\n" for word in vocabulary))
    return dataclasses.replace(manifest, kind="clips", frames=frames, clips=summary, task=source.task, question_length=question_length, notes=notes)


def _merged_stats(work: str) -> dict:
    merged: dict = {}
    for path in storage.glob(storage.join(work, "shards*.jsonl")):
        for line in storage.read_text(path).splitlines():
            for name, entry in json.loads(line).get("clip_stats", {}).items():
                if name == "variable_frame_rate":
                    merged[name] = merged.get(name, 0) + entry
                elif name not in merged:
                    merged[name] = dict(entry)
                else:
                    target = merged[name]
                    target["count"] += entry["count"]
                    target["sum"] += entry["sum"]
                    target["min"], target["max"] = min(target["min"], entry["min"]), max(target["max"], entry["max"])
    return merged
