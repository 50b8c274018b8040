"""`corolla models list` and `corolla models summary NAME`: the model zoo at a glance.

Example:
    corolla models list
    corolla models summary resnet50 --input-size 160 --num-classes 5
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

models_app = typer.Typer(help="The model zoo: list models, inspect one.", no_args_is_help=True)
console = Console()

LIST_CLASSES = 10


def example_input(spec, size: int, channels: int) -> tuple[tuple, dict]:
    """(input_shape, extra builder options) to build `spec` for a listing: clip models get spec.frames frames (and a 1,000-word vocabulary for QA)."""
    if spec.kind != "clips":
        return (size, size, channels), {}
    return (spec.frames, size, size, channels), ({"vocabulary_size": 1000} if "vocabulary_size" in spec.options else {})


@models_app.command("list")
def models_list():
    """Every model --model accepts, with its size at its default input size."""
    from corolla.models import build_model, list_models

    table = Table("name", "kind", "parameters", "input", "pretrained", "description", title=f"Models (parameters for {LIST_CLASSES} classes)")
    with console.status("Building each model to count its parameters…"):
        for spec in list_models():
            options = {"weights": None} if spec.pretrained else {}  # the count needs no download
            shape, extra = example_input(spec, spec.input_size, spec.channels)
            model = build_model(spec.name, input_shape=shape, num_classes=LIST_CLASSES, **options, **extra)
            row = (spec.name, spec.kind, f"{model.count_params():,}", "×".join(map(str, shape)), "ImageNet" if spec.pretrained else "–", spec.description)
            table.add_row(*row)
    console.print(table)
    console.print("Your own model: --model path/to/file.py:build, where build(input_shape, num_classes) returns a Keras model.")


@models_app.command("summary")
def models_summary(
    name: str = typer.Argument(..., help="A model name from `corolla models list`, or path/to/file.py:build."),
    input_size: Optional[int] = typer.Option(None, help="Image height and width \\[default: the model's own]."),
    channels: Optional[int] = typer.Option(None, help="1 (grayscale) or 3 (RGB) \\[default: the model's own]."),
    num_classes: int = typer.Option(LIST_CLASSES, help="Number of classes of the head."),
    weights: Optional[str] = typer.Option(None, help="Pretrained models: imagenet, none or PATH \\[default: none, no download]."),
):
    """model.summary(), then parameter and FLOP counts for one image."""
    from corolla.models import build_model, get_model
    from corolla.models.stats import model_stats

    spec = get_model(name)
    size = input_size or spec.input_size or 224
    options = {"weights": weights} if spec.pretrained or weights is not None else {}  # from-scratch models refuse weights clearly
    shape, extra = example_input(spec, size, channels or spec.channels)
    model = build_model(name, input_shape=shape, num_classes=num_classes, **options, **extra)
    model.summary(print_fn=lambda line, **_: console.print(line, highlight=False, markup=False))
    stats = model_stats(model)
    table = Table("", "", title=f"{model.name} at {size}×{size}×{channels or spec.channels}, {num_classes} classes", show_header=False)
    table.add_row("parameters", f"{stats['parameters']:,}")
    table.add_row("trainable", f"{stats['trainable_parameters']:,}")
    table.add_row("MACs / image", f"{stats['macs'] / 1e6:,.1f} M  (Conv2D, DepthwiseConv2D, Dense; counted from shapes)")
    table.add_row("FLOPs / image", f"{stats['flops'] / 1e6:,.1f} M  (2 × MACs)")
    console.print(table)
