"""Built-in training recipes: YAML files whose header says the command and what they reached.

Example:
    TrainConfig.from_file(recipe_path("fashion-mnist"))
    recipe_names()
"""

from __future__ import annotations

import pathlib

from corolla.errors import CorollaError

RECIPES_DIR = pathlib.Path(__file__).with_name("recipes")


def recipe_names() -> list[str]:
    """The built-in recipes, e.g. ["cifar10", "fashion-mnist", "flowers"]."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name: str) -> pathlib.Path:
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(recipe_names())
        raise CorollaError(f"Unknown recipe '{name}'. Expected one of: {names} (or --config FILE for your own). Received: recipe={name!r}")
    return path
