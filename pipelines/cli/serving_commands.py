"""`segpipe serve-manifest`: a KServe InferenceService that serves the champion."""

from __future__ import annotations

import argparse
import sys

from components.common.settings.config import DEFAULT_ALIAS, DEFAULT_MODEL_NAME

EXAMPLE = """example:
  segpipe serve-manifest --export-root gs://BUCKET/exports -o isvc.yaml
  kubectl apply -n models -f isvc.yaml

KServe's TensorFlow Serving runtime serves <export-root>/<model>/ (the highest numbered,
complete version, which must be the champion). A client then POSTs to
  http://HOST/v1/models/NAME:predict
  {"signature_name": "serving_default", "inputs": {"image_bytes": {"b64": "<base64 PNG>"}}}
and gets {"outputs": [[class id, ...], ...]} at the image's size. docs/publishing.md has more.
The champion is read at $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db)."""


def cmd_serve_manifest(args: argparse.Namespace) -> int:
    import yaml

    from pipelines.cluster.serving import (
        ServingRefused,
        champion_version,
        inference_service,
        serving_target,
    )

    if not args.export_root.startswith(("gs://", "s3://")):
        raise SystemExit(
            f"segpipe serve-manifest: KServe cannot fetch {args.export_root}: the export root "
            "must be a bucket the cluster reads (gs://... or s3://...)"
        )
    try:
        version = champion_version(args.model, args.alias)
        target = serving_target(args.export_root, args.model, args.alias, version)
        manifest = inference_service(
            target, args.name, args.namespace, args.service_account, args.cpu, args.memory
        )
    except (ServingRefused, LookupError, RuntimeError) as error:
        raise SystemExit(f"segpipe serve-manifest: {error}") from error
    text = yaml.safe_dump(manifest, sort_keys=False)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(
            f"wrote {args.output}: InferenceService {manifest['metadata']['name']} serving "
            f"{args.model} version {version} from {target.base_uri}"
        )
    return 0


def add_commands(commands) -> None:
    """The `serve-manifest` sub-command on `commands` (argparse sub-parsers)."""
    parser = commands.add_parser(
        "serve-manifest",
        help="write a KServe InferenceService that serves the champion (TensorFlow Serving)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLE,
    )
    parser.add_argument(
        "--export-root",
        required=True,
        help="the pipeline's export_root, a bucket (gs://...): where publish wrote the versions",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME, help="registered model name")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help="the alias to serve")
    parser.add_argument(
        "--name", default="", help="InferenceService name (default: the model name)"
    )
    parser.add_argument("--namespace", default="", help="namespace (default: kubectl's)")
    parser.add_argument(
        "--service-account",
        default="",
        help="service account with read access to the bucket (e.g. Workload Identity)",
    )
    parser.add_argument("--cpu", default="1", help="CPU request and limit (default: 1)")
    parser.add_argument("--memory", default="2Gi", help="memory request and limit (default: 2Gi)")
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    parser.set_defaults(func=cmd_serve_manifest)
