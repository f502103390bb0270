"""The Keras 3.15.1 / TF 2.21.0 multi-worker shims: still needed, sufficient, and guarded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from worker_cluster import start_workers, wait_all


@pytest.mark.slow  # runs fit on two workers
def test_each_shim_is_still_needed_and_together_they_let_fit_run(tmp_path: Path):
    # Fails once Keras or TF fix a bug upstream (keras-team/keras#20585,
    # tensorflow/tensorflow#72388): then drop that shim from components/train/distributed.py.
    workers = start_workers([[sys.executable, "tests/shim_probe.py"]] * 2, tmp_path)
    assert wait_all(workers, timeout_s=300) == [0, 0], (tmp_path / "worker-0.err").read_text()
    for index in (0, 1):
        lines = (tmp_path / f"worker-{index}.out").read_text().strip().splitlines()
        outcomes = json.loads(lines[-1])
        assert outcomes["none"].startswith("ValueError: Attempt to convert a value (PerReplica")
        assert outcomes["nested_reduce"].startswith(
            "ValueError: Invalid reduction dimension 0 for input with 0 dimensions"
        )
        assert outcomes["all"] == "ok"


def test_other_keras_or_tensorflow_versions_are_refused():
    from components.train.distributed import SHIMMED_VERSIONS, check_versions

    check_versions(dict(SHIMMED_VERSIONS))
    with pytest.raises(RuntimeError, match="verified with .* found .*3.16.0"):
        check_versions({**SHIMMED_VERSIONS, "keras": "3.16.0"})


def test_the_installed_versions_are_the_shimmed_ones():
    import keras
    import tensorflow as tf

    from components.train.distributed import SHIMMED_VERSIONS

    assert {"keras": keras.__version__, "tensorflow": tf.__version__} == SHIMMED_VERSIONS


@pytest.mark.parametrize(
    ("tf_config", "index", "count"),
    [
        (None, 0, 1),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', 0, 2),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', 1, 2),
        ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief"}}', 0, 2),
        (
            '{"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]},'
            ' "task": {"type": "worker", "index": 1}}',
            2,
            3,
        ),
    ],
)
def test_worker_roles_from_tf_config(tf_config, index, count):
    from components.train.distributed import role_from_tf_config

    role = role_from_tf_config(tf_config)
    assert (role.index, role.count, role.is_chief) == (index, count, index == 0)


def test_an_evaluator_task_is_refused():
    from components.train.distributed import role_from_tf_config

    with pytest.raises(ValueError, match="chief or worker, got 'evaluator'"):
        role_from_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator"}}')


def test_workers_read_disjoint_shares_and_refuse_fewer_shards_than_workers(tiny_shards: Path):
    import hashlib

    from components.train.data import make_dataset

    pattern = str(tiny_shards / "train" / "train-*.tfrecord")

    def examples(shard: tuple[int, int]) -> set[str]:
        data = make_dataset(pattern, 1, False, shard=shard)
        return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image, _ in data}

    first, second, whole = examples((0, 2)), examples((1, 2)), examples((0, 1))
    assert first and second and not first & second
    assert first | second == whole
    with pytest.raises(ValueError, match="2 shard\\(s\\) for 3 workers"):
        make_dataset(pattern, 1, True, shard=(0, 3))
