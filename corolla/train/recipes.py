"""Built-in training recipes: YAML files whose header says the command and what they reached.

Example:
    TrainConfig.from_file(recipe_path("fashion-mnist"))
    [name for name, _ in list_recipes()]
"""

from __future__ import annotations

import pathlib

from corolla.errors import CorollaError

RECIPES_DIR = pathlib.Path(__file__).with_name("recipes")


def list_recipes() -> list[tuple[str, str]]:
    """(name, first header line) of every built-in recipe."""
    recipes = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        recipes.append((path.stem, first))
    return recipes


def recipe_path(name: str) -> pathlib.Path:
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(recipe for recipe, _ in list_recipes())
        raise CorollaError(f"Unknown recipe '{name}'. Expected one of: {names} (or --config FILE for your own). Received: recipe={name!r}")
    return path
