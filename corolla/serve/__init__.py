"""Serving: `serve` and `create_app` (FastAPI loads on first use, so `corolla --help` stays fast)."""

import importlib

from corolla._api import make_callable

__all__ = ["create_app", "serve"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("corolla.serve.app"), name)
    raise AttributeError(f"module 'corolla.serve' has no attribute {name!r}")


make_callable(__name__, lambda *args, **kwargs: __getattr__("serve")(*args, **kwargs))  # `corolla.serve(...)` once imported
