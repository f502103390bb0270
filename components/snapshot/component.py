"""KFP wrapper of the snapshot step."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output


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
    early_stopping_patience: int,
    checkpoint_root: str,
    checkpoint_every_steps: int,
    warm_start: bool,
    precision: str,
    jit_compile: bool,
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
    resolves `dsl.If` only on a task's sole `Output`. `snapshot` holds manifest.parquet,
    snapshot.json and diff.json; `report` says what changed (or "unchanged, nothing to do").
    """
    from components.common.config import PreprocessConfig, SnapshotConfig, TrainConfig
    from components.snapshot.snapshot import take_snapshot

    preprocess = PreprocessConfig(
        layout=layout,
        image_glob=image_glob,
        image_regex=image_regex,
        mask_pattern=mask_pattern,
        list_files=list_files,
        strip_prefix=strip_prefix,
        mask_encoding=mask_encoding,
        binary_threshold=binary_threshold,
        palette=palette,
        ignore_values=ignore_values,
        num_classes=num_classes,
        class_names=class_names,
        image_height=image_height,
        image_width=image_width,
        resize_mode=resize_mode,
        grayscale=grayscale,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_reject_fraction=max_reject_fraction,
        max_pixels=max_pixels,
        allow_empty_train_classes=allow_empty_train_classes,
        num_shards=num_shards,
        target_shard_mb=target_shard_mb,
        runner=runner,
        direct_running_mode=direct_running_mode,
        beam_options=beam_options,
    )
    train = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        unet_width=unet_width,
        unet_depth=unet_depth,
        input_height=input_height,
        input_width=input_width,
        seed=seed,
        architecture=architecture,
        backbone=backbone,
        backbone_weights=backbone_weights,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        momentum=momentum,
        warmup_epochs=warmup_epochs,
        class_weights=class_weights,
        class_weight_power=class_weight_power,
        dice_weight=dice_weight,
        train_cache=train_cache,
        flip=flip,
        scale_min=scale_min,
        scale_max=scale_max,
        color_jitter=color_jitter,
        early_stopping_patience=early_stopping_patience,
        checkpoint_root=checkpoint_root,
        checkpoint_every_steps=checkpoint_every_steps,
        warm_start=warm_start,
        precision=precision,
        jit_compile=jit_compile,
        system_metrics=system_metrics,
        tracking_outage_s=tracking_outage_s,
    )
    settings = SnapshotConfig(skip_unchanged=skip_unchanged, hash_local_files=hash_local_files)
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
            "status": "unchanged, nothing to do" if result.skipped else "changed",
            "compared_with": result.baseline.label(),
            "mlflow_run_id": result.run_id,
            "pipeline_run_id": pipeline_run_id,
            **({f"inputs_{k}": v for k, v in result.diff.counts().items()} if result.diff else {}),
        }
    )
    return "" if result.skipped else result.info.data_fingerprint


def snapshot_component(image: str):
    """The snapshot component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(snapshot)
