"""Thread pools follow the cores a process may use (`taskset`), not the machine's core count."""

import json
import os
import subprocess
import sys

import pytest

PINNED_CHILD = """
import json, os
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # as `taskset -c N` would, before anything starts
from corolla.cores import schedulable_cores
from corolla.data.beam_steps import _options
from corolla.serve.servable import _DECODE_POOL
direct = _options([], image_files=True).get_all_options()
print(json.dumps({"cores": schedulable_cores(), "decode_threads": _DECODE_POOL._max_workers,
                  "beam_workers": direct["direct_num_workers"]}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_a_process_pinned_to_one_core_sizes_its_pools_for_one_core():
    result = subprocess.run([sys.executable, "-c", PINNED_CHILD], capture_output=True, text=True, timeout=300, check=True)
    sizes = json.loads(result.stdout.strip().splitlines()[-1])
    assert sizes == {"cores": 1, "decode_threads": 1, "beam_workers": 1}
