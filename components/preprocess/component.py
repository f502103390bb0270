"""KFP wrapper of the preprocess step."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output


def preprocess(
    data_dir: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
    counts: Output[Metrics],
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
    experiment: str,
):
    """Validate, resize and shard `data_dir`'s image + mask pairs into TFRecords.

    `report` is the data statistics (Markdown), `counts` the inputs, rejects and examples.
    """
    from components.common.config import PreprocessConfig
    from components.preprocess.preprocessor import preprocess as run_step

    config = PreprocessConfig(
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
    result = run_step(data_dir, dataset.path, config, experiment)
    with open(report.path, "w") as handle:
        handle.write(result.report_markdown)
    for key, value in result.counts().items():
        counts.log_metric(key, value)


def preprocess_component(image: str):
    """The preprocess component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(preprocess)
