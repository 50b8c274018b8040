"""The files that describe an export version: labels.txt, corolla.json and model_card.json.

model_card.json holds what a user of the files needs without the run folder: labels, the
input spec and preprocessing, each format's file and signature, the run's evaluation metrics
and training config, the parity figures, and a size and SHA-256 for every file.

Example:
    card = json.loads(pathlib.Path("runs/fm/export/1/model_card.json").read_text())
    card["input"]["pixels"]["shape"], card["files"]["model.onnx"]["sha256"]
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib

from corolla.data.storage import sha256_file
from corolla.runtime.versions import MODEL_CARD

LABELS = "labels.txt"
SAVED_MODEL_FILES = ("saved_model.pb", "fingerprint.pb", "variables", "assets")


def write_card(version_dir: pathlib.Path, *, run, version: int, parity: dict, seconds: dict[str, float], tta: str = "none") -> dict:
    """Write labels.txt, corolla.json and model_card.json into `version_dir`; returns the card."""
    import corolla
    from corolla.export.litert import LiteRTRunner
    from corolla.models.tta import TTA_VIEWS
    from corolla.runtime.versions import INFO

    config = run.config
    size, channels = config.image_size, config.channels
    # Plain writes: the folder is the temporary version, and its rename is the commit.
    (version_dir / LABELS).write_text("".join(f"{label}\n" for label in config.classes), encoding="utf-8")
    info = {"version": version, "model": config.model, "labels": config.classes, "image_size": size, "channels": channels, "run_dir": str(run.dir.resolve())}
    if config.kind == "clips":  # what a reader needs to sample, decode and (QA) vectorize a clip as training did
        info.update(kind="clips", frames=config.frames, task=config.task, question_length=config.question_length, vocabulary=config.vocabulary)
    (version_dir / INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    inputs, signatures = _inputs(config)
    formats = {}
    if (version_dir / "saved_model.pb").is_file():
        saved_model_bytes = sum(path.stat().st_size for name in SAVED_MODEL_FILES for path in [version_dir / name, *(version_dir / name).rglob("*")] if path.is_file())
        formats["saved_model"] = {"path": ".", "bytes": saved_model_bytes, "signatures": signatures}
    if (version_dir / "model.onnx").is_file():
        formats["onnx"] = {"path": "model.onnx", "bytes": (version_dir / "model.onnx").stat().st_size, "input": "pixels", "output": "probabilities"}
    for path in sorted(version_dir.glob("model*.tflite")):
        name = "litert" if path.name == "model.tflite" else f"litert:{path.stem.split('_', 1)[1]}"
        formats[name] = {"path": path.name, "bytes": path.stat().st_size, **LiteRTRunner(path).describe()}
    metrics_path = run.report_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    card = {
        "name": run.dir.resolve().name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "corolla_version": corolla.__version__,
        "labels": config.classes,
        "kind": config.kind,
        **({"frames": config.frames, "task": config.task} if config.kind == "clips" else {}),
        "input": inputs,
        "output": {"probabilities": f"float32 [batch, {len(config.classes)}], in the order of labels.txt"},
        "test_time_augmentation": "none" if tta == "none" else f"{tta}: {TTA_VIEWS[tta]}, inside every format",
        "formats": formats,
        "metrics": {key: metrics[key] for key in ("split", "count", "accuracy", "top_k_accuracy", "calibration") if key in metrics}
        or "not evaluated yet: run `corolla evaluate RUN_DIR` before exporting",
        "training": dataclasses.asdict(config),
        "parity": {name: {key: row[key] for key in ("max_abs_diff", "top1_agreement")} for name, row in parity["formats"].items()},
        "parity_images": parity["images"],
        "export_seconds": {name: round(value, 2) for name, value in seconds.items()},
        "files": {
            str(path.relative_to(version_dir)): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for path in sorted(version_dir.rglob("*"))
            if path.is_file()
        },
    }
    (version_dir / MODEL_CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return card


def _inputs(config) -> tuple[dict, dict]:
    """The card's input spec and the SavedModel's signatures: images, or clips (frames, and a question for QA)."""
    size, channels = config.image_size, config.channels
    preprocessing = (f"decode to {channels} channel(s), then bilinear resize (antialiased when shrinking more than 2x) to {size}x{size} "
                     "(aspect ratio not kept); scaling to the network's range happens inside the model")  # fmt: skip
    if config.kind != "clips":
        inputs = {
            "image_bytes": "encoded JPEG, PNG, GIF (first frame) or BMP (SavedModel serving_default only)",
            "pixels": {"shape": [None, size, size, channels], "dtype": "float32", "range": [0, 255]},
            "preprocessing": preprocessing,
        }
        return inputs, {"serving_default": ["image_bytes", "key"], "pixels": ["pixels"], "pixels_uint8": ["pixels"]}
    qa = config.task == "qa"
    inputs = {
        "frames": f"each clip's sampled frames, encoded (JPEG/PNG), in time order; {config.frames} are used, shorter clips are padded and masked "
        "(SavedModel serving_default; `corolla serve` and `corolla predict` also take the video file, sampled as `corolla prepare` samples it)",
        "pixels": {"shape": [None, config.frames, size, size, channels], "dtype": "float32", "range": [0, 255], "padding_frames": -1.0},
        "preprocessing": f"{config.frames} frames sampled uniformly over the clip's duration, each: {preprocessing}",
    }
    if qa:
        inputs["question"] = f"the question in words (serving_default), or its {config.question_length} token ids (pixels: question_ids), vocabulary in corolla.json"
    question = (["question"], ["question_ids"]) if qa else ([], [])
    return inputs, {"serving_default": ["frames", *question[0], "key"], "pixels": ["pixels", *question[1]]}


def export_summary(version_dir: pathlib.Path) -> dict:
    """The parity image count and, per checked format, its file, size and parity figures (from model_card.json)."""
    card = json.loads((pathlib.Path(version_dir) / MODEL_CARD).read_text(encoding="utf-8"))
    rows = []
    for name, parity in card["parity"].items():
        entry = card["formats"][name if name in card["formats"] else name.split(":")[0]]
        rows.append({"format": name, "path": "saved_model.pb" if entry["path"] == "." else entry["path"], "bytes": entry["bytes"], **parity})
    return {"parity_images": card["parity_images"], "formats": rows}


def parity_table(version_dir: pathlib.Path):
    """A Rich table of every format in an export version: file, size and its parity with Keras."""
    from rich.table import Table

    summary = export_summary(version_dir)
    title = f"{version_dir}: each format checked against Keras on {summary['parity_images']:,} eval images"
    table = Table("format", "file", "size", "max |Δp|", "top-1 agreement", title=title)
    for row in summary["formats"]:
        table.add_row(row["format"], row["path"], f"{row['bytes'] / 1e3:,.0f} kB", f"{row['max_abs_diff']:.1e}", f"{row['top1_agreement']:.2%}")
    return table
