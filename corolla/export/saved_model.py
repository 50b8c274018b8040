"""`corolla export`: a SavedModel that takes encoded image bytes, ready for TF Serving and `corolla serve`.

Signature `serving_default`:
    inputs   image_bytes  string [batch]   JPEG, PNG, GIF (first frame) or BMP bytes
             key          string [batch]   anything; echoed back (corolla serve fills "" when absent)
    outputs  probabilities float32 [batch, classes]
             classes       int64   [batch]
             labels        string  [batch]
             key           string  [batch]

The decode/resize inside is `corolla.data.pipeline.decode_and_resize`, the one training used.
Each export is a new version folder RUN_DIR/export/<n>/, written under a temporary name and
renamed when complete, so a crash never leaves a half export that looks whole.

Example:
    path = export("runs/fm")              # runs/fm/export/1
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import uuid

from corolla.run import Run

INFO = "corolla.json"


def export(run_dir: str | os.PathLike, *, out: str | os.PathLike | None = None) -> pathlib.Path:
    """Export the run's best checkpoint as the next version under `out` (default RUN_DIR/export)."""
    run = Run(run_dir)
    config = run.config
    model = run.load_model()

    import keras
    import tensorflow as tf

    from corolla.data.pipeline import decode_and_resize

    base = pathlib.Path(out) if out else run.export_dir
    base.mkdir(parents=True, exist_ok=True)
    version = max((int(path.name) for path in base.iterdir() if path.name.isdigit()), default=0) + 1
    label_table = tf.constant(config.classes)

    def serve(image_bytes, key):
        images = tf.map_fn(
            lambda data: decode_and_resize(data, image_size=config.image_size, channels=config.channels),
            image_bytes,
            fn_output_signature=tf.TensorSpec([config.image_size, config.image_size, config.channels], tf.float32),
        )
        probabilities = model(images, training=False)
        classes = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "classes": classes, "labels": tf.gather(label_table, classes), "key": key}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"), tf.TensorSpec([None], tf.string, name="key")],
    )
    temporary = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        archive.write_out(str(temporary), verbose=False)
        info = {
            "version": version,
            "model": config.model,
            "labels": config.classes,
            "image_size": config.image_size,
            "channels": config.channels,
            "run_dir": str(run.dir.resolve()),
        }
        (temporary / INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.rename(temporary, base / str(version))
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return base / str(version)
