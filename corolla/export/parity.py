"""Parity: every exported format must give the Keras model's answers on real images.

Each file in an export folder is run on the same images as the Keras model (the eval split,
or a seeded sample of it) and compared: float32 formats must agree to within 1e-4 in every
probability and on every top-1 label; quantized formats on at least 99% of top-1 labels.
The figures go to `parity.json`; any miss raises, naming the format and its numbers.

Example:
    sample = sample_split("data/fm", Run("runs/fm").config, "eval", count=1000)
    report = check_parity(model, "runs/fm/export/.tmp-3", sample)
    report["formats"]["onnx"]["max_abs_diff"]
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time

import numpy as np

from corolla.errors import CorollaError

PARITY = "parity.json"
FLOAT_MAX_DIFF = 1e-4
QUANTIZED_MIN_AGREEMENT = 0.99
BATCH = 256


@dataclasses.dataclass
class Sample:
    encoded: list[bytes]  # the stored image files
    pixels: np.ndarray  # float32 [n, size, size, channels] in 0..255, as training decodes them
    labels: np.ndarray
    split: str
    data_dir: str


def sample_split(data_dir: str | os.PathLike, config, split: str, *, count: int, seed: int = 0) -> Sample:
    """`count` images of `split` (all of them if it has fewer), a seeded sample across shards."""
    from corolla.data.pipeline import decode_and_resize
    from corolla.evaluate.predictions import labelled_images

    images = labelled_images(data_dir, config, split=split, own_data=True, limit=count, seed=seed)
    dataset = images.dataset.map(
        lambda encoded, label, _: (encoded, decode_and_resize(encoded, image_size=config.image_size, channels=config.channels), label)
    )
    encoded, pixels, labels = [], [], []
    for batch_encoded, batch_pixels, batch_labels in dataset.batch(BATCH):
        encoded.extend(batch_encoded.numpy().tolist())
        pixels.append(batch_pixels.numpy())
        labels.append(batch_labels.numpy())
    if not encoded:
        raise CorollaError(f"The '{split}' split of {data_dir} has no images to check the export on. Received: split={split!r}")
    return Sample(encoded, np.concatenate(pixels), np.concatenate(labels), split, str(data_dir))


def exported_runners(version_dir: str | os.PathLike) -> dict[str, tuple[object, bool]]:
    """{format name: (run(encoded, pixels) → probabilities, quantized?)} for each file in `version_dir`."""
    from corolla.export.litert import LiteRTRunner
    from corolla.runtime.runners import OnnxRunner

    version_dir = pathlib.Path(version_dir)
    runners = {}
    if (version_dir / "saved_model.pb").is_file():
        import tensorflow as tf

        from corolla.runtime.exported import ExportedModel

        exported = ExportedModel(version_dir)  # what `corolla predict` runs; the server runs the same decode + `pixels`
        pixels = exported.signatures["pixels"]
        runners["saved_model"] = (lambda encoded, _: exported.predict(encoded)["probabilities"], False)
        runners["saved_model:pixels"] = (lambda _, batch: pixels(pixels=tf.constant(batch))["probabilities"].numpy(), False)
    if (version_dir / "model.onnx").is_file():
        onnx = OnnxRunner(version_dir / "model.onnx")
        runners["onnx"] = (lambda _, batch: onnx(batch), False)
    for path in sorted(version_dir.glob("model*.tflite")):
        litert = LiteRTRunner(path)
        name = "litert" if path.name == "model.tflite" else f"litert:{path.stem.split('_', 1)[1]}"
        runners[name] = (lambda _, batch, litert=litert: litert(batch), path.name != "model.tflite")
    return runners


def check_parity(model, version_dir: str | os.PathLike, sample: Sample) -> dict:
    """Compare every format in `version_dir` with `model` on `sample`; write parity.json; raise on a miss."""
    version_dir = pathlib.Path(version_dir)
    reference = model.predict(sample.pixels, batch_size=BATCH, verbose=0)
    report = {
        "split": sample.split,
        "images": len(sample.encoded),
        "data_dir": sample.data_dir,
        "thresholds": {"float32": {"max_abs_diff": FLOAT_MAX_DIFF, "top1_agreement": 1.0}, "quantized": {"top1_agreement": QUANTIZED_MIN_AGREEMENT}},
        "formats": {},
    }
    for name, (run, quantized) in exported_runners(version_dir).items():
        started = time.perf_counter()
        probabilities = _batched(run, sample)
        seconds = time.perf_counter() - started
        max_diff = float(np.max(np.abs(probabilities - reference)))
        agreement = float(np.mean(np.argmax(probabilities, -1) == np.argmax(reference, -1)))
        passed = agreement >= QUANTIZED_MIN_AGREEMENT if quantized else (max_diff <= FLOAT_MAX_DIFF and agreement == 1.0)
        report["formats"][name] = {
            "precision": "quantized" if quantized else "float32",
            "max_abs_diff": max_diff,
            "top1_agreement": agreement,
            "images_per_second": round(len(sample.encoded) / seconds, 1),
            "passed": passed,
        }
    (version_dir / PARITY).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = {name: row for name, row in report["formats"].items() if not row["passed"]}
    if failed:
        details = "; ".join(f"{name}: max |Δp| {row['max_abs_diff']:.2e}, top-1 agreement {row['top1_agreement']:.2%}" for name, row in failed.items())
        raise CorollaError(
            f"Export parity failed on {report['images']} '{sample.split}' images: {details}. "
            f"Expected float32 formats within {FLOAT_MAX_DIFF:g} and 100% agreement, quantized ones ≥ {QUANTIZED_MIN_AGREEMENT:.0%} "
            f"agreement. Export without the failing format (--format) or with a milder --quantize."
        )
    return report


def _batched(run, sample: Sample) -> np.ndarray:
    return np.concatenate(
        [np.asarray(run(sample.encoded[i : i + BATCH], sample.pixels[i : i + BATCH]), dtype=np.float32) for i in range(0, len(sample.encoded), BATCH)]
    )
