"""The sample data set: written once, atomically, checked before each use."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipelines.sample_data import ensure_sample_data, sample_set_problem

REPO = Path(__file__).resolve().parents[1]


def test_a_run_killed_while_writing_leaves_no_partial_set_and_the_next_writes_it_whole(
    tmp_path: Path,
):
    target = tmp_path / "sample"
    code = "from pipelines.sample_data import ensure_sample_data as e; "
    code += f"e({str(target)!r}, count=3000, size=64)"
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    staging = tmp_path / f"sample.tmp-{writer.pid}"
    deadline = time.monotonic() + 60
    while not (staging / "masks").is_dir() or len(list((staging / "masks").iterdir())) < 20:
        assert writer.poll() is None and time.monotonic() < deadline, "wrote too fast to kill"
        time.sleep(0.02)
    writer.send_signal(signal.SIGTERM)
    writer.wait(timeout=30)
    assert not target.exists()  # a partial set never stands where runs look for it
    ensure_sample_data(str(target), count=12, size=64)
    assert sample_set_problem(str(target), 12, 0, 64) is None
    assert len(list((target / "images").iterdir())) == 12
    assert not staging.exists()  # the killed writer's leftovers are cleared


def test_an_altered_or_partial_set_is_replaced_before_use(tmp_path: Path):
    target = tmp_path / "sample"
    ensure_sample_data(str(target), count=6, size=32)
    victim = target / "masks" / "sample_00003.png"
    victim.unlink()
    assert "files, expected 12" in sample_set_problem(str(target), 6, 0, 32)
    ensure_sample_data(str(target), count=6, size=32)
    assert victim.exists() and sample_set_problem(str(target), 6, 0, 32) is None
    (target / "images" / "sample_00001.png").write_bytes(b"not what was written")
    assert "digest mismatch" in sample_set_problem(str(target), 6, 0, 32)
    (tmp_path / "sample.json").unlink()  # an old, unrecorded set: never trusted
    assert "never finished" in sample_set_problem(str(target), 6, 0, 32)
    ensure_sample_data(str(target), count=6, size=32)
    assert sample_set_problem(str(target), 6, 0, 32) is None


def test_two_first_runs_at_once_write_one_complete_set(tmp_path: Path):
    target = str(tmp_path / "sample")
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(ensure_sample_data, [target, target], [40, 40], [0, 0], [48, 48]))
    assert sample_set_problem(target, 40, 0, 48) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample", "sample.json", "sample.lock"]
    assert sorted(p.name for p in Path(target).iterdir()) == ["images", "masks"]
