"""Talk to a Kubeflow Pipelines cluster with kfp.Client: submit, schedule, list, unschedule."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfp import Client

HOST_ENV = "KF_PIPELINES_ENDPOINT"  # kfp's own variable for the API endpoint
UI_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp's own variable for the UI, when it differs
TOKEN_ENV = "SEGPIPE_KFP_TOKEN"  # a bearer token; read at call time, never printed or stored


@dataclass(frozen=True)
class Connection:
    """A connected client and where its web UI lives (for links)."""

    client: Client
    ui: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    state: str
    created: str
    link: str


@dataclass(frozen=True)
class ScheduleInfo:
    schedule_id: str
    name: str
    cron: str
    status: str
    max_concurrency: int
    no_catchup: bool
    link: str


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints its own links; ours, with the run state, are printed instead.

    Its health check also logs a traceback per failed try on the root logger: the one-line
    error the command ends with says it all, so those records are dropped.
    """
    root = logging.getLogger()
    drop_kfp_client = _DropRecordsFrom(os.sep + os.path.join("kfp", "client") + os.sep)
    root.addFilter(drop_kfp_client)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(drop_kfp_client)


class _DropRecordsFrom(logging.Filter):
    """Drops log records emitted from files whose path contains `fragment`."""

    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.pathname


def endpoint(host: str | None = None) -> str:
    """`host`, else $KF_PIPELINES_ENDPOINT; an error when neither is set."""
    host = host or os.environ.get(HOST_ENV, "")
    if not host:
        raise ValueError(f"no Kubeflow Pipelines endpoint: pass --host URL or set {HOST_ENV}")
    return host


def check_token_transport(host: str, insecure: bool) -> None:
    """Refuse to send $SEGPIPE_KFP_TOKEN to a host that is not https://, unless told it is safe."""
    if not os.environ.get(TOKEN_ENV) or insecure:
        return
    scheme = urllib.parse.urlparse(host).scheme.lower()
    if scheme != "https":
        raise ValueError(
            f"refusing to send ${TOKEN_ENV} to {host}: it is not an https:// URL, so the token "
            "would cross the network in clear text. Use the https:// endpoint, or pass "
            "--insecure when the connection is private (e.g. kubectl port-forward to 127.0.0.1)"
        )


def connect(
    host: str | None = None, namespace: str | None = None, insecure: bool = False
) -> Connection:
    """A client for `host` (else $KF_PIPELINES_ENDPOINT), in `namespace` for multi-user clusters.

    Authentication: a bearer token from $SEGPIPE_KFP_TOKEN when set (only to an https:// host
    unless `insecure`); otherwise whatever kfp finds on its own (IAP client id variables,
    gcloud for *.googleusercontent.com hosts, the cookies or header saved in
    ~/.config/kfp/context.json).
    """
    from kfp import Client

    host = endpoint(host)
    check_token_transport(host, insecure)
    token = os.environ.get(TOKEN_ENV) or None
    kwargs: dict[str, object] = {"host": host, "existing_token": token}
    if namespace:
        kwargs["namespace"] = namespace
    with _quiet(), warnings.catch_warnings():
        # "only works with Kubeflow Pipeline v2.0.0-beta.2 and later": every call, no news.
        warnings.simplefilter("ignore", FutureWarning)
        client = Client(**kwargs)
    ui = (os.environ.get(UI_ENV) or host).rstrip("/")
    return Connection(client, ui)


def run_link(connection: Connection, run_id: str) -> str:
    return f"{connection.ui}/#/runs/details/{run_id}"


def schedule_link(connection: Connection, schedule_id: str) -> str:
    return f"{connection.ui}/#/recurringrun/details/{schedule_id}"


def kfp_cron(expression: str) -> str:
    """A standard 5-field cron as the 6-field (seconds first) cron the KFP scheduler reads."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ValueError(
        f"cron {expression!r}: expected 5 fields (minute hour day month weekday), "
        "or 6 with seconds first"
    )


def experiment_id(connection: Connection, name: str, create: bool) -> str | None:
    """The id of the KFP experiment `name`: created when `create`, else None when missing."""
    client = connection.client
    if create:
        with _quiet():
            return client.create_experiment(name).experiment_id
    try:
        return client.get_experiment(experiment_name=name).experiment_id
    except ValueError as error:
        if str(error).startswith("No experiment is found"):
            return None
        raise


def without_cache(package: str, output: str) -> str:
    """A copy of pipeline `package` at `output` with caching off for every task.

    kfp.Client's `enable_caching=False` reaches only the root DAG's tasks, not those inside a
    condition (preprocess, under the snapshot's), so the package itself is changed.
    """
    import yaml

    with open(package, encoding="utf-8") as handle:
        documents = list(yaml.safe_load_all(handle))
    spec = documents[0]
    dags = [spec["root"], *spec.get("components", {}).values()]
    for dag in dags:
        for task in dag.get("dag", {}).get("tasks", {}).values():
            task["cachingOptions"] = {"enableCache": False}
    with open(output, "w", encoding="utf-8") as handle:
        yaml.safe_dump_all(documents, handle, sort_keys=False)
    return output


def submit(
    connection: Connection,
    package: str,
    arguments: dict[str, object],
    experiment: str,
    run_name: str | None = None,
    pipeline_root: str | None = None,
    enable_caching: bool | None = None,
    service_account: str | None = None,
) -> RunInfo:
    """Start one run of the compiled `package` in `experiment` (created if missing)."""
    with _quiet():
        result = connection.client.create_run_from_pipeline_package(
            package,
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            pipeline_root=pipeline_root,
            enable_caching=enable_caching,
            service_account=service_account,
        )
    info = result.run_info
    return RunInfo(
        run_id=result.run_id,
        name=info.display_name or "",
        state=info.state or "PENDING",
        created=_when(info.created_at),
        link=run_link(connection, result.run_id),
    )


def schedule(
    connection: Connection,
    package: str,
    arguments: dict[str, object],
    experiment: str,
    name: str,
    cron: str,
    max_concurrency: int = 1,
    no_catchup: bool = False,
    pipeline_root: str | None = None,
    enable_caching: bool | None = None,
    service_account: str | None = None,
) -> ScheduleInfo:
    """A recurring run of `package` on `cron` (5-field cron accepted), in `experiment`."""
    recurring = connection.client.create_recurring_run(
        experiment_id=experiment_id(connection, experiment, create=True),
        job_name=name,
        cron_expression=kfp_cron(cron),
        max_concurrency=max_concurrency,
        no_catchup=no_catchup,
        params=arguments,
        pipeline_package_path=package,
        pipeline_root=pipeline_root,
        enable_caching=enable_caching,
        service_account=service_account,
    )
    return _schedule_info(connection, recurring)


def _experiment_scope(connection: Connection, experiment: str | None) -> dict[str, object] | None:
    """List filter for `experiment`: empty when none is named, None when it does not exist."""
    if not experiment:
        return {}
    found = experiment_id(connection, experiment, create=False)
    return None if found is None else {"experiment_id": found}


def list_schedules(
    connection: Connection, experiment: str | None = None, limit: int = 50
) -> list[ScheduleInfo]:
    """Recurring runs, newest first; only `experiment`'s when given (none if it does not exist)."""
    client = connection.client
    scope = _experiment_scope(connection, experiment)
    if scope is None:
        return []
    if not experiment:
        scope["namespace"] = client.get_user_namespace() or None
    response = client.list_recurring_runs(page_size=limit, sort_by="created_at desc", **scope)
    return [_schedule_info(connection, r) for r in response.recurring_runs or []]


def unschedule(connection: Connection, schedule_id: str) -> None:
    """Delete the recurring run `schedule_id` (runs it already started are kept)."""
    connection.client.delete_recurring_run(schedule_id)


def recent_runs(
    connection: Connection, experiment: str | None = None, limit: int = 10
) -> list[RunInfo]:
    """The `limit` newest runs, with state and UI link; only `experiment`'s when given."""
    client = connection.client
    scope = _experiment_scope(connection, experiment)
    if scope is None:
        return []
    response = client.list_runs(page_size=limit, sort_by="created_at desc", **scope)
    return [
        RunInfo(
            run_id=run.run_id,
            name=run.display_name or "",
            state=run.state or "UNKNOWN",
            created=_when(run.created_at),
            link=run_link(connection, run.run_id),
        )
        for run in response.runs or []
    ]


def _schedule_info(connection: Connection, recurring) -> ScheduleInfo:
    trigger = recurring.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else ""
    if not cron and trigger and trigger.periodic_schedule:
        cron = f"every {trigger.periodic_schedule.interval_second}s"
    return ScheduleInfo(
        schedule_id=recurring.recurring_run_id,
        name=recurring.display_name or "",
        cron=cron,
        status=recurring.status or recurring.mode or "",
        max_concurrency=int(recurring.max_concurrency or 0),
        no_catchup=bool(recurring.no_catchup),
        link=schedule_link(connection, recurring.recurring_run_id),
    )


def _when(value) -> str:
    """A server timestamp as ISO text (seconds), or '' when missing."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.replace(microsecond=0).isoformat()
    return str(value)
