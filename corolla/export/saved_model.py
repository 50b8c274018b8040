"""`corolla export`: SavedModel, ONNX and LiteRT files of a run, each checked against Keras.

SavedModel signatures (TF Serving, Vertex AI, KServe, `corolla serve`):
    serving_default  image_bytes string [batch]  JPEG, PNG, GIF (first frame) or BMP bytes
                     key         string [batch]  anything; echoed back (corolla serve fills "")
                     → probabilities float32 [batch, classes], classes int64, labels string, key string
    pixels           pixels float32 [batch, size, size, channels] in 0..255, already resized
                     → probabilities, classes, labels
    pixels_uint8     the same with uint8 pixels

The decode/resize inside is `corolla.data.pipeline.decode_and_resize`, the one training used.
Each export is a new version folder EXPORT_BASE/<n>/ (TF Serving's layout) holding every
format, labels.txt, model_card.json and parity.json. It is written under a temporary name and
renamed only once every format passed its parity check, so a crash or a failed check never
leaves a half export that looks whole, and the previous version keeps serving.

Example:
    path = export("runs/fm")                                   # runs/fm/export/1
    path = export("runs/fm", formats=["litert"], quantize="int8")
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time

from corolla.errors import CorollaError
from corolla.run import Run

FORMATS = ("saved_model", "onnx", "litert")


def export(
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    formats: str | list[str] | tuple[str, ...] = FORMATS,
    quantize: str = "none",
    data_dir: str | os.PathLike | None = None,
    parity_images: int = 1000,
    calibration_images: int = 500,
    tta: str | None = None,
    verbose: bool = True,
) -> pathlib.Path:
    """Export the run's best checkpoint as the next version under `out` (default RUN_DIR/export).

    `quantize` adds a quantized LiteRT file beside the float32 one. Parity runs on up to
    `parity_images` images of the eval split of `data_dir` (default: the data the run trained
    on); int8 calibration uses `calibration_images` of its train split. `tta` "flip" or "flip_shift" builds
    the averaging into every format (default: the run's `tta`; see corolla.models.tta).
    """
    from corolla.export.litert import QUANTIZATIONS

    run = Run(run_dir)
    config = run.config
    formats = _parse_formats(formats)
    if quantize not in QUANTIZATIONS:
        raise CorollaError(f"Unknown quantization '{quantize}'. Expected one of: {', '.join(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    if quantize != "none" and "litert" not in formats:
        raise CorollaError(f"Quantization applies to LiteRT files; add litert to --format. Received: formats={','.join(formats)}, quantize={quantize!r}")
    if parity_images < 1:
        raise CorollaError(f"parity_images must be ≥ 1 (≥ 500 recommended). Received: parity_images={parity_images}")
    data_dir = pathlib.Path(data_dir or config.data_dir)
    if not data_dir.exists():
        raise CorollaError(f"Export checks parity on the run's data, and {data_dir} is gone. Pass the data (prepared, folder or CSV) with --data. Received: data_dir={str(data_dir)!r}")

    import tensorflow as tf
    from rich.console import Console

    from corolla.export.card import write_card
    from corolla.export.litert import litert_filename, write_litert
    from corolla.export.onnx import write_onnx
    from corolla.export.parity import check_parity, sample_split

    console = Console(stderr=True, quiet=not verbose)
    tta = config.tta if tta is None else tta
    model = run.load_model(tta=tta)
    if config.kind == "clips":
        from corolla.export.clip_signatures import pixel_specs

        spec, litert_spec = pixel_specs(config), pixel_specs(config, batch=1)
        if quantize == "int8":
            raise CorollaError("Full int8 LiteRT takes uint8 pixels, which cannot hold the padding of short clips. Use --quantize float16 or dynamic.")
    else:
        spec = litert_spec = tf.TensorSpec([None, config.image_size, config.image_size, config.channels], tf.float32, name="pixels")
    base = pathlib.Path(out) if out else run.export_dir
    base.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(base)
    version = max((int(path.name) for path in base.iterdir() if path.name.isdigit()), default=0) + 1
    temporary = base / f".tmp-{version}-{os.getpid()}"
    seconds = {}

    def step(name: str, action):
        with console.status(f"{name}…"):
            started = time.perf_counter()
            result = action()
        seconds[name] = time.perf_counter() - started
        console.print(f"[green]✓[/] {name} ({seconds[name]:.1f} s)")
        return result

    try:
        temporary.mkdir()
        if "saved_model" in formats:
            step("saved_model", lambda: write_any_saved_model(model, temporary, config=config))
        if "onnx" in formats:
            step("onnx", lambda: write_onnx(model, temporary / "model.onnx", input_spec=spec))
        if "litert" in formats:
            step("litert", lambda: write_litert(model, temporary / litert_filename("none"), input_spec=litert_spec))
        if quantize != "none":
            calibration = sample_split(data_dir, config, "train", count=calibration_images, seed=1).pixels if quantize == "int8" else None
            step(f"litert:{quantize}", lambda: write_litert(model, temporary / litert_filename(quantize), input_spec=litert_spec, quantize=quantize, calibration=calibration))
        split = "eval" if config.eval_images else "train"
        parity = step("parity", lambda: check_parity(model, temporary, sample_split(data_dir, config, split, count=parity_images)))
        write_card(temporary, run=run, version=version, parity=parity, seconds=seconds, tta=tta)
        os.rename(temporary, base / str(version))
    except CorollaError as error:
        previous = f"; version {version - 1} stays the newest" if version > 1 else ""
        raise CorollaError(f"{error} Nothing was added to {base}{previous}.") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return base / str(version)


def write_any_saved_model(model, path: str | os.PathLike, *, config) -> None:
    """The SavedModel of a run's model: image signatures (below), or a clip model's (corolla.export.clip_signatures)."""
    if config.kind == "clips":
        from corolla.export.clip_signatures import write_clip_saved_model

        return write_clip_saved_model(model, path, config=config)
    return write_saved_model(model, path, classes=config.classes, image_size=config.image_size, channels=config.channels)


def write_saved_model(model, path: str | os.PathLike, *, classes: list[str], image_size: int, channels: int) -> None:
    """Write `model` with the three signatures above as a SavedModel in `path`."""
    import keras
    import tensorflow as tf

    from corolla.data.pipeline import decode_and_resize

    label_table = tf.constant(classes)

    def answer(pixels):
        probabilities = model(pixels, training=False)
        indices = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "classes": indices, "labels": tf.gather(label_table, indices)}

    def serve(image_bytes, key):
        images = tf.map_fn(
            lambda data: decode_and_resize(data, image_size=image_size, channels=channels),
            image_bytes,
            fn_output_signature=tf.TensorSpec([image_size, image_size, channels], tf.float32),
        )
        return {**answer(images), "key": key}

    shape = [None, image_size, image_size, channels]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"), tf.TensorSpec([None], tf.string, name="key")],
    )
    archive.add_endpoint(name="pixels", fn=answer, input_signature=[tf.TensorSpec(shape, tf.float32, name="pixels")])
    archive.add_endpoint(
        name="pixels_uint8", fn=lambda pixels: answer(tf.cast(pixels, tf.float32)), input_signature=[tf.TensorSpec(shape, tf.uint8, name="pixels")]
    )
    archive.write_out(str(path), verbose=False)


def _parse_formats(formats) -> list[str]:
    names = [name.strip() for name in (formats.split(",") if isinstance(formats, str) else formats) if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise CorollaError(f"Unknown export format(s): {', '.join(unknown) or '(none given)'}. Expected a comma-separated subset of: {', '.join(FORMATS)}. Received: formats={formats!r}")
    return [name for name in FORMATS if name in names]


def _remove_abandoned(base: pathlib.Path) -> None:
    """Delete temporary folders left by exports that were killed (their process is gone)."""
    for path in base.glob(".tmp-*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
