"""What dynamic batching can save: the model alone, ms per image at batch 1 vs batch 16.

The served runtimes (`corolla.runtime.runners`: the SavedModel's `pixels` signature through
TensorFlow, model.onnx through ONNX Runtime as the server configures it) on the same two exports
`serve_load.py` serves. This bounds the end-to-end gain: a request's HTTP, JSON and decoding
work does not batch.

    .venv/bin/python benchmarks/serve_model_batching.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402
from serve_load import demo_model, photo_model  # noqa: E402


def ms_per_image(runtime, pixels, seconds: float) -> float:
    runtime(pixels)  # warm-up
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        runtime(pixels)
        calls += 1
    return (time.perf_counter() - started) / calls / len(pixels) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="Timing per runtime and batch size.")
    args = parser.parse_args()

    import numpy as np

    from corolla.runtime.exported import find_version, read_info
    from corolla.runtime.runners import OnnxRuntime, TensorFlowRuntime

    rows = []
    for model, export_base in {"demo convnet 28×28×1": demo_model(), "squeezenet 224×224×3": photo_model()}.items():
        version = find_version(export_base)
        info = read_info(version)
        shape = (info["image_size"], info["image_size"], info["channels"])
        for runtime in (TensorFlowRuntime(version), OnnxRuntime(version)):
            times = {
                size: ms_per_image(runtime, np.random.default_rng(0).uniform(0, 255, (size, *shape)).astype(np.float32), args.seconds)
                for size in (1, 16)
            }
            rows.append({"model": model, "runtime": runtime.name, "ms_per_image_batch_1": times[1], "ms_per_image_batch_16": times[16],
                         "saved_by_batching": times[1] / times[16]})
    report("serve_model_batching", rows)


if __name__ == "__main__":
    main()
