"""One training session: device set-up, data, the two stages (head, then fine-tune), callbacks.

`trainer.train` decides *what* to run (config, run folder, progress); this module runs it.

Example:
    progress = fit(settings, manifest, run_dir, progress={}, verbose=2)
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

from corolla.config import TrainConfig
from corolla.errors import CorollaError

CACHE_FEATURES = ("auto", "on", "off")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT = ("auto", "on", "off")


def check(settings: TrainConfig) -> None:
    """Every choice validated before anything is written or any data is read."""
    from corolla.data.augment import check_preset
    from corolla.models import get_model
    from corolla.models.registry import check_options
    from corolla.models.tta import check_tta
    from corolla.train.distribute import DISTRIBUTE
    from corolla.train.optim import OPTIMIZERS, SCHEDULES, check_choice

    spec = get_model(settings.model)
    check_options(spec, settings.model_options)
    if spec.kind != settings.kind:
        suggestion = {"clips": "clip_lstm (or clip_qa for questions)", "images": "an image model such as convnet"}[settings.kind]
        raise CorollaError(
            f"Model '{settings.model}' takes {spec.kind}, and {settings.data_dir} holds {settings.kind}. "
            f"Pick {suggestion}, or leave --model out. Received: model={settings.model!r}"
        )
    if settings.backbone and "backbone" not in spec.options:
        raise CorollaError(f"--backbone picks a clip model's frame encoder, and '{settings.model}' has none. Received: backbone={settings.backbone!r}")
    if settings.backbone:
        get_model(settings.backbone)
    check_preset(settings.augment)
    check_tta(settings.tta, kind=settings.kind)
    check_choice("optimizer", settings.optimizer, OPTIMIZERS)
    check_choice("schedule", settings.schedule, SCHEDULES)
    check_choice("cache_features", settings.cache_features, CACHE_FEATURES)
    check_choice("mixed_precision", settings.mixed_precision, PRECISIONS)
    check_choice("jit_compile", settings.jit_compile, JIT)
    check_choice("distribute", settings.distribute, DISTRIBUTE)
    numbers = {"epochs": settings.epochs, "batch_size": settings.batch_size}
    if min(numbers.values()) < 1 or settings.learning_rate <= 0 or settings.train_steps < 0 or settings.steps_per_eval < 0:
        raise CorollaError(
            "epochs and batch_size must be ≥ 1, learning_rate > 0, train_steps and steps_per_eval ≥ 0. "
            f"Received: epochs={settings.epochs}, batch_size={settings.batch_size}, learning_rate={settings.learning_rate}, "
            f"train_steps={settings.train_steps}, steps_per_eval={settings.steps_per_eval}"
        )
    if not 0 <= settings.label_smoothing < 1 or not 0 <= settings.warmup < 1:
        raise CorollaError(f"label_smoothing and warmup must lie in [0, 1). Received: label_smoothing={settings.label_smoothing}, warmup={settings.warmup}")
    layers = settings.fine_tune_layers
    if layers != "all" and not (isinstance(layers, int) and layers >= 1):
        raise CorollaError(f"fine_tune_layers must be a positive number of backbone layers or 'all'. Received: fine_tune_layers={layers!r}")
    if settings.cache_features == "on" and (not get_model(settings.model).pretrained or settings.augment != "none"):
        raise CorollaError(
            "cache_features=on needs a pretrained model with a frozen backbone and augment=none "
            f"(features must be the same every epoch). Received: model={settings.model!r}, augment={settings.augment!r}"
        )
    if settings.fine_tune and not get_model(settings.model).pretrained:
        raise CorollaError(
            f"--fine-tune unfreezes a pretrained backbone, and '{settings.model}' has none (it trains all its layers already). "
            f"Pick a pretrained model (`corolla models list`). Received: model={settings.model!r}"
        )


def steps_per_epoch(settings: TrainConfig, global_batch: int) -> int:
    """Steps between evaluations: one pass over the data, or `steps_per_eval` with `train_steps`.

    With `train_steps`, the default is a pass at the per-replica batch size (known before the
    strategy exists), so on N replicas an evaluation comes every N passes.
    """
    if settings.train_steps:
        return min(settings.train_steps, settings.steps_per_eval or math.ceil(settings.train_images / settings.batch_size))
    return math.ceil(settings.train_images / global_batch)


def stage_epochs(settings: TrainConfig) -> int:
    """Evaluations in the first stage: `epochs`, or `train_steps` cut into `steps_per_eval` pieces."""
    if settings.train_steps:
        return math.ceil(settings.train_steps / steps_per_epoch(settings, settings.batch_size))
    return settings.epochs


def total_epochs(settings: TrainConfig) -> int:
    return stage_epochs(settings) + ((settings.fine_tune_epochs or settings.epochs) if settings.fine_tune else 0)


def fit(settings: TrainConfig, manifest, run_dir: pathlib.Path, progress: dict, *, verbose: int, events=None) -> dict:
    """Train (or continue) both stages; returns the final progress state. `events`: a ProgressLog (None: none kept)."""
    import keras
    import tensorflow as tf

    from corolla.train import distribute
    from corolla.train.progress import ProgressLog

    events = ProgressLog(None) if events is None else events

    strategy = distribute.make_strategy(settings.distribute)
    write_dir = distribute.worker_dir(run_dir)  # the chief writes RUN_DIR, other workers their own folder
    (write_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    keras.mixed_precision.set_global_policy(_auto(settings.mixed_precision, distribute.mixed_precision_policy))
    keras.utils.set_random_seed(settings.seed)
    global_batch, learning_rate = distribute.scaled_hyperparameters(settings.batch_size, settings.learning_rate, strategy.num_replicas_in_sync)
    data = _Data(settings, manifest, global_batch)
    if verbose:
        print(f"Training {settings.model} on {distribute.describe(strategy)}: global batch {global_batch}, learning rate {learning_rate:g}.")

    first = stage_epochs(settings)
    try:
        if progress.get("epoch", 0) < first and progress.get("stage", "train") == "train":
            progress = _stage("train", settings, data, strategy, run_dir, progress, learning_rate=learning_rate, end_epoch=first, verbose=verbose, events=events)
        if settings.fine_tune:
            fine_rate = (settings.fine_tune_learning_rate or settings.learning_rate / 10) * learning_rate / settings.learning_rate
            end = total_epochs(settings)
            progress = _stage("fine_tune", settings, data, strategy, run_dir, progress, learning_rate=fine_rate, end_epoch=end, verbose=verbose, events=events)
    except tf.errors.UnavailableError as error:  # a peer worker died: collectives abort
        raise CorollaError(
            f"Another training worker stopped ({str(error).splitlines()[0][:200]}). Restart every worker with the same "
            f"command: each continues from its last checkpoint."
        ) from None
    return progress


class _Data:
    """The train/eval datasets, built once and shared by both stages."""

    def __init__(self, settings: TrainConfig, manifest, global_batch: int):
        import tensorflow as tf

        from corolla.data.pipeline import load

        self.global_batch = global_batch
        self.steps = steps_per_epoch(settings, global_batch)
        options = tf.data.Options()
        # Shard by element, not file: a few big shards must still split evenly across workers.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        one_hot = _one_hot(settings)
        repeat = bool(settings.train_steps)

        def finish(dataset):
            return (dataset.map(one_hot) if one_hot else dataset).with_options(options)

        common = dict(batch_size=global_batch, seed=settings.seed, manifest=manifest)
        self.train = finish(load(settings.data_dir, "train", augment=settings.augment, repeat=repeat, **common))
        self.eval = finish(load(settings.data_dir, "eval", **common)) if settings.eval_images else None
        # In file order, unaugmented: the one pass that computes cached backbone features.
        self.plain_train = lambda: finish(load(settings.data_dir, "train", shuffle=False, **common))
        self.monitor = "val_accuracy" if self.eval is not None else "accuracy"


def _stage(stage, settings, data, strategy, run_dir, progress, *, learning_rate, end_epoch, verbose, events) -> dict:
    import keras

    from corolla.train.callbacks import RunCheckpoints
    from corolla.train.distribute import last_checkpoint, worker_dir
    from corolla.train.features import cached_feature_data
    from corolla.train.progress import FeatureProgress, TrainingProgress

    write_dir = worker_dir(run_dir)
    checkpoints = write_dir / "checkpoints"
    start_epoch = progress.get("epoch", 0)
    stage_start = stage_epochs(settings) if stage == "fine_tune" else 0
    resuming = progress.get("stage") == stage and start_epoch > stage_start
    with strategy.scope():
        if resuming or stage == "fine_tune":
            network = _load_last(last_checkpoint(run_dir))
        else:
            network = _build(settings)
        if stage == "fine_tune" and not resuming:
            from corolla.train.features import unfreeze_encoder

            unfreeze_encoder(network, layers=settings.fine_tune_layers)
        steps = data.steps
        optimizer = network.optimizer if resuming else _optimizer(settings, learning_rate, steps * (end_epoch - stage_start))
        _compile(network, optimizer, settings)

    events.start(settings, stage=stage, epoch=start_epoch, epochs=total_epochs(settings), end_epoch=end_epoch, steps=steps, global_batch=data.global_batch)
    fitted, train_data, eval_data, feature_pass = network, data.train, data.eval, None
    cached = stage == "train" and _use_cached_features(settings, network)
    if cached:
        report = FeatureProgress(events, stage=stage, images=settings.train_images + settings.eval_images)
        fitted, train_data, eval_data, feature_pass = cached_feature_data(network, data, settings, verbose=verbose, on_batch=report)
        report.finish()
        _compile(fitted, optimizer, settings)

    images_per_epoch = steps * data.global_batch if settings.train_steps else settings.train_images
    checkpointer = RunCheckpoints(
        checkpoints, write_dir, monitor=data.monitor, stage=stage, progress=progress, images_per_epoch=images_per_epoch,
        end_epoch=end_epoch, save_model=network if cached else None, feature_pass=feature_pass,
    )  # fmt: skip
    reporter = TrainingProgress(  # after the checkpointer: it reports the history row just written
        events, stage=stage, history=checkpointer.history, epochs=total_epochs(settings), steps=steps, batch_size=data.global_batch,
        images_per_epoch=images_per_epoch, speed_name=checkpointer.speed_name,
    )  # fmt: skip
    callbacks = [checkpointer, reporter, keras.callbacks.TensorBoard(log_dir=str(write_dir / "logs" / stage), write_graph=False)]
    if settings.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=data.monitor, mode="max", patience=settings.early_stopping))
    fitted.fit(
        train_data,
        validation_data=eval_data,
        epochs=end_epoch,
        initial_epoch=start_epoch,
        steps_per_epoch=steps if settings.train_steps else None,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
        callbacks=callbacks,
        verbose=verbose,
    )
    return checkpointer.state()


def find_learning_rate(settings: TrainConfig, manifest, *, out_dir: pathlib.Path, steps: int = 200, verbose: bool = True) -> dict:
    """The LR range test on a fresh model; writes out_dir/lr_finder.png and .json."""
    import keras

    from corolla.data.pipeline import load
    from corolla.train.lr_finder import find_lr

    keras.utils.set_random_seed(settings.seed)
    one_hot = _one_hot(settings)
    data = load(settings.data_dir, "train", batch_size=settings.batch_size, augment=settings.augment, repeat=True, seed=settings.seed, manifest=manifest)
    network = _build(settings)
    _compile(network, _optimizer(dataclasses.replace(settings, schedule="constant"), 1e-6, steps), settings)
    if verbose:
        print(f"Sweeping the learning rate of {settings.optimizer} from 1e-6 to 1 over {steps} steps…")
    result = find_lr(network, data.map(one_hot) if one_hot else data, steps=steps, out_dir=out_dir)
    return {"suggestion": result["suggestion"], "min_loss_lr": result["min_loss_lr"], "steps": len(result["rates"]), "plot": str(out_dir / "lr_finder.png")}


def _build(settings: TrainConfig):
    from corolla.models import build_model

    shape = (settings.image_size, settings.image_size, settings.channels)
    options = dict(settings.model_options)
    if settings.kind == "clips":
        shape = (settings.frames, *shape)
    if settings.backbone:
        options["backbone"] = settings.backbone
    if settings.task == "qa":  # TextVectorization's ids: 0 pads, 1 is an unknown word, then the vocabulary
        options.update(vocabulary_size=len(settings.vocabulary) + 2, question_length=settings.question_length)
    return build_model(settings.model, input_shape=shape, num_classes=len(settings.classes), **options)


def _optimizer(settings: TrainConfig, learning_rate: float, total_steps: int):
    from corolla.train.optim import make_optimizer, make_schedule

    schedule = make_schedule(settings.schedule, learning_rate, total_steps=total_steps, warmup_steps=round(settings.warmup * total_steps))
    return make_optimizer(
        settings.optimizer, schedule, momentum=settings.momentum, nesterov=settings.nesterov,
        weight_decay=settings.weight_decay, clipnorm=settings.clipnorm or None,
    )  # fmt: skip


def _compile(network, optimizer, settings: TrainConfig) -> None:
    import keras

    loss = keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing) if settings.label_smoothing else "sparse_categorical_crossentropy"
    network.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=_auto(settings.jit_compile, _xla))


def _one_hot(settings: TrainConfig):
    """Label smoothing needs one-hot labels; returns the map function, or None."""
    if not settings.label_smoothing:
        return None
    import tensorflow as tf

    classes = len(settings.classes)
    return lambda images, labels: (images, tf.one_hot(labels, classes))


def _load_last(path: pathlib.Path):
    from corolla.models.saving import load_model_file

    if not path.is_file():
        raise CorollaError(f"Cannot continue: {path} is missing. Start again with --overwrite.")
    return load_model_file(path)


def _use_cached_features(settings: TrainConfig, network) -> bool:
    from corolla.train.features import has_frozen_encoder

    possible = has_frozen_encoder(network) and settings.augment == "none"
    return possible and settings.cache_features != "off"


def _auto(choice: str, decide):
    """A device-dependent setting: `decide()` for "auto", else the choice ("on"/"off" → bool)."""
    if choice == "auto":
        return decide()
    return {"on": True, "off": False}.get(choice, choice)


def _xla() -> bool:
    from corolla.train.distribute import use_xla

    return use_xla()  # GPU/TPU only: on a 2-core CPU XLA measured 2× slower (2,863 vs 1,449 img/s)
