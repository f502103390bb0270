"""evaluate -> publish -> rollback against a real `mlflow server` (SQLite) on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from mlflow_stores import copy_store

from pipelines.local.mlflow_server import MlflowServer, free_port

pytestmark = pytest.mark.slow  # a real MLflow server and trained models

MLFLOW = Path(sys.executable).parent / "mlflow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path):
    """A real tracking server with a SQLite backend and proxied artifacts; yields its URI."""
    root = tmp_path_factory.mktemp("mlflow-server")
    copy_store(mlflow_db_template, root / "db.sqlite")
    store = f"sqlite:///{root / 'db.sqlite'}"
    with MlflowServer(store, root / "server.log", root / "artifacts") as server:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", server.uri)
            yield server.uri


@pytest.fixture(scope="module")
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server)


@pytest.fixture(scope="module")
def trained(client, tiny_shards: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two tiny models trained on the same shards (different seeds), logged to the server."""
    from components.train.__main__ import main

    models = []
    for seed in ("1", "2"):
        model_dir = tmp_path_factory.mktemp(f"model-{seed}") / "export"
        args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--epochs", "1"]
        args += ["--unet-width", "4", "--unet-depth", "2", "--batch-size", "8", "--seed", seed]
        assert main(args) == 0
        experiment = client.get_experiment_by_name("segpipe").experiment_id
        runs = client.search_runs([experiment], "tags.`segpipe.step` = 'train'")
        known = {run_id for _, run_id in models}
        (run,) = [r for r in runs if r.info.run_id not in known]
        models.append((model_dir, run.info.run_id))
    return models


def _evaluate(tiny_shards, model_dir, tmp_path, capsys, *extra):
    from components.evaluate.__main__ import main

    args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--model-name", "tiny"]
    args += ["--report", str(tmp_path / "report.html"), "--per-image", str(tmp_path / "img.pq")]
    capsys.readouterr()  # drop what earlier steps printed
    code = main([*args, *extra])
    return code, json.loads(capsys.readouterr().out)


def _publish(model_dir, run_id, tmp_path, pipeline_run_id, tiny_shards, model_name="tiny"):
    """publish's exit code; without `pipeline_run_id` it finds the evaluation by digest."""
    from components.publish.__main__ import main

    args = ["--model-dir", str(model_dir), "--train-run-id", run_id, "--model-name", model_name]
    args += ["--export-root", str(tmp_path / "exports"), "--dataset", str(tiny_shards)]
    if pipeline_run_id:
        args += ["--pipeline-run-id", pipeline_run_id]
    return main(args)


def test_evaluate_publish_champion_and_rollback(client, trained, tiny_shards, tmp_path, capsys):
    import hashlib

    import pyarrow.parquet as pq

    (first_dir, first_run), (second_dir, second_run) = trained

    # 1. no champion yet: absolute threshold only; report and per-image table written + logged
    code, result = _evaluate(
        tiny_shards, first_dir, tmp_path, capsys, "--min-mean-iou", "0", "--pipeline-run-id", "p1"
    )
    assert code == 0 and "no champion yet" in result["reason"]
    html = (tmp_path / "report.html").read_text()
    assert "Confusion matrix" in html and "data:image/png;base64," in html
    assert "Worst images" in html and "champion IoU" not in html
    # the legend: every class with its colour, as the panels draw it
    assert html.count('class="swatch"') == 4 and "rgb(" in html
    table = pq.read_table(tmp_path / "img.pq").to_pylist()
    assert (
        len(table)
        == json.loads((tiny_shards / "stats.json").read_text())["splits"]["val"]["examples"]
    )
    assert all(0.0 <= row["mean_iou"] <= 1.0 for row in table)
    evaluation = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        "tags.`segpipe.pipeline_run_id` = 'p1' and tags.`segpipe.step` = 'evaluate'",
    )[0]
    logged = {a.path for a in client.list_artifacts(evaluation.info.run_id, "evaluation")}
    assert logged == {
        "evaluation/report.html",
        "evaluation/per_image_iou.parquet",
        "evaluation/per_image_iou.csv",  # the same table, previewed by the MLflow UI
        "evaluation/drift.json",
    }
    for key in ("mean_class_accuracy", "frequency_weighted_iou", "mean_f1"):
        assert key in evaluation.data.metrics

    # 2. publish: version 1 is champion, tagged, exported with a model card
    assert _publish(first_dir, first_run, tmp_path, "p1", tiny_shards) == 0
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.version == "1"
    stats_sha = hashlib.sha256((tiny_shards / "stats.json").read_bytes()).hexdigest()
    assert version.tags["segpipe.dataset_sha256"] == stats_sha
    assert version.tags["segpipe.pipeline_run_id"] == "p1"
    assert float(version.tags["metrics.mean_iou"]) == pytest.approx(
        result["metrics"]["mean_iou"], abs=1e-6
    )
    # a handful of tags; the per-class scores stay in the runs; a description in words
    assert len(version.tags) <= 12 and not any("class_" in key for key in version.tags)
    assert f"mean_iou {result['metrics']['mean_iou']:.4f}" in version.description
    assert "Gate: " in version.description and "no champion yet" in version.description
    export = tmp_path / "exports" / "tiny" / "1"
    card = (export / "MODEL_CARD.md").read_text()
    assert stats_sha in card and "no champion yet" in card and "mean_iou" in card
    assert (export / "_SUCCESS").exists() and (export / "saved_model.pb").exists()
    assert _publish(first_dir, first_run, tmp_path, "p1", tiny_shards) == 0  # idempotent
    assert len(client.search_model_versions("name = 'tiny'")) == 1

    # 3. the champion is evaluated on the same shards; the same model never drops
    code, same = _evaluate(
        tiny_shards, first_dir, tmp_path, capsys, "--min-mean-iou", "0", "--max-class-drop", "0"
    )
    assert code == 0, same["reason"]
    assert same["metrics"]["champion/mean_iou"] == pytest.approx(same["metrics"]["mean_iou"])
    assert "champion IoU" in (tmp_path / "report.html").read_text()

    # 4. a second model: gate with an allowed drop of 1 always lets it through; publish it
    code, second = _evaluate(
        tiny_shards,
        second_dir,
        tmp_path,
        capsys,
        "--max-drop",
        "1",
        "--min-mean-iou",
        "0",
        "--pipeline-run-id",
        "p2",
    )
    assert code == 0 and second["metrics"]["champion/mean_iou"] == pytest.approx(
        result["metrics"]["mean_iou"]
    )
    assert _publish(second_dir, second_run, tmp_path, "p2", tiny_shards) == 0
    assert client.get_model_version_by_alias("tiny", "champion").version == "2"
    assert client.get_model_version_by_alias("tiny", "previous").version == "1"

    # 5. rollback: champion back to 1, nothing older, so `previous` goes away
    from pipelines.cli.main import main as segpipe

    assert segpipe(["rollback", "--model", "tiny"]) == 0
    assert client.get_model_version_by_alias("tiny", "champion").version == "1"
    assert "previous" not in client.get_registered_model("tiny").aliases
    with pytest.raises(SystemExit, match="nothing to roll back"):
        segpipe(["rollback", "--model", "tiny"])


def test_publish_run_by_hand_refuses_a_failed_gate(client, trained, tiny_shards, tmp_path, capsys):
    """The README's two commands: evaluate (gate FAILED), then publish with a fresh id."""
    model_dir, run_id = trained[1]
    code, failed = _evaluate(tiny_shards, model_dir, tmp_path, capsys, "--min-mean-iou", "1.0")
    assert code == 3 and failed["pipeline_run_id"].startswith("cli-")
    assert _publish(model_dir, run_id, tmp_path, None, tiny_shards) == 3
    assert "the gate failed" in capsys.readouterr().err
    assert _publish(model_dir, run_id, tmp_path, "cli-fresh", tiny_shards) == 3
    assert "no evaluation in pipeline run cli-fresh" in capsys.readouterr().err
    assert not (tmp_path / "exports").exists()

    fresh = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        f"tags.`segpipe.model_sha256` = '{failed['model_sha256']}'"
        " and tags.`segpipe.step` = 'evaluate'",
        order_by=["attributes.start_time DESC"],
    )[0]
    assert fresh.info.run_id == failed["evaluation_run_id"]


def test_publish_refuses_a_model_nobody_evaluated(client, trained, tiny_shards, tmp_path, capsys):
    model_dir, run_id = trained[0]
    assert _publish(model_dir, run_id, tmp_path, None, tiny_shards, "never-evaluated") == 3
    err = capsys.readouterr().err
    assert "no evaluation of this model" in err and "python -m components.evaluate" in err
    assert not client.search_model_versions("name = 'never-evaluated'")


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_runs_judged_against_one_champion_never_leave_the_weaker(
    client, trained, tiny_shards, tmp_path, capsys, order
):
    name = f"cas-{order[0]}{order[1]}"
    first, second = (trained[i] for i in order)
    scores = {}
    for model_dir, run_id in (first, second):  # both against "no champion"
        code, result = _evaluate(
            tiny_shards,
            model_dir,
            tmp_path,
            capsys,
            "--min-mean-iou",
            "0",
            "--model-name",
            name,
            "--train-run-id",
            run_id,
        )
        assert code == 0 and result["champion_version"] is None
        scores[run_id] = result["metrics"]["mean_iou"]
    assert _publish(*first, tmp_path, None, tiny_shards, name) == 0
    assert _publish(*second, tmp_path, None, tiny_shards, name) == 3  # the champion moved
    err = capsys.readouterr().err
    assert f"{name}@champion is version 1 now" in err and "no version" in err
    assert "re-run evaluation" in err
    assert client.get_model_version_by_alias(name, "champion").run_id == first[1]

    # as told: evaluate again, now against the first (max_drop 0), and publish if it passes
    code, again = _evaluate(
        tiny_shards,
        second[0],
        tmp_path,
        capsys,
        "--min-mean-iou",
        "0",
        "--model-name",
        name,
        "--train-run-id",
        second[1],
    )
    assert again["champion_version"] == "1"
    assert _publish(*second, tmp_path, None, tiny_shards, name) == (0 if code == 0 else 3)
    champion = client.get_model_version_by_alias(name, "champion")
    assert scores[champion.run_id] == max(scores.values())  # never the weaker one


def test_the_gate_fails_on_a_class_absent_from_the_eval_split(
    client, trained, tiny_data, tmp_path, capsys
):
    """Shards with a fifth class that no mask holds: it vanishes, and the gate says so."""
    from components.common.settings.config import PreprocessConfig
    from components.evaluate.__main__ import main
    from components.preprocess.pipeline import run_preprocess

    shards = tmp_path / "five-classes"
    config = PreprocessConfig(
        num_classes=5,
        allow_empty_train_classes=True,  # preprocess would stop on the empty class first
        image_height=32,
        image_width=32,
        val_fraction=0.3,
        num_shards=1,
        direct_running_mode="in_memory",
    )
    run_preprocess(str(tiny_data), str(shards), config)
    model_dir, _ = trained[0]
    code, result = _evaluate(shards, model_dir, tmp_path, capsys, "--min-mean-iou", "0")
    assert code == 3
    assert "class class_4 has no ground-truth pixels in the val split" in result["reason"]
    code, result = _evaluate(
        shards,
        model_dir,
        tmp_path,
        capsys,
        "--min-mean-iou",
        "0",
        "--allow-absent-classes",
        "class_4",
    )
    assert code == 0 and "(allowed): class_4" in result["reason"]
    with pytest.raises(ValueError, match="names bus, not classes of this data set"):
        main(
            ["--dataset", str(shards), "--model-dir", str(model_dir)]
            + ["--allow-absent-classes", "bus"]
        )


def _shifted_shards(tiny_data: Path, tmp_path: Path) -> Path:
    """tiny_data with every shape in the first half of the masks relabelled as class 1."""
    import shutil

    import numpy as np
    from PIL import Image

    from components.common.settings.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess

    data = tmp_path / "shifted-data"
    shutil.copytree(tiny_data, data)
    masks = sorted((data / "masks").iterdir())
    for mask in masks[: len(masks) // 2]:
        values = np.asarray(Image.open(mask))
        Image.fromarray(np.where(values > 0, 1, 0).astype(np.uint8)).save(mask)
    shards = tmp_path / "shifted"
    config = PreprocessConfig(  # as tiny_shards, so only the labels differ
        image_height=32,
        image_width=32,
        val_fraction=0.3,
        num_shards=2,
        direct_running_mode="in_memory",
    )
    run_preprocess(str(data), str(shards), config)
    return shards


def test_evaluate_measures_drift_from_the_champions_training_data_and_max_class_shift_stops_it(
    client, trained, tiny_data, tiny_shards, tmp_path, capsys
):
    (first_dir, first_run), (second_dir, _) = trained
    pass_anything = ("--min-mean-iou", "0", "--max-drop", "1", "--model-name", "drifty")
    code, result = _evaluate(
        tiny_shards, first_dir, tmp_path, capsys, *pass_anything, "--pipeline-run-id", "d1"
    )
    assert code == 0 and "drift/class_shift" not in result["metrics"]  # no champion yet
    assert _publish(first_dir, first_run, tmp_path, "d1", tiny_shards, "drifty") == 0

    # the champion's own data: no drift, and a bound of 0 passes
    code, same = _evaluate(
        tiny_shards, second_dir, tmp_path, capsys, *pass_anything, "--max-class-shift", "0"
    )
    assert code == 0 and same["metrics"]["drift/class_shift"] == pytest.approx(0, abs=1e-12)
    assert "largest class share shift 0.0000" in same["reason"]

    shifted = _shifted_shards(tiny_data, tmp_path)
    code, moved = _evaluate(
        shifted, second_dir, tmp_path, capsys, *pass_anything, "--max-class-shift", "0.03"
    )
    metrics = moved["metrics"]
    assert code == 3 and "the label distribution moved: class class_1" in moved["reason"]
    assert metrics["drift/class_shift"] > 0.03
    assert metrics["drift/class_share/class_1"] > metrics["drift/champion_class_share/class_1"]
    report = (tmp_path / "report.html").read_text()
    assert "Data against the champion's training data" in report
    assert "Largest class share shift: <b>" in report
    code, allowed = _evaluate(shifted, second_dir, tmp_path, capsys, *pass_anything)
    assert code == 0  # max_class_shift off: reported, not judged
    assert allowed["metrics"]["drift/class_shift"] == pytest.approx(metrics["drift/class_shift"])


def test_max_class_shift_fails_closed_when_the_champion_recorded_no_training_statistics(
    client, trained, tiny_shards, tmp_path, capsys
):
    model_dir, _ = trained[0]
    experiment = client.get_experiment_by_name("segpipe").experiment_id
    bare = client.create_run(experiment)  # the model, but no dataset/stats.json
    client.log_artifacts(bare.info.run_id, str(model_dir), "model")
    client.create_registered_model("no-stats")
    source = f"{bare.info.artifact_uri}/model"
    version = client.create_model_version("no-stats", source, run_id=bare.info.run_id)
    client.set_registered_model_alias("no-stats", "champion", version.version)
    args = ("--min-mean-iou", "0", "--max-drop", "1", "--model-name", "no-stats")
    code, result = _evaluate(tiny_shards, model_dir, tmp_path, capsys, *args)
    assert code == 0  # max_class_shift off: nothing to check
    code, result = _evaluate(
        tiny_shards, model_dir, tmp_path, capsys, *args, "--max-class-shift", "1"
    )
    assert code == 3
    assert (
        "max_class_shift=1.0 is set, but the shift from the champion's training data"
        in (result["reason"])
    )
    assert f"cannot be read from run {bare.info.run_id}" in result["reason"]


@pytest.mark.parametrize("step", ["evaluate", "publish"])
def test_unreachable_tracking_server_fails_fast_naming_the_uri(
    step, tiny_shards, tmp_path, monkeypatch
):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    if step == "evaluate":
        from components.evaluate.__main__ import main

        args = ["--dataset", str(tiny_shards), "--model-dir", str(tmp_path / "no-model")]
    else:
        from components.publish.__main__ import main

        args = ["--model-dir", str(tmp_path / "no-model"), "--train-run-id", "x"]
        args += ["--export-root", str(tmp_path / "exports")]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=f"MLflow tracking server at {uri} is unreachable"):
        main(args)
    assert time.monotonic() - start < 15
    assert not (tmp_path / "exports").exists()


def test_predict_from_a_folder_and_from_the_registry(
    client, trained, tiny_data, tiny_shards, tmp_path, capsys
):
    import numpy as np
    from PIL import Image

    from pipelines.cli.main import main as segpipe

    model_dir, run_id = trained[0]
    images = sorted((tiny_data / "images").iterdir())
    local = tmp_path / "local"
    assert (
        segpipe(
            ["predict", "--model", str(model_dir), "--input", str(tiny_data / "images")]
            + ["--output", str(local)]
        )
        == 0
    )
    assert f"[{'#' * 24}] {len(images)}/{len(images)} images" in capsys.readouterr().out
    for image in images:
        mask = np.asarray(Image.open(local / f"{image.stem}_mask.png"))
        overlay = Image.open(local / f"{image.stem}_overlay.png")
        assert mask.shape == Image.open(image).size[::-1] and mask.max() < 4
        assert overlay.mode == "RGB" and overlay.size == Image.open(image).size

    from components.publish.__main__ import main as publish

    code, _ = _evaluate(
        tiny_shards, model_dir, tmp_path, capsys, "--model-name", "tiny-pred", "--min-mean-iou", "0"
    )
    assert code == 0  # publish promotes only an evaluated model
    args = ["--model-dir", str(model_dir), "--train-run-id", run_id, "--model-name", "tiny-pred"]
    assert publish([*args, "--export-root", str(tmp_path / "exports")]) == 0
    registry = tmp_path / "registry"
    pattern = str(tiny_data / "images" / f"{images[0].stem[:-1]}*")  # a glob: some of them
    reference = "models:/tiny-pred@champion"
    assert (
        segpipe(["predict", "--model", reference, "--input", pattern, "--output", str(registry)])
        == 0
    )
    masks = sorted(registry.glob("*_mask.png"))
    assert masks and len(masks) < len(images)
    for mask in masks:  # the same model, downloaded from the server: the same masks
        np.testing.assert_array_equal(
            np.asarray(Image.open(mask)), np.asarray(Image.open(local / mask.name))
        )
    capsys.readouterr()
    nothing = ["--input", str(tmp_path / "nothing-*.png"), "--output", str(registry)]
    assert segpipe(["predict", "--model", reference, *nothing]) == 1
    assert "segpipe predict: no image files" in capsys.readouterr().err


def test_a_two_run_race_ends_with_one_champion_one_export_and_a_visibly_refused_loser(
    client, trained, tiny_shards, tmp_path, capsys
):
    """Two pipeline runs judged their models against the same (empty) champion; the first to
    publish wins. The loser is refused in its terminal, its MLflow runs, the export folder
    and its model card."""
    from components.finish.closer import close_pipeline_run

    (first_dir, first_run), (second_dir, second_run) = trained
    for model_dir, run in (("a", first_dir), ("b", second_dir)):
        code, _ = _evaluate(
            tiny_shards, run, tmp_path, capsys, "--min-mean-iou", "0",
            "--pipeline-run-id", f"race-{model_dir}", "--model-name", "race",
        )  # fmt: skip
        assert code == 0
    assert _publish(first_dir, first_run, tmp_path, "race-a", tiny_shards, "race") == 0
    capsys.readouterr()
    assert _publish(second_dir, second_run, tmp_path, "race-b", tiny_shards, "race") == 3
    said = capsys.readouterr().err
    assert "refusing to publish: race@champion is version 1 now" in said

    assert client.get_model_version_by_alias("race", "champion").version == "1"
    exports = tmp_path / "exports"
    assert sorted(p.name for p in (exports / "race").iterdir()) == ["1"]
    assert [p.parent.name for p in exports.rglob("_SUCCESS")] == ["1"]
    assert not list((exports / ".staging").iterdir())
    experiment = client.get_experiment_by_name("segpipe").experiment_id
    (loser,) = client.search_runs(
        [experiment],
        "tags.`segpipe.pipeline_run_id` = 'race-b' and tags.`segpipe.step` = 'publish'",
    )
    assert loser.info.status == "FAILED"
    assert "version 1 now" in loser.data.tags["publish.refused"]
    card = client.download_artifacts(loser.info.run_id, "MODEL_CARD.md", str(tmp_path))
    assert "REFUSED, not published" in Path(card).read_text()
    headline = close_pipeline_run("segpipe", "race-b", "FAILED")
    note = client.get_run(headline.parent_run_id).data.tags["mlflow.note.content"]
    assert "**Refused, not published**: refusing to publish" in note
