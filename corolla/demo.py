"""`corolla demo` (= `make demo`): the whole chain on Fashion-MNIST, in a few minutes on a laptop CPU.

fetch → prepare → train → evaluate → export, then prints the command that serves the result.

Example:
    summary = demo(workdir="demo-run")
    summary["accuracy"]
"""

from __future__ import annotations

import os
import pathlib
import time

from corolla.data.manifest import MANIFEST

DEMO_DATASET = "fashion-mnist"


def demo(workdir: str | os.PathLike = "demo-run", *, model: str = "convnet", epochs: int = 8) -> dict:
    """Run the chain into `workdir`; prepared data is reused if a previous demo left it there."""
    from rich.console import Console

    from corolla.data.datasets import fetch_dataset
    from corolla.data.prepare import prepare
    from corolla.evaluate import evaluate
    from corolla.export import export
    from corolla.train import train

    console = Console(stderr=True)
    workdir = pathlib.Path(workdir)
    data_dir, run_dir = workdir / "data", workdir / "fashion-mnist"
    timings, started = {}, time.perf_counter()

    def step(name: str, action):
        console.rule(f"[bold]{name}")
        begun = time.perf_counter()
        result = action()
        timings[name] = time.perf_counter() - begun
        console.print(f"[green]✓[/] {name} in {timings[name]:.1f} s")
        return result

    step("fetch", lambda: fetch_dataset(DEMO_DATASET))
    if (data_dir / MANIFEST).is_file():
        console.print(f"Reusing the prepared data in {data_dir}")
    else:
        step("prepare", lambda: prepare(DEMO_DATASET, out=data_dir, overwrite=True))
    step("train", lambda: train(data_dir, model=model, out=run_dir, epochs=epochs, overwrite=True))
    metrics = step("evaluate", lambda: evaluate(run_dir))
    export_path = step("export", lambda: export(run_dir))
    total = time.perf_counter() - started
    console.rule("[bold]done")
    console.print(f"Eval accuracy: [bold]{metrics['accuracy']:.2%}[/] on {metrics['count']:,} test images; total {total:.0f} s")
    console.print(f"Model exported to {export_path}")
    console.print(f"Next: [bold]corolla serve {run_dir / 'export'}[/]   then   corolla predict IMAGE --url http://127.0.0.1:8501")
    return {"accuracy": metrics["accuracy"], "seconds": total, "timings": timings, "export": str(export_path)}
