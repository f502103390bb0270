"""Pick the distribution strategy and numeric precision from the hardware this task runs on."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from components.common.settings.config import PRECISIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceFacts:
    """What the choice depends on, gathered once so the decision is a pure function."""

    tpu_found: bool = False
    num_gpus: int = 0
    multi_worker: bool = False  # TF_CONFIG names a cluster with more than one worker
    cpu_has_bf16: bool = False  # bfloat16 units: AMX tiles or AVX-512 BF16 (Zen 4, Cooper Lake)


def choose_strategy_kind(facts: DeviceFacts) -> str:
    """'tpu', 'multi_worker', 'mirrored' or 'default'."""
    if facts.tpu_found:
        return "tpu"
    if facts.multi_worker:
        return "multi_worker"
    if facts.num_gpus > 1:
        return "mirrored"
    return "default"


def choose_precision(requested: str, facts: DeviceFacts) -> str:
    """The Keras dtype policy: 'auto' is float16 on GPUs, bfloat16 on TPUs and on CPUs with
    bfloat16 units (AMX or AVX-512 BF16), float32 elsewhere."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested
    if facts.tpu_found:
        return "mixed_bfloat16"
    if facts.num_gpus:
        return "mixed_float16"
    if facts.cpu_has_bf16:
        return "mixed_bfloat16"
    return "float32"


def is_multi_worker(tf_config: str | None) -> bool:
    """True when a TF_CONFIG value describes more than one worker (chief included)."""
    if not tf_config:
        return False
    cluster = json.loads(tf_config).get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) > 1


BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_bf16(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo text lists a bfloat16 unit's flag (`amx_bf16`, `avx512_bf16`)."""
    return any(
        line.startswith("flags") and any(flag in line.split() for flag in BF16_FLAGS)
        for line in cpuinfo.splitlines()
    )


def _find_tpu():
    import tensorflow as tf

    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, RuntimeError, tf.errors.NotFoundError):  # raised when there is no TPU
        return None


def detect() -> tuple[DeviceFacts, object | None]:
    """This machine's facts, and the TPU resolver when one was found."""
    import tensorflow as tf

    resolver = _find_tpu()
    try:
        with open("/proc/cpuinfo") as handle:
            bf16 = cpu_has_bf16(handle.read())
    except OSError:  # not Linux
        bf16 = False
    facts = DeviceFacts(
        tpu_found=resolver is not None,
        num_gpus=len(tf.config.list_physical_devices("GPU")),
        multi_worker=is_multi_worker(os.environ.get("TF_CONFIG")),
        cpu_has_bf16=bf16,
    )
    return facts, resolver


def make_strategy(kind: str, resolver=None):
    """The tf.distribute strategy for `kind` (see choose_strategy_kind)."""
    import tensorflow as tf

    if kind == "tpu":
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if kind == "multi_worker":
        from components.train import distributed

        return distributed.make_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def setup(precision: str):
    """Detect the hardware, set the global dtype policy; returns (strategy, policy name)."""
    import keras

    facts, resolver = detect()
    kind = choose_strategy_kind(facts)
    policy = choose_precision(precision, facts)
    keras.mixed_precision.set_global_policy(policy)
    log.info("train: %s strategy, %s precision (%s)", kind, policy, facts)
    return make_strategy(kind, resolver), policy
