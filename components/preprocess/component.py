"""KFP wrapper of the preprocess step."""

from kfp import dsl
from kfp.dsl import Dataset, Output


def preprocess(
    data_dir: str,
    dataset: Output[Dataset],
    image_height: int,
    image_width: int,
    num_classes: int,
    class_names: str,
    val_fraction: float,
    num_shards: int,
    runner: str,
    direct_running_mode: str,
):
    """Validate, resize and shard `data_dir`'s image + mask pairs into TFRecords."""
    from components.common.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess

    config = PreprocessConfig(
        image_height=image_height,
        image_width=image_width,
        num_classes=num_classes,
        class_names=class_names,
        val_fraction=val_fraction,
        num_shards=num_shards,
        runner=runner,
        direct_running_mode=direct_running_mode,
    )
    run_preprocess(data_dir, dataset.path, config)


def preprocess_component(image: str):
    """The preprocess component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(preprocess)
