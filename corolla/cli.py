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
from corolla.models.cli import models_app
from corolla.serve.cli import register as register_serve_commands
from corolla.studio.cli import register as register_studio_command
from corolla.train.cli import register as register_train_command
from corolla.tune.cli import register as register_tune_command

app = typer.Typer(help="Train an image classifier on your own pictures and serve it.", no_args_is_help=True, add_completion=False)
datasets_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
data_app = typer.Typer(help="Look at prepared data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
console = Console()


@datasets_app.command("list")
def datasets_list():
    """List the built-in datasets."""
    from corolla.data.datasets import list_datasets

    table = Table("name", "classes", "image size", "description")
    for dataset in list_datasets():
        size = f"{dataset.image_size}×{dataset.image_size}×{dataset.channels}" if dataset.image_size else f"photos ({dataset.channels} ch)"
        table.add_row(dataset.name, str(len(dataset.labels)), size, dataset.description)
    console.print(table)


@datasets_app.command("fetch")
def datasets_fetch(
    name: str = typer.Argument(..., help="Dataset name, e.g. fashion-mnist."),
    dest: Optional[pathlib.Path] = typer.Option(None, help="Folder to put the files in \\[default: ~/.cache/corolla/datasets/NAME]."),
):
    """Fetch a built-in dataset: from its OS package if installed, else from its official URLs (checksums verified)."""
    from corolla.data.datasets import fetch_dataset

    console.print(f"[green]✓[/] {name} is in {fetch_dataset(name, dest)}")


@data_app.command("inspect")
def data_inspect(
    data_dir: pathlib.Path = typer.Argument(..., help="A folder written by `corolla prepare`."),
    per_class: int = typer.Option(8, help="Sample images per class on the contact sheet."),
    out: Optional[pathlib.Path] = typer.Option(None, help="Where to write the contact sheet PNG \\[default: DATA_DIR/contact_sheet.png]."),
):
    """Per-class counts, skipped files with reasons, duplicates, and a contact sheet of samples."""
    from corolla.data.inspect import inspect

    report = inspect(data_dir, per_class=per_class, out=out)
    splits = list(report["counts"])
    table = Table("class", *splits, title=f"{data_dir}: {len(report['classes'])} classes")
    for name in report["classes"]:
        table.add_row(name, *[f"{report['counts'][split][name]:,}" for split in splits])
    table.add_row("[bold]total", *[f"[bold]{sum(report['counts'][split].values()):,}" for split in splits])
    console.print(table)
    if report["skipped"]:
        skipped = Table("skipped file", "split", "reason", title=f"{len(report['skipped'])} skipped file(s)")
        for entry in report["skipped"][:20]:
            skipped.add_row(entry["source"], entry.get("split") or "–", entry["reason"])
        console.print(skipped)
        if len(report["skipped"]) > 20:
            console.print(f"… and {len(report['skipped']) - 20} more in {data_dir / 'manifest.json'}")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"{len(report['duplicates'])} group(s) of identical files. Contact sheet: {report['contact_sheet']}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def prepare(
    context: typer.Context,
    source: str = typer.Argument(..., help="A folder of class sub-folders (images, videos or frame folders), a CSV of `path,label` (or `path,question,answer`) lines, or a built-in dataset name."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Folder for the shards, labels.txt and manifest.json."),
    eval_source: Optional[str] = typer.Option(None, "--eval", help="A separate eval set (folder or CSV) instead of holding out --eval-fraction."),
    image_size: Optional[int] = typer.Option(None, help="Training input size; larger images are stored at exactly this size (squashed, as the model sees them) \\[default: native size, else 224]."),
    eval_fraction: float = typer.Option(0.1, help="Share of each class held out for evaluation (seeded), when there is no --eval or official test set."),
    shards: Optional[int] = typer.Option(None, help="Shards per split \\[default: a new shard every ~100 MB]."),
    labels: Optional[pathlib.Path] = typer.Option(None, help="labels.txt fixing the class order (one label per line)."),
    overrides: Optional[pathlib.Path] = typer.Option(None, help="CSV of `key,label` lines applied before the split: relabel the item with that record key (e.g. roses/1.jpg, as in report/predictions.csv) to an existing or new class, or exclude it when the label is empty."),
    find_duplicates: bool = typer.Option(True, help="List files with identical bytes in the manifest (train/eval leaks flagged)."),
    seed: int = typer.Option(42, help="Seed of the train/eval split and shard order."),
    overwrite: bool = typer.Option(False, help="Replace what a previous prepare wrote in --out."),
    runner: str = typer.Option("DirectRunner", help="Apache Beam runner; other Beam options (e.g. --project=…) pass through."),
    kind: str = typer.Option("auto", help="images, clips, or auto (clips when the source holds video files or a question column)."),
    frames: Optional[int] = typer.Option(None, help="Clips: frames sampled uniformly over each clip's real duration \[default: 16]."),
    fps: Optional[float] = typer.Option(None, help="Clips: sample every 1/FPS s instead of a fixed number of frames."),
    max_seconds: Optional[float] = typer.Option(None, help="Clips: longest clip kept, in seconds (longer ones are skipped) \[default: 120]."),
):
    """Validate images or clips and write them as sharded TFRecords with a manifest (an Apache Beam pipeline)."""
    from corolla.data.prepare import prepare as run_prepare

    manifest = run_prepare(
        source, out=out, eval_source=eval_source, image_size=image_size, eval_fraction=eval_fraction, shards=shards,
        labels_file=str(labels) if labels else None, overrides=overrides, find_duplicates=find_duplicates, seed=seed, overwrite=overwrite, beam_args=[f"--runner={runner}", *context.args],
        kind=kind, frames=frames, fps=fps, max_seconds=max_seconds,
    )
    what = f"clips of {manifest.frames} frames, " if manifest.kind == "clips" else ""
    task = f"{manifest.num_classes} answers, {len(manifest.vocabulary)} question words" if manifest.task == "qa" else f"{manifest.num_classes} classes"
    table = Table("split", manifest.kind, "shards", title=f"{out}: {task}, {what}{manifest.image_size}px, {manifest.channels} channel(s)")
    for name, split in manifest.splits.items():
        table.add_row(name, f"{split.count:,}", str(len(split.shards)))
    console.print(table)
    for note in manifest.notes:
        console.print(f"[yellow]note:[/] {note}")
    if manifest.overrides:
        applied = manifest.overrides
        console.print(f"Overrides {applied['file']}: {applied['relabelled']} relabelled, {applied['excluded']} excluded, {len(applied['unmatched'])} unmatched key(s)", highlight=False, markup=False)
    if manifest.skipped:
        console.print(f"[yellow]Skipped {len(manifest.skipped)} file(s)[/] (reasons in {out / 'manifest.json'}), e.g. {manifest.skipped[0]['source']}: {manifest.skipped[0]['reason']}")
    console.print(f"Next: corolla train {out}")


register_train_command(app)  # its many options live in corolla/train/cli.py
register_tune_command(app)


@app.command()
def evaluate(
    run_dir: pathlib.Path = typer.Argument(..., help="A run folder written by `corolla train`."),
    data: Optional[pathlib.Path] = typer.Option(None, help="Prepared data (its --split), or a folder of class sub-folders / CSV of `path,label` (all of it). Default: the data the run trained on."),
    split: str = typer.Option("eval", help="Split of prepared data to evaluate."),
    checkpoint: str = typer.Option("best", help="best (the best evaluation during training) or last (the final epoch's model: report this one when the eval split is your test set, so it does not pick the epoch)."),
    tta: Optional[str] = typer.Option(None, help="Test-time augmentation: none, flip (mean of the image and its mirror) or flip_shift (10 views: both, also shifted a pixel each way) \\[default: the run's --tta]."),
):
    """Metrics, confusion matrix, calibration and worst mistakes → RUN_DIR/report/ (index.html, metrics.json, predictions.csv of every example sorted by loss, PNGs)."""
    from corolla.evaluate import evaluate as run_evaluate
    from corolla.evaluate.report import print_summary

    metrics = run_evaluate(run_dir, data_dir=data, split=split, checkpoint=checkpoint, tta=tta)
    print_summary(metrics, console, report_dir=run_dir / "report")
    console.print(f"Next: corolla export {run_dir}")


@app.command()
def export(
    run_dir: pathlib.Path = typer.Argument(..., help="A run folder written by `corolla train`."),
    out: Optional[pathlib.Path] = typer.Option(None, help="Export base folder (default: RUN_DIR/export); each export is a new version in it."),
    formats: str = typer.Option("saved_model,onnx,litert", "--format", help="Comma-separated formats: saved_model, onnx, litert."),
    quantize: str = typer.Option("none", help="Also write a quantized LiteRT file: none, float16, dynamic (int8 weights) or int8 (full integer, calibrated on the train split)."),
    data: Optional[pathlib.Path] = typer.Option(None, help="Data for the parity check and int8 calibration (default: the data the run trained on)."),
    parity_images: int = typer.Option(1000, help="Eval images every format is checked on against the Keras model."),
    tta: Optional[str] = typer.Option(None, help="Test-time augmentation built into every format: none, flip (two passes per image) or flip_shift (ten) \\[default: the run's --tta]."),
):
    """Export SavedModel (TF Serving ready), ONNX and LiteRT as the next version, each checked against Keras."""
    from corolla.export import export as run_export, parity_table

    path = run_export(run_dir, out=out, formats=formats, quantize=quantize, data_dir=data, parity_images=parity_images, tta=tta)
    console.print(parity_table(path))
    console.print(f"Next: corolla serve {path.parent}")


@app.command()
def predict(
    images: List[pathlib.Path] = typer.Argument(..., help="Image (or, for a clip model, video) files and folders (searched recursively)."),
    model: Optional[pathlib.Path] = typer.Option(None, help="An export folder, or a run folder (its newest export, else its checkpoint), to predict with locally."),
    url: Optional[str] = typer.Option(None, help="A running `corolla serve`, e.g. http://127.0.0.1:8501."),
    model_name: Optional[str] = typer.Option(None, help="Model name on the server (default: the one it serves)."),
    top_k: int = typer.Option(3, help="Labels to show per image."),
    output_format: str = typer.Option("table", "--format", help="Output: table, json or csv (json and csv go to stdout alone, for scripts)."),
    question: Optional[str] = typer.Option(None, help="For a clip question-answering model: the question asked about each video."),
):
    """Top-k labels for images or videos, from a local model (--model) or a server (--url); unreadable files are reported, not fatal."""
    from corolla.predict import OUTPUT_FORMATS, format_results, predict as run_predict

    if output_format not in OUTPUT_FORMATS:
        raise CorollaError(f"Unknown output format '{output_format}'. Expected one of: {', '.join(OUTPUT_FORMATS)}. Received: --format {output_format}")
    results = run_predict(images, model=model, url=url, model_name=model_name, top_k=top_k, question=question, verbose=True)
    if output_format != "table":
        print(format_results(results, output_format), end="" if output_format == "csv" else "\n")
    else:
        table = Table()
        table.add_column("image", overflow="fold")
        for rank in range(1, top_k + 1):
            table.add_column(f"#{rank}")
        for result in results:
            cells = [f"{entry['label']} {entry['probability']:.1%}" for entry in result["top"]] if "top" in result else [f"[red]{result['error']}[/]"]
            table.add_row(result["image"], *cells)
        console.print(table)
    if any("error" in result for result in results):
        sys.exit(1)


register_serve_commands(app)  # `serve` and its tools live in corolla/serve/cli.py
register_studio_command(app)  # `studio`: the web app, in corolla/studio/cli.py


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
