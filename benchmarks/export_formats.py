"""Every export format and quantization of one run: size, conversion time, parity with Keras, speed.

    .venv/bin/python benchmarks/export_formats.py demo-run/fashion-mnist [--parity-images 1000]

Exports into a temporary folder (the run's own export/ is left alone), once per quantization;
the float32 formats come from the first export.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--parity-images", type=int, default=1000)
    args = parser.parse_args()

    from corolla.export import export, export_summary

    rows = []
    with tempfile.TemporaryDirectory() as base:
        for quantize, formats in (("none", "saved_model,onnx,litert"), ("float16", "litert"), ("dynamic", "litert"), ("int8", "litert")):
            path = export(args.run_dir, out=base, formats=formats, quantize=quantize, parity_images=args.parity_images, verbose=False)
            card = json.loads((path / "model_card.json").read_text())
            parity = json.loads((path / "parity.json").read_text())["formats"]
            for row in export_summary(path)["formats"]:
                if quantize != "none" and row["format"] == "litert":
                    continue  # measured in the first export
                rows.append({
                    "format": row["format"],
                    "kB": row["bytes"] / 1e3,
                    "convert_s": card["export_seconds"].get(row["format"], card["export_seconds"].get(row["format"].split(":")[0])),  # pixels: same file
                    "max_abs_diff": f"{row['max_abs_diff']:.1e}",
                    "top1_agreement": row["top1_agreement"],
                    "images_per_s": parity[row["format"]]["images_per_second"],
                })
    report("export_formats", rows, run_dir=args.run_dir, parity_images=args.parity_images)


if __name__ == "__main__":
    main()
