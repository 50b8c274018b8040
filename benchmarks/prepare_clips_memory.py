"""Memory of `corolla prepare` on clips: peak RSS of the command at two dataset sizes (goal: flat, ≤ 1.2×).

Tiny synthetic clips (tests/clipgen.py: MP4/H.264 32×32, 1 s at 16 fps, 2 classes) keep it quick;
the sizes are what matters. Each size runs `corolla prepare SRC --out OUT --kind clips --frames 16
--image-size 32` as a fresh child process; its peak RSS is the kernel's ru_maxrss for that child
(os.wait4), and a 0.1 s sampler of /proc adds up the RSS of the child and any processes it starts
(the DirectRunner's default threads run in the child itself, so the two agree).

    .venv/bin/python benchmarks/prepare_clips_memory.py [--sizes 200 2000]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import make_clip_folder, report  # noqa: E402

SCRATCH = pathlib.Path(tempfile.gettempdir()) / "corolla-bench"
CLI = pathlib.Path(sys.executable).parent / "corolla"


def _tree_rss_kb(root: int) -> int:
    """RSS of `root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree)


def measure(source: pathlib.Path, out: pathlib.Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [str(CLI), "prepare", str(source), "--out", str(out), "--kind", "clips", "--frames", "16", "--image-size", "32"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_tree, done = [0], threading.Event()

    def sample():
        while not done.wait(0.1):
            peak_tree[0] = max(peak_tree[0], _tree_rss_kb(child.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = child.stderr.read()  # drained as it comes, so the child never blocks on a full pipe
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{stderr.decode()[-2000:]}")
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "peak_tree_rss_mb_sampled": peak_tree[0] / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    args = parser.parse_args()

    began = time.perf_counter()
    rows = []
    for size in sorted(args.sizes):
        source = make_clip_folder(SCRATCH / f"tiny-clips-{size}", clips=size, sizes=((32, 32),), seconds=(1.0, 1.0), fps=16, seed=size)
        out = SCRATCH / f"tiny-clips-prepared-{size}"
        rows.append({"clips": size, **measure(source, out)})
        shutil.rmtree(out, ignore_errors=True)
    for row in rows:
        row["vs_smallest"] = row["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    report("prepare_clips_memory", rows, command="corolla prepare SRC --out OUT --kind clips --frames 16 --image-size 32",
           source="MP4/H.264 32x32, 1 s at 16 fps, 2 classes (tests/clipgen.py)", wall_seconds=time.perf_counter() - began)


if __name__ == "__main__":
    main()
