"""publish fails closed: only a passed evaluation of this exact model, against the champion as
it still is, promotes anything (real SQLite MLflow store; stand-in train and evaluate runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from stand_ins import record_evaluation, stand_in_train_run

from components.common.data.digest import folder_sha256
from components.common.settings.config import RunContext


@pytest.fixture
def store(mlflow_store: str, tmp_path: Path):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("segpipe")
    return MlflowClient(mlflow_store)


def _model(tmp_path: Path, name: str, content: bytes) -> Path:
    folder = tmp_path / name
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(content)
    (folder / "variables" / "variables.index").write_bytes(b"index " + content)
    return folder


def _publish(tmp_path: Path, model_dir: Path, run_id: str, pipeline_run_id: str | None = None):
    from components.publish.publisher import publish

    run = RunContext("segpipe", pipeline_run_id or "", model_name="m")
    return publish(str(model_dir), run_id, run, str(tmp_path / "exports"))


def _nothing_published(store, tmp_path: Path) -> bool:
    return not store.search_model_versions("name = 'm'") and not (tmp_path / "exports").exists()


def test_the_digest_covers_names_and_bytes_not_where_the_folder_lies(tmp_path: Path):
    model = _model(tmp_path, "a", b"graph")
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert folder_sha256(str(model)) == folder_sha256(str(copy))
    (copy / "saved_model.pb").write_bytes(b"graph!")
    assert folder_sha256(str(model)) != folder_sha256(str(copy))
    (copy / "saved_model.pb").write_bytes(b"graph")
    (copy / "variables" / "variables.index").rename(copy / "variables" / "renamed.index")
    assert folder_sha256(str(model)) != folder_sha256(str(copy))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        folder_sha256(str(tmp_path / "nope"))


def test_a_model_nobody_evaluated_is_refused(store, tmp_path: Path):
    from components.publish.publisher import PublishRefused

    model = _model(tmp_path, "model", b"graph")
    run_id = stand_in_train_run(model)
    with pytest.raises(PublishRefused, match="no evaluation of this model .* against m"):
        _publish(tmp_path, model, run_id)  # as the CLI does: no pipeline run id
    with pytest.raises(PublishRefused, match="no evaluation in pipeline run p-unknown"):
        _publish(tmp_path, model, run_id, "p-unknown")
    assert _nothing_published(store, tmp_path)


def test_the_latest_evaluation_decides_and_a_failed_one_is_refused(store, tmp_path: Path):
    from components.common import verdict
    from components.publish.publisher import PublishRefused

    model = _model(tmp_path, "model", b"graph")
    run_id = stand_in_train_run(model)
    record_evaluation(model, "cli-1", "none")  # passed once...
    failed = {verdict.PASSED_TAG: "false", verdict.REASON_TAG: "mean IoU 0.1 is below 0.5"}
    record_evaluation(model, "cli-2", "none", **failed)  # ...then failed
    with pytest.raises(PublishRefused, match="the gate failed .*: mean IoU 0.1 is below 0.5"):
        _publish(tmp_path, model, run_id)
    assert _nothing_published(store, tmp_path)


def test_an_evaluation_of_other_bytes_is_refused_naming_both_digests(store, tmp_path: Path):
    from components.publish.publisher import PublishRefused

    evaluated = _model(tmp_path, "evaluated", b"good graph")
    swapped = _model(tmp_path, "swapped", b"other graph")
    record_evaluation(evaluated, "p1", "none")
    run_id = stand_in_train_run(swapped)
    with pytest.raises(PublishRefused) as refusal:
        _publish(tmp_path, swapped, run_id, "p1")
    message = str(refusal.value)
    assert folder_sha256(str(evaluated)) in message and folder_sha256(str(swapped)) in message
    assert "not the model that passed" in message
    assert _nothing_published(store, tmp_path)


def test_a_model_folder_that_is_not_the_train_runs_model_is_refused(store, tmp_path: Path):
    from components.publish.publisher import PublishRefused

    logged = _model(tmp_path, "logged", b"trained graph")
    other = _model(tmp_path, "other", b"tampered graph")
    run_id = stand_in_train_run(logged)
    record_evaluation(other, "p1", "none")  # the folder passed, but the registry serves `logged`
    with pytest.raises(PublishRefused, match=f"train run {run_id} logged a model with sha256"):
        _publish(tmp_path, other, run_id)
    assert _nothing_published(store, tmp_path)


def test_an_evaluation_of_another_train_run_or_model_name_is_refused(store, tmp_path: Path):
    from components.common import verdict
    from components.publish.publisher import PublishRefused

    model = _model(tmp_path, "model", b"graph")
    run_id = stand_in_train_run(model)
    record_evaluation(model, "p1", "none", **{verdict.TRAIN_RUN_TAG: "another-run"})
    with pytest.raises(PublishRefused, match="judged the model of train run another-run"):
        _publish(tmp_path, model, run_id, "p1")
    record_evaluation(model, "p2", "none", **{verdict.ALIAS_TAG: "staging"})
    with pytest.raises(PublishRefused, match="compared the model with m@staging, not m@champion"):
        _publish(tmp_path, model, run_id, "p2")
    assert _nothing_published(store, tmp_path)


def test_an_unfinished_evaluation_is_refused(store, tmp_path: Path):
    import mlflow

    from components.common.tracking.runs import PIPELINE_RUN_TAG, STEP_TAG
    from components.publish.publisher import PublishRefused

    model = _model(tmp_path, "model", b"graph")
    run_id = stand_in_train_run(model)
    tags = {PIPELINE_RUN_TAG: "p1", STEP_TAG: "evaluate"}
    mlflow.start_run(tags=tags)  # crashed before it recorded a decision
    mlflow.end_run("FAILED")
    with pytest.raises(PublishRefused, match="did not finish"):
        _publish(tmp_path, model, run_id, "p1")


@pytest.mark.parametrize("first", ["strong", "weak"])
def test_two_candidates_judged_against_one_champion_cannot_both_promote(
    store, tmp_path: Path, first: str
):
    from components.publish.publisher import PublishRefused

    champion = _model(tmp_path, "champion", b"v1")
    record_evaluation(champion, "p0", "none")
    assert _publish(tmp_path, champion, stand_in_train_run(champion), "p0").version == "1"

    models = {name: _model(tmp_path, name, name.encode()) for name in ("strong", "weak")}
    runs = {name: stand_in_train_run(folder) for name, folder in models.items()}
    for name, folder in models.items():  # both judged against version 1
        record_evaluation(folder, f"p-{name}", "1")
    second = "weak" if first == "strong" else "strong"
    assert _publish(tmp_path, models[first], runs[first], f"p-{first}").version == "2"
    with pytest.raises(PublishRefused) as refusal:
        _publish(tmp_path, models[second], runs[second], f"p-{second}")
    message = str(refusal.value)
    assert "m@champion is version 2 now" in message
    assert "compared the model with version 1" in message and "re-run evaluation" in message
    assert str(store.get_model_version_by_alias("m", "champion").version) == "2"
    assert str(store.get_model_version_by_alias("m", "previous").version) == "1"
    assert len(store.search_model_versions("name = 'm'")) == 2  # refused before registering


def test_a_champion_that_appeared_since_the_evaluation_is_not_replaced(store, tmp_path: Path):
    from components.publish.publisher import PublishRefused

    first, late = _model(tmp_path, "first", b"a"), _model(tmp_path, "late", b"b")
    run_first, run_late = stand_in_train_run(first), stand_in_train_run(late)
    record_evaluation(first, "p1", "none")
    record_evaluation(late, "p2", "none")
    _publish(tmp_path, first, run_first, "p1")
    with pytest.raises(PublishRefused, match="is version 1 now, but .* no version"):
        _publish(tmp_path, late, run_late, "p2")


def test_the_late_check_refuses_when_the_champion_moves_during_the_export(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The alias is read again right before it moves: a rival publish that moved it meanwhile
    (simulated from the export, as another process would) makes this one refuse, and the
    loser leaves no servable export and a card and run that say it was refused."""
    from components.publish import publisher
    from components.publish.publisher import PublishRefused

    champion = _model(tmp_path, "champion", b"v1")
    record_evaluation(champion, "p0", "none")
    _publish(tmp_path, champion, stand_in_train_run(champion), "p0")
    model, rival = _model(tmp_path, "model", b"m"), _model(tmp_path, "rival", b"r")
    record_evaluation(model, "p1", "1")
    model_run, rival_run = stand_in_train_run(model), stand_in_train_run(rival)
    real_stage = publisher.stage_version
    staged_at = []

    def stage_while_a_rival_publishes(*args, **kwargs):
        staged = real_stage(*args, **kwargs)
        staged_at.append(staged.staging)
        rival_version = store.create_model_version("m", source=str(rival), run_id=rival_run)
        store.set_registered_model_alias("m", "champion", rival_version.version)
        return staged

    monkeypatch.setattr(publisher, "stage_version", stage_while_a_rival_publishes)
    with pytest.raises(PublishRefused, match="m@champion is version 3 now, but .* version 1"):
        _publish(tmp_path, model, model_run, "p1")
    assert str(store.get_model_version_by_alias("m", "champion").version) == "3"
    refused = store.get_model_version("m", "2")
    assert "version 3 now" in refused.tags["segpipe.publish_refused"]
    # nothing servable: the staged copy is gone, no version folder, no _SUCCESS
    exports = tmp_path / "exports"
    assert staged_at and staged_at[0].startswith(str(exports / ".staging"))
    assert not Path(staged_at[0]).exists()
    assert sorted(p.name for p in (exports / "m").iterdir()) == ["1"]
    assert [p.parent.name for p in exports.rglob("_SUCCESS")] == ["1"]
    # the publish run says refused, and so does its model card
    (run,) = store.search_runs(
        [store.get_experiment_by_name("segpipe").experiment_id],
        "tags.`segpipe.step` = 'publish' and tags.`segpipe.pipeline_run_id` = 'p1'",
    )
    assert "version 3 now" in run.data.tags["publish.refused"]
    assert "registered_version" not in run.data.tags
    card = store.download_artifacts(run.info.run_id, "MODEL_CARD.md", str(tmp_path))
    assert "REFUSED, not published: refusing to publish" in Path(card).read_text()


def test_publishing_the_champion_again_is_idempotent(store, tmp_path: Path):
    model = _model(tmp_path, "model", b"graph")
    run_id = stand_in_train_run(model)
    record_evaluation(model, "p1", "none")
    assert _publish(tmp_path, model, run_id, "p1").version == "1"
    assert _publish(tmp_path, model, run_id, "p1").version == "1"  # a retried task
    assert _publish(tmp_path, model, run_id).version == "1"  # found by its digest
    assert len(store.search_model_versions("name = 'm'")) == 1
