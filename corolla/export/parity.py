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
    encoded: list  # the stored image files; clips: each clip's encoded frames, or (frames, question) for QA
    pixels: np.ndarray | tuple  # float32 [n, size, size, channels] in 0..255, as training decodes them; clips: [n, frames, …] (and question ids)
    labels: np.ndarray
    split: str
    data_dir: str
    batch: int = BATCH  # examples per call; clips are ~frames× an image

    def __len__(self) -> int:
        return len(self.encoded)

    def rows(self, start: int, stop: int):
        """(encoded, pixels) of examples start..stop; pixels stay a tuple for a two-input model."""
        pixels = tuple(part[start:stop] for part in self.pixels) if isinstance(self.pixels, tuple) else self.pixels[start:stop]
        return self.encoded[start:stop], pixels


def sample_split(data_dir: str | os.PathLike, config, split: str, *, count: int, seed: int = 0) -> Sample:
    """`count` images or clips of `split` (all of them if it has fewer), a seeded sample across shards."""
    from corolla.evaluate.predictions import batch_inputs, decoder, labelled_images

    images = labelled_images(data_dir, config, split=split, own_data=True, limit=count, seed=seed)
    decode, to_model = decoder(config), batch_inputs(config)
    dataset = images.dataset.map(lambda inputs, label, _: (inputs, decode(inputs), label))
    encoded, pixels, labels = [], [], []
    for batch_encoded, batch_pixels, batch_labels in dataset.padded_batch(BATCH):  # clips' frame lists pad with ""
        encoded.extend(_examples(batch_encoded))
        model_input = to_model(batch_pixels)
        pixels.append(tuple(np.asarray(part) for part in model_input) if isinstance(model_input, tuple) else np.asarray(model_input))
        labels.append(batch_labels.numpy())
    if not encoded:
        raise CorollaError(f"The '{split}' split of {data_dir} has no examples to check the export on. Received: split={split!r}")
    joined = tuple(np.concatenate(parts) for parts in zip(*pixels)) if isinstance(pixels[0], tuple) else np.concatenate(pixels)
    return Sample(encoded, joined, np.concatenate(labels), split, str(data_dir), batch=BATCH if config.kind != "clips" else 16)


def _examples(batch) -> list:
    """A batch of encoded inputs as Python rows: bytes, a clip's non-empty frames, or (frames, question)."""
    if isinstance(batch, tuple):
        return [(frames, question.decode("utf-8")) for frames, question in zip(_examples(batch[0]), batch[1].numpy().tolist())]
    rows = batch.numpy().tolist()
    return [[frame for frame in row if frame] for row in rows] if batch.shape.rank == 2 else rows


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

        def run_pixels(batch):
            if isinstance(batch, tuple):  # clip QA: frames and question ids
                return pixels(pixels=tf.constant(batch[0]), question_ids=tf.constant(batch[1], tf.int64))["probabilities"].numpy()
            return pixels(pixels=tf.constant(batch))["probabilities"].numpy()

        runners["saved_model"] = (lambda encoded, _: exported.predict(encoded)["probabilities"], False)
        runners["saved_model:pixels"] = (lambda _, batch: run_pixels(batch), False)
    if (version_dir / "model.onnx").is_file():
        onnx = OnnxRunner(version_dir / "model.onnx")
        runners["onnx"] = (lambda _, batch: onnx(*_inputs(batch)), False)
    for path in sorted(version_dir.glob("model*.tflite")):
        litert = LiteRTRunner(path)
        name = "litert" if path.name == "model.tflite" else f"litert:{path.stem.split('_', 1)[1]}"
        runners[name] = (lambda _, batch, litert=litert: litert(*_inputs(batch)), path.name != "model.tflite")
    return runners


def _inputs(batch) -> tuple:
    return batch if isinstance(batch, tuple) else (batch,)


def check_parity(model, version_dir: str | os.PathLike, sample: Sample) -> dict:
    """Compare every format in `version_dir` with `model` on `sample`; write parity.json; raise on a miss."""
    version_dir = pathlib.Path(version_dir)
    reference = _batched(lambda _, pixels: model.predict_on_batch(list(pixels) if isinstance(pixels, tuple) else pixels), sample)
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
    return np.concatenate([np.asarray(run(*sample.rows(i, i + sample.batch)), dtype=np.float32) for i in range(0, len(sample), sample.batch)])
