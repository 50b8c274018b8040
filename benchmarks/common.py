"""Shared by the benchmark scripts: machine description and the JSON + table output."""

from __future__ import annotations

import json
import os
import pathlib
import platform

OUT = pathlib.Path(__file__).parent / "out"


def machine() -> dict:
    import tensorflow as tf

    return {
        "cpu_cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
    }


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(name: str, rows: list[dict], **extra) -> pathlib.Path:
    """Print `rows` as a table and write them, with the machine, to benchmarks/out/<name>.json."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*rows[0].keys(), title=name)
    for row in rows:
        table.add_row(*[f"{value:,.2f}" if isinstance(value, float) else str(value) for value in row.values()])
    Console().print(table)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), "rows": rows, **extra}, indent=2) + "\n")
    print(f"written {path}")
    return path


def make_photo_folder(root: pathlib.Path, *, classes: int = 5, per_class: int = 400, size=(500, 375), seed: int = 0) -> pathlib.Path:
    """Synthetic 'photos' (smooth colour gradients + noise, JPEG q90) in class folders, like the flowers set.

    Reused when already there, so repeated benchmark runs compare the same files.
    """
    import io

    import numpy as np
    from PIL import Image

    marker = root / f".complete-{classes}x{per_class}-{size[0]}x{size[1]}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.uniform(40, 215, 3)
        for index in range(per_class):
            angle = rng.uniform(0, 2 * np.pi)
            wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) / rng.uniform(20, 80))
            pixels = base + 40 * wave[..., None] + rng.normal(0, 12, (height, width, 3))
            buffer = io.BytesIO()
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
            (folder / f"{index:05d}.jpg").write_bytes(buffer.getvalue())
    marker.touch()
    return root


def make_clip_folder(root: pathlib.Path, *, clips: int = 200, sizes=((64, 48), (96, 72), (128, 96)), seconds=(2.0, 4.0),
                     fps: float = 25, codec: str = "libx264", suffix: str = ".mp4", seed: int = 0) -> pathlib.Path:
    """`clips` synthetic clips (tests/clipgen.py: a square moving right or left on grey noise) in 2 class folders.

    Sizes cycle through `sizes`; each clip lasts a seeded uniform `seconds` range at `fps`.
    Reused when already there, so repeated benchmark runs compare the same files.
    """
    import sys

    import numpy as np

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
    from clipgen import make_clip

    marker = root / f".complete-{clips}-{'_'.join(f'{w}x{h}' for w, h in sizes)}-{seconds[0]}-{seconds[1]}s-{fps}fps-{codec}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for index in range(clips):
        direction = ("right", "left")[index % 2]
        frames = max(2, round(rng.uniform(*seconds) * fps))
        colour = tuple(int(v) for v in rng.integers(30, 226, 3))
        make_clip(root / direction / f"{index:05d}{suffix}", direction=direction, colour=colour, size=sizes[index % len(sizes)],
                  frames=frames, fps=fps, codec=codec, seed=seed * 100_003 + index)
    marker.touch()
    return root
