"""Data stage: sources → Beam `prepare` → TFRecord shards + manifest → tf.data `load`.

Example:
    import corolla
    corolla.data.load("data/fm", "train", batch_size=128, augment="light")   # (images, labels) batches
"""

import importlib

# Loaded on first use, so importing corolla.data (as `corolla --help` does) loads no TensorFlow.
_API = {"load": "corolla.data.pipeline", "prepare": "corolla.data.prepare", "describe": "corolla.data.manifest"}
__all__ = list(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'corolla.data' has no attribute {name!r}")
