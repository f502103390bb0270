"""KFP wrapper of the preprocess step."""

from kfp.dsl import Dataset, Markdown, Metrics, Output

from components.common.settings.config import PreprocessConfig
from components.common.settings.step_component import step_component


# The settings arrive as dataclasses; step_component gives kfp one input per field.
def preprocess(
    data_dir: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
    counts: Output[Metrics],
    config: PreprocessConfig,
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
    from components.preprocess.preprocessor import preprocess as run_step

    result = run_step(data_dir, dataset.path, config, experiment, data_fingerprint=data_fingerprint)
    with open(report.path, "w") as handle:
        handle.write(result.report_markdown)
    for key, value in result.counts().items():
        counts.log_metric(key, value)


def preprocess_component(image: str):
    """The preprocess component running in `image`."""
    return step_component(preprocess, image)
