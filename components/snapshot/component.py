"""KFP wrapper of the snapshot step."""

from kfp.dsl import Dataset, Markdown, Output

from components.common.settings.config import (
    PreprocessConfig,
    RunContext,
    SnapshotConfig,
    TrainConfig,
)
from components.common.settings.step_component import step_component


# The settings arrive as dataclasses; step_component gives kfp one input per field.
def snapshot(
    data_dir: str,
    snapshot: Output[Dataset],
    report: Output[Markdown],
    settings: SnapshotConfig,
    preprocess: PreprocessConfig,
    train: TrainConfig,
    run: RunContext,
) -> str:
    """List `data_dir`'s inputs into a manifest and compare it with the champion's.

    Returns the data fingerprint, which preprocess takes as an input (its cache key), or ""
    when the data and training settings equal the champion's and `skip_unchanged` is on: the
    pipeline's `dsl.If` then ends the run here. A single return value on purpose: kfp.local
    resolves `dsl.If` only on a task's sole `Output`.

    Args:
        data_dir: the data folder, local or gs://, laid out as `layout` says.
        snapshot: manifest.parquet, snapshot.json and diff.json; its metadata says whether the
            run goes on or ends here ("unchanged, nothing to do") (output).
        report: what changed since the champion's data, as Markdown (output).
        pipeline_run_id: the KFP run id; names the MLflow parent run.
    """
    from components.common.tracking.lineage import CHANGED_OUTCOME, UNCHANGED_OUTCOME
    from components.snapshot.report import headline
    from components.snapshot.snapshot import take_snapshot

    result = take_snapshot(data_dir, snapshot.path, preprocess, train, settings, run)
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(result.report_markdown)
    snapshot.metadata.update(
        {
            "data_fingerprint": result.info.data_fingerprint,
            "inputs": result.info.inputs,
            "ignored": result.ignored,
            "status": UNCHANGED_OUTCOME if result.skipped else CHANGED_OUTCOME,
            "headline": headline(result, settings.skip_unchanged),
            "compared_with": result.baseline.label(),
            "warning": result.lineage_warning,
            "mlflow_run_id": result.run_id,
            "pipeline_run_id": run.pipeline_run_id,
            **({f"inputs_{k}": v for k, v in result.diff.counts().items()} if result.diff else {}),
        }
    )
    return "" if result.skipped else result.info.data_fingerprint


def snapshot_component(image: str):
    """The snapshot component running in `image`."""
    return step_component(snapshot, image)
