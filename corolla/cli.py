"""The `corolla` command: one thin sub-command per stage (parse → library call → summary).

Run `corolla --help` or `corolla COMMAND --help`.
"""

from __future__ import annotations

import os
import pathlib
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, before it is imported

import typer
from rich.console import Console
from rich.table import Table

from corolla.errors import CorollaError

app = typer.Typer(help="Train an image classifier on your own pictures and serve it.", no_args_is_help=True, add_completion=False)
datasets_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
console = Console()


@datasets_app.command("list")
def datasets_list():
    """List the built-in datasets."""
    from corolla.data.datasets import list_datasets

    table = Table("name", "classes", "image size", "description")
    for dataset in list_datasets():
        table.add_row(dataset.name, str(len(dataset.labels)), f"{dataset.image_size}×{dataset.image_size}×{dataset.channels}", dataset.description)
    console.print(table)


@datasets_app.command("fetch")
def datasets_fetch(
    name: str = typer.Argument(..., help="Dataset name, e.g. fashion-mnist."),
    dest: Optional[pathlib.Path] = typer.Option(None, help="Folder to put the files in [default: ~/.cache/corolla/datasets/NAME]."),
):
    """Fetch a built-in dataset: from its OS package if installed, else from its official URLs (checksums verified)."""
    from corolla.data.datasets import fetch_dataset

    console.print(f"[green]✓[/] {name} is in {fetch_dataset(name, dest)}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def prepare(
    context: typer.Context,
    source: str = typer.Argument(..., help="A folder of class sub-folders, a CSV of `path,label` lines, or a built-in dataset name."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Folder for the shards, labels.txt and manifest.json."),
    eval_source: Optional[str] = typer.Option(None, "--eval", help="A separate eval set (folder or CSV) instead of holding out --eval-fraction."),
    image_size: Optional[int] = typer.Option(None, help="Training input size; images are stored with their shorter side at most 8/7 of it [default: native size, else 224]."),
    eval_fraction: float = typer.Option(0.1, help="Share of each class held out for evaluation (seeded), when there is no --eval or official test set."),
    shards: Optional[int] = typer.Option(None, help="Shards per split [default: a new shard every ~100 MB]."),
    labels: Optional[pathlib.Path] = typer.Option(None, help="labels.txt fixing the class order (one label per line)."),
    seed: int = typer.Option(42, help="Seed of the train/eval split and shard order."),
    overwrite: bool = typer.Option(False, help="Replace what a previous prepare wrote in --out."),
    runner: str = typer.Option("DirectRunner", help="Apache Beam runner; other Beam options (e.g. --project=…) pass through."),
):
    """Validate images and write them as sharded TFRecords with a manifest (an Apache Beam pipeline)."""
    from corolla.data.prepare import prepare as run_prepare

    manifest = run_prepare(
        source, out=out, eval_source=eval_source, image_size=image_size, eval_fraction=eval_fraction, shards=shards,
        labels_file=str(labels) if labels else None, seed=seed, overwrite=overwrite, beam_args=[f"--runner={runner}", *context.args],
    )
    table = Table("split", "images", "shards", title=f"{out}: {manifest.num_classes} classes, {manifest.image_size}px, {manifest.channels} channel(s)")
    for name, split in manifest.splits.items():
        table.add_row(name, f"{split.count:,}", str(len(split.shards)))
    console.print(table)
    for note in manifest.notes:
        console.print(f"[yellow]note:[/] {note}")
    if manifest.skipped:
        console.print(f"[yellow]Skipped {len(manifest.skipped)} file(s)[/] (reasons in {out / 'manifest.json'}), e.g. {manifest.skipped[0]['source']}: {manifest.skipped[0]['reason']}")
    console.print(f"Next: corolla train {out}")


@app.command()
def train(
    data_dir: pathlib.Path = typer.Argument(..., help="A folder written by `corolla prepare`, or (quick experiments) a folder of class sub-folders."),
    model: str = typer.Option("convnet", help="Model name from the registry (convnet, dense)."),
    out: Optional[pathlib.Path] = typer.Option(None, "--out", "-o", help="Run folder [default: runs/<DATA_DIR name>]."),
    epochs: int = typer.Option(5, help="Passes over the training split."),
    batch_size: int = typer.Option(128, help="Images per step."),
    learning_rate: float = typer.Option(3e-3, help="Peak learning rate of Adam (cosine-decayed)."),
    augment: str = typer.Option("none", help="Augmentation preset: none, light (flip, shift), standard (random-resized crop, flip, brightness, contrast)."),
    seed: int = typer.Option(42, help="Seed for weights and data order."),
    overwrite: bool = typer.Option(False, help="Replace an existing run in --out."),
):
    """Train a model on prepared data; classes, image size and counts come from the manifest."""
    from corolla.train import train as run_train

    out = out or pathlib.Path("runs") / data_dir.resolve().name
    summary = run_train(data_dir, model=model, out=out, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, augment=augment, seed=seed, overwrite=overwrite)
    console.print(
        f"[green]✓[/] best epoch {summary['best_epoch']}: {summary['monitor']} {summary['best_accuracy']:.2%}; "
        f"{summary['seconds']:.0f} s, {summary['images_per_second']:,.0f} img/s"
    )
    console.print(f"Next: corolla evaluate {out}")


@app.command()
def evaluate(
    run_dir: pathlib.Path = typer.Argument(..., help="A run folder written by `corolla train`."),
    data: Optional[pathlib.Path] = typer.Option(None, help="Prepared data to evaluate on [default: the data the run trained on]."),
    split: str = typer.Option("eval", help="Split to evaluate."),
):
    """Accuracy and per-class accuracy of the best checkpoint → RUN_DIR/report/metrics.json."""
    from corolla.evaluate import evaluate as run_evaluate

    metrics = run_evaluate(run_dir, data_dir=data, split=split)
    table = Table("class", "accuracy", "images", title=f"accuracy {metrics['accuracy']:.2%} on {metrics['count']:,} images ({split})")
    for name, row in metrics["per_class"].items():
        table.add_row(name, "–" if row["accuracy"] is None else f"{row['accuracy']:.2%}", f"{row['count']:,}")
    console.print(table)
    console.print(f"Written to {run_dir / 'report' / 'metrics.json'}. Next: corolla export {run_dir}")


@app.command()
def export(
    run_dir: pathlib.Path = typer.Argument(..., help="A run folder written by `corolla train`."),
    out: Optional[pathlib.Path] = typer.Option(None, help="Export base folder [default: RUN_DIR/export]; each export is a new version in it."),
):
    """Export a SavedModel taking encoded image bytes (TF Serving ready) as the next version."""
    from corolla.export import export as run_export

    path = run_export(run_dir, out=out)
    console.print(f"[green]✓[/] SavedModel written to {path}\nNext: corolla serve {path.parent}")


@app.command()
def serve(
    path: pathlib.Path = typer.Argument(..., help="An export folder (RUN_DIR/export), one version of it, or a run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; use 0.0.0.0 only to expose the server on your network."),
    port: int = typer.Option(8501, help="Port (TF Serving's REST port by default)."),
    model_name: Optional[str] = typer.Option(None, help="Name in the URL /v1/models/NAME [default: the run folder's name]."),
):
    """Serve the newest exported version over TF Serving's REST API."""
    from corolla.serve.app import serve as run_serve

    run_serve(path, host=host, port=port, model_name=model_name)


@app.command()
def predict(
    images: List[pathlib.Path] = typer.Argument(..., help="Image files."),
    model: Optional[pathlib.Path] = typer.Option(None, help="An export folder (or run folder) to predict with locally."),
    url: Optional[str] = typer.Option(None, help="A running `corolla serve`, e.g. http://127.0.0.1:8501."),
    model_name: Optional[str] = typer.Option(None, help="Model name on the server [default: the one it serves]."),
    top_k: int = typer.Option(3, help="Labels to show per image."),
):
    """Top-k labels for images, from a local export (--model) or a server (--url)."""
    from corolla.predict import predict as run_predict

    results = run_predict(images, model=model, url=url, model_name=model_name, top_k=top_k)
    table = Table("image", *[f"#{i + 1}" for i in range(len(results[0]["top"]))])
    for result in results:
        table.add_row(result["image"], *[f"{entry['label']} {entry['probability']:.1%}" for entry in result["top"]])
    console.print(table)


@app.command()
def demo(
    workdir: pathlib.Path = typer.Option(pathlib.Path("demo-run"), help="Folder for the data and the run."),
    epochs: int = typer.Option(8, help="Training epochs."),
):
    """fetch → prepare → train → evaluate → export on Fashion-MNIST, in a few minutes on a CPU."""
    from corolla.demo import demo as run_demo

    run_demo(workdir, epochs=epochs)


def main() -> None:
    try:
        app()
    except CorollaError as error:
        Console(stderr=True).print(f"[bold red]Error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        Console(stderr=True).print("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
