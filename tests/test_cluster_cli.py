"""Contract tests of submit, schedule, schedules, unschedule and runs: the real kfp.Client
against a stand-in KFP v2beta1 API on 127.0.0.1 (tests/fake_kfp.py). Not a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_kfp import FakeKfp, FakeKfpServer

from pipelines.cli.main import main

TOKEN = "tok-3c7e1d-never-print-me"
REGISTRY = "reg.example/team"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No endpoint, token, registry or saved kfp context from the machine running the tests."""
    from kfp.client import client

    for name in (
        "KF_PIPELINES_ENDPOINT",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
        "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME",
        "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID",
        "SEGPIPE_KFP_TOKEN",
        "SEGPIPE_REGISTRY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))


@pytest.fixture
def kfp_api():
    with FakeKfpServer() as state:
        yield state


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("pkg") / "pipeline.yaml"
    assert main(["compile", "-o", str(path), "--registry", REGISTRY, "--tag", "9.9.9"]) == 0
    return str(path)


def test_submit_compiles_creates_the_experiment_and_starts_a_run(
    kfp_api: FakeKfp, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("SEGPIPE_KFP_TOKEN", TOKEN)
    # the fake API is plain http on 127.0.0.1, like a port-forward: the token needs --insecure
    args = ["submit", "--insecure", "--host", kfp_api.url, "--data", "gs://bucket/data"]
    args += ["--registry", REGISTRY, "--tag", "1.2.3", "--experiment", "seg-team"]
    args += ["--param", "epochs=7", "--param", "mlflow_secret=team-mlflow"]
    args += ["--run-name", "nightly", "--pipeline-root", "gs://bucket/root"]
    assert main(args) == 0
    out, err = capsys.readouterr()

    (lookup,) = kfp_api.calls("GET", "/experiments")
    assert '"stringValue": "seg-team"' in lookup.query["filter"][0]
    (created,) = kfp_api.calls("POST", "/experiments")
    assert created.body["display_name"] == "seg-team"
    (post,) = kfp_api.calls("POST", "/runs")
    run = post.body
    assert run["display_name"] == "nightly"
    assert run["experiment_id"] == next(iter(kfp_api.experiments))
    assert run["runtime_config"] == {
        "pipeline_root": "gs://bucket/root",
        "parameters": {"data_dir": "gs://bucket/data", "epochs": 7, "mlflow_secret": "team-mlflow"},
    }
    spec, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"{REGISTRY}/segpipe-{k}:1.2.3" for k in ("beam", "trainer", "runtime")}
    assert (
        "secretAsEnv"
        in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    )
    # The token authenticates every request and goes nowhere else.
    assert {r.headers.get("authorization") for r in kfp_api.requests} == {f"Bearer {TOKEN}"}
    assert all(TOKEN not in r.raw and TOKEN not in r.path for r in kfp_api.requests)
    assert TOKEN not in out + err
    (run_id,) = kfp_api.runs
    assert f"submitted run {run_id}" in out
    assert f"{kfp_api.url}/#/runs/details/{run_id}" in out
    assert "PENDING" in out


def test_submit_reuses_an_experiment_and_no_cache_turns_caching_off(kfp_api: FakeKfp, package: str):
    existing = kfp_api.add_experiment("segpipe")
    args = ["submit", "--host", kfp_api.url, "--data", "gs://b/d", "--package", package]
    assert main([*args, "--no-cache"]) == 0

    assert kfp_api.calls("POST", "/experiments") == []
    (post,) = kfp_api.calls("POST", "/runs")
    assert post.body["experiment_id"] == existing
    tasks = _dag_tasks(post.body["pipeline_spec"]["pipeline_spec"])  # in conditions too
    assert "preprocess" in tasks
    assert all(task["cachingOptions"].get("enableCache", False) is False for task in tasks.values())
    assert "authorization" not in kfp_api.requests[0].headers  # no token set, none invented


def test_schedule_sends_a_six_field_cron_and_the_schedule_options(
    kfp_api: FakeKfp, package: str, capsys
):
    args = ["schedule", "--host", kfp_api.url, "--data", "gs://b/d", "--package", package]
    args += ["--cron", "0 3 * * 1", "--no-catchup", "--max-concurrency", "2", "--name", "weekly"]
    assert main(args) == 0

    (post,) = kfp_api.calls("POST", "/recurringruns")
    job = post.body
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert job["display_name"] == "weekly"
    assert job["max_concurrency"] == 2
    assert job["no_catchup"] is True
    assert job["mode"] == "ENABLE"
    assert job["runtime_config"]["parameters"] == {"data_dir": "gs://b/d", "skip_unchanged": True}
    assert job["experiment_id"] == next(iter(kfp_api.experiments))
    assert "platform_spec" in job["pipeline_spec"]
    (job_id,) = kfp_api.recurring
    out = capsys.readouterr().out
    assert f"scheduled {job_id} 'weekly'" in out
    assert f"{kfp_api.url}/#/recurringrun/details/{job_id}" in out


def _dag_tasks(spec: dict) -> dict[str, dict]:
    """Every task of a pipeline spec, those in condition sub-DAGs too."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_schedule_runs_with_the_compiled_caching_and_skips_unchanged_data_by_default(
    kfp_api: FakeKfp, package: str
):
    """A schedule no longer turns the cache off: preprocess is keyed on the data fingerprint."""
    args = ["schedule", "--host", kfp_api.url, "--data", "gs://b/d", "--package", package]
    assert main([*args, "--cron", "0 3 * * 1"]) == 0
    assert main([*args, "--cron", "0 4 * * 1", "--param", "skip_unchanged=false"]) == 0
    assert main([*args, "--cron", "0 5 * * 1", "--no-cache"]) == 0

    default, kept, no_cache = (call.body for call in kfp_api.calls("POST", "/recurringruns"))
    assert default["runtime_config"]["parameters"]["skip_unchanged"] is True
    assert kept["runtime_config"]["parameters"]["skip_unchanged"] is False
    tasks = _dag_tasks(default["pipeline_spec"]["pipeline_spec"])
    assert tasks["preprocess"]["cachingOptions"] == {"enableCache": True}
    assert tasks["snapshot"]["cachingOptions"].get("enableCache", False) is False
    uncached = _dag_tasks(no_cache["pipeline_spec"]["pipeline_spec"])
    assert all(t["cachingOptions"].get("enableCache", False) is False for t in uncached.values())


def test_schedule_defaults_keep_catchup_and_one_run_at_a_time(kfp_api: FakeKfp, package: str):
    args = ["schedule", "--host", kfp_api.url, "--data", "gs://b/d", "--package", package]
    assert main([*args, "--cron", "30 2 * * *"]) == 0
    (post,) = kfp_api.calls("POST", "/recurringruns")
    assert post.body["max_concurrency"] == 1
    assert not post.body.get("no_catchup")
    assert post.body["display_name"] == "segpipe 30 2 * * *"


def test_a_malformed_cron_is_refused_before_anything_is_sent(kfp_api: FakeKfp, package: str):
    args = ["schedule", "--host", kfp_api.url, "--data", "gs://b/d", "--package", package]
    with pytest.raises(SystemExit, match="expected 5 fields"):
        main([*args, "--cron", "0 3 * *"])
    assert kfp_api.calls("POST", "/recurringruns") == []


def test_schedules_lists_then_unschedule_deletes(kfp_api: FakeKfp, package: str, capsys):
    args = ["schedule", "--host", kfp_api.url, "--data", "gs://b/d", "--package", package]
    assert main([*args, "--cron", "0 3 * * 1"]) == 0
    (job_id,) = kfp_api.recurring
    capsys.readouterr()

    assert main(["schedules", "--host", kfp_api.url]) == 0
    listed = capsys.readouterr().out
    assert job_id in listed and "0 0 3 * * 1" in listed and "ENABLED" in listed
    (listing,) = kfp_api.calls("GET", "/recurringruns")
    assert listing.query["sort_by"] == ["created_at desc"]

    assert main(["unschedule", job_id, "--host", kfp_api.url]) == 0
    assert len(kfp_api.calls("DELETE", f"/recurringruns/{job_id}")) == 1
    assert kfp_api.recurring == {}
    assert f"deleted recurring run {job_id}" in capsys.readouterr().out

    assert main(["schedules", "--host", kfp_api.url]) == 0
    assert "no recurring runs" in capsys.readouterr().out


def test_unscheduling_an_unknown_id_fails_with_the_api_status(kfp_api: FakeKfp):
    with pytest.raises(SystemExit, match="API error 404"):
        main(["unschedule", "job-nope", "--host", kfp_api.url])


def test_runs_lists_the_experiments_runs_newest_first_with_links(kfp_api: FakeKfp, capsys):
    mine = kfp_api.add_experiment("segpipe")
    other = kfp_api.add_experiment("someone-else")
    done = kfp_api.add_run("weekly 1", "SUCCEEDED", mine)
    kfp_api.add_run("theirs", "RUNNING", other)

    assert main(["runs", "--host", kfp_api.url, "--limit", "5"]) == 0
    out = capsys.readouterr().out
    (listing,) = kfp_api.calls("GET", "/runs")
    assert listing.query["experiment_id"] == [mine]
    assert listing.query["page_size"] == ["5"]
    assert listing.query["sort_by"] == ["created_at desc"]
    assert done in out and "SUCCEEDED" in out and "2026-05-04T03:00:00" in out
    assert f"{kfp_api.url}/#/runs/details/{done}" in out
    assert "theirs" not in out


def test_runs_of_a_missing_experiment_is_an_empty_list_not_an_error(kfp_api: FakeKfp, capsys):
    assert main(["runs", "--host", kfp_api.url, "--experiment", "never-made"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert kfp_api.calls("GET", "/runs") == []


def test_the_ui_link_follows_the_ui_endpoint_when_it_differs(
    kfp_api: FakeKfp, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("KF_PIPELINES_UI_ENDPOINT", "https://kubeflow.example.com/pipeline")
    run_id = kfp_api.add_run("r", "FAILED", kfp_api.add_experiment("segpipe"))
    assert main(["runs", "--host", kfp_api.url]) == 0
    assert f"https://kubeflow.example.com/pipeline/#/runs/details/{run_id}" in (
        capsys.readouterr().out
    )


def test_host_comes_from_the_environment_or_the_command_fails_clearly(
    kfp_api: FakeKfp, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(SystemExit, match="pass --host URL or set KF_PIPELINES_ENDPOINT"):
        main(["runs"])
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", kfp_api.url)
    assert main(["runs"]) == 0
    assert kfp_api.requests


def test_an_unreachable_host_is_one_clear_line(package: str):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SystemExit, match="cannot reach Kubeflow Pipelines"):
        main(["runs", "--host", f"http://127.0.0.1:{port}"])


def test_submit_without_a_registry_or_package_is_refused(kfp_api: FakeKfp):
    with pytest.raises(SystemExit, match="SEGPIPE_REGISTRY"):
        main(["submit", "--host", kfp_api.url, "--data", "gs://b/d"])
    assert kfp_api.requests == []


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "--data", "gs://b/d"],
        ["schedule", "--data", "gs://b/d", "--cron", "0 3 * * 1"],
        ["schedules"],
        ["unschedule", "job-1"],
        ["runs"],
    ],
)
def test_a_token_is_never_sent_to_a_plain_http_host_without_insecure(
    kfp_api: FakeKfp, package: str, monkeypatch: pytest.MonkeyPatch, capsys, command: list[str]
):
    monkeypatch.setenv("SEGPIPE_KFP_TOKEN", TOKEN)
    extra = ["--package", package] if command[0] in ("submit", "schedule") else []
    with pytest.raises(SystemExit, match=r"refusing to send \$SEGPIPE_KFP_TOKEN to http://") as e:
        main([*command, *extra, "--host", kfp_api.url])
    assert "--insecure" in str(e.value) and TOKEN not in str(e.value)
    assert kfp_api.requests == []  # refused before any connection
    out, err = capsys.readouterr()
    assert TOKEN not in out + err


def test_the_token_check_passes_https_and_any_host_without_a_token(monkeypatch):
    from pipelines.cluster.client import check_token_transport

    monkeypatch.setenv("SEGPIPE_KFP_TOKEN", TOKEN)
    check_token_transport("https://kfp.example.com/pipeline", insecure=False)
    check_token_transport("http://127.0.0.1:8888", insecure=True)
    with pytest.raises(ValueError, match="not an https:// URL"):
        check_token_transport("kfp.example.com", insecure=False)  # no scheme: not known safe
    monkeypatch.delenv("SEGPIPE_KFP_TOKEN")
    check_token_transport("http://kfp.example.com", insecure=False)  # nothing to leak


@pytest.mark.slow  # kfp.Client tries its health check five times, seconds apart
def test_a_failed_health_check_is_one_line_without_kfps_tracebacks(monkeypatch, capfd, caplog):
    """A server that answers, but not as Kubeflow Pipelines (404s): kfp.Client logs a
    traceback per failed try; segpipe shows only its one line."""
    import http.server
    import logging
    import threading

    class NotKfp(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's API
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotKfp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SEGPIPE_KFP_TOKEN", "t0ken")
    caplog.set_level(logging.INFO)  # every record that reaches the root logger's handlers
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(SystemExit) as failed:
            main(["runs", "--host", host, "--insecure"])
    finally:
        server.shutdown()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert not [r for r in caplog.records if "healthz" in r.getMessage()]
    assert "healthz" in str(failed.value) and "\n" not in str(failed.value)
