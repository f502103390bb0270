"""Multi-worker training: the strategy (with its Keras 3.15.1 shims), worker roles, input shares."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from components.common.errors import StepFailed

log = logging.getLogger(__name__)

# The versions whose MultiWorkerMirroredStrategy bugs ShimmedMultiWorkerStrategy works around
# (keras-team/keras#20585, tensorflow/tensorflow#72388). Others are refused, not guessed at:
# tests/test_multiworker_shims.py says whether a new pair still needs the shims.
SHIMMED_VERSIONS = {"keras": "3.15.1", "tensorflow": "2.21.0"}
NESTED_REDUCE = "nested_reduce"  # Keras reduces an (x, y, weights) batch in one call
SCALAR_AXIS = "scalar_axis"  # Keras reduces scalar logs along axis 0 on several workers
ALL_SHIMS = frozenset({NESTED_REDUCE, SCALAR_AXIS})
# A worker waits this long for all the others to start (pods scheduled, images pulled) ...
STARTUP_TIMEOUT_S = 900
# ... and a worker silent for this long is dead: the others' collectives abort with an error.
HEARTBEAT_TIMEOUT_S = 10


@dataclass(frozen=True)
class WorkerRole:
    """Where this process stands among the workers; the chief alone writes outputs."""

    index: int  # 0 is the chief (TF_CONFIG's `chief`, else worker 0)
    count: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def role_from_tf_config(tf_config: str | None) -> WorkerRole:
    """This task's role from a TF_CONFIG value; one worker (the chief) without one."""
    if not tf_config:
        return WorkerRole(0, 1)
    spec = json.loads(tf_config)
    cluster, task = spec.get("cluster", {}), spec.get("task", {})
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind == "chief":
        return WorkerRole(0, chiefs + workers)
    if kind == "worker":
        return WorkerRole(index + chiefs, chiefs + workers)
    raise ValueError(f"TF_CONFIG task type must be chief or worker, got {kind!r}")


def check_versions(found: dict[str, str]) -> None:
    """Refuse Keras/TensorFlow versions the shims were not made for."""
    if found != SHIMMED_VERSIONS:
        raise StepFailed(
            f"multi-worker training is verified with {SHIMMED_VERSIONS}, found {found}: "
            "components/train/distributed.py works around bugs of exactly those versions; "
            "run tests/test_multiworker_shims.py to see whether the new ones still have them, "
            "then update SHIMMED_VERSIONS (or drop the shims)"
        )


class ShimmedMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` accepts what Keras 3.15.1's `fit` passes it.

    Keras calls `strategy.reduce` in two ways TF 2.21's collective strategy rejects on more
    than one worker: with a whole (x, y, weights) batch (`_maybe_symbolic_build`), and with
    scalar logs and `axis=0` (`reduce_per_replica`). Here a nested value is reduced leaf by
    leaf and a scalar across replicas only (`axis=None`), which is what `axis=0` means for a
    batch. Anything else goes to TF unchanged. `shims` names the fixes in force (tests
    turn them off to see whether Keras still needs them).
    """

    def __init__(self, *args, shims: frozenset[str] = ALL_SHIMS, **kwargs):
        self.shims = shims
        super().__init__(*args, **kwargs)

    def reduce(self, reduce_op, value, axis):
        if NESTED_REDUCE in self.shims and tf.nest.is_nested(value):
            return tf.nest.map_structure(lambda leaf: self.reduce(reduce_op, leaf, axis), value)
        if SCALAR_AXIS in self.shims and axis is not None and self._rank(value) == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)

    def _rank(self, value) -> int | None:
        first = self.experimental_local_results(value)[0]
        return getattr(getattr(first, "shape", None), "rank", None)


def make_strategy(shims: frozenset[str] = ALL_SHIMS) -> ShimmedMultiWorkerStrategy:
    """The multi-worker strategy for this process's TF_CONFIG, with bounded waits.

    Call it before any other TensorFlow op: collectives are configured at program start.
    """
    check_versions({"keras": keras.__version__, "tensorflow": tf.__version__})
    _configure_coordination(tf.distribute.cluster_resolver.TFConfigClusterResolver())
    return ShimmedMultiWorkerStrategy(shims=shims)


def _configure_coordination(resolver) -> None:
    """The coordination service MultiWorkerMirroredStrategy would start, with our timeouts.

    With TF's defaults a worker still waited after 100 s (as long as we looked) for a peer
    that never started; the heartbeat timeout, explicit here, turns a dead peer into an
    error on the others.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    cluster = resolver.cluster_spec()
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster.num_tasks(job))
        for job in ("chief", "worker")
        if job in cluster.jobs
    ]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(cluster),
        coordinated_jobs=jobs,
        cluster_register_timeout_in_ms=STARTUP_TIMEOUT_S * 1000,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
    )


def role(strategy) -> WorkerRole:
    """This process's role under `strategy` (the chief of one when it is not multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return WorkerRole(0, 1)
    if not resolver.cluster_spec().as_dict():  # one worker, no TF_CONFIG
        return WorkerRole(0, 1)
    return role_from_tf_config(
        json.dumps(
            {
                "cluster": resolver.cluster_spec().as_dict(),
                "task": {"type": resolver.task_type, "index": resolver.task_id},
            }
        )
    )


def check_worker_count(strategy, expected: int) -> None:
    """An error when the workers TF_CONFIG names are not the `expected` many (0: any)."""
    found = role(strategy).count
    if expected and found != expected:
        raise ValueError(
            f"train_workers is {expected} but TF_CONFIG names {found} worker(s): a pipeline "
            "compiled for Vertex AI fixes its replica count; compile again with "
            f"--param train_workers={expected}"
        )


def per_replica_batch(global_batch: int, strategy) -> int:
    """The batch each replica takes so that one step across all of them is `global_batch`."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(
            f"batch_size {global_batch} does not split evenly over {replicas} replicas; "
            f"pick a multiple of {replicas}"
        )
    return global_batch // replicas


def distribute(strategy, make: Callable[[], tf.data.Dataset]):
    """This worker's dataset `make()`, batched per replica, as the strategy's distributed input.

    No auto-sharding or re-batching by tf.distribute: `make` reads its worker's share itself.
    """
    return strategy.distribute_datasets_from_function(lambda _context: make())


def barrier(strategy, what: str) -> None:
    """Wait until every worker gets here (a collective sum of ones), failing if one is dead."""
    expected = role(strategy).count
    if expected == 1:
        return
    count = int(strategy.reduce(tf.distribute.ReduceOp.SUM, tf.constant(1.0), axis=None))
    if count != expected:
        raise StepFailed(f"barrier {what!r}: {count} of {expected} workers arrived")
    log.info("train: all %d workers reached %s", count, what)


class SameResumePoint(keras.callbacks.Callback):
    """Fails `fit` when the workers restored different epochs from their own backups.

    Each worker restores its own BackupAndRestore copy; one killed while writing it falls
    back to the epoch before, and workers out of step would train apart and then stall.
    Goes after the backup callback, whose `on_train_begin` restores.
    """

    def __init__(self, strategy, state_dir: str):
        super().__init__()
        self._strategy = strategy
        self._state_dir = state_dir

    def on_train_begin(self, logs=None):
        workers = role(self._strategy).count
        if workers == 1:
            return
        epoch = float(self.model._initial_epoch or 0)  # set by BackupAndRestore's restore
        # all equal exactly when n * sum(e^2) == sum(e)^2; every worker computes the same
        total = float(self._strategy.reduce("SUM", tf.constant(epoch), axis=None))
        squares = float(self._strategy.reduce("SUM", tf.constant(epoch * epoch), axis=None))
        if workers * squares != total * total:
            raise StepFailed(
                f"the {workers} workers restored different epochs (this one {int(epoch)}, "
                f"mean {total / workers:g}) from their checkpoints next to {self._state_dir}: "
                "one was stopped while writing its own. Copy the chief's folder (state) over "
                "every state-worker-N folder there, then restart the job"
            )
