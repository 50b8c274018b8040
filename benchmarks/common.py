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
