"""The number of CPU cores this process may use, which sizes corolla's thread pools.

Example:
    pool = ThreadPoolExecutor(max_workers=schedulable_cores())
"""

from __future__ import annotations

import os


def schedulable_cores() -> int:
    """Cores this process may run on (`taskset`, `docker --cpuset-cpus`), not the machine's count.

    Pools sized by `os.cpu_count()` overbook a pinned process: under `taskset -c 0` on a 16-core
    machine they would start 16 threads that take turns on one core.
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
