"""Keeps `corolla.train(...)` callable although `corolla.train` is also a package.

Importing any submodule (say `corolla.train.trainer`) makes Python set the attribute
`corolla.train` to the package module, replacing the function `corolla/__init__.py` exposes.
So each such module forwards calls to its function: `corolla.train(...)` works either way.
"""

from __future__ import annotations

import sys
import types


def make_callable(module_name: str, function) -> None:
    """Calling the module `module_name` calls `function`."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
