"""The docs cannot drift from the code: every Python snippet in README.md and docs/ runs, and every
`corolla.…(` call they name exists and takes the arguments they show.

Snippets run as a user would paste them, in a fresh interpreter, in a folder holding what they
name (photos/<class>/*.jpg, rose.jpg) and, for the client snippets, a real `corolla serve` of a
model named as the snippet names it; the only change made to a snippet is the server's port.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import COLOURS, encode, noisy_colour

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SERVER_ADDRESS = "127.0.0.1:8501"  # what the snippets call; replaced by the test server's address


def python_snippets() -> list[tuple[str, str]]:
    """(id, code) of every ```python block."""
    snippets = []
    for path in DOCS:
        for index, code in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)):
            snippets.append((f"{path.relative_to(ROOT)}#{index + 1}", code))
    return snippets


def named_calls() -> list[tuple[str, str, str]]:
    """(where, dotted name, argument text) of every `corolla.x.y(…)` in the docs' prose and code."""
    calls = []
    for path in DOCS:
        for match in re.finditer(r"\bcorolla((?:\.\w+)+)\(([^()`]*)\)", path.read_text(encoding="utf-8")):
            calls.append((str(path.relative_to(ROOT)), "corolla" + match.group(1), match.group(2)))
    return calls


def resolve(dotted: str):
    """`corolla.data.load` → the object, through attributes as a user's `import corolla` reaches it."""
    parts = dotted.split(".")
    target = importlib.import_module(parts[0])
    for part in parts[1:]:
        target = getattr(target, part)
    if inspect.ismodule(target) and hasattr(target, parts[-1]):  # `corolla.train` once its package is imported: it forwards to train()
        target = getattr(target, parts[-1])
    return target


def test_the_docs_have_snippets_and_calls_to_check():
    assert len(python_snippets()) >= 3 and len(named_calls()) >= 6


@pytest.mark.parametrize("where, dotted, arguments", named_calls(), ids=lambda value: str(value)[:40])
def test_every_named_call_exists_and_takes_the_documented_keywords(where, dotted, arguments):
    function = resolve(dotted)
    assert callable(function), f"{where}: {dotted} is not callable"
    keywords = re.findall(r"(?:^|,)\s*(\w+)\s*=", arguments)
    parameters = inspect.signature(function).parameters
    accepted = {name for name, parameter in parameters.items() if parameter.kind is not parameter.VAR_KEYWORD}
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()) and dotted == "corolla.train":
        from corolla.config import TrainConfig  # train's **options are TrainConfig fields

        accepted |= set(TrainConfig.__dataclass_fields__)
    unknown = [name for name in keywords if name not in accepted]
    assert not unknown, f"{where}: {dotted}() has no parameter {unknown}; it takes {sorted(accepted)}"


@pytest.fixture(scope="module")
def snippet_folder(tmp_path_factory):
    """What the snippets name: photos/roses, photos/tulips (tiny, colour-separable) and rose.jpg.

    6 photos a class: prepare's 10% eval split still holds one of each (round(0.6)), and the README's
    10 epochs of a convnet at prepare's default 224 px train on 10 photos, not 18.
    """
    folder = tmp_path_factory.mktemp("docs-world")
    rng = np.random.default_rng(3)
    for name, colour in zip(("roses", "tulips"), (COLOURS["red"], COLOURS["green"])):
        (folder / "photos" / name).mkdir(parents=True)
        for index in range(6):
            (folder / "photos" / name / f"{index}.jpg").write_bytes(encode(noisy_colour(rng, colour, 24, 24), "JPEG", quality=90))
    (folder / "rose.jpg").write_bytes(encode(noisy_colour(rng, COLOURS["red"], 24, 24), "JPEG", quality=90))
    return folder


@pytest.fixture(scope="module")
def flowers_server(exported):
    """A real `corolla serve` of the shared export under the name the client snippets use."""
    from tests.test_serve_e2e import cli_server

    with cli_server(exported.parent, "--model-name", "flowers", "--no-access-log") as (url, _):
        yield url.removeprefix("http://")


@pytest.mark.slow
@pytest.mark.parametrize("where, code", python_snippets(), ids=[where for where, _ in python_snippets()])
def test_every_python_snippet_runs_as_written(where, code, snippet_folder, request):
    ast.parse(code)  # a syntax error names the snippet before anything runs
    if SERVER_ADDRESS in code:
        code = code.replace(SERVER_ADDRESS, request.getfixturevalue("flowers_server"))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=snippet_folder, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"
