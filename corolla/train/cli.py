"""`corolla train` as a Typer command; `corolla.cli` registers it.

Every option defaults to "not given" so that it overrides `--config`/`--recipe` only when typed;
the defaults shown in --help are TrainConfig's.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import typer
from rich.console import Console

from corolla.config import TrainConfig

DEFAULTS = TrainConfig()
console = Console()


def _help(text: str, field: str | None = None) -> str:
    return f"{text} \\[default: {getattr(DEFAULTS, field)}]" if field else text


def train(
    data_dir: Optional[pathlib.Path] = typer.Argument(None, help="A folder written by `corolla prepare`, or (quick experiments) a folder of class sub-folders. Optional with --config/--resume."),
    out: Optional[pathlib.Path] = typer.Option(None, "--out", "-o", help="Run folder \\[default: runs/<DATA_DIR name>]. Reusing it with the same settings continues the run."),
    config: Optional[pathlib.Path] = typer.Option(None, help="A YAML config (e.g. an earlier RUN_DIR/config.yaml); flags override it."),
    recipe: Optional[str] = typer.Option(None, help="A built-in recipe: fashion-mnist, flowers, cifar10 (see corolla/train/recipes/)."),
    model: Optional[str] = typer.Option(None, help=_help("Model from `corolla models list`; auto: convnet for images, clip_lstm for clips, clip_qa for clips with questions.", "model")),
    backbone: Optional[str] = typer.Option(None, help="Clip models: the image model that encodes each frame (any of `corolla models list --kind images`) \[default: efficientnet_lite0; frame_cnn for tiny clips]."),
    epochs: Optional[int] = typer.Option(None, help=_help("Passes over the training split.", "epochs")),
    train_steps: Optional[int] = typer.Option(None, help="Train this many steps instead of --epochs (the seeds' train_steps)."),
    steps_per_eval: Optional[int] = typer.Option(None, help="With --train-steps: evaluate and checkpoint every this many steps \\[default: one pass]."),
    batch_size: Optional[int] = typer.Option(None, help=_help("Images per step per replica; the global batch is this × replicas.", "batch_size")),
    optimizer: Optional[str] = typer.Option(None, help=_help("adam, adamw, sgd, rmsprop, adagrad or adadelta.", "optimizer")),
    learning_rate: Optional[float] = typer.Option(None, help=_help("Peak learning rate at --batch-size; scaled linearly with the global batch.", "learning_rate")),
    schedule: Optional[str] = typer.Option(None, help=_help("warmup_cosine, constant or step (÷10 every third of the run).", "schedule")),
    warmup: Optional[float] = typer.Option(None, help=_help("Fraction of the steps spent warming up (warmup_cosine).", "warmup")),
    momentum: Optional[float] = typer.Option(None, help=_help("Momentum of sgd and rmsprop.", "momentum")),
    nesterov: Optional[bool] = typer.Option(None, help="Nesterov momentum (sgd)."),
    weight_decay: Optional[float] = typer.Option(None, help=_help("Decoupled weight decay (any optimizer).", "weight_decay")),
    label_smoothing: Optional[float] = typer.Option(None, help=_help("Label smoothing of the cross-entropy.", "label_smoothing")),
    clipnorm: Optional[float] = typer.Option(None, help="Clip each gradient to this norm \\[default: off]."),
    early_stopping: Optional[int] = typer.Option(None, help="Stop after this many evaluations without improvement \\[default: off]."),
    augment: Optional[str] = typer.Option(None, help=_help("none, light (flip, shift) or standard (random-resized crop, flip, brightness, contrast).", "augment")),
    tta: Optional[str] = typer.Option(None, help=_help("Test-time augmentation `evaluate` and `export` apply: none, flip (mean of the image and its mirror; for data whose mirror image keeps its label) or flip_shift (10 views: both, also shifted a pixel each way).", "tta")),
    fine_tune: Optional[bool] = typer.Option(None, help="Pretrained models: after the head, unfreeze the backbone and train on at a lower LR."),
    fine_tune_epochs: Optional[int] = typer.Option(None, help="Epochs of the fine-tune stage \\[default: --epochs]."),
    fine_tune_layers: Optional[str] = typer.Option(None, help="Top N backbone layers to unfreeze, or 'all' \\[default: all]. BatchNorm stays frozen."),
    fine_tune_learning_rate: Optional[float] = typer.Option(None, help="Learning rate of the fine-tune stage \\[default: --learning-rate / 10]."),
    cache_features: Optional[str] = typer.Option(None, help=_help("Frozen backbone, no augmentation: compute its features once (auto, on, off).", "cache_features")),
    distribute: Optional[str] = typer.Option(None, help=_help("auto, one, mirrored (GPUs), multi-worker (TF_CONFIG) or tpu.", "distribute")),
    mixed_precision: Optional[str] = typer.Option(None, help=_help("auto (bfloat16 on TPU/recent GPUs), float32, mixed_bfloat16, mixed_float16.", "mixed_precision")),
    jit_compile: Optional[str] = typer.Option(None, help=_help("XLA: auto (on for GPU/TPU), on, off.", "jit_compile")),
    seed: Optional[int] = typer.Option(None, help=_help("Seed for weights and data order.", "seed")),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint, with its own config."),
    overwrite: bool = typer.Option(False, help="Replace an existing run in --out."),
    find_lr: bool = typer.Option(False, help="Run the learning-rate range test instead of training: writes OUT/lr_finder/lr_finder.png and suggests a value."),
):
    """Train a model; classes, image size and counts come from the data's manifest.

    Examples: `corolla train data/fm --recipe fashion-mnist`, `corolla train data/flowers --model
    efficientnet_lite0 --fine-tune`, `corolla train --config runs/fm/config.yaml --out runs/fm2`.
    """
    from corolla.train import train as run_train

    layers = int(fine_tune_layers) if fine_tune_layers and fine_tune_layers.isdigit() else fine_tune_layers
    options = dict(
        model=model, backbone=backbone, epochs=epochs, train_steps=train_steps, steps_per_eval=steps_per_eval, batch_size=batch_size,
        optimizer=optimizer, learning_rate=learning_rate, schedule=schedule, warmup=warmup, momentum=momentum, nesterov=nesterov,
        weight_decay=weight_decay, label_smoothing=label_smoothing, clipnorm=clipnorm, early_stopping=early_stopping, augment=augment, tta=tta,
        fine_tune=fine_tune, fine_tune_epochs=fine_tune_epochs, fine_tune_layers=layers, fine_tune_learning_rate=fine_tune_learning_rate,
        cache_features=cache_features, distribute=distribute, mixed_precision=mixed_precision, jit_compile=jit_compile, seed=seed,
    )  # fmt: skip
    summary = run_train(data_dir, out=out, config=config, recipe=recipe, resume=resume, overwrite=overwrite, find_lr=find_lr, **options)
    if find_lr:
        console.print(f"[green]✓[/] suggested learning rate [bold]{summary['suggestion']:.2g}[/] (lowest loss at {summary['min_loss_lr']:.2g}); plot: {summary['plot']}")
        console.print(f"Next: corolla train {data_dir or ''} --learning-rate {summary['suggestion']:.2g}".replace("  ", " "))
        return
    console.print(
        f"[green]✓[/] best epoch {summary['best_epoch']} of {summary['epochs']}: {summary['monitor']} {summary['best_accuracy']:.2%}; "
        f"{summary['seconds']:.0f} s in all; {speed(summary)}"
    )
    console.print(f"Next: corolla evaluate {summary['run_dir']}")


def speed(summary: dict) -> str:
    """What was timed, named as such: the network's training speed, or the feature pass and the head's.

    Example:
        speed({"images_per_second": 0.0, "head_images_per_second": 14029.0, "feature_pass": {"images": 3670, "seconds": 61.2}})
        # 'features: 3,670 images in 61.2 s; head: 14,029 img/s'
    """
    parts, noun = [], summary.get("kind", "images")
    rate = "clips/s" if noun == "clips" else "img/s"
    if summary.get("feature_pass"):
        parts.append(f"features: {summary['feature_pass']['images']:,} {noun} in {summary['feature_pass']['seconds']:.1f} s")
    if summary.get("head_images_per_second"):
        parts.append(f"head: {summary['head_images_per_second']:,.0f} {rate}")
    if summary.get("images_per_second"):
        parts.append(f"{'fine-tune' if parts else 'training'}: {summary['images_per_second']:,.0f} {rate}")
    return "; ".join(parts)


def register(app: typer.Typer) -> None:
    app.command()(train)
