"""One `corolla` command run for the studio, which ends when the studio goes away.

The studio starts each job step as `python -m corolla.studio.child ARGS` (the same as
`corolla ARGS`) with a pipe as stdin and keeps the pipe's other end open. When the studio exits,
however it exits (SIGKILL included), the kernel closes that end; the command then gets SIGTERM,
as if stopped (a training writes "interrupted" and can be resumed), and SIGKILL if still there
GRACE_SECONDS later. Without this a training would outlive its studio, unseen and unstoppable.

Example:
    subprocess.Popen([sys.executable, "-m", "corolla.studio.child", "train", "data"], stdin=subprocess.PIPE, start_new_session=True)
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time

GRACE_SECONDS = 30


def _end_with_studio() -> None:
    while os.read(0, 4096):  # blocks until the studio's end of the pipe closes (os.read: no lock left held at exit, unlike sys.stdin)
        pass
    _signal(signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    _signal(signal.SIGKILL)


def _signal(signum: int) -> None:
    """This command and anything it started, when it leads its own process group (the studio starts it so)."""
    if os.getpgrp() == os.getpid():
        os.killpg(0, signum)
    else:
        os.kill(os.getpid(), signum)


def main() -> None:
    if stat.S_ISFIFO(os.fstat(0).st_mode):  # only with the studio's pipe: stdin from a terminal or /dev/null is no signal
        threading.Thread(target=_end_with_studio, daemon=True, name="end-with-studio").start()
    import runpy

    sys.argv = ["corolla", *sys.argv[1:]]
    runpy.run_module("corolla.cli", run_name="__main__", alter_sys=True)  # the CLI as a program, as `corolla ARGS` runs it


if __name__ == "__main__":
    main()
