"""Optimizers and learning-rate schedules by name: one lookup table each.

Every optimizer takes the same knobs (`weight_decay`, decoupled as in AdamW; `clipnorm`), so a
config can switch optimizer without other edits. Schedules are functions of the optimizer's step
counter, which a `.keras` checkpoint saves: a resumed run continues on the same curve.

Example:
    schedule = make_schedule("warmup_cosine", 3e-3, total_steps=4_690, warmup_steps=469)
    optimizer = make_optimizer("adamw", schedule, weight_decay=5e-4, clipnorm=1.0)
"""

from __future__ import annotations

import keras

from corolla.errors import CorollaError

OPTIMIZERS = {
    "adam": lambda lr, momentum, nesterov, **kw: keras.optimizers.Adam(lr, **kw),
    "adamw": lambda lr, momentum, nesterov, **kw: keras.optimizers.AdamW(lr, **kw),
    "sgd": lambda lr, momentum, nesterov, **kw: keras.optimizers.SGD(lr, momentum=momentum, nesterov=nesterov, **kw),
    "rmsprop": lambda lr, momentum, nesterov, **kw: keras.optimizers.RMSprop(lr, momentum=momentum, **kw),
    "adagrad": lambda lr, momentum, nesterov, **kw: keras.optimizers.Adagrad(lr, **kw),
    "adadelta": lambda lr, momentum, nesterov, **kw: keras.optimizers.Adadelta(lr, **kw),
}
SCHEDULES = ("warmup_cosine", "constant", "step")


def make_optimizer(name: str, learning_rate, *, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0, clipnorm: float | None = None):
    """A Keras optimizer from OPTIMIZERS. `momentum` applies to sgd and rmsprop, `nesterov` to sgd."""
    check_choice("optimizer", name, OPTIMIZERS)
    options = {"clipnorm": clipnorm or None}
    if weight_decay:
        options["weight_decay"] = weight_decay
    return OPTIMIZERS[name](learning_rate, momentum, nesterov, **options)


def make_schedule(name: str, learning_rate: float, *, total_steps: int, warmup_steps: int = 0):
    """A learning rate (float) or a Keras schedule.

    warmup_cosine: linear from 0 to `learning_rate` over `warmup_steps`, then a cosine down to 1%
    of it at `total_steps`. step: divided by 10 every third of the run. constant: `learning_rate` throughout.
    """
    check_choice("schedule", name, SCHEDULES)
    if name == "constant":
        return learning_rate
    if name == "step":
        return keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps=max(1, total_steps // 3), decay_rate=0.1, staircase=True)
    warmup_steps = min(warmup_steps, total_steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=0.01,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise CorollaError(f"Unknown {what} '{value}'. Expected one of: {', '.join(choices)}. Received: {what}={value!r}")
