"""The `segpipe` command line: sample-data, run (kfp.local), compile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.common.config import PipelineConfig

SAMPLE_CLASS_NAMES = "background,circle,square,triangle"


def _parse_params(pairs: list[str]) -> dict[str, object]:
    """`k=v` strings to pipeline parameters, typed by the parameter's default."""
    defaults = PipelineConfig().parameters()
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param expects key=value, got {pair!r}")
        if key not in defaults:
            raise SystemExit(f"unknown pipeline parameter {key!r}; known: {', '.join(defaults)}")
        kind = type(defaults[key])
        try:
            params[key] = kind(value)
        except ValueError as error:
            raise SystemExit(f"--param {key}: {value!r} is not a valid {kind.__name__}") from error
    return params


def cmd_sample_data(args: argparse.Namespace) -> int:
    from components.common.sample_data import write_sample_data

    count = write_sample_data(args.directory, count=args.count, seed=args.seed)
    print(f"wrote {count} image + mask pairs to {args.directory}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.local import run_local

    workdir = Path(args.workdir).resolve()
    params = _parse_params(args.param)
    data = args.data
    if data is None:
        from components.common.sample_data import write_sample_data

        data = str(workdir / "segpipe-data" / "sample")
        if not Path(data, "images").is_dir():
            write_sample_data(data)
        params.setdefault("class_names", SAMPLE_CLASS_NAMES)
    summary = run_local({"data_dir": str(Path(data).resolve()), **params}, workdir)
    store = summary.tracking_uri
    print()
    print("segpipe run finished")
    print(f"  mean IoU:   {summary.mean_iou:.4f}")
    print(f"  gate:       {'PASSED' if summary.passed else 'FAILED'}: {summary.reason}")
    registered = f"version {summary.registered_version}" if summary.registered_version else None
    print(f"  registered: {registered or 'nothing (gate did not pass)'}")
    print(f"  MLflow run: {summary.train_run_id}")
    print(f"  browse:     mlflow ui --backend-store-uri {store}   (or: make ui)")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from kfp import compiler

    from components.common.images import step_images
    from pipelines.pipeline import build_pipeline

    pipeline = build_pipeline(step_images(args.registry, args.tag))
    compiler.Compiler().compile(
        pipeline, args.output, pipeline_parameters=_parse_params(args.param)
    )
    print(f"wrote {args.output}")
    return 0


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
    run.add_argument("--workdir", default=".", help="where MLflow store and outputs go")
    run.set_defaults(func=cmd_run)

    comp = commands.add_parser("compile", help="compile the pipeline to YAML")
    comp.add_argument("-o", "--output", default="pipeline.yaml")
    comp.add_argument("--registry", default="", help="image registry prefix")
    comp.add_argument("--tag", default=None, help="image tag (default: package version)")
    comp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    comp.set_defaults(func=cmd_compile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
