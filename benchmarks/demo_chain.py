"""The `make demo` chain, stage by stage: wall seconds and the eval accuracy it reaches.

    .venv/bin/python benchmarks/demo_chain.py [--epochs 8]

Prepares into a fresh folder each time (the demo itself reuses prepared data).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    from corolla.demo import demo

    with tempfile.TemporaryDirectory() as workdir:
        summary = demo(workdir, epochs=args.epochs)
    rows = [{"stage": stage, "seconds": seconds} for stage, seconds in summary["timings"].items()]
    rows.append({"stage": "total", "seconds": summary["seconds"]})
    report("demo_chain", rows, accuracy=summary["accuracy"], epochs=args.epochs)


if __name__ == "__main__":
    main()
