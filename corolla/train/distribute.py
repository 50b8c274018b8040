"""A strategy per device, and the defaults that go with it: one code path on every engine.

`make_strategy` returns one device, several GPUs (MirroredStrategy), several hosts
(MultiWorkerMirroredStrategy from TF_CONFIG), a TPU (TPUStrategy), or on the JAX backend
`keras.distribution.DataParallel`; all have `.scope()` and `.num_replicas_in_sync`. See docs/distributed.md.

Example:
    strategy = make_strategy("auto")        # first: before any other TensorFlow op
    global_batch, lr = scaled_hyperparameters(128, 3e-3, strategy.num_replicas_in_sync)
    with strategy.scope():
        model = build_model("convnet", input_shape=(28, 28, 1), num_classes=10)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    print(describe(strategy))               # "2 workers × 1 replica (MultiWorkerMirroredStrategy)"
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib

from corolla.errors import CorollaError

DISTRIBUTE = ("auto", "one", "mirrored", "multi-worker", "tpu")
_TRAINING_TASKS = ("chief", "worker")  # an "evaluator" task is outside the all-reduce ring


def make_strategy(distribute: str = "auto"):
    """The strategy for `distribute` (one of `DISTRIBUTE`); call it before any other TensorFlow op.

    "auto": a TPU if one resolves, else several hosts if TF_CONFIG names more than one task,
    else all GPUs when there are several, else the default (one device) strategy.

    Example:
        strategy = make_strategy("multi-worker")   # TF_CONFIG set on every host
    """
    if distribute not in DISTRIBUTE:
        raise CorollaError(f"Unknown distribution '{distribute}'. Expected one of: {', '.join(DISTRIBUTE)}. Received: distribute={distribute!r}")
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_replicas(distribute)
    if backend != "tensorflow":
        if distribute not in ("auto", "one"):
            raise CorollaError(
                f"distribute={distribute!r} needs the tensorflow or jax backend; the {backend} backend trains on one device. "
                f"Set KERAS_BACKEND=tensorflow (or jax), or pass --distribute one. Received: KERAS_BACKEND={backend}"
            )
        return _Replicas(1, f"{backend.capitalize()} backend")
    import tensorflow as tf

    if distribute == "auto":
        if _tpu_resolver(tf) is not None:
            distribute = "tpu"
        elif len(_training_tasks()) > 1:
            distribute = "multi-worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            distribute = "mirrored"
        else:
            distribute = "one"
    if distribute == "one":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribute == "tpu":
        return _tpu_strategy(tf)
    if not _training_tasks():
        raise CorollaError(
            "distribute='multi-worker' needs TF_CONFIG on every host, naming the cluster and this host's task, e.g. "
            '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}} '
            "(see docs/distributed.md). Received: TF_CONFIG unset"
        )
    try:
        return _multi_worker_strategy_class()()
    except RuntimeError as error:
        if "at program startup" not in str(error):
            raise
        raise CorollaError(
            "MultiWorkerMirroredStrategy must be created before any other TensorFlow op in the process; "
            f"call make_strategy first. Received: {error}"
        ) from None


def task_info() -> tuple[str, int, bool]:
    """(task_type, task_index, is_chief) from TF_CONFIG; ("worker", 0, True) without one.

    The chief is the "chief" task, or worker 0 when the cluster has no chief; it alone writes the run folder.

    Example:
        task_type, index, is_chief = task_info()     # ("worker", 1, False) on the second host
    """
    config = _tf_config()
    if not config:
        return "worker", 0, True
    task = config.get("task") or {}
    task_type, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return task_type, index, task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)


def worker_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Where this task writes: `run_dir` on the chief, `run_dir/workers/<type>-<index>` (its own checkpoints) on the others.

    Example:
        worker_dir("runs/fm")      # PosixPath('runs/fm/workers/worker-1') on worker 1
    """
    task_type, index, is_chief = task_info()
    run_dir = pathlib.Path(run_dir)
    return run_dir if is_chief else run_dir / "workers" / f"{task_type}-{index}"


def last_checkpoint(run_dir: str | os.PathLike) -> pathlib.Path:
    """The last.keras this task continues from: its own, else (a worker joining a run) the chief's.

    Example:
        last_checkpoint("runs/fm")   # runs/fm/workers/worker-1/checkpoints/last.keras once worker 1 has written one
    """
    own = worker_dir(run_dir) / "checkpoints" / "last.keras"
    return own if own.exists() else pathlib.Path(run_dir) / "checkpoints" / "last.keras"


def scaled_hyperparameters(batch_size: int, learning_rate: float, replicas: int) -> tuple[int, float]:
    """(global batch, learning rate) for `replicas` replicas, each taking `batch_size` images a step.

    The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): the global batch
    is `batch_size × replicas`, and the learning rate grows by the same factor, so each image moves
    the weights as much as it did on one device. It holds well up to global batches of a few
    thousand; beyond that, warm-up and optimizers such as LAMB matter more than the rule.

    Example:
        scaled_hyperparameters(128, 3e-3, 8)     # (1024, 0.024)
    """
    if int(batch_size) != batch_size or batch_size < 1 or int(replicas) != replicas or replicas < 1 or not learning_rate > 0:
        raise CorollaError(
            "batch_size and replicas must be integers ≥ 1 and learning_rate > 0. "
            f"Received: batch_size={batch_size!r}, learning_rate={learning_rate!r}, replicas={replicas!r}"
        )
    return int(batch_size) * int(replicas), float(learning_rate) * int(replicas)


def device_kind(strategy=None) -> str:
    """"tpu", "gpu" or "cpu": what the training runs on (does not start TensorFlow's runtime)."""
    if type(strategy).__name__.startswith("TPUStrategy"):
        return "tpu"
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() if jax.default_backend() in ("tpu", "gpu") else "cpu"
    import tensorflow as tf

    for kind in ("tpu", "gpu"):
        if tf.config.list_physical_devices(kind.upper()):
            return kind
    return "cpu"


def mixed_precision_policy(kind: str | None = None, *, compute_capability: tuple[int, int] | None = None) -> str:
    """The Keras dtype policy for `kind` ("tpu", "gpu", "cpu"; None detects it).

    "mixed_bfloat16" on TPUs and on GPUs of compute capability ≥ 8.0 (A100, H100, RTX 30xx and
    later: bfloat16 tensor cores, no loss scaling needed); else "float32". On CPU it stays float32
    even with native bfloat16 instructions (AVX512-BF16, AMX): measured 1.0–1.6× faster depending on
    the model (docs/distributed.md), not a clear win, and a bfloat16 model's exports are not yet
    parity-checked. `--mixed-precision mixed_bfloat16` opts in.

    Example:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    """
    kind = kind or device_kind()
    if kind == "tpu":
        return "mixed_bfloat16"
    if kind == "cpu":
        return "float32"
    if kind != "gpu":
        raise CorollaError(f"Unknown device kind. Expected one of: tpu, gpu, cpu. Received: kind={kind!r}")
    capability = compute_capability or _gpu_compute_capability()
    return "mixed_bfloat16" if capability and tuple(capability) >= (8, 0) else "float32"


def use_xla(kind: str | None = None) -> bool:
    """XLA (`jit_compile=True`) on GPU and TPU; off on CPU, where it measured 2× slower (DESIGN.md §3)."""
    return (kind or device_kind()) != "cpu"


def describe(strategy) -> str:
    """One line for logs, e.g. "1 replica (CPU)", "2 workers × 1 replica (MultiWorkerMirroredStrategy)"."""
    if isinstance(strategy, _Replicas):
        return f"{_count(strategy.num_replicas_in_sync, 'replica')} ({strategy.engine})"
    name = type(strategy).__name__.lstrip("_")
    replicas = strategy.num_replicas_in_sync
    if "MultiWorker" in name or "CollectiveAllReduce" in name:
        workers = max(1, len(_training_tasks()))
        return f"{_count(workers, 'worker')} × {_count(replicas // workers, 'replica')} (MultiWorkerMirroredStrategy)"
    if name.startswith("TPUStrategy"):
        return f"{_count(replicas, 'TPU core')} (TPUStrategy)"
    if name.startswith("Mirrored"):
        return f"{_count(replicas, 'replica')} (MirroredStrategy)"
    return f"{_count(replicas, 'replica')} ({device_kind(strategy).upper()})"


class _Replicas:
    """What the trainer needs of a strategy where there is no tf.distribute one: `.scope()` and the replica count."""

    def __init__(self, num_replicas_in_sync: int, engine: str, distribution=None):
        self.num_replicas_in_sync, self.engine, self.distribution = num_replicas_in_sync, engine, distribution

    def scope(self):
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()


def _jax_replicas(distribute: str) -> _Replicas:
    import keras

    tasks = _training_tasks()
    if distribute == "multi-worker" or (distribute == "auto" and len(tasks) > 1):
        if not tasks:
            raise CorollaError("distribute='multi-worker' needs TF_CONFIG naming the cluster (see docs/distributed.md). Received: TF_CONFIG unset")
        _, index, _ = task_info()
        keras.distribution.initialize(job_addresses=",".join(tasks), num_processes=len(tasks), process_id=index)
    devices = keras.distribution.list_devices()
    kind = device_kind()
    if distribute == "tpu" and kind != "tpu":
        raise CorollaError(f"distribute='tpu' found no TPU under the JAX backend (devices: {', '.join(map(str, devices))}). Received: distribute='tpu'")
    if distribute == "one" or len(devices) < 2:
        return _Replicas(1, f"JAX, {kind.upper()}")
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return _Replicas(len(devices), "JAX DataParallel", distribution)


def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise CorollaError(f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={text[:200]!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
        raise CorollaError(f'TF_CONFIG must be a JSON object like {{"cluster": {{"worker": [...]}}, "task": {{...}}}}. Received: TF_CONFIG={text[:200]!r}')
    if config.get("cluster", {}).get("ps"):
        raise CorollaError(
            "TF_CONFIG names parameter servers ('ps'); corolla trains with synchronous all-reduce only. "
            f"List the hosts as 'worker' (and optionally one 'chief'). Received: TF_CONFIG={text[:200]!r}"
        )
    return config


def _training_tasks() -> list[str]:
    """Addresses of the chief and workers in TF_CONFIG, chief first (empty without TF_CONFIG)."""
    cluster = _tf_config().get("cluster", {})
    return [address for kind in _TRAINING_TASKS for address in cluster.get(kind, [])]


def _tpu_resolver(tf):
    """A TPUClusterResolver when a TPU is reachable (TPU_NAME, or a Cloud TPU VM's local chips), else None."""
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, ImportError, KeyError):
        pass
    if tf.config.list_physical_devices("TPU"):
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    return None


def _tpu_strategy(tf):
    resolver = _tpu_resolver(tf)
    if resolver is None:
        raise CorollaError(
            "distribute='tpu' found no TPU: set TPU_NAME to the TPU's name or grpc:// address, or run on a Cloud TPU VM. "
            "Use --distribute auto to train on what this machine has. Received: distribute='tpu'"
        )
    if resolver.master() not in ("", "local"):
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _gpu_compute_capability() -> tuple[int, int] | None:
    """The lowest compute capability among the GPUs (the slowest decides), None when unknown."""
    import tensorflow as tf

    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in tf.config.list_physical_devices("GPU")]
    return min(capabilities) if capabilities and all(capabilities) else None



def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _multi_worker_strategy_class():
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """tf.distribute.MultiWorkerMirroredStrategy fixed for Keras 3 (≤ 3.15, keras-team/keras#20585).

        Keras calls `reduce("MEAN", (x, y), axis=None)` on the first batch before fit/evaluate,
        only to learn its shapes, and `reduce("MEAN", scalar, axis=0)` on every metric; with
        more than one worker the stock strategy fails on both. That probe gets this worker's
        first replica's batch (an all-reduce would also need the same batch shape on every
        worker, which a small eval split does not give); a scalar has no batch axis to reduce.
        """

        def reduce(self, reduce_op, value, axis):
            local = self.experimental_local_results
            if isinstance(value, (tuple, list, dict)) and axis is None and str(reduce_op).upper().endswith("MEAN"):
                return tf.nest.map_structure(lambda leaf: None if leaf is None else local(leaf)[0], value)
            reduce = super().reduce

            def one(leaf):
                if leaf is None:
                    return None
                return reduce(reduce_op, leaf, None if local(leaf)[0].shape.rank == 0 else axis)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirroredStrategy

