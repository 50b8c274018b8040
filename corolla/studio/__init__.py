"""corolla studio: the whole loop in a browser, a client of the library (`corolla studio --help`).

FastAPI loads on first use, so `corolla --help` stays fast.

Example:
    from corolla.studio import create_app
    app = create_app("studio-work", root="~/Pictures")
"""

import importlib

__all__ = ["create_app"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("corolla.studio.app"), name)
    raise AttributeError(f"module 'corolla.studio' has no attribute {name!r}")
