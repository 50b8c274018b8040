"""`corolla demo` (= `make demo`): the whole chain on Fashion-MNIST, in a few minutes on a laptop CPU.

fetch → prepare → train → evaluate (report) → export (SavedModel, ONNX, LiteRT, each checked
against Keras), then prints the report path, the formats with their parity figures, and the
command that serves the result.

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


def demo(workdir: str | os.PathLike = "demo-run", *, model: str = "convnet", epochs: int = 8, train_steps: int = 0) -> dict:
    """Run the chain into `workdir`; prepared data is reused if a previous demo left it there.

    `train_steps` > 0 trains that many steps instead of `epochs` (a quick pass through the chain).
    """
    from rich.console import Console

    from corolla.data.datasets import fetch_dataset
    from corolla.data.prepare import prepare
    from corolla.evaluate import evaluate
    from corolla.export import export, export_summary, parity_table
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
    step("train", lambda: train(data_dir, model=model, out=run_dir, epochs=epochs, train_steps=train_steps, overwrite=True))
    metrics = step("evaluate", lambda: evaluate(run_dir, verbose=False))
    export_path = step("export", lambda: export(run_dir, verbose=False))
    total = time.perf_counter() - started
    report = run_dir / "report" / "index.html"
    console.rule("[bold]done")
    console.print(f"Eval accuracy [bold]{metrics['accuracy']:.2%}[/] on {metrics['count']:,} test images (ECE {metrics['calibration']['ece']:.3f}); total {total:.0f} s")
    console.print(f"Report: [bold]{report}[/]")
    console.print(parity_table(export_path))
    console.print(f"Next: [bold]corolla serve {run_dir / 'export'}[/]   then   corolla predict IMAGE --url http://127.0.0.1:8501")
    return {
        "accuracy": metrics["accuracy"],
        "seconds": total,
        "timings": timings,
        "report": str(report),
        "export": str(export_path),
        "formats": export_summary(export_path)["formats"],
    }


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, demo)  # `corolla.demo(...)` even once the module is imported
