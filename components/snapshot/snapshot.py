"""The snapshot step: list the inputs, fingerprint them, compare them with the champion's."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace

from components.common import storage
from components.common.data.manifest import (
    MANIFEST_FILE,
    ManifestRow,
    build_rows,
    manifest_sha256,
    write_manifest,
)
from components.common.data.manifest_diff import ManifestDiff, diff_manifests
from components.common.data.unused_files import (
    IGNORED_FILE,
    IgnoredFile,
    list_inputs,
    write_ignored,
)
from components.common.settings.config import (
    PreprocessConfig,
    RunContext,
    SnapshotConfig,
    TrainConfig,
)
from components.common.tracking.lineage import (
    DATA_CHANGES_TAG,
    DATA_FINGERPRINT_TAG,
    DIFF_FILE,
    LINEAGE_UNVERIFIED_TAG,
    OUTCOME_TAG,
    SKIPPED_TAG,
    SNAPSHOT_FILE,
    TRAIN_SETTINGS_TAG,
    UNCHANGED_OUTCOME,
    UNCHANGED_TAG,
    SnapshotInfo,
    data_fingerprint,
    data_set,
    log_training_data,
    training_settings_sha256,
)
from components.snapshot.report import REPORT_FILE, headline, render_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    """The champion the snapshot was compared with; `version` None when there is none."""

    model_name: str
    version: str | None
    data_fingerprint: str = ""
    train_settings_sha256: str = ""
    note: str = ""  # why there is no diff (no champion, no manifest recorded, unreadable)
    unreadable: bool = False  # the registry could not be read: a champion may exist
    unverified: bool = False  # a champion exists, but its lineage cannot be verified (note: why)

    def label(self) -> str:
        if self.unreadable:
            return f"{self.model_name}'s champion (unreadable)"
        return f"{self.model_name} version {self.version}" if self.version else "no champion"


@dataclass(frozen=True)
class Snapshot:
    """What the step found: the data's identity, what changed, and whether the run goes on."""

    info: SnapshotInfo
    rejected_at_listing: int  # inputs the listing already knows preprocess will reject
    ignored: int  # files under the data root that are neither inputs nor rejects (ignored.jsonl)
    listing_seconds: float
    baseline: Baseline
    diff: ManifestDiff | None  # None: no champion manifest to compare with
    data_unchanged: bool  # same fingerprint as the champion's data
    settings_unchanged: bool  # same training settings as the champion's
    skipped: bool  # unchanged and skip_unchanged: nothing to do
    report_markdown: str
    run_id: str

    @property
    def unchanged(self) -> bool:
        return self.data_unchanged and self.settings_unchanged

    @property
    def lineage_warning(self) -> str:
        """Why the champion's lineage could not be verified (the run retrains), or ""."""
        if not self.baseline.unverified:
            return ""
        return (
            f"{self.baseline.label()}'s lineage cannot be verified: {self.baseline.note}; "
            "retraining rather than trusting it"
        )


def list_manifest(
    data_dir: str, preprocess: PreprocessConfig, hash_local_files: bool = False
) -> list[ManifestRow]:
    """The manifest rows of `data_dir` in preprocess's layout: listed, never decoded.

    gs:// folders are each listed once (sizes and checksums come with the listing); local files
    are stat'ed, or read and hashed with `hash_local_files`.
    """
    return list_data(data_dir, preprocess, hash_local_files)[0]


def list_data(
    data_dir: str, preprocess: PreprocessConfig, hash_local_files: bool = False
) -> tuple[list[ManifestRow], list[IgnoredFile]]:
    """The manifest rows, and the other files under `data_dir` with the rule that left each
    out: every file there is one or the other."""
    with storage.remember_listings():  # describe reuses the listings of list_inputs
        pairs, ignored = list_inputs(data_dir, preprocess)
        paths = {p for pair in pairs for p in (pair.image_path, pair.mask_path) if p}
        files = storage.describe(paths)
    return build_rows(pairs, files, hash_local_files), ignored


def take_snapshot(
    data_dir: str,
    output_dir: str,
    preprocess: PreprocessConfig,
    train: TrainConfig,
    settings: SnapshotConfig,
    run: RunContext,
) -> Snapshot:
    """Write the manifest, its fingerprints and the diff against `run.model_name@run.alias`'s
    manifest to `output_dir` (manifest.parquet, snapshot.json, diff.json, report.md), tracked
    in an MLflow run; decide whether the run can end here (unchanged and `skip_unchanged`)."""
    from components.common.tracking.runs import step_run

    started = time.monotonic()
    rows, ignored = list_data(data_dir, preprocess, settings.hash_local_files)
    listing_seconds = time.monotonic() - started
    if not rows:
        raise FileNotFoundError(f"{data_dir}: the {preprocess.layout} layout finds no inputs")
    info = _identify(data_dir, rows, preprocess, train)
    os.makedirs(output_dir, exist_ok=True)
    write_ignored(os.path.join(output_dir, IGNORED_FILE), ignored)
    write_manifest(os.path.join(output_dir, MANIFEST_FILE), rows, _fingerprints(info))
    with step_run("snapshot", run.experiment, run.pipeline_run_id, data_dir=data_dir) as step:
        baseline, old_rows = _champion(run.model_name, run.alias)
        result = _compare(info, rows, old_rows, baseline, settings.skip_unchanged)
        result = replace(
            result,
            ignored=len(ignored),
            listing_seconds=listing_seconds,
            run_id=step.info.run_id,
        )
        result = replace(result, report_markdown=render_report(result, settings.skip_unchanged))
        _write_outputs(output_dir, result)
        _track(result, output_dir, settings.skip_unchanged)
        _describe_pipeline_run(result, (preprocess, train, settings))
    log.info("snapshot: %s", headline(result, settings.skip_unchanged))
    if result.lineage_warning:
        log.warning("snapshot: WARNING: %s", result.lineage_warning)
    return result


def _identify(
    data_dir: str, rows: list[ManifestRow], preprocess: PreprocessConfig, train: TrainConfig
) -> SnapshotInfo:
    """The data's identity: the manifest's digest, the fingerprint of the data as preprocess
    will read it, and the training settings' digest."""
    rows_sha256 = manifest_sha256(rows)
    return SnapshotInfo(
        data_dir=data_dir,
        inputs=len(rows),
        manifest_sha256=rows_sha256,
        data_fingerprint=data_fingerprint(rows_sha256, preprocess),
        train_settings_sha256=training_settings_sha256(train),
    )


def _compare(
    info: SnapshotInfo,
    rows: list[ManifestRow],
    old_rows: list[ManifestRow] | None,
    baseline: Baseline,
    skip_unchanged: bool,
) -> Snapshot:
    """What changed since `baseline` and whether the run ends here (no report, run id or
    listing figures yet)."""
    # an unreadable lineage leaves the baseline's fingerprints empty: never equal
    data_unchanged = baseline.data_fingerprint == info.data_fingerprint
    settings_unchanged = baseline.train_settings_sha256 == info.train_settings_sha256
    return Snapshot(
        info=info,
        rejected_at_listing=sum(1 for row in rows if row.problem),
        ignored=0,
        listing_seconds=0.0,
        baseline=baseline,
        diff=diff_manifests(old_rows, rows) if old_rows is not None else None,
        data_unchanged=data_unchanged,
        settings_unchanged=settings_unchanged,
        skipped=data_unchanged and settings_unchanged and skip_unchanged,
        report_markdown="",
        run_id="",
    )


def _describe_pipeline_run(result: Snapshot, configs: tuple) -> None:
    """The pipeline run's parent run gets the run's settings as parameters and the data as its
    dataset input (source, digest, counts), so comparing two pipeline runs shows what changed."""
    from mlflow.entities import DatasetInput, InputTag, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    parent = client.get_run(result.run_id).data.tags.get("mlflow.parentRunId")
    if not parent:
        return
    values = {k: v for config in configs for k, v in asdict(config).items()}
    logged = client.get_run(parent).data.params  # a retried snapshot logs the same again
    params = [Param(k, str(v)) for k, v in sorted(values.items()) if k not in logged]
    if params:
        client.log_batch(parent, params=params)
    counts = {
        "inputs": result.info.inputs,
        "rejected_at_listing": result.rejected_at_listing,
        "ignored": result.ignored,
        **(result.diff.counts() if result.diff else {}),
    }
    tags = [InputTag("mlflow.data.context", "pipeline run")]
    tags += [InputTag(key, str(value)) for key, value in counts.items()]
    dataset = data_set(result.info)._to_mlflow_entity()
    client.log_inputs(parent, datasets=[DatasetInput(dataset, tags)])


def _fingerprints(info: SnapshotInfo) -> dict[str, str]:
    return {
        "manifest_sha256": info.manifest_sha256,
        "data_fingerprint": info.data_fingerprint,
        "train_settings_sha256": info.train_settings_sha256,
    }


def _champion(model_name: str, alias: str) -> tuple[Baseline, list[ManifestRow] | None]:
    """The champion's recorded fingerprints and its verified manifest rows.

    Fails closed: where the champion's lineage (its fingerprints, or a manifest matching its
    recorded digest) cannot be read, the baseline keeps no fingerprint, so the data never
    counts as unchanged, and its `note` says why.
    """
    from mlflow.tracking import MlflowClient

    from components.common.tracking.registry import alias_version
    from components.common.tracking.runs import tracking_uri
    from components.common.tracking.version_data import version_data

    client = MlflowClient(tracking_uri())
    try:
        version = alias_version(client, model_name, alias)
    except Exception as error:  # the registry's errors vary by store; each means "unknown"
        log.warning("snapshot: cannot look up %s@%s: %s", model_name, alias, error)
        note = f"cannot read {model_name}@{alias}: {error}"
        return Baseline(model_name, None, note=note, unreadable=True), None
    if version is None:
        return Baseline(model_name, None, note=f"no {model_name}@{alias} yet"), None
    number, tags = str(version.version), version.tags or {}
    missing = [tag for tag in (DATA_FINGERPRINT_TAG, TRAIN_SETTINGS_TAG) if not tags.get(tag)]
    if missing:
        recorded = " or ".join(missing)
        note = f"version {number} records no {recorded} (edited, or trained before snapshots)"
        return Baseline(model_name, number, note=note, unverified=True), None
    try:
        rows = version_data(client, model_name, number).rows
    except Exception as error:  # missing, unreadable or not the recorded one: all fail closed
        note = f"its manifest cannot be read or is not the recorded one ({error})"
        return Baseline(model_name, number, note=note, unverified=True), None
    baseline = Baseline(
        model_name,
        number,
        data_fingerprint=tags[DATA_FINGERPRINT_TAG],
        train_settings_sha256=tags[TRAIN_SETTINGS_TAG],
    )
    return baseline, rows


def _document(result: Snapshot) -> dict[str, object]:
    """snapshot.json: the data's identity (SnapshotInfo's fields first) and the decision."""
    return {
        **asdict(result.info),
        "rejected_at_listing": result.rejected_at_listing,
        "ignored": result.ignored,
        "listing_seconds": round(result.listing_seconds, 3),
        "baseline": asdict(result.baseline),
        "diff": result.diff.counts() if result.diff else None,
        "data_unchanged": result.data_unchanged,
        "settings_unchanged": result.settings_unchanged,
        "skipped": result.skipped,
        "run_id": result.run_id,
    }


def _write_outputs(output_dir: str, result: Snapshot) -> None:
    diff = result.diff.as_dict() if result.diff else {"baseline": result.baseline.note}
    for name, document in ((SNAPSHOT_FILE, _document(result)), (DIFF_FILE, diff)):
        storage.write_json(os.path.join(output_dir, name), document)
    with open(os.path.join(output_dir, REPORT_FILE), "w", encoding="utf-8") as handle:
        handle.write(result.report_markdown)


def _track(result: Snapshot, output_dir: str, skip_unchanged: bool) -> None:
    """The snapshot's MLflow run: the dataset input, manifest, diff, report, counts, decision."""
    import mlflow
    from mlflow.tracking import MlflowClient

    log_training_data(output_dir, context="snapshot")
    mlflow.log_artifact(os.path.join(output_dir, REPORT_FILE), "dataset")
    metrics = {"inputs": result.info.inputs, "listing_seconds": result.listing_seconds}
    metrics["ignored"] = result.ignored
    mlflow.log_artifact(os.path.join(output_dir, IGNORED_FILE), "dataset")
    if result.diff:
        metrics.update({f"inputs_{k}": v for k, v in result.diff.counts().items()})
    mlflow.log_metrics(metrics)
    tags = {
        DATA_FINGERPRINT_TAG: result.info.data_fingerprint,
        TRAIN_SETTINGS_TAG: result.info.train_settings_sha256,
        UNCHANGED_TAG: str(result.unchanged).lower(),
        SKIPPED_TAG: str(result.skipped).lower(),
        DATA_CHANGES_TAG: headline(result, skip_unchanged)[:5000],
        "segpipe.baseline": result.baseline.label(),
    }
    if result.lineage_warning:
        tags[LINEAGE_UNVERIFIED_TAG] = result.lineage_warning[:5000]
    mlflow.set_tags(tags)
    client = MlflowClient()
    parent = client.get_run(result.run_id).data.tags.get("mlflow.parentRunId")
    if parent and result.skipped:  # the pipeline run says so too, where runs are listed
        client.set_tag(parent, OUTCOME_TAG, UNCHANGED_OUTCOME)
        client.set_tag(parent, SKIPPED_TAG, "true")
    if parent and result.lineage_warning:  # finish adds it to the parent's description
        client.set_tag(parent, LINEAGE_UNVERIFIED_TAG, result.lineage_warning[:5000])
