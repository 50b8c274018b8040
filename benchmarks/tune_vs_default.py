"""`corolla tune` with a time budget vs the default `corolla train`, on the Tux Paint stamps.

The data: Debian's `tuxpaint-stamps-default` (16 folders of clip-art PNGs, ~800 images;
installed by scripts/install-system-deps.sh when missing), prepared once at 224 px with
prepare's seeded 10% eval split, which plays the test set here: tune never sees it (it scores
trials on a validation part of the train split), and both sides are scored on it the same way.

Per seed:
  default  `corolla train DATA --seed S` (the settings a user gets with no flags), then
           `corolla evaluate RUN --checkpoint last`
  tune     `corolla tune DATA --time-budget B --seed S`, then `corolla evaluate` of the best
           trial's run (its best checkpoint, picked on validation) on DATA's eval split

    .venv/bin/python benchmarks/tune_vs_default.py [--budget 20m] [--seeds 1,2,3] [--data DATA_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import OUT, report  # noqa: E402

STAMPS = pathlib.Path("/usr/share/tuxpaint/stamps")
CLI = [sys.executable, "-m", "corolla.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=ENV)
    return time.perf_counter() - started


def test_accuracy(run_dir: pathlib.Path, data_dir: str, checkpoint: str) -> float:
    subprocess.run([*CLI, "evaluate", str(run_dir), "--data", data_dir, "--checkpoint", checkpoint], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "report" / "metrics.json").read_text())["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--data", help="Prepared stamps (default: prepare into $TMPDIR/corolla-stamps-data once, not timed)")
    args = parser.parse_args()
    if not STAMPS.is_dir():
        subprocess.run(["bash", str(pathlib.Path(__file__).parents[1] / "scripts" / "install-system-deps.sh"), "tuxpaint-stamps-default"], check=True)
    data_dir = args.data or str(pathlib.Path(tempfile.gettempdir()) / "corolla-stamps-data")
    if not (pathlib.Path(data_dir) / "manifest.json").is_file():
        subprocess.run([*CLI, "prepare", str(STAMPS), "--out", data_dir, "--image-size", "224"], check=True, env=ENV)
    rows, trials = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in [int(seed) for seed in args.seeds.split(",")]:
            default_run = pathlib.Path(scratch, f"default-{seed}")
            default_seconds = timed([*CLI, "train", data_dir, "--seed", str(seed), "--out", str(default_run)])
            default_accuracy = test_accuracy(default_run, data_dir, "last")
            tune_dir = pathlib.Path(scratch, f"tune-{seed}")
            tune_seconds = timed([*CLI, "tune", data_dir, "--time-budget", args.budget, "--seed", str(seed), "--out", str(tune_dir)])
            result = json.loads((tune_dir / "results.json").read_text())
            best = result["best"]
            tuned_accuracy = test_accuracy(pathlib.Path(best["run_dir"]), data_dir, "best")
            trials[seed] = result["trials"]
            rows.append({
                "seed": seed,
                "default train s": round(default_seconds),
                "default test acc": f"{default_accuracy:.2%}",
                "tune s": round(tune_seconds),
                "trials": len(result["trials"]),
                "best trial": f"{best['trial']}: {json.dumps(best['values'])}, {best['epochs']} epochs",
                "best validation acc": f"{best['val_accuracy']:.2%}",
                "tuned test acc": f"{tuned_accuracy:.2%}",
                "margin (points)": round(100 * (tuned_accuracy - default_accuracy), 1),
                "_default": default_accuracy,
                "_tuned": tuned_accuracy,
            })  # fmt: skip
            OUT.mkdir(exist_ok=True)  # each finished seed survives a later crash or kill
            (OUT / "tune_vs_default.partial.json").write_text(json.dumps({"rows": rows, "trials": trials}, indent=2) + "\n")
            print(f"seed {seed}: default {default_accuracy:.2%}, tuned {tuned_accuracy:.2%}", flush=True)
    margins = [row["_tuned"] - row["_default"] for row in rows]
    summary = {"mean_margin_points": 100 * statistics.mean(margins), "min_margin_points": 100 * min(margins), "budget": args.budget}
    report("tune_vs_default", [{key: value for key, value in row.items() if not key.startswith("_")} for row in rows], summary=summary, trials=trials, data_dir=data_dir)
    for seed, seed_trials in trials.items():
        print(f"\nseed {seed} trials (best first):\n| trial | settings | epochs | validation accuracy | seconds |\n|---|---|---:|---:|---:|")
        for trial in seed_trials:
            score = "–" if trial["val_accuracy"] is None else f"{trial['val_accuracy']:.2%}"
            print(f"| {trial['trial']} | {json.dumps(trial['values'])} | {trial['epochs']} | {score} | {trial['seconds']} |")
    print(f"\ntune ({args.budget}) beats the default train by {summary['mean_margin_points']:.1f} points on average (least: {summary['min_margin_points']:.1f}) over {len(rows)} seeds")


if __name__ == "__main__":
    main()
