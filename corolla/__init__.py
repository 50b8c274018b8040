"""corolla: train an image classifier on your own pictures and serve it.

Each stage is a function, and each reads what the previous one wrote:

    import corolla
    corolla.prepare("photos/", out="data/flowers")
    corolla.train("data/flowers", model="convnet", out="runs/flowers")
    corolla.evaluate("runs/flowers")
    corolla.export("runs/flowers")
    corolla.serve("runs/flowers/export")            # blocks; TF Serving REST API on 127.0.0.1:8501
    corolla.predict(["rose.jpg"], url="http://127.0.0.1:8501")
"""

import importlib

__version__ = "0.1.0"

# Imported on first use, so `import corolla` and `corolla --help` stay fast (no TensorFlow).
_API = {
    "fetch_dataset": "corolla.data.datasets",
    "prepare": "corolla.data.prepare",
    "load": "corolla.data.pipeline",
    "train": "corolla.train.trainer",
    "tune": "corolla.tune.search",
    "evaluate": "corolla.evaluate.metrics",
    "export": "corolla.export.saved_model",
    "serve": "corolla.serve.app",
    "predict": "corolla.predict",
    "demo": "corolla.demo",
}
__all__ = [*_API, "CorollaError"]

from corolla.errors import CorollaError  # noqa: E402


# Sub-packages reachable as attributes without their own import: `corolla.data.load(...)`.
_PACKAGES = ("data", "models", "runtime")


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if name in _PACKAGES:
        return importlib.import_module(f"corolla.{name}")
    raise AttributeError(f"module 'corolla' has no attribute {name!r}")
