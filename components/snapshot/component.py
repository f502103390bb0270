"""KFP wrapper of the snapshot step."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from components.common.component_docs import with_setting_docs


# Args: lists the other inputs; with_setting_docs adds each setting's help from config.py.
def snapshot(
    data_dir: str,
    snapshot: Output[Dataset],
    report: Output[Markdown],
    skip_unchanged: bool,
    hash_local_files: bool,
    layout: str,
    image_glob: str,
    image_regex: str,
    mask_pattern: str,
    list_files: str,
    strip_prefix: str,
    mask_encoding: str,
    binary_threshold: int,
    palette: str,
    ignore_values: str,
    num_classes: int,
    class_names: str,
    image_height: int,
    image_width: int,
    resize_mode: str,
    grayscale: bool,
    val_fraction: float,
    test_fraction: float,
    max_reject_fraction: float,
    max_pixels: int,
    allow_empty_train_classes: bool,
    num_shards: int,
    target_shard_mb: int,
    runner: str,
    direct_running_mode: str,
    beam_options: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    unet_width: int,
    unet_depth: int,
    input_height: int,
    input_width: int,
    seed: int,
    deterministic: bool,
    architecture: str,
    backbone: str,
    backbone_weights: str,
    optimizer: str,
    lr_schedule: str,
    momentum: float,
    warmup_epochs: int,
    class_weights: bool,
    class_weight_power: float,
    dice_weight: float,
    train_cache: str,
    flip: bool,
    scale_min: float,
    scale_max: float,
    color_jitter: float,
    crop_height: int,
    crop_width: int,
    validate_every: int,
    train_on_val: bool,
    early_stopping_patience: int,
    checkpoint_root: str,
    checkpoint_every_steps: int,
    warm_start: bool,
    precision: str,
    jit_compile: bool,
    flip_tta: bool,
    system_metrics: bool,
    tracking_outage_s: int,
    model_name: str,
    alias: str,
    experiment: str,
    pipeline_run_id: str,
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
    from components.common.config import (
        PreprocessConfig,
        SnapshotConfig,
        TrainConfig,
        config_from_inputs,
    )
    from components.common.lineage import CHANGED_OUTCOME, UNCHANGED_OUTCOME
    from components.snapshot.report import headline
    from components.snapshot.snapshot import take_snapshot

    inputs = locals()
    settings = config_from_inputs(SnapshotConfig, inputs)
    preprocess = config_from_inputs(PreprocessConfig, inputs)
    train = config_from_inputs(TrainConfig, inputs)
    result = take_snapshot(
        data_dir,
        snapshot.path,
        preprocess,
        train,
        settings,
        model_name,
        alias,
        experiment,
        pipeline_run_id,
    )
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(result.report_markdown)
    snapshot.metadata.update(
        {
            "data_fingerprint": result.info.data_fingerprint,
            "inputs": result.info.inputs,
            "ignored": result.ignored,
            "status": UNCHANGED_OUTCOME if result.skipped else CHANGED_OUTCOME,
            "headline": headline(result, skip_unchanged),
            "compared_with": result.baseline.label(),
            "warning": result.lineage_warning,
            "mlflow_run_id": result.run_id,
            "pipeline_run_id": pipeline_run_id,
            **({f"inputs_{k}": v for k, v in result.diff.counts().items()} if result.diff else {}),
        }
    )
    return "" if result.skipped else result.info.data_fingerprint


def snapshot_component(image: str):
    """The snapshot component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(with_setting_docs(snapshot))
