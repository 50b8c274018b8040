"""Test-time augmentation: accuracy of a run's last checkpoint when averaging more views of each image.

Each view is one forward pass over the eval split (the official test set for prepared
Fashion-MNIST): the image or its mirror image, each as it is or moved by one pixel with
corolla's own PixelShift layer (edge repeated). The probabilities of every view are kept, so
each row of the table is an average over a subset, computed from the same passes:

    none         1 view
    flip         2: the image and its mirror (`--tta flip`)
    flip_shift   10: both, as they are and shifted up, down, left and right (`--tta flip_shift`)
    flip × 9     18: both, at all nine one-pixel offsets (diagonals too; not an option)

    .venv/bin/python benchmarks/tta_views.py RUN_DIR [RUN_DIR …] [--name tta_views]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402

from corolla.models.tta import SHIFTS, PixelShift  # noqa: E402

MIRRORS = (False, True)
VIEW_SETS = {  # (mirror, rows, columns) of each view
    "none": [(False, 0, 0)],
    **{mode: [(mirror, rows, columns) for mirror in MIRRORS for rows, columns in shifts] for mode, shifts in SHIFTS.items()},
    "flip × 9": [(mirror, rows, columns) for mirror in MIRRORS for rows, columns in itertools.product((-1, 0, 1), repeat=2)],
}


def eval_arrays(run):
    """The eval split decoded as `corolla evaluate` decodes it: (pixels, labels)."""
    from corolla.evaluate.predictions import decoder, labelled_images

    decode = decoder(run.config)
    data = labelled_images(run.config.data_dir, run.config, split="eval").dataset
    batches = list(data.map(lambda inputs, label, key: (decode(inputs), label)).batch(500).as_numpy_iterator())
    return np.concatenate([pixels for pixels, _ in batches]), np.concatenate([labels for _, labels in batches])


def view_accuracies(run) -> dict:
    model = run.load_model("last", tta="none")
    pixels, labels = eval_arrays(run)
    probabilities = {}
    for mirror, rows, columns in VIEW_SETS["flip × 9"]:
        view = pixels[:, :, ::-1] if mirror else pixels
        view = np.asarray(PixelShift(rows, columns)(view)) if (rows, columns) != (0, 0) else view
        probabilities[(mirror, rows, columns)] = model.predict(view, batch_size=500, verbose=0)
    return {
        name: float(np.mean(np.mean([probabilities[key] for key in keys], axis=0).argmax(-1) == labels))
        for name, keys in VIEW_SETS.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (their checkpoints/last.keras is scored)")
    parser.add_argument("--name", default="tta_views", help="benchmarks/out/NAME.json")
    args = parser.parse_args()
    from corolla.run import Run

    rows = []
    for run_dir in args.runs:
        run = Run(run_dir)
        config, accuracies = run.config, view_accuracies(run)
        rows.append({"run": str(run_dir), "widths": str(config.model_options.get("widths", "")), "epochs": config.epochs, "seed": config.seed,
                     **{f"{name} (%)": round(100 * value, 2) for name, value in accuracies.items()}})  # fmt: skip
        print(rows[-1], flush=True)
    report(args.name, rows, view_sets={name: [list(view) for view in views] for name, views in VIEW_SETS.items()})


if __name__ == "__main__":
    main()
