"""The finish step: the pipeline run's headline on its parent run, and no step left RUNNING."""

from __future__ import annotations

import pytest

from components.common import verdict


def _step(step: str, pipeline_run_id: str, fail: str = "", **record) -> str:
    """A step run as `step_run` records one; `fail` raises that message inside it."""
    import mlflow

    from components.common.tracking.runs import step_run

    try:
        with step_run(step, "segpipe", pipeline_run_id) as run:
            if record.get("metrics"):
                mlflow.log_metrics(record["metrics"])
            if record.get("tags"):
                mlflow.set_tags(record["tags"])
            if fail:
                raise ValueError(fail)
    except ValueError:
        pass
    return run.info.run_id


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _evaluation_tags(passed: bool) -> dict[str, str]:
    return {
        verdict.PASSED_TAG: str(passed).lower(),
        verdict.REASON_TAG: "mean IoU 0.8100 meets the minimum 0.5000",
        verdict.MODEL_NAME_TAG: "segpipe-unet",
        verdict.ALIAS_TAG: "champion",
    }


def test_a_finished_run_carries_its_headline_on_the_parent(mlflow_store):
    from components.finish.closer import close_pipeline_run

    client = _client(mlflow_store)
    train = _step("train", "p1")
    scores = {"mean_iou": 0.81004, "iou/road": 0.9, "iou/car": 0.72, "champion/mean_iou": 0.7}
    _step("evaluate", "p1", metrics=scores, tags=_evaluation_tags(True))
    _step("publish", "p1", tags={"registered_version": "3"})

    headline = close_pipeline_run("segpipe", "p1", "SUCCEEDED", data_dir="/data/camvid")

    parent = client.get_run(headline.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics == {"mean_iou": 0.81, "iou/road": 0.9, "iou/car": 0.72}
    assert parent.data.tags["gate.passed"] == "true"
    assert parent.data.tags["registered_version"] == "3"
    assert parent.data.tags["registered_model"] == "segpipe-unet"
    assert parent.data.tags["segpipe.train_run_id"] == train
    assert parent.data.tags["kfp.run_id"] == "p1"
    note = parent.data.tags["mlflow.note.content"]
    assert "**mean IoU 0.8100**" in note
    assert "Published **segpipe-unet version 3** as `champion`" in note
    assert (headline.passed, headline.registered_version) == (True, "3")


def test_a_run_that_ended_after_the_snapshot_says_unchanged_nothing_to_do(mlflow_store):
    from components.common.tracking.lineage import DATA_CHANGES_TAG, OUTCOME_TAG, SKIPPED_TAG
    from components.finish.closer import close_pipeline_run

    client = _client(mlflow_store)
    said = "Unchanged since segpipe-unet version 2: nothing to do."
    _step("snapshot", "p9", tags={SKIPPED_TAG: "true", DATA_CHANGES_TAG: said})

    headline = close_pipeline_run("segpipe", "p9", "SUCCEEDED", data_dir="/data/camvid")

    assert headline.outcome == "unchanged, nothing to do"
    assert (headline.passed, headline.train_run_id, headline.registered_version) == (
        False,
        "",
        "",
    )
    parent = client.get_run(headline.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[OUTCOME_TAG] == "unchanged, nothing to do"
    assert parent.data.tags[DATA_CHANGES_TAG] == said
    assert parent.data.tags["gate.reason"] == "unchanged, nothing to do"
    assert "gate.passed" not in parent.data.tags  # no gate ran: the runs table shows no verdict
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(f"**Unchanged, nothing to do**\n\n{said}\n\nNo new version")
    assert "Gate" not in note and "not evaluated" not in note

    _step("snapshot", "p10", tags={SKIPPED_TAG: "false", DATA_CHANGES_TAG: "10 added"})
    _step("evaluate", "p10", metrics={"mean_iou": 0.8}, tags=_evaluation_tags(False))
    changed = close_pipeline_run("segpipe", "p10", "SUCCEEDED")
    assert changed.outcome == "changed"
    assert (
        "Data: 10 added" in client.get_run(changed.parent_run_id).data.tags["mlflow.note.content"]
    )


def test_runs_left_running_are_marked_failed_and_the_failure_is_named(mlflow_store):
    from components.finish.closer import close_pipeline_run

    client = _client(mlflow_store)
    _step("train", "p2", fail="the train split has 0 examples")
    # a train attempt killed (or failed while the server was down) stays RUNNING
    parent_id = client.get_run(_step("train", "p2")).data.tags["mlflow.parentRunId"]
    experiment_id = client.get_experiment_by_name("segpipe").experiment_id
    stuck = client.create_run(
        experiment_id,
        tags={
            "mlflow.parentRunId": parent_id,
            "segpipe.pipeline_run_id": "p2",
            "segpipe.step": "train",
        },
    ).info.run_id

    headline = close_pipeline_run("segpipe", "p2", "FAILED")

    assert client.get_run(stuck).info.status == "FAILED"
    assert client.get_run(stuck).data.tags["segpipe.closed_by_finish"] == "true"
    assert headline.closed_runs == [stuck]
    assert headline.failed_steps == {"train": "ValueError: the train split has 0 examples"}
    parent = client.get_run(parent_id)
    assert "gate.passed" not in parent.data.tags
    assert parent.info.status == "FAILED"
    assert (
        "**train failed**: ValueError: the train split has 0 examples"
        in parent.data.tags["mlflow.note.content"]
    )
    assert not client.search_runs([experiment_id], "attributes.status = 'RUNNING'")


def test_a_failed_preprocess_gets_a_parent_and_is_nested_under_it(mlflow_store):
    import mlflow

    from components.common.tracking.runs import step_run
    from components.finish.closer import close_pipeline_run

    client = _client(mlflow_store)
    job = "segpipe-2026-11-30-10-00-00-123456"
    with pytest.raises(RuntimeError), step_run("preprocess", "segpipe", None) as run:
        mlflow.log_params({"output_dir": f"/root/{job}/preprocess/dataset"})
        raise RuntimeError("12 of 24 inputs rejected, more than max_reject_fraction")

    headline = close_pipeline_run(
        "segpipe", "7734129", "FAILED", data_dir="/data/sample", kfp_run_name=job
    )

    parent = client.get_run(headline.parent_run_id)
    assert parent.info.run_name.startswith("sample ")
    assert parent.info.status == "FAILED"
    assert client.get_run(run.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "preprocess" in headline.failed_steps
    assert "Gate FAILED: not evaluated" in parent.data.tags["mlflow.note.content"]


def test_finish_cli_closes_a_run(mlflow_store, capsys):
    from components.finish.__main__ import main

    _step("evaluate", "p3", metrics={"mean_iou": 0.5}, tags=_evaluation_tags(False))
    assert main(["--pipeline-run-id", "p3", "--state", "SUCCEEDED"]) == 0
    out = capsys.readouterr().out
    assert ": FINISHED" in out
    assert "Gate FAILED" in out and "Nothing published" in out


def test_a_failed_step_is_ended_even_when_its_error_cannot_be_recorded(mlflow_store, monkeypatch):
    """A refused `segpipe.error` tag must not leave the step's run active and RUNNING."""
    import mlflow

    from components.common.tracking.runs import step_run

    def refuse(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("tag refused")

    monkeypatch.setattr(mlflow, "set_tag", refuse)
    with pytest.raises(ValueError), step_run("train", "segpipe", "p4") as run:
        raise ValueError("the train split has 0 examples")

    assert mlflow.active_run() is None
    assert _client(mlflow_store).get_run(run.info.run_id).info.status == "FAILED"


def test_a_refused_publish_and_an_unverified_lineage_are_said_on_the_parent(mlflow_store):
    from components.common.tracking.lineage import LINEAGE_UNVERIFIED_TAG, SKIPPED_TAG
    from components.finish.closer import close_pipeline_run

    client = _client(mlflow_store)
    warning = "segpipe-unet version 2's lineage cannot be verified: edited; retraining"
    _step("snapshot", "p20", tags={SKIPPED_TAG: "false", LINEAGE_UNVERIFIED_TAG: warning})
    _step("evaluate", "p20", metrics={"mean_iou": 0.8}, tags=_evaluation_tags(True))
    refusal = "refusing to publish: segpipe-unet@champion is version 3 now"
    _step("publish", "p20", fail=refusal, tags={verdict.PUBLISH_REFUSED_TAG: refusal})

    headline = close_pipeline_run("segpipe", "p20", "FAILED")

    parent = client.get_run(headline.parent_run_id)
    assert parent.data.tags[verdict.PUBLISH_REFUSED_TAG] == refusal
    assert parent.data.tags[LINEAGE_UNVERIFIED_TAG] == warning
    note = parent.data.tags["mlflow.note.content"]
    assert f"**Warning**: {warning}" in note
    assert f"**Refused, not published**: {refusal}" in note
    assert "registered_version" not in parent.data.tags
