"""The pipeline run's parent in MLflow: experiment kind, parent name, preprocess nested under it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def _preprocess_run(data_dir: str, output_dir: str) -> str:
    """A finished preprocess run as the step records one: standalone, its outputs as params."""
    from components.common.tracking.runs import step_run

    with step_run("preprocess", "segpipe", None) as run:
        import mlflow

        mlflow.log_params({"data_dir": data_dir, "output_dir": output_dir})
        mlflow.log_metrics({"inputs": 24, "rejected": 1})
    return run.info.run_id


def _dataset(tmp_path: Path, name: str, preprocess_run_id: str, data_dir: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    lineage = {"preprocess_run_id": preprocess_run_id, "data_dir": data_dir}
    (folder / "lineage.json").write_text(json.dumps(lineage))
    return str(folder)


def _step(step: str, pipeline_run_id: str, dataset_dir: str | None) -> str:
    from components.common.tracking.runs import step_run

    with step_run(step, "segpipe", pipeline_run_id, dataset_dir=dataset_dir) as run:
        pass
    return run.info.run_id


def test_experiment_is_marked_as_model_training_with_segpipes_runs_view(mlflow_store):
    from mlflow.tracking import MlflowClient

    from components.common.tracking.runs import prepare_experiment, runs_link

    client = MlflowClient(mlflow_store)
    experiment_id = prepare_experiment(client, "fresh")
    tags = client.get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(tags["mlflow.sharedViewState.segpipe"])
    assert "metrics.`mean_iou`" in view["selectedColumns"]
    link = runs_link("http://127.0.0.1:5000", experiment_id)
    assert link.endswith("/runs?viewStateShareKey=segpipe&workflowType=machine_learning")
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "finetuning")
    prepare_experiment(client, "fresh")  # a kind chosen by hand is kept
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "finetuning"


def test_a_version_link_opens_in_model_training_mode_with_the_name_escaped():
    from components.common.tracking.runs import model_version_link

    link = model_version_link("http://127.0.0.1:5000", "roads v2/eu", "3")
    assert link == (
        "http://127.0.0.1:5000/#/models/roads%20v2%2Feu/versions/3?workflowType=machine_learning"
    )


def test_preprocess_is_nested_under_the_parent_named_by_data_set_and_time(mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    preprocess_id = _preprocess_run("/data/camvid", "/out/p1/preprocess/dataset")
    dataset = _dataset(tmp_path, "d1", preprocess_id, "/data/camvid")
    train_id = _step("train", "p1", dataset)
    evaluate_id = _step("evaluate", "p1", dataset)

    parent_id = client.get_run(train_id).data.tags["mlflow.parentRunId"]
    parent = client.get_run(parent_id)
    assert re.fullmatch(r"camvid \d\d-\d\d \d\d:\d\d", parent.info.run_name)  # month-day time
    assert parent.info.start_time == client.get_run(preprocess_id).info.start_time
    nested = client.get_run(preprocess_id).data.tags
    assert nested["mlflow.parentRunId"] == parent_id
    assert nested["segpipe.pipeline_run_id"] == "p1"
    assert client.get_run(evaluate_id).data.tags["mlflow.parentRunId"] == parent_id


def test_a_cached_preprocess_output_gets_a_pointer_run_in_the_second_pipeline_run(
    mlflow_store, tmp_path
):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    preprocess_id = _preprocess_run("/data/sample", "/out/p1/preprocess/dataset")
    dataset = _dataset(tmp_path, "d1", preprocess_id, "/data/sample")
    first_parent = client.get_run(_step("train", "p1", dataset)).data.tags["mlflow.parentRunId"]
    # the KFP cache hands the same data set to a second pipeline run
    second_parent = client.get_run(_step("train", "p2", dataset)).data.tags["mlflow.parentRunId"]

    assert client.get_run(preprocess_id).data.tags["mlflow.parentRunId"] == first_parent
    (pointer,) = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        "tags.`segpipe.pipeline_run_id` = 'p2' and tags.`segpipe.step` = 'preprocess'",
    )
    assert pointer.data.tags["mlflow.parentRunId"] == second_parent
    assert pointer.data.tags["segpipe.reused_run_id"] == preprocess_id
    assert pointer.data.metrics["inputs"] == 24
    assert pointer.data.params["data_dir"] == "/data/sample"
    assert pointer.info.status == "FINISHED"


def test_a_later_step_reopens_the_parent_while_it_runs(mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    from components.common.tracking.runs import step_run

    client = MlflowClient(mlflow_store)
    dataset = _dataset(tmp_path, "d1", _preprocess_run("/d/x", "/o"), "/d/x")
    parent_id = client.get_run(_step("train", "p1", dataset)).data.tags["mlflow.parentRunId"]
    assert client.get_run(parent_id).info.status == "FINISHED"
    with step_run("evaluate", "segpipe", "p1", dataset_dir=dataset):
        assert client.get_run(parent_id).info.status == "RUNNING"
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_a_failed_preprocess_is_found_by_its_output_folder(mlflow_store):
    from mlflow.tracking import MlflowClient

    from components.common.tracking.pipeline_runs import find_unnested_preprocess

    client = MlflowClient(mlflow_store)
    _preprocess_run("/d", "/root/segpipe-2026-01-01-00-00-00-000001/preprocess/dataset")
    wanted = _preprocess_run("/d", "/root/segpipe-2026-01-02-00-00-00-000002/preprocess/dataset")
    experiment_id = client.get_experiment_by_name("segpipe").experiment_id
    found = find_unnested_preprocess(
        client, experiment_id, ["1234", "segpipe-2026-01-02-00-00-00-000002"]
    )
    assert found.info.run_id == wanted
    assert find_unnested_preprocess(client, experiment_id, ["segpipe-2027"]) is None


@pytest.mark.parametrize("name", ["sample", "sample/"])
def test_run_title_names_the_data_folder(name):
    from components.common.tracking.pipeline_runs import run_title

    assert re.fullmatch(r"sample \d\d-\d\d \d\d:\d\d", run_title(f"/x/{name}", 0))
