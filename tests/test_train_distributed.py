"""Scale-out: strategy choice, TF_CONFIG roles, the scaling rule, and a real two-worker run on loopback."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from corolla.errors import CorollaError
from corolla.train import distribute

WORKER_TIMEOUT_S = 150


def tf_config(workers: list[str], task_type: str = "worker", index: int = 0, **extra) -> str:
    return json.dumps({"cluster": {"worker": workers, **extra}, "task": {"type": task_type, "index": index}})


@pytest.fixture
def no_cluster(monkeypatch):
    for name in ("TF_CONFIG", "TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unknown_distribution_names_the_choices(no_cluster):
    with pytest.raises(CorollaError, match=r"Expected one of: auto, one, mirrored, multi-worker, tpu\. Received: distribute='gpus'"):
        distribute.make_strategy("gpus")


def test_tpu_without_a_tpu_says_how_to_get_one(no_cluster):
    import tensorflow as tf

    if tf.config.list_physical_devices("TPU"):
        pytest.skip("this machine has a TPU")
    with pytest.raises(CorollaError, match="found no TPU: set TPU_NAME"):
        distribute.make_strategy("tpu")


def test_multi_worker_needs_tf_config(no_cluster):
    with pytest.raises(CorollaError, match="needs TF_CONFIG on every host.*Received: TF_CONFIG unset"):
        distribute.make_strategy("multi-worker")


@pytest.mark.parametrize(
    "value, message",
    [("{not json", "not valid JSON"), ('["a"]', "must be a JSON object"), (tf_config(["a:1"], ps=["b:2"]), "parameter servers")],
)
def test_bad_tf_config_is_refused(no_cluster, value, message):
    no_cluster.setenv("TF_CONFIG", value)
    with pytest.raises(CorollaError, match=message):
        distribute.task_info()


def test_one_device_is_the_default_strategy(no_cluster):
    import tensorflow as tf

    strategy = distribute.make_strategy("one")
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    kind = distribute.device_kind()
    assert distribute.describe(strategy) == f"1 replica ({kind.upper()})"
    with strategy.scope():
        pass


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, ("worker", 0, True)),
        (tf_config(["a:1", "b:1"], index=0), ("worker", 0, True)),
        (tf_config(["a:1", "b:1"], index=1), ("worker", 1, False)),
        (tf_config(["a:1"], index=0, chief=["c:1"]), ("worker", 0, False)),
        (tf_config(["a:1"], "chief", 0, chief=["c:1"]), ("chief", 0, True)),
        (tf_config(["a:1"], "evaluator", 0, evaluator=["e:1"]), ("evaluator", 0, False)),
    ],
)
def test_task_info_and_where_each_task_writes(no_cluster, config, expected):
    if config:
        no_cluster.setenv("TF_CONFIG", config)
    assert distribute.task_info() == expected
    task_type, index, is_chief = expected
    run = pathlib.Path("runs/x")
    assert distribute.worker_dir(run) == (run if is_chief else run / "workers" / f"{task_type}-{index}")



def test_a_worker_continues_from_its_own_checkpoint_else_the_chiefs(no_cluster, tmp_path):
    chief = tmp_path / "checkpoints" / "last.keras"
    own = tmp_path / "workers" / "worker-1" / "checkpoints" / "last.keras"
    assert distribute.last_checkpoint(tmp_path) == chief  # the chief: its own, even before it exists
    no_cluster.setenv("TF_CONFIG", tf_config(["a:1", "b:1"], index=1))
    assert distribute.last_checkpoint(tmp_path) == chief  # a worker joining a run: the chief's state
    own.parent.mkdir(parents=True)
    own.write_bytes(b"")
    assert distribute.last_checkpoint(tmp_path) == own

def test_linear_scaling_rule():
    assert distribute.scaled_hyperparameters(128, 3e-3, 1) == (128, 3e-3)
    batch, rate = distribute.scaled_hyperparameters(128, 3e-3, 8)
    assert batch == 1024 and rate == pytest.approx(0.024)
    for bad in [dict(batch_size=0, learning_rate=1e-3, replicas=1), dict(batch_size=8, learning_rate=0, replicas=1), dict(batch_size=8, learning_rate=1e-3, replicas=1.5)]:
        with pytest.raises(CorollaError, match="Received: batch_size="):
            distribute.scaled_hyperparameters(**bad)


def test_device_defaults():
    assert distribute.mixed_precision_policy("tpu") == "mixed_bfloat16"
    assert distribute.mixed_precision_policy("gpu", compute_capability=(9, 0)) == "mixed_bfloat16"
    assert distribute.mixed_precision_policy("gpu", compute_capability=(7, 5)) == "float32"
    assert distribute.mixed_precision_policy("cpu") == "float32"  # bfloat16 on CPU is opt-in
    assert distribute.use_xla("gpu") and distribute.use_xla("tpu") and not distribute.use_xla("cpu")
    with pytest.raises(CorollaError, match="Received: kind='npu'"):
        distribute.mixed_precision_policy("npu")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback_finish_with_the_same_weights(prepared, tmp_path):
    """Two `corolla train` processes, MultiWorkerMirroredStrategy over loopback, one shared --out (as on a shared filesystem)."""
    import keras

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "corolla.cli", "train", str(prepared), "--out", str(out), "--distribute", "multi-worker",
               "--model", "dense", "--epochs", "1", "--batch-size", "8"]  # fmt: skip
    processes, logs = [], []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": tf_config(workers, index=index), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
        logs.append(tmp_path / f"worker-{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    try:
        for process in processes:
            process.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        hung = [index for index, process in enumerate(processes) if process.poll() is None]
        for index in hung:
            processes[index].kill()
            processes[index].wait()
    output = [log.read_text(errors="replace") for log in logs]
    report = "\n".join(f"--- worker {index} ---\n{text[-3000:]}" for index, text in enumerate(output))
    assert not hung, f"worker(s) {hung} still running after {WORKER_TIMEOUT_S} s\n{report}"
    assert [process.returncode for process in processes] == [0, 0], report
    assert all("2 workers × 1 replica (MultiWorkerMirroredStrategy)" in text for text in output), report

    # The chief owns the run folder; the other worker's copies stay out of the way.
    chief, worker = out / "checkpoints" / "last.keras", out / "workers" / "worker-1" / "checkpoints" / "last.keras"
    assert (out / "config.yaml").is_file() and (out / "history.json").is_file()
    assert not (out / "workers" / "worker-0").exists() and not (out / "workers" / "worker-1" / "config.yaml").exists()
    weights = [keras.saving.load_model(path, safe_mode=True).get_weights() for path in (chief, worker)]
    assert len(weights[0]) == len(weights[1]) > 0
    for mine, theirs in zip(*weights):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
    history = [json.loads(path.read_text()) for path in (out / "history.json", out / "workers" / "worker-1" / "history.json")]
    assert history[0]["loss"] == pytest.approx(history[1]["loss"], abs=1e-6)  # global metrics: all-reduced, so equal
