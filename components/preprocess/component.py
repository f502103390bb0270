"""KFP wrapper of the preprocess step."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from components.common.component_docs import with_setting_docs


# Args: lists the other inputs; with_setting_docs adds each setting's help from config.py.
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
    data_fingerprint: str,
):
    """Validate, resize and shard `data_dir`'s image + mask pairs into TFRecords.

    Args:
        data_dir: the data folder, local or gs://, laid out as `layout` says.
        dataset: TFRecord shards per split, stats.json, dataset.json, rejects.jsonl (output).
        report: the data set's statistics and rejects as Markdown (output).
        counts: the inputs read, rejected and written per split (output, KFP UI metrics).
        data_fingerprint: the snapshot step's fingerprint of the data and these settings: the
            KFP cache key follows the data through it (recorded in lineage.json).
    """
    from components.common.config import PreprocessConfig, config_from_inputs
    from components.preprocess.preprocessor import preprocess as run_step

    config = config_from_inputs(PreprocessConfig, locals())
    result = run_step(data_dir, dataset.path, config, experiment, data_fingerprint=data_fingerprint)
    with open(report.path, "w") as handle:
        handle.write(result.report_markdown)
    for key, value in result.counts().items():
        counts.log_metric(key, value)


def preprocess_component(image: str):
    """The preprocess component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(with_setting_docs(preprocess))
