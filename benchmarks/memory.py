"""Memory: peak resident memory of `prepare` and of one pass of the input pipeline, at two dataset sizes.

Each measurement runs in a fresh process that reports its own peak RSS. Everything streams, so
the peaks must not grow with the number of images. (The pipeline's optional RAM cache, on by
default when the decoded split fits in 2 GB, grows with the data by design; it is off here.) Small JPEGs (160×120) keep generation quick;
the sizes are what matters.

    .venv/bin/python benchmarks/memory.py [--sizes 2000 20000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import OUT, make_photo_folder, report  # noqa: E402

PREPARE = """
from corolla.data.prepare import prepare
prepare({photos!r}, out={out!r}, image_size=64, overwrite=True, verbose=False)
"""
ONE_PASS = """
from corolla.data.pipeline import load
for images, labels in load({out!r}, "train", batch_size=64, augment="standard", cache=False):
    pass
"""


def peak_mb(code: str) -> float:
    """Run `code` in a fresh interpreter that reports its own peak RSS (Beam's DirectRunner runs in it too)."""
    code += "\nimport resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(result.stdout.split("PEAK")[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    args = parser.parse_args()

    rows = []
    for size in sorted(args.sizes):
        photos = make_photo_folder(OUT / f"photos-small-{size}", per_class=size // 5, size=(160, 120), seed=size)
        out = OUT / f"memory-prepared-{size}"
        rows.append({"images": size, "stage": "prepare", "peak_rss_mb": peak_mb(PREPARE.format(photos=str(photos), out=str(out)))})
        rows.append({"images": size, "stage": "one pipeline pass", "peak_rss_mb": peak_mb(ONE_PASS.format(out=str(out)))})
    report("memory", rows)


if __name__ == "__main__":
    main()
