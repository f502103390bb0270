"""`segpipe` commands that work on this machine: sample-data, run, predict, rollback, promote,
ui."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from components.common.settings.config import (
    DEFAULT_ALIAS,
    DEFAULT_EXPERIMENT,
    DEFAULT_MAX_PIXELS,
)
from pipelines.cli.params import add_param_option, add_preset_option, parse_params

SAMPLE_CLASS_NAMES = "background,circle,square,triangle"


def require(command: str, extra: str, *modules: str) -> None:
    """Refuse a command whose packages this install lacks, naming the extra that adds them."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"segpipe {command} needs {', '.join(missing)}, not installed here: "
            f"pip install 'segpipe[{extra}]'"
        )


def cmd_sample_data(args: argparse.Namespace) -> int:
    require("sample-data", "preprocess", "numpy", "PIL")
    from pipelines.sample_data import write_sample_data

    count = write_sample_data(args.directory, count=args.count, seed=args.seed)
    print(f"wrote {count} image + mask pairs to {args.directory}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    params = parse_params(args.param, local=True, preset=args.preset)  # first: under a second
    if args.containers:  # the steps run in their images; here the MLflow server and sample data
        require("run --containers", "all", "sqlalchemy", "numpy", "PIL")
    else:  # every step runs on this machine
        require("run", "all", "apache_beam", "tensorflow", "PIL")
    from pipelines.local.runner import run_local

    workdir = Path(args.workdir).resolve()
    if args.containers:  # before any work, sample data included
        from pipelines.local.containers import check_ready

        try:
            check_ready(args.tag)
        except RuntimeError as error:
            raise SystemExit(f"segpipe run --containers: {error}") from error
    data = args.data
    if data is None:
        from pipelines.sample_data import ensure_sample_data

        data = str(workdir / "segpipe-data" / "sample")
        ensure_sample_data(data)  # written once, atomically, and checked before each use
        params.setdefault("class_names", SAMPLE_CLASS_NAMES)
    params = {"data_dir": str(Path(data).resolve()), **params}
    from pipelines.local.runner import RunFailed
    from pipelines.local.termination import Terminated

    try:
        if args.containers:
            from pipelines.local.containers import run_in_containers

            try:
                summary = run_in_containers(params, workdir, tag=args.tag, verbose=args.verbose)
            except RuntimeError as error:
                raise SystemExit(f"segpipe run --containers: {error}") from error
        else:
            summary = run_local(params, workdir, verbose=args.verbose)
    except Terminated as stopped:
        print(f"\nsegpipe run: stopped by {stopped.by}", file=sys.stderr)
        if stopped.log_path:
            print(f"  log:        {stopped.log_path}", file=sys.stderr)
        return stopped.code
    except RunFailed as failed:
        # last, where the eye lands: the step, why, and where the whole story is
        print(f"\nsegpipe run: {failed.step} failed: {failed.reason}", file=sys.stderr)
        if failed.link:
            print(f"  MLflow run: {failed.link}", file=sys.stderr)
        print(f"  log:        {failed.log_path}", file=sys.stderr)
        return 1
    _print_summary(summary)
    return 0


def _print_summary(summary) -> None:
    from pipelines.console import duration

    print()
    print(f"segpipe run finished in {duration(summary.took_s)}")
    print(f"  data:       {summary.data_changes}")
    if summary.warning:
        print(f"  WARNING:    {summary.warning}")
    if summary.unchanged:  # ended after the snapshot: nothing trained, no new version
        print(f"  status:     {summary.outcome}")
        print("  registered: nothing (no new version)")
        _print_links(summary)
        return
    print(f"  mean IoU:   {summary.mean_iou:.4f}")
    print(f"  gate:       {'PASSED' if summary.passed else 'FAILED'}: {summary.reason}")
    registered = f"version {summary.registered_version}" if summary.registered_version else None
    print(f"  registered: {registered or 'nothing (gate did not pass)'}")
    _print_links(summary)


def _print_links(summary) -> None:
    print(f"  MLflow run: {summary.link or summary.train_run_id}")
    if summary.runs_link:
        print(f"  all runs:   {summary.runs_link}")
    if summary.model_link:
        print(f"  model:      {summary.model_link}")
    print(f"  browse:     {summary.browse}")
    print(f"  log:        {summary.log_path}")


def cmd_predict(args: argparse.Namespace) -> int:
    require("predict", "train", "tensorflow", "PIL")
    from components.common.data.image_files import printable
    from pipelines.console import capture

    # TensorFlow's own notices go to the log; the terminal gets the bar and the outcome
    log_path = Path(tempfile.gettempdir(), f"segpipe-predict-{time.strftime('%Y%m%d-%H%M%S')}.log")
    failure = result = None
    with capture(log_path, args.verbose) as reporter:
        from pipelines.predict import predict

        try:
            if args.runner:  # a Beam job: its workers report to the log, no bar
                require("predict --runner", "preprocess", "apache_beam")
                from pipelines.beam_predict import predict_on_beam

                print(f"predict: a Beam job on {args.runner}", file=reporter.terminal)
                result = predict_on_beam(
                    args.model,
                    args.input,
                    args.output,
                    args.runner,
                    args.beam_options,
                    args.max_pixels,
                    args.batch_size,
                    tta=not args.no_tta,
                )
            else:
                result = predict(
                    args.model,
                    args.input,
                    args.output,
                    args.max_pixels,
                    reporter.terminal,
                    batch_size=args.batch_size,
                    tta=not args.no_tta,
                )
        except (LookupError, ValueError, RuntimeError, OSError) as error:
            failure = " ".join(str(error).split())
        except Exception as error:  # a bug: the traceback goes to the log
            traceback.print_exc()
            failure = f"{type(error).__name__}: {error} (unexpected: the traceback is in the log)"
    if failure:
        print(f"segpipe predict: {failure}", file=sys.stderr)
        print(f"  log: {log_path}", file=sys.stderr)
        return 1
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
    print(
        f"version {result.retired} is marked rolled back: pipeline runs will not promote it again"
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from components.common.tracking.runs import error_summary
    from components.publish.publisher import promote

    try:
        replaced = promote(args.model, args.version, args.reason, args.force, args.alias)
    except (LookupError, RuntimeError, ValueError, MlflowException) as error:
        raise SystemExit(f"segpipe promote: {error_summary(error)}") from error
    was = f"version {replaced}" if replaced else "unchanged"
    print(f"{args.model}@{args.alias}: version {args.version} ({was} before); reason recorded")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from components.common.tracking.runs import check_store_exists, tracking_uri
    from pipelines.local import ui
    from pipelines.local.runner import default_tracking_store

    uri = (
        args.store
        or (tracking_uri() if os.environ.get("MLFLOW_TRACKING_URI") else None)
        or default_tracking_store(Path(args.workdir))
    )
    artifacts = Path(args.artifacts) if args.artifacts else None
    if ui.serves_its_own_ui(uri):
        print(f"the tracking server serves the UI: {ui.experiment_link(uri, args.experiment)}")
        return 0
    check_store_exists(uri, "segpipe ui")
    print(f"runs:  {ui.experiment_link(uri, args.experiment, args.port)}")
    print(f"MLflow UI on {uri} (Ctrl-C stops it)")
    return ui.serve(uri, args.port, artifacts)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """sample-data, run, predict, rollback, promote and ui, as sub-commands of `commands`."""
    sample = commands.add_parser("sample-data", help="write the synthetic sample data set")
    sample.add_argument("directory")
    sample.add_argument("--count", type=int, default=240)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample_data)

    run = commands.add_parser(
        "run",
        help="run the pipeline on this machine (kfp.local)",
        description="Run the pipeline on this machine (kfp.local). Every pipeline parameter, "
        "with its type, default and help: segpipe params.",
        epilog="example: segpipe run --data ./my-data --param epochs=30 --param num_classes=5",
    )
    run.add_argument("--data", help="folder with images/ and masks/ (default: sample data)")
    add_param_option(run)
    add_preset_option(run)
    run.add_argument("--workdir", default=".", help="where MLflow store and outputs go")
    run.add_argument(
        "--containers",
        action="store_true",
        help="run each step in its image (kfp.local DockerRunner, the engine at $DOCKER_HOST), "
        "tracking to an MLflow server segpipe starts on 127.0.0.1; build the images first with "
        "`make images`",
    )
    run.add_argument("--tag", default=None, help="with --containers: image tag (default: version)")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="stream every step's full output (kfp.local, Beam, TensorFlow) as it comes; "
        "without it, a line per step and the full output in the run's log file",
    )
    run.set_defaults(func=cmd_run)

    pred = commands.add_parser(
        "predict",
        help="segment images with a published model: class-index masks and overlays",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  segpipe predict --model models:/segpipe-unet@champion --input photos/ --output out/\n"
        "  segpipe predict --model models:/segpipe-unet/3 --input 'shots/*.jpg' --output out/\n"
        "  segpipe predict --model exports/segpipe-unet/3 --input img.png --output out/\n"
        "  segpipe predict --model gs://b/exports/segpipe-unet/3 --input gs://b/photos/ \\\n"
        "    --output gs://b/masks/ --runner DataflowRunner --beam-options '--project=P ...'\n"
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
    pred.add_argument(
        "--batch-size",
        type=int,
        default=4,
        help="images of one size segmented together (default: 4)",
    )
    pred.add_argument(
        "--no-tta",
        action="store_true",
        help="one pass per image, without the test-time augmentation the model was exported "
        "with (flip_tta, tta_scales): faster, but not the model the gate scored",
    )
    pred.add_argument(
        "--runner",
        default="",
        help="run as an Apache Beam job on this runner (DirectRunner, PortableRunner, "
        "DataflowRunner, FlinkRunner, SparkRunner); default: threads in this process",
    )
    pred.add_argument(
        "--beam-options",
        default="",
        help="with --runner: Beam flags, e.g. '--project=P --region=R --temp_location=gs://...'",
    )
    pred.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own output as it comes"
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
    back.add_argument("--alias", default=DEFAULT_ALIAS, help="the alias to move back")
    back.set_defaults(func=cmd_rollback)

    promote = commands.add_parser(
        "promote",
        help="point the champion alias at a version by hand, with a recorded reason",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  segpipe promote --model segpipe-unet --version 3 --force "
        "--reason 'label fix verified'\n"
        "previous moves to the version replaced. A rolled-back version needs --force: pipeline\n"
        "runs never promote one again. The reason is tagged on the version and its pipeline run.",
    )
    promote.add_argument("--model", required=True, help="registered model name")
    promote.add_argument("--version", required=True, help="the version to promote")
    promote.add_argument("--reason", required=True, help="why: recorded with the promotion")
    promote.add_argument("--force", action="store_true", help="promote a rolled-back version")
    promote.add_argument("--alias", default=DEFAULT_ALIAS, help="the alias to move")
    promote.set_defaults(func=cmd_promote)

    browse = commands.add_parser(
        "ui",
        help="serve the MLflow UI on a local store and print the runs table's link",
        description="Serve the MLflow UI on 127.0.0.1 over a local store (SQLite) and print the "
        "link to segpipe's runs table (model-training mode). For an http tracking server, "
        "print the link: the server serves the UI itself.",
        epilog="example: segpipe ui --workdir build/run   (the store segpipe run wrote there)",
    )
    browse.add_argument(
        "--workdir", default=".", help="segpipe run's --workdir: its mlflow.db (default: .)"
    )
    browse.add_argument(
        "--store",
        default=None,
        help="a tracking URI instead (default: $MLFLOW_TRACKING_URI, else the workdir's store)",
    )
    browse.add_argument(
        "--artifacts", default=None, help="the artifact folder of a store served by a server"
    )
    browse.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="experiment to link")
    browse.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")
    browse.set_defaults(func=cmd_ui)
