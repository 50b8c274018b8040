"""Training callbacks corolla adds to Keras' own."""

from __future__ import annotations

import math
import os
import pathlib

import keras


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Save the model when `monitor` improves, via a temporary file and a rename.

    Keras' ModelCheckpoint writes in place, so a crash mid-save leaves a damaged file under
    the final name; this never does.
    """

    def __init__(self, path: pathlib.Path, *, monitor: str = "val_accuracy"):
        super().__init__()
        self.path, self.monitor, self.best = pathlib.Path(path), monitor, -math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or value <= self.best:
            return
        self.best = value
        temporary = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}.keras")
        self.model.save(temporary)
        os.replace(temporary, self.path)
