"""Which data and settings a model was trained on: fingerprints, their tags, the MLflow dataset."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass

from components.common import storage
from components.common.settings.config import PreprocessConfig, TrainConfig

SNAPSHOT_FILE = "snapshot.json"  # in the snapshot folder, next to manifest.parquet and diff.json
DIFF_FILE = "diff.json"
MANIFEST_ARTIFACT = "dataset/manifest.parquet"  # where train and evaluate log the manifest

# Tags on the train run, copied by publish onto the registered version: what the model saw.
DATA_FINGERPRINT_TAG = "segpipe.data_fingerprint"
MANIFEST_SHA256_TAG = "segpipe.manifest_sha256"
MANIFEST_URI_TAG = "segpipe.manifest_uri"
TRAIN_SETTINGS_TAG = "segpipe.train_settings_sha256"
LINEAGE_TAGS = (DATA_FINGERPRINT_TAG, MANIFEST_SHA256_TAG, MANIFEST_URI_TAG, TRAIN_SETTINGS_TAG)

# The snapshot's outcome: a run whose data and training settings equal the champion's ends there
UNCHANGED_TAG = "segpipe.data_unchanged"  # on the snapshot run: data + settings = champion's
SKIPPED_TAG = "segpipe.skipped"  # on the snapshot run and its pipeline run: the run ended here
OUTCOME_TAG = "segpipe.outcome"  # on the pipeline run when it ended after the snapshot
# on the snapshot run and its pipeline run: why the champion's lineage could not be verified
LINEAGE_UNVERIFIED_TAG = "segpipe.lineage_unverified"
DATA_CHANGES_TAG = "segpipe.data_changes"  # the snapshot's headline: what changed, or why not
UNCHANGED_OUTCOME = "unchanged, nothing to do"
CHANGED_OUTCOME = "changed"

# Settings that change how a step runs, not what it makes: left out of the fingerprints, so
# moving preprocess to Dataflow or the checkpoints to a bucket is not "new data".
PREPROCESS_EXECUTION_ONLY = ("runner", "direct_running_mode", "beam_options")
TRAIN_EXECUTION_ONLY = (
    "train_cache",
    "checkpoint_root",
    "checkpoint_every_steps",
    "system_metrics",
    "tracking_outage_s",
)
DIGEST_LENGTH = 32  # MLflow keeps at most 36 characters of a dataset digest


def _settings_sha256(config: object, leave_out: tuple[str, ...]) -> str:
    values = {k: v for k, v in dataclasses.asdict(config).items() if k not in leave_out}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()


def data_fingerprint(manifest_sha256: str, config: PreprocessConfig) -> str:
    """sha256 of the inputs (the manifest's digest) and the preprocess settings that change
    the shards: equal exactly when preprocess would write the same data set."""
    settings = _settings_sha256(config, PREPROCESS_EXECUTION_ONLY)
    return hashlib.sha256(f"{manifest_sha256}\n{settings}".encode()).hexdigest()


def training_settings_sha256(config: TrainConfig) -> str:
    """sha256 of the train settings that change the model (not where checkpoints go)."""
    return _settings_sha256(config, TRAIN_EXECUTION_ONLY)


@dataclass(frozen=True)
class SnapshotInfo:
    """What snapshot.json says about the data a run reads."""

    data_dir: str
    inputs: int
    manifest_sha256: str
    data_fingerprint: str
    train_settings_sha256: str

    @property
    def digest(self) -> str:
        """The MLflow dataset digest: the manifest's sha256, shortened to what MLflow keeps."""
        return self.manifest_sha256[:DIGEST_LENGTH]


def read_snapshot(snapshot_dir: str) -> SnapshotInfo:
    """The snapshot folder's snapshot.json; a clear error naming the file when it is not one."""
    path = os.path.join(snapshot_dir, SNAPSHOT_FILE)
    try:
        document = storage.read_json(path)
        return SnapshotInfo(**{f.name: document[f.name] for f in dataclasses.fields(SnapshotInfo)})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a snapshot of the snapshot step ({error})") from error


def log_training_data(snapshot_dir: str, context: str, model_run: bool = False) -> SnapshotInfo:
    """Log the snapshot's manifest to the active MLflow run as its dataset input (the UI's
    Dataset column) with the manifest's digest, and the manifest file itself.

    `model_run` (the train run): also tag the run with the lineage tags, the manifest's
    artifact URI included, which publish copies onto the registered version.
    """
    import mlflow

    info = read_snapshot(snapshot_dir)
    dataset = data_set(info)
    mlflow.log_input(
        dataset,
        context=context,
        tags={"inputs": str(info.inputs), "manifest_sha256": info.manifest_sha256},
    )
    folder = os.path.dirname(MANIFEST_ARTIFACT)
    for name in ("manifest.parquet", SNAPSHOT_FILE, DIFF_FILE):
        mlflow.log_artifact(os.path.join(snapshot_dir, name), folder)
    if model_run:
        uri = f"{mlflow.get_artifact_uri().rstrip('/')}/{MANIFEST_ARTIFACT}"
        mlflow.set_tags(
            {
                DATA_FINGERPRINT_TAG: info.data_fingerprint,
                MANIFEST_SHA256_TAG: info.manifest_sha256,
                MANIFEST_URI_TAG: uri,
            }
        )
    return info


def data_set(info: SnapshotInfo):
    """The data as an MLflow dataset: its source (the data folder) and the manifest's digest
    (not the one MetaDataset would make of its own metadata)."""
    from mlflow.data.meta_dataset import MetaDataset

    return MetaDataset(
        _dataset_source(info.data_dir), name=_dataset_name(info.data_dir), digest=info.digest
    )


def _dataset_name(data_dir: str) -> str:
    return os.path.basename(data_dir.rstrip("/")) or data_dir


def _dataset_source(data_dir: str):
    """Where the data lives, as an MLflow dataset source (local or gs://); nothing is read."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():  # a local path matches two equal source kinds: harmless
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(data_dir)
