"""The `segpipe` command line: sample-data, run (kfp.local), compile, cluster commands, predict."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components.common.cli import parse_bool
from components.common.config import DEFAULT_MAX_PIXELS, ClusterConfig, PipelineConfig
from components.common.presets import PRESETS, preset_parameters

SAMPLE_CLASS_NAMES = "background,circle,square,triangle"


def _parse_params(
    pairs: list[str], local: bool = False, preset: str | None = None
) -> dict[str, object]:
    """A preset's parameters overlaid with `k=v` strings, typed by the parameter's default."""
    defaults = PipelineConfig().parameters()
    cluster_only = set(dataclasses.asdict(ClusterConfig()))
    try:
        params = preset_parameters(preset)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param expects key=value, got {pair!r}")
        if key not in defaults:
            raise SystemExit(f"unknown pipeline parameter {key!r}; known: {', '.join(defaults)}")
        if local and key in cluster_only:
            raise SystemExit(f"--param {key} only takes effect on a cluster (segpipe submit)")
        kind = type(defaults[key])
        try:
            params[key] = parse_bool(value) if kind is bool else kind(value)
        except ValueError as error:
            raise SystemExit(f"--param {key}: {value!r} is not a valid {kind.__name__}") from error
    try:  # the settings' own checks, before any step runs
        PipelineConfig().with_parameters(params)
    except ValueError as error:
        raise SystemExit(f"segpipe: invalid setting: {error}") from error
    return params


def _require(command: str, extra: str, *modules: str) -> None:
    """Refuse a command whose packages this install lacks, naming the extra that adds them."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"segpipe {command} needs {', '.join(missing)}, not installed here: "
            f"pip install 'segpipe[{extra}]'"
        )


def cmd_sample_data(args: argparse.Namespace) -> int:
    _require("sample-data", "preprocess", "numpy", "PIL")
    from components.common.sample_data import write_sample_data

    count = write_sample_data(args.directory, count=args.count, seed=args.seed)
    print(f"wrote {count} image + mask pairs to {args.directory}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.containers:  # the steps run in their images; here the MLflow server and sample data
        _require("run --containers", "all", "sqlalchemy", "numpy", "PIL")
    else:  # every step runs on this machine
        _require("run", "all", "apache_beam", "tensorflow", "PIL")
    from pipelines.local import run_local

    workdir = Path(args.workdir).resolve()
    params = _parse_params(args.param, local=True, preset=args.preset)
    if args.containers:  # before any work, sample data included
        from pipelines.containers import check_ready

        try:
            check_ready(args.tag)
        except RuntimeError as error:
            raise SystemExit(f"segpipe run --containers: {error}") from error
    data = args.data
    if data is None:
        from components.common.sample_data import write_sample_data

        data = str(workdir / "segpipe-data" / "sample")
        if not Path(data, "images").is_dir():
            write_sample_data(data)
        params.setdefault("class_names", SAMPLE_CLASS_NAMES)
    params = {"data_dir": str(Path(data).resolve()), **params}
    if args.containers:
        from pipelines.containers import run_in_containers

        try:
            summary = run_in_containers(params, workdir, tag=args.tag)
        except RuntimeError as error:
            raise SystemExit(f"segpipe run --containers: {error}") from error
    else:
        summary = run_local(params, workdir)
    print()
    print("segpipe run finished")
    print(f"  mean IoU:   {summary.mean_iou:.4f}")
    print(f"  gate:       {'PASSED' if summary.passed else 'FAILED'}: {summary.reason}")
    registered = f"version {summary.registered_version}" if summary.registered_version else None
    print(f"  registered: {registered or 'nothing (gate did not pass)'}")
    print(f"  MLflow run: {summary.train_run_id}")
    print(f"  browse:     {summary.browse}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    _require("predict", "train", "tensorflow", "PIL")
    from components.common.image_files import printable
    from components.publish.predict import predict

    try:
        result = predict(args.model, args.input, args.output, args.max_pixels)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise SystemExit(f"segpipe predict: {error}") from error
    for skipped in result.skipped:
        print(f"skipped {printable(skipped.source)}: {skipped.reason}", file=sys.stderr)
    print(f"wrote {len(result.written)} masks and overlays to {args.output}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} inputs (listed above)", file=sys.stderr)
        return 1
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from components.publish.publisher import rollback

    try:
        result = rollback(args.model, args.alias)
    except (LookupError, RuntimeError) as error:
        raise SystemExit(f"segpipe rollback: {error}") from error
    previous = f"version {result.previous}" if result.previous else "none"
    print(f"{args.model}@{args.alias}: version {result.retired} -> version {result.champion}")
    print(f"{args.model}@previous: {previous}")
    return 0


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
    from pipelines.package import compile_for_cluster

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
    from pipelines.vertex import VertexTraining

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
    _compile(args, args.output, _parse_params(args.param, preset=args.preset))
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
    """The pipeline package to send: --package as given, else compiled now into a temp dir."""
    if args.package:
        yield args.package
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp, "pipeline.yaml"))
        _compile(args, path, {})
        yield path


def _run_arguments(args: argparse.Namespace) -> dict[str, object]:
    return {"data_dir": args.data, **_parse_params(args.param, preset=args.preset)}


def _check_connection_settings(args: argparse.Namespace) -> None:
    """Endpoint and token transport, checked before anything is compiled."""
    from pipelines import cluster

    with _cluster_errors():
        cluster.check_token_transport(cluster.endpoint(args.host), args.insecure)


def cmd_submit(args: argparse.Namespace) -> int:
    from pipelines import cluster

    _check_connection_settings(args)
    arguments = _run_arguments(args)
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
    from pipelines import cluster

    _check_connection_settings(args)
    arguments = _run_arguments(args)
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
            # A recurring retraining must re-read its data folder, which a cache hit would skip.
            enable_caching=False,
            service_account=args.service_account,
        )
    catchup = "off" if made.no_catchup else "on"
    print(f"scheduled {made.schedule_id} {made.name!r}: cron {made.cron!r}, {made.status}")
    print(f"  max concurrency {made.max_concurrency}, catch-up {catchup}")
    print(f"  link: {made.link}")
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    from pipelines import cluster

    with _cluster_errors():
        connection = cluster.connect(args.host, args.namespace, args.insecure)
        found = cluster.list_schedules(connection, args.experiment or None, args.limit)
    if not found:
        print("no recurring runs")
    for item in found:
        print(f"{item.schedule_id}  {item.status:<8}  {item.cron:<16}  {item.name}  {item.link}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from pipelines import cluster

    with _cluster_errors():
        cluster.unschedule(
            cluster.connect(args.host, args.namespace, args.insecure), args.schedule_id
        )
    print(f"deleted recurring run {args.schedule_id}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from pipelines import cluster

    with _cluster_errors():
        connection = cluster.connect(args.host, args.namespace, args.insecure)
        found = cluster.recent_runs(connection, args.experiment or None, args.limit)
    if not found:
        print("no runs")
    for run in found:
        print(f"{run.run_id}  {run.state:<9}  {run.created:<19}  {run.name}  {run.link}")
    return 0


def _add_preset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a named parameter set (--param still overrides), e.g. camvid",
    )


def _add_compile_options(parser: argparse.ArgumentParser) -> None:
    _add_preset_option(parser)
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
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segpipe",
        description="Segmentation training pipeline: preprocess, train, evaluate, publish.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample-data", help="write the synthetic sample data set")
    sample.add_argument("directory")
    sample.add_argument("--count", type=int, default=240)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample_data)

    run = commands.add_parser(
        "run",
        help="run the pipeline on this machine (kfp.local)",
        epilog="example: segpipe run --data ./my-data --param epochs=30 --param num_classes=5",
    )
    run.add_argument("--data", help="folder with images/ and masks/ (default: sample data)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    _add_preset_option(run)
    run.add_argument("--workdir", default=".", help="where MLflow store and outputs go")
    run.add_argument(
        "--containers",
        action="store_true",
        help="run each step in its image (kfp.local DockerRunner, the engine at $DOCKER_HOST), "
        "tracking to an MLflow server segpipe starts on 127.0.0.1; build the images first with "
        "`make images`",
    )
    run.add_argument("--tag", default=None, help="with --containers: image tag (default: version)")
    run.set_defaults(func=cmd_run)

    comp = commands.add_parser(
        "compile",
        help="compile the pipeline to YAML for a Kubeflow cluster",
        epilog="example: segpipe compile -o pipeline.yaml --registry us-docker.pkg.dev/P/R "
        "--param epochs=40",
    )
    comp.add_argument("-o", "--output", default="pipeline.yaml")
    comp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    _add_compile_options(comp)
    comp.set_defaults(func=cmd_compile)

    submit = commands.add_parser(
        "submit",
        help="start a run on a Kubeflow Pipelines cluster",
        epilog="example: segpipe submit --host https://kfp.example.com --data gs://b/my-data "
        "--registry us-docker.pkg.dev/P/R --param export_root=gs://b/exports",
    )
    _add_connection_options(submit, "segpipe")
    _add_run_options(submit)
    submit.add_argument("--run-name", default=None)
    submit.set_defaults(func=cmd_submit)

    sched = commands.add_parser(
        "schedule",
        help="create a recurring run on a Kubeflow Pipelines cluster",
        epilog='example: segpipe schedule --cron "0 3 * * 1" --no-catchup --host URL '
        "--data gs://b/my-data --registry us-docker.pkg.dev/P/R",
    )
    _add_connection_options(sched, "segpipe")
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
    _add_connection_options(runs, "segpipe")
    runs.add_argument("--limit", type=int, default=10)
    runs.set_defaults(func=cmd_runs)

    pred = commands.add_parser(
        "predict",
        help="segment images with a published model: class-index masks and overlays",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  segpipe predict --model models:/segpipe-unet@champion --input photos/ --output out/\n"
        "  segpipe predict --model models:/segpipe-unet/3 --input 'shots/*.jpg' --output out/\n"
        "  segpipe predict --model exports/segpipe-unet/3 --input img.png --output out/\n"
        "MLflow models are looked up at $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db).\n"
        "Exits 1 when an input was skipped (too large, unreadable); the others are written.",
    )
    pred.add_argument(
        "--model",
        required=True,
        help="models:/NAME@ALIAS, models:/NAME/VERSION, or a local SavedModel folder",
    )
    pred.add_argument("--input", required=True, help="image folder (recursive), file or glob")
    pred.add_argument(
        "--output",
        required=True,
        help="folder for NAME_mask.png, NAME_overlay.png (sub-folders of --input mirrored)",
    )
    pred.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="skip images with more pixels (width x height), before decoding them "
        f"(default: {DEFAULT_MAX_PIXELS})",
    )
    pred.set_defaults(func=cmd_predict)

    back = commands.add_parser(
        "rollback",
        help="point the champion alias back at the previous version",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  segpipe rollback --model segpipe-unet\n"
        "champion moves to the version aliased previous; previous moves to the version that\n"
        "one replaced, or is removed. Uses $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db).",
    )
    back.add_argument("--model", required=True, help="registered model name")
    back.add_argument("--alias", default="champion", help="the alias to move back")
    back.set_defaults(func=cmd_rollback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
