"""The package layout is the architecture: every import in corolla/ points to a lower floor.

data ← models ← train ← tune ← evaluate ← runtime (the loaded export) ← export ← predict / serve ← studio ← cli
(DESIGN.md §6). A module may import its own package and anything below it, never a package on
its floor or above: `export` reaching up into `serve` is what this test exists to catch.
"""

from __future__ import annotations

import ast
import pathlib

import corolla

PACKAGE = pathlib.Path(corolla.__file__).parent
FLOORS = [
    {"_api", "errors", "cores"},
    {"__init__"},  # the version and the lazy façade, which imports its stages by name on first use
    {"data"},
    {"config", "models"},
    {"run"},
    {"train"},
    {"tune"},  # KerasTuner over train runs
    {"evaluate"},
    {"runtime"},
    {"export"},
    {"predict", "serve"},
    {"studio"},  # a client of every stage: it runs them as CLI commands and predicts in-process
    {"demo"},
    {"cli"},
]
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def unit_of(path: pathlib.Path) -> str:
    """The top-level package or module of corolla/ a file belongs to."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def corolla_imports(path: pathlib.Path):
    """(line, imported unit) for every `import corolla.x…` / `from corolla.x… import …`, in functions too."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "corolla":
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.split(".")[0] == "corolla"]
        else:
            continue
        for name in names:
            parts = name.split(".")
            yield node.lineno, parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_floor():
    units = {unit_of(path) for path in PACKAGE.rglob("*.py")}
    assert units <= set(FLOOR), f"add these to FLOORS: {sorted(units - set(FLOOR))}"


def test_imports_only_point_downwards():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(path)
        for line, target in corolla_imports(path):
            if target != source and FLOOR[target] >= FLOOR[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)
