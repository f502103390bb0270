"""The snapshot step: manifest, fingerprints, diff against the champion, skip decision."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from components.common import storage
from components.common.data.manifest import manifest_sha256, read_manifest, write_manifest
from components.common.data.manifest_diff import diff_manifests
from components.common.settings.config import (
    PreprocessConfig,
    RunContext,
    SnapshotConfig,
    TrainConfig,
)
from components.common.tracking.lineage import (
    DATA_FINGERPRINT_TAG,
    LINEAGE_TAGS,
    MANIFEST_URI_TAG,
    TRAIN_SETTINGS_TAG,
    data_fingerprint,
    training_settings_sha256,
)
from components.snapshot.snapshot import list_manifest, take_snapshot
from pipelines.sample_data import write_sample_data

CONFIG = PreprocessConfig()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """12 sample pairs at 32x32 in a fresh folder each test may change."""
    folder = tmp_path / "data"
    write_sample_data(str(folder), count=12, seed=3, size=32)
    return folder


def _add_pairs(data: Path, count: int, seed: int = 9) -> None:
    """`count` new pairs, named apart from the existing ones."""
    extra = data.parent / f"extra-{seed}"
    write_sample_data(str(extra), count=count, seed=seed, size=32)
    for kind in ("images", "masks"):
        for path in (extra / kind).iterdir():
            shutil.copy(path, data / kind / f"new_{path.name}")


def _relabel(mask: Path) -> None:
    """Rewrite a mask with one more labelled square: new bytes, same name."""
    from PIL import Image

    image = Image.open(mask)
    image.paste(3, (0, 0, 8, 8))
    image.save(mask)


def test_the_manifest_lists_every_input_with_its_size_and_identity_without_decoding(data: Path):
    (data / "images" / "broken.png").write_bytes(b"not a png at all")  # listed, never decoded
    (data / "masks" / "broken.png").write_bytes(b"nor this")
    (data / "images" / "notes.txt").write_text("stray")
    rows = list_manifest(str(data), CONFIG)
    by_id = {row.source_id: row for row in rows}
    assert len(rows) == 14
    broken = by_id["broken"]
    assert broken.problem == "" and broken.image_size == len(b"not a png at all")
    assert broken.image_identity.startswith("mtime_ns:")
    assert by_id["notes.txt"].problem == "unsupported_format"
    sample = by_id["sample_00000"]
    assert sample.image_size == os.path.getsize(sample.image_path)
    assert sample.mask_identity == f"mtime_ns:{os.stat(sample.mask_path).st_mtime_ns}"
    assert sample.image_generation == 0


def test_a_missing_mask_is_in_the_manifest_as_what_preprocess_will_reject(data: Path):
    os.remove(data / "masks" / "sample_00004.png")
    row = {r.source_id: r for r in list_manifest(str(data), CONFIG)}["sample_00004"]
    assert row.problem == "missing_mask"
    assert row.mask_path == "" and row.mask_size == -1 and row.mask_identity == ""


def test_the_fingerprint_changes_exactly_when_data_or_output_settings_do(data: Path):
    def fingerprint(config: PreprocessConfig = CONFIG, hash_local: bool = False) -> str:
        return data_fingerprint(
            manifest_sha256(list_manifest(str(data), config, hash_local)), config
        )

    first = fingerprint()
    assert fingerprint() == first  # listing again: same fingerprint
    # how preprocess runs is not what it makes
    assert fingerprint(dataclasses.replace(CONFIG, runner="DataflowRunner")) == first
    assert fingerprint(dataclasses.replace(CONFIG, beam_options="--project p")) == first
    assert fingerprint(dataclasses.replace(CONFIG, image_height=64)) != first
    assert fingerprint(dataclasses.replace(CONFIG, val_fraction=0.3)) != first

    hashed = fingerprint(hash_local=True)
    mask = data / "masks" / "sample_00002.png"
    os.utime(mask, ns=(0, os.stat(mask).st_mtime_ns + 10**9))  # touched, same bytes
    assert fingerprint() != first  # size + mtime cannot tell
    assert fingerprint(hash_local=True) == hashed  # the content hash can
    _relabel(mask)
    assert fingerprint(hash_local=True) != hashed


def test_training_settings_digest_ignores_where_checkpoints_go():
    base = training_settings_sha256(TrainConfig())
    assert training_settings_sha256(TrainConfig(checkpoint_root="gs://b/ckpt")) == base
    assert training_settings_sha256(TrainConfig(system_metrics=False)) == base
    assert training_settings_sha256(TrainConfig(epochs=21)) != base
    assert training_settings_sha256(TrainConfig(learning_rate=1e-3)) != base


def test_the_diff_counts_ten_added_one_changed_one_removed(data: Path, tmp_path: Path):
    old = list_manifest(str(data), CONFIG)
    path = str(tmp_path / "manifest.parquet")
    write_manifest(path, old, {"data_fingerprint": "x"})
    assert read_manifest(path) == old  # a Parquet round trip keeps every field

    _add_pairs(data, 10)
    _relabel(data / "masks" / "sample_00007.png")
    for kind in ("images", "masks"):
        os.remove(data / kind / "sample_00001.png")
    diff = diff_manifests(read_manifest(path), list_manifest(str(data), CONFIG))
    assert diff.counts() == {"added": 10, "removed": 1, "changed": 1, "unchanged": 10}
    assert diff.added == sorted(f"new_sample_{i:05d}" for i in range(10))
    assert diff.removed == ["sample_00001"]
    assert diff.changed == {"sample_00007": ["mask"]}
    assert diff.summary() == "10 added, 1 removed, 1 changed, 10 unchanged"


def test_reading_something_else_as_a_manifest_names_the_file(tmp_path: Path):
    path = tmp_path / "stats.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=f"{path} is not a segpipe manifest"):
        read_manifest(str(path))


class _Requests:
    """Counts what the storage client is asked: listings, and any per-object call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from google.cloud import storage as gcs_storage

        self.listings: list[str] = []
        self.per_object: list[str] = []
        original = gcs_storage.Client.list_blobs

        def list_blobs(client, bucket, *args, **kwargs):
            self.listings.append(kwargs.get("prefix", ""))
            return original(client, bucket, *args, **kwargs)

        monkeypatch.setattr(gcs_storage.Client, "list_blobs", list_blobs)
        for name in ("exists", "reload", "download_as_bytes", "download_to_filename"):
            original_method = getattr(gcs_storage.Blob, name)

            def counted(blob, *args, _name=name, _method=original_method, **kwargs):
                self.per_object.append(f"{_name} {blob.name}")
                return _method(blob, *args, **kwargs)

            monkeypatch.setattr(gcs_storage.Blob, name, counted)


def _upload(gcs, data: Path, prefix: str) -> None:
    bucket = gcs.bucket("segpipe-test")
    for path in sorted(data.rglob("*")):
        if path.is_file():
            bucket.blob(f"{prefix}/{path.relative_to(data)}").upload_from_filename(str(path))


def test_on_gcs_the_manifest_comes_from_one_listing_per_folder_with_checksums(
    gcs, data: Path, monkeypatch: pytest.MonkeyPatch
):
    _upload(gcs, data, "raw")
    requests = _Requests(monkeypatch)
    rows = list_manifest("gs://segpipe-test/raw", CONFIG)
    assert len(rows) == 12
    assert sorted(requests.listings) == ["raw/"]  # the data root once, not a folder twice
    assert requests.per_object == []  # no object read, no per-object request
    blob = gcs.bucket("segpipe-test").get_blob("raw/masks/sample_00003.png")
    row = {r.source_id: r for r in rows}["sample_00003"]
    assert row.mask_identity == f"md5:{blob.md5_hash}"
    assert row.mask_size == blob.size and row.mask_generation == blob.generation > 0

    # a re-upload of the same bytes is a new generation, not a change
    before = manifest_sha256(rows)
    blob.upload_from_filename(str(data / "masks" / "sample_00003.png"))
    again = list_manifest("gs://segpipe-test/raw", CONFIG)
    assert {r.source_id: r for r in again}["sample_00003"].mask_generation != row.mask_generation
    assert manifest_sha256(again) == before
    _relabel(data / "masks" / "sample_00003.png")
    blob.upload_from_filename(str(data / "masks" / "sample_00003.png"))
    changed = diff_manifests(rows, list_manifest("gs://segpipe-test/raw", CONFIG))
    assert changed.changed == {"sample_00003": ["mask"]}


def test_on_gcs_list_files_are_checked_by_listing_not_one_request_per_object(
    gcs, data: Path, monkeypatch: pytest.MonkeyPatch
):
    lines = [f"images/sample_{i:05d}.png masks/sample_{i:05d}.png" for i in range(12)]
    lines.append("images/gone.png masks/gone.png")
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    _upload(gcs, data, "raw")
    requests = _Requests(monkeypatch)
    config = PreprocessConfig(layout="list-files", list_files="train.txt")
    rows = list_manifest("gs://segpipe-test/raw", config)
    assert {r.source_id: r.problem for r in rows}["gone"] == "missing_image"
    assert sum(r.problem == "" for r in rows) == 12
    assert sorted(requests.listings) == ["raw/"]
    assert requests.per_object == ["download_as_bytes raw/train.txt"]  # the list file itself


def _champion_from(snapshot_dir: Path, train: TrainConfig, name: str = "segpipe-unet") -> str:
    """Register a version the way train + publish record one: the train run logs the snapshot
    and the training settings digest; the version carries the run's lineage tags."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.common.tracking.lineage import log_training_data

    mlflow.set_experiment("segpipe")
    with mlflow.start_run() as run:
        log_training_data(str(snapshot_dir), context="training", model_run=True)
        mlflow.set_tag(TRAIN_SETTINGS_TAG, training_settings_sha256(train))
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, "file:///nowhere", run_id=run.info.run_id)
    tags = client.get_run(run.info.run_id).data.tags
    for key in LINEAGE_TAGS:
        client.set_model_version_tag(name, version.version, key, tags[key])
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


def test_a_snapshot_equal_to_the_champion_skips_only_when_asked(
    mlflow_store, data: Path, tmp_path: Path
):
    from mlflow.tracking import MlflowClient

    train = TrainConfig(epochs=1)
    skip = SnapshotConfig(skip_unchanged=True)
    first = take_snapshot(
        str(data), str(tmp_path / "s1"), CONFIG, train, skip, RunContext("segpipe", "manual")
    )
    assert not first.skipped and first.baseline.version is None and first.diff is None
    assert "No champion yet: 12 inputs" in first.report_markdown
    version = _champion_from(tmp_path / "s1", train)

    again = take_snapshot(
        str(data), str(tmp_path / "s2"), CONFIG, train, skip, RunContext("segpipe", "manual")
    )
    assert again.skipped and again.diff.identical
    assert f"Unchanged since segpipe-unet version {version}: nothing to do" in again.report_markdown
    client = MlflowClient(mlflow_store)
    run = client.get_run(again.run_id)
    assert run.data.tags["segpipe.skipped"] == "true"
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["segpipe.outcome"] == "unchanged, nothing to do"
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == again.info.manifest_sha256[:32]
    assert json.loads((tmp_path / "s2" / "snapshot.json").read_text())["skipped"] is True

    off = take_snapshot(
        str(data),
        str(tmp_path / "s3"),
        CONFIG,
        train,
        SnapshotConfig(),
        RunContext("segpipe", "manual"),
    )
    assert off.unchanged and not off.skipped
    more_epochs = take_snapshot(
        str(data),
        str(tmp_path / "s4"),
        CONFIG,
        TrainConfig(epochs=2),
        skip,
        RunContext("segpipe", "manual"),
    )
    assert more_epochs.data_unchanged and not more_epochs.skipped
    assert "training settings changed" in more_epochs.report_markdown

    _add_pairs(data, 10)
    _relabel(data / "masks" / "sample_00005.png")
    changed = take_snapshot(
        str(data), str(tmp_path / "s5"), CONFIG, train, skip, RunContext("segpipe", "manual")
    )
    assert not changed.skipped
    assert changed.diff.counts() == {"added": 10, "removed": 0, "changed": 1, "unchanged": 11}
    assert "data changed (10 added, 0 removed, 1 changed, 11 unchanged)" in changed.report_markdown
    diff = json.loads((tmp_path / "s5" / "diff.json").read_text())
    assert diff["changed_ids"] == [{"source_id": "sample_00005", "parts": ["mask"]}]


def test_a_champion_without_a_manifest_is_never_unchanged(mlflow_store, data: Path, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    client.create_registered_model("old-model")
    version = client.create_model_version("old-model", "file:///nowhere")
    client.set_registered_model_alias("old-model", "champion", version.version)
    result = take_snapshot(
        str(data),
        str(tmp_path / "s"),
        CONFIG,
        TrainConfig(),
        SnapshotConfig(True),
        RunContext("segpipe", "manual", "old-model"),
    )
    assert not result.unchanged and not result.skipped and result.diff is None
    assert "trained before snapshots" in result.baseline.note and result.lineage_warning


def test_an_unreadable_champion_lineage_is_never_unchanged_and_the_report_says_why(
    mlflow_store, data: Path, tmp_path: Path
):
    """Fail closed: equal fingerprints are not enough when the champion's manifest is not the
    one it recorded, or when its training settings are not recorded at all."""
    from mlflow.tracking import MlflowClient

    from components.common.tracking.lineage import MANIFEST_SHA256_TAG

    client = MlflowClient(mlflow_store)
    train, skip = TrainConfig(epochs=1), SnapshotConfig(skip_unchanged=True)
    take_snapshot(
        str(data), str(tmp_path / "s1"), CONFIG, train, skip, RunContext("segpipe", "manual", "m")
    )
    version = _champion_from(tmp_path / "s1", train, name="m")

    client.set_model_version_tag("m", version, MANIFEST_SHA256_TAG, "0" * 64)  # not its manifest
    tampered = take_snapshot(
        str(data), str(tmp_path / "s2"), CONFIG, train, skip, RunContext("segpipe", "manual", "m")
    )
    assert not tampered.unchanged and not tampered.skipped and tampered.diff is None
    assert "its manifest cannot be read or is not the recorded one" in tampered.baseline.note
    warning = f"WARNING: m version {version}'s lineage cannot be verified"
    assert warning in tampered.report_markdown
    assert "it is not the manifest that version was trained on" in tampered.report_markdown
    assert "retraining rather than trusting it" in tampered.report_markdown
    # loud where runs are listed: the snapshot run and its pipeline run carry the warning
    snapshot_run = client.get_run(tampered.run_id)
    assert snapshot_run.data.tags["segpipe.lineage_unverified"] == tampered.lineage_warning
    parent = client.get_run(snapshot_run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["segpipe.lineage_unverified"] == tampered.lineage_warning

    recorded = client.get_run(client.get_model_version("m", version).run_id).data.tags
    client.set_model_version_tag("m", version, MANIFEST_SHA256_TAG, recorded[MANIFEST_SHA256_TAG])
    client.delete_model_version_tag("m", version, TRAIN_SETTINGS_TAG)
    untold = take_snapshot(
        str(data), str(tmp_path / "s3"), CONFIG, train, skip, RunContext("segpipe", "manual", "m")
    )
    assert not untold.skipped
    assert f"records no {TRAIN_SETTINGS_TAG}" in untold.baseline.note
    assert "WARNING" in untold.report_markdown and "retraining" in untold.report_markdown


def test_a_registry_that_cannot_be_read_means_the_run_goes_on(
    monkeypatch, mlflow_store, data: Path, tmp_path: Path
):
    import components.common.tracking.registry as registry

    def unreachable(*args, **kwargs):
        raise ConnectionError("registry down")

    monkeypatch.setattr(registry, "alias_version", unreachable)
    result = take_snapshot(
        str(data),
        str(tmp_path / "s"),
        CONFIG,
        TrainConfig(),
        SnapshotConfig(True),
        RunContext("segpipe", "manual", "m", "a"),
    )
    assert not result.skipped and result.baseline.unreadable
    assert "Not compared with m's champion (unreadable): cannot read m@a: registry down" in (
        result.report_markdown
    )


def test_the_pipeline_run_gets_the_settings_and_the_data_so_two_runs_compare(
    mlflow_store, data: Path, tmp_path: Path
):
    from mlflow.tracking import MlflowClient

    train, settings = TrainConfig(epochs=7), SnapshotConfig()
    run = RunContext("segpipe", "p-compare")
    result = take_snapshot(str(data), str(tmp_path / "s"), CONFIG, train, settings, run)
    # a retried snapshot task of the same pipeline run adds nothing and fails nothing
    take_snapshot(str(data), str(tmp_path / "s2"), CONFIG, train, settings, run)
    client = MlflowClient(mlflow_store)
    parent_id = client.get_run(result.run_id).data.tags["mlflow.parentRunId"]
    parent = client.get_run(parent_id)
    assert parent.data.params["epochs"] == "7"
    assert parent.data.params["image_height"] == str(CONFIG.image_height)
    assert parent.data.params["skip_unchanged"] == "False"
    (dataset_input, *_) = parent.inputs.dataset_inputs
    assert dataset_input.dataset.digest == result.info.digest
    assert dataset_input.dataset.name == data.name
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert tags["inputs"] == "12" and tags["mlflow.data.context"] == "pipeline run"


def test_the_dataset_input_needs_no_pandas(tmp_path: Path, data: Path):
    """The step images carry no pandas: the dataset object MLflow logs must not need it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from components.common.tracking.lineage import _dataset_source\n"
        "from mlflow.data.meta_dataset import MetaDataset\n"
        f"print(MetaDataset(_dataset_source({str(data)!r}), name='d', digest='x').digest)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "x"


def test_storage_describe_reports_sizes_and_leaves_out_what_is_not_a_file(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(b"12345")
    (tmp_path / "folder").mkdir()
    found = storage.describe([str(tmp_path / n) for n in ("a.png", "folder", "none.png")])
    assert list(found) == [str(tmp_path / "a.png")]
    assert found[str(tmp_path / "a.png")].size == 5
    assert MANIFEST_URI_TAG in LINEAGE_TAGS and DATA_FINGERPRINT_TAG in LINEAGE_TAGS


def test_two_versions_lead_back_to_their_manifests_and_their_difference(
    mlflow_store, data: Path, tmp_path: Path
):
    from mlflow.tracking import MlflowClient

    from components.common.tracking.lineage import MANIFEST_SHA256_TAG
    from components.common.tracking.version_data import diff_versions, version_data

    train, settings = TrainConfig(), SnapshotConfig()
    snapshot = take_snapshot(
        str(data),
        str(tmp_path / "a"),
        CONFIG,
        train,
        settings,
        RunContext("segpipe", "manual", "m"),
    )
    first = _champion_from(tmp_path / "a", train, "m")
    _add_pairs(data, 10)
    _relabel(data / "masks" / "sample_00002.png")
    take_snapshot(
        str(data),
        str(tmp_path / "b"),
        CONFIG,
        train,
        settings,
        RunContext("segpipe", "manual", "m"),
    )
    second = _champion_from(tmp_path / "b", train, "m")

    client = MlflowClient(mlflow_store)
    found = version_data(client, "m", first)
    assert found.manifest_sha256 == snapshot.info.manifest_sha256 and len(found.rows) == 12
    assert found.manifest_uri.endswith("/dataset/manifest.parquet")
    old, new, diff = diff_versions(client, "m", first, second)
    assert diff.counts() == {"added": 10, "removed": 0, "changed": 1, "unchanged": 11}
    assert diff.changed == {"sample_00002": ["mask"]}

    client.set_model_version_tag("m", first, MANIFEST_SHA256_TAG, "0" * 64)  # not what it holds
    with pytest.raises(ValueError, match="it is not the manifest that version was trained on"):
        version_data(client, "m", first)
    bare = client.create_model_version("m", "file:///nowhere")
    with pytest.raises(LookupError, match=f"m version {bare.version} records no manifest"):
        version_data(client, "m", bare.version)
    with pytest.raises(LookupError, match="m version 99 does not exist"):
        version_data(client, "m", "99")
