"""`segpipe` commands for a Kubeflow cluster: compile, submit, schedule, schedules, unschedule,
runs."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components.common.settings.config import DEFAULT_EXPERIMENT, ClusterConfig
from pipelines.cli.params import add_param_option, add_preset_option, parse_params


def _parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    """`KEY=VALUE` strings (e.g. node labels) to a dict."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {pair!r}")
        parsed[key] = value
    return parsed


def _compile(args: argparse.Namespace, output: str, defaults: dict[str, object]) -> None:
    from pipelines.cluster.package import compile_for_cluster

    try:
        compile_for_cluster(
            output,
            registry=args.registry,
            tag=args.tag,
            defaults=defaults,
            gpu_node_selector=_parse_pairs(args.gpu_node_selector, "--gpu-node-selector"),
            vertex=_vertex_training(args, defaults),
        )
    except ValueError as error:
        raise SystemExit(f"segpipe: {error}") from error


def _vertex_training(args: argparse.Namespace, defaults: dict[str, object]):
    """The Vertex AI CustomJob settings of `--train-engine vertex`, else None."""
    from pipelines.cluster.vertex import VertexTraining

    if args.train_engine != "vertex":
        return None
    accelerator, _, count = (args.vertex_accelerator or "").partition(":")
    return VertexTraining(
        replicas=int(defaults.get("train_workers", ClusterConfig.train_workers)),
        mlflow_tracking_uri=args.mlflow_tracking_uri or "",
        machine_type=args.vertex_machine_type,
        accelerator_type=accelerator,
        accelerator_count=int(count or 1),
    )


def cmd_compile(args: argparse.Namespace) -> int:
    _compile(args, args.output, parse_params(args.param, preset=args.preset))
    print(f"wrote {args.output}")
    return 0


@contextlib.contextmanager
def _cluster_errors() -> Iterator[None]:
    """API and connection failures as one-line messages (status and reason, never headers)."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as error:
        body = (error.body or "").strip()
        detail = f": {body}" if body else ""
        raise SystemExit(
            f"segpipe: Kubeflow Pipelines API error {error.status} {error.reason}{detail}"
        ) from error
    except HTTPError as error:
        raise SystemExit(f"segpipe: cannot reach Kubeflow Pipelines: {error}") from error
    except TimeoutError as error:  # kfp.Client gives up on the health check after 5 tries
        raise SystemExit(
            f"segpipe: {error} Check --host and your credentials ($SEGPIPE_KFP_TOKEN)."
        ) from error
    except ValueError as error:
        raise SystemExit(f"segpipe: {error}") from error


@contextlib.contextmanager
def _package(args: argparse.Namespace) -> Iterator[str]:
    """The pipeline package to send: --package as given, else compiled now into a temp dir;
    with --no-cache, a copy with caching off for every task."""
    with tempfile.TemporaryDirectory() as tmp:
        path = args.package or str(Path(tmp, "pipeline.yaml"))
        if not args.package:
            _compile(args, path, {})
        if getattr(args, "no_cache", False):
            from pipelines.cluster.client import without_cache

            path = without_cache(path, str(Path(tmp, "pipeline-no-cache.yaml")))
        yield path


def _run_arguments(args: argparse.Namespace) -> dict[str, object]:
    return {"data_dir": args.data, **parse_params(args.param, preset=args.preset)}


def _check_connection_settings(args: argparse.Namespace) -> None:
    """Endpoint and token transport, checked before anything is compiled."""
    from pipelines.cluster import client as cluster

    with _cluster_errors():
        cluster.check_token_transport(cluster.endpoint(args.host), args.insecure)


def cmd_submit(args: argparse.Namespace) -> int:
    from pipelines.cluster import client as cluster

    arguments = _run_arguments(args)  # bad settings first, before any request
    _check_connection_settings(args)
    with _package(args) as package, _cluster_errors():
        connection = cluster.connect(args.host, args.namespace, args.insecure)
        run = cluster.submit(
            connection,
            package,
            arguments,
            experiment=args.experiment,
            run_name=args.run_name,
            pipeline_root=args.pipeline_root,
            enable_caching=False if args.no_cache else None,
            service_account=args.service_account,
        )
    print(f"submitted run {run.run_id} to experiment {args.experiment!r}")
    print(f"  state: {run.state}")
    print(f"  link:  {run.link}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from pipelines.cluster import client as cluster

    arguments = _run_arguments(args)  # bad settings first, before any request
    # a recurring run whose data and training settings equal the champion's ends after the
    # snapshot, unless the user asks otherwise
    arguments.setdefault("skip_unchanged", True)
    _check_connection_settings(args)
    with _package(args) as package, _cluster_errors():
        connection = cluster.connect(args.host, args.namespace, args.insecure)
        made = cluster.schedule(
            connection,
            package,
            arguments,
            experiment=args.experiment,
            name=args.name or f"segpipe {args.cron}",
            cron=args.cron,
            max_concurrency=args.max_concurrency,
            no_catchup=args.no_catchup,
            pipeline_root=args.pipeline_root,
            # as compiled: the snapshot always runs, preprocess is cached on its data fingerprint
            enable_caching=False if args.no_cache else None,
            service_account=args.service_account,
        )
    catchup = "off" if made.no_catchup else "on"
    print(f"scheduled {made.schedule_id} {made.name!r}: cron {made.cron!r}, {made.status}")
    print(f"  max concurrency {made.max_concurrency}, catch-up {catchup}")
    print(f"  link: {made.link}")
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    from pipelines.cluster import client as cluster

    with _cluster_errors():
        connection = cluster.connect(args.host, args.namespace, args.insecure)
        found = cluster.list_schedules(connection, args.experiment or None, args.limit)
    if not found:
        print("no recurring runs")
    for item in found:
        print(f"{item.schedule_id}  {item.status:<8}  {item.cron:<16}  {item.name}  {item.link}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from pipelines.cluster import client as cluster

    with _cluster_errors():
        cluster.unschedule(
            cluster.connect(args.host, args.namespace, args.insecure), args.schedule_id
        )
    print(f"deleted recurring run {args.schedule_id}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from pipelines.cluster import client as cluster

    with _cluster_errors():
        connection = cluster.connect(args.host, args.namespace, args.insecure)
        found = cluster.recent_runs(connection, args.experiment or None, args.limit)
    if not found:
        print("no runs")
    for run in found:
        print(f"{run.run_id}  {run.state:<9}  {run.created:<19}  {run.name}  {run.link}")
    return 0


def _add_compile_options(parser: argparse.ArgumentParser) -> None:
    add_preset_option(parser)
    parser.add_argument(
        "--registry",
        default=None,
        help="image registry prefix, e.g. us-docker.pkg.dev/PROJECT/REPO "
        "(default: $SEGPIPE_REGISTRY)",
    )
    parser.add_argument("--tag", default=None, help="image tag (default: package version)")
    parser.add_argument(
        "--gpu-node-selector",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="node label the train task must run on "
        "(e.g. cloud.google.com/gke-accelerator=nvidia-l4); repeatable",
    )
    parser.add_argument(
        "--train-engine",
        choices=("kubeflow", "vertex"),
        default="kubeflow",
        help="where train_workers > 1 runs: a Kubeflow Trainer TrainJob (default), or a "
        "Vertex AI CustomJob of train_workers replicas, fixed at compile time",
    )
    parser.add_argument(
        "--mlflow-tracking-uri",
        default=None,
        help="vertex: the MLflow server every task tracks to (no credentials)",
    )
    parser.add_argument(
        "--vertex-machine-type", default="n1-standard-8", help="vertex: each replica's machine"
    )
    parser.add_argument(
        "--vertex-accelerator",
        default=None,
        metavar="TYPE[:COUNT]",
        help="vertex: each replica's accelerators, e.g. NVIDIA_L4:1 (default: none)",
    )


def _add_host_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=None, help="Kubeflow Pipelines API URL (default: $KF_PIPELINES_ENDPOINT)"
    )
    parser.add_argument("--namespace", default=None, help="profile namespace (multi-user)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow sending $SEGPIPE_KFP_TOKEN to a plain http:// host (a private connection "
        "such as a port-forward only)",
    )


def _add_connection_options(parser: argparse.ArgumentParser, experiment_default: str | None):
    _add_host_options(parser)
    parser.add_argument(
        "--experiment",
        default=experiment_default,
        help=f"Kubeflow experiment (default: {experiment_default or 'all'})",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="input data, e.g. gs://bucket/my-data")
    add_param_option(parser)
    parser.add_argument("--package", default=None, help="a compiled pipeline.yaml to send as is")
    _add_compile_options(parser)
    parser.add_argument(
        "--pipeline-root", default=None, help="where artifacts go (default: the cluster's root)"
    )
    parser.add_argument("--service-account", default=None, help="Kubernetes service account")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, even preprocess on unchanged inputs",
    )


def add_commands(commands: argparse._SubParsersAction) -> None:
    """compile, submit, schedule, schedules, unschedule and runs, as sub-commands of `commands`."""
    comp = commands.add_parser(
        "compile",
        help="compile the pipeline to YAML for a Kubeflow cluster",
        epilog="example: segpipe compile -o pipeline.yaml --registry us-docker.pkg.dev/P/R "
        "--param epochs=40",
    )
    comp.add_argument("-o", "--output", default="pipeline.yaml")
    add_param_option(comp)
    _add_compile_options(comp)
    comp.set_defaults(func=cmd_compile)

    submit = commands.add_parser(
        "submit",
        help="start a run on a Kubeflow Pipelines cluster",
        epilog="example: segpipe submit --host https://kfp.example.com --data gs://b/my-data "
        "--registry us-docker.pkg.dev/P/R --param export_root=gs://b/exports",
    )
    _add_connection_options(submit, DEFAULT_EXPERIMENT)
    _add_run_options(submit)
    submit.add_argument("--run-name", default=None)
    submit.set_defaults(func=cmd_submit)

    sched = commands.add_parser(
        "schedule",
        help="create a recurring run on a Kubeflow Pipelines cluster",
        epilog='example: segpipe schedule --cron "0 3 * * 1" --no-catchup --host URL '
        "--data gs://b/my-data --registry us-docker.pkg.dev/P/R",
    )
    _add_connection_options(sched, DEFAULT_EXPERIMENT)
    _add_run_options(sched)
    sched.add_argument(
        "--cron",
        required=True,
        help='5-field cron, e.g. "0 3 * * 1" (the scheduler\'s time zone, usually UTC)',
    )
    sched.add_argument("--max-concurrency", type=int, default=1, help="runs at once (default 1)")
    sched.add_argument(
        "--no-catchup",
        action="store_true",
        help="after a pause, run once, not once per missed slot",
    )
    sched.add_argument("--name", default=None, help='display name (default: "segpipe CRON")')
    sched.set_defaults(func=cmd_schedule)

    listing = commands.add_parser(
        "schedules",
        help="list recurring runs",
        epilog="example: segpipe schedules --host https://kfp.example.com",
    )
    _add_connection_options(listing, None)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_schedules)

    unsched = commands.add_parser(
        "unschedule",
        help="delete a recurring run",
        epilog="example: segpipe unschedule 5f1c... --host https://kfp.example.com",
    )
    unsched.add_argument("schedule_id", metavar="ID")
    _add_host_options(unsched)
    unsched.set_defaults(func=cmd_unschedule)

    runs = commands.add_parser(
        "runs",
        help="list recent runs with their state and links",
        epilog="example: segpipe runs --host https://kfp.example.com --limit 20",
    )
    _add_connection_options(runs, DEFAULT_EXPERIMENT)
    runs.add_argument("--limit", type=int, default=10)
    runs.set_defaults(func=cmd_runs)
