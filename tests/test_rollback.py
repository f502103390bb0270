"""Alias history: publish moves champion and previous; rollback walks them back."""

from __future__ import annotations

from pathlib import Path

import pytest
from stand_ins import record_evaluation, stand_in_train_run

from components.common.settings.config import RunContext


@pytest.fixture
def published(mlflow_store, tmp_path: Path):
    """Three versions published in turn from stand-in train and evaluate runs."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.publish.publisher import publish

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "saved_model.pb").write_bytes(b"graph")
    exports = str(tmp_path / "exports")
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("segpipe")
    for index, champion in enumerate(("none", "1", "2")):
        run_id = stand_in_train_run(model_dir)
        record_evaluation(model_dir, f"p{index}", champion)
        run = RunContext("segpipe", f"p{index}", model_name="m")
        assert publish(str(model_dir), run_id, run, exports).version
    return MlflowClient(mlflow_store)


def _aliases(client) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model("m").aliases.items()}


def test_publish_moves_champion_and_keeps_previous(published):
    assert _aliases(published) == {"champion": "3", "previous": "2"}
    assert published.get_model_version("m", "3").tags["segpipe.replaced_version"] == "2"


def test_rollback_walks_back_then_runs_out(published, capsys):
    from pipelines.cli.main import main

    assert main(["rollback", "--model", "m"]) == 0
    assert _aliases(published) == {"champion": "2", "previous": "1"}
    assert "version 3 -> version 2" in capsys.readouterr().out
    assert published.get_model_version("m", "3").tags["segpipe.rolled_back"] == "true"
    assert main(["rollback", "--model", "m"]) == 0
    assert _aliases(published) == {"champion": "1"}  # version 1 replaced nothing
    with pytest.raises(SystemExit, match="no 'previous' version"):
        main(["rollback", "--model", "m"])
    assert _aliases(published) == {"champion": "1"}


def test_rollback_of_an_unknown_model_is_a_clear_error(mlflow_store):
    from pipelines.cli.main import main

    with pytest.raises(SystemExit, match="nope has no 'champion' version"):
        main(["rollback", "--model", "nope"])


def test_a_rolled_back_version_is_never_promoted_again_by_a_pipeline_run(published, tmp_path):
    """A retried or resubmitted pipeline run re-publishing version 3 after its rollback is
    refused; only `segpipe promote --force --reason` brings it back, and says so."""
    from components.publish.publisher import PublishRefused, publish
    from pipelines.cli.main import main

    assert main(["rollback", "--model", "m"]) == 0  # champion 2, version 3 rolled back
    run_3 = published.get_model_version("m", "3").run_id
    record_evaluation(tmp_path / "model", "p2-retry", "2")  # judged against today's champion
    run = RunContext("segpipe", "p2-retry", model_name="m")
    with pytest.raises(PublishRefused, match="version 3 was rolled back.*segpipe promote"):
        publish(str(tmp_path / "model"), run_3, run, str(tmp_path / "exports"))
    assert _aliases(published) == {"champion": "2", "previous": "1"}

    with pytest.raises(SystemExit, match="was rolled back.*--force"):
        main(["promote", "--model", "m", "--version", "3", "--reason", "fixed labels"])
    assert _aliases(published) == {"champion": "2", "previous": "1"}
    assert main(["promote", "--model", "m", "--version", "3", "--force", "--reason", "fixed"]) == 0
    assert _aliases(published) == {"champion": "3", "previous": "2"}
    version = published.get_model_version("m", "3")
    assert version.tags["segpipe.promoted_by_hand"].endswith("to champion: fixed")
    assert "segpipe.rolled_back" not in version.tags
    pipeline_run = version.tags["segpipe.pipeline_run_id"]
    (parent,) = published.search_runs(
        [published.get_experiment_by_name("segpipe").experiment_id],
        f"tags.`segpipe.pipeline_run_id` = '{pipeline_run}' and tags.`segpipe.step` = 'pipeline'",
    )
    assert parent.data.tags["segpipe.promoted_by_hand"].startswith("version 3 ")


def test_read_only_commands_create_no_store_where_none_is(tmp_path, monkeypatch):
    from pipelines.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for argv in (
        ["rollback", "--model", "m"],
        ["data-diff", "--model", "m", "1", "2"],
        ["promote", "--model", "m", "--version", "1", "--reason", "r"],
    ):
        with pytest.raises(SystemExit, match=f"no MLflow store at {tmp_path}/mlflow.db"):
            main(argv)
    assert list(tmp_path.iterdir()) == []
