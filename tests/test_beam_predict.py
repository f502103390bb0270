"""`segpipe predict --runner ...`: batch inference as a Beam job (RunInference) writes the
masks and overlays the local predict writes, on the DirectRunner and on the portable runner
with its SDK worker in an external worker pool."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from beam_portable import job_service, portable_options, process_worker_pool
from PIL import Image

from pipelines.cli.main import main as segpipe

pytestmark = pytest.mark.slow  # a trained model (local_runs), TensorFlow in Beam workers


@pytest.fixture(scope="module")
def model_and_inputs(local_runs, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The first local run's export, and the sample images with two that cannot be segmented
    (not an image; two inputs of one stem in another format)."""
    workdir, _, _ = local_runs
    inputs = tmp_path_factory.mktemp("beam-predict") / "inputs"
    shutil.copytree(tiny_data / "images", inputs / "sub")
    (inputs / "broken.png").write_bytes(b"not an image")
    first = sorted((inputs / "sub").iterdir())[0]
    Image.open(first).convert("RGB").save(first.with_suffix(".jpg"), quality=95)
    return workdir / "exports" / "segpipe-unet" / "1", inputs


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in folder.rglob("*.png")}


def _predict(model: Path, inputs: Path, output: Path, *flags: str) -> int:
    args = ["predict", "--model", str(model), "--input", str(inputs), "--output", str(output)]
    return segpipe([*args, *flags])


def test_a_beam_job_writes_what_the_local_predict_writes(model_and_inputs, tmp_path, capsys):
    model, inputs = model_and_inputs
    assert _predict(model, inputs, tmp_path / "local") == 1  # one input skipped
    assert _predict(model, inputs, tmp_path / "beam", "--runner", "DirectRunner") == 1
    out, err = capsys.readouterr()
    assert "skipped" in err and "broken.png" in err
    local, beam = _outputs(tmp_path / "local"), _outputs(tmp_path / "beam")
    assert len(local) == 2 * 25 and "sub/" + sorted(local)[0].split("/")[1] in local
    assert local.keys() == beam.keys()
    for name, mask in local.items():
        assert np.array_equal(mask, beam[name]), name
    (skipped,) = [json.loads(line) for line in (tmp_path / "beam" / "skipped.jsonl").open()]
    assert skipped["source"].endswith("broken.png") and skipped["reason"]
    written = (tmp_path / "beam" / "written.jsonl").read_text().splitlines()
    assert len(written) == 25
    # without TTA (this export has none): the workers use its one-pass signature, same masks
    assert _predict(model, inputs, tmp_path / "once", "--runner", "DirectRunner", "--no-tta") == 1
    once = _outputs(tmp_path / "once")
    assert once.keys() == local.keys()
    assert all(np.array_equal(mask, once[name]) for name, mask in local.items())


def test_the_same_job_on_the_portable_runner_with_an_external_worker_pool(
    model_and_inputs, tmp_path
):
    model, inputs = model_and_inputs
    assert _predict(model, inputs, tmp_path / "direct", "--runner", "DirectRunner") == 1
    with (
        job_service(tmp_path) as job_endpoint,
        process_worker_pool(tmp_path / "pool.log") as pool_endpoint,
    ):
        options = portable_options(job_endpoint, pool_endpoint)
        status = _predict(
            model, inputs, tmp_path / "portable", "--runner", "PortableRunner",
            "--beam-options", options,
        )  # fmt: skip
    assert status == 1
    direct, portable = _outputs(tmp_path / "direct"), _outputs(tmp_path / "portable")
    assert direct.keys() == portable.keys() and len(direct) == 50
    assert all(np.array_equal(direct[name], portable[name]) for name in direct)
    assert "Starting worker" in (tmp_path / "pool.log").read_text()


def test_a_registry_reference_is_refused_off_this_machine(tmp_path, capsys):
    status = _predict(
        Path("models:/segpipe-unet@champion"), tmp_path, tmp_path / "out",
        "--runner", "PortableRunner",
    )  # fmt: skip
    assert status == 1
    assert "give the exported SavedModel folder" in capsys.readouterr().err
