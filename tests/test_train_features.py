"""Train step features: hardware choice, augmentation, losses, schedules, models, warm start."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from components.common.settings.config import RunContext, TrainConfig
from components.train.hardware import (
    DeviceFacts,
    choose_precision,
    choose_strategy_kind,
    cpu_has_bf16,
    is_multi_worker,
)

# ---- hardware: pure decisions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "kind", "auto"),
    [
        (DeviceFacts(), "default", "float32"),
        (DeviceFacts(cpu_has_bf16=True), "default", "mixed_bfloat16"),
        (DeviceFacts(num_gpus=1), "default", "mixed_float16"),
        (DeviceFacts(num_gpus=4), "mirrored", "mixed_float16"),
        (DeviceFacts(tpu_found=True, num_gpus=0), "tpu", "mixed_bfloat16"),
        (DeviceFacts(multi_worker=True, num_gpus=2), "multi_worker", "mixed_float16"),
    ],
)
def test_strategy_and_precision_follow_the_device_facts(facts, kind, auto):
    assert choose_strategy_kind(facts) == kind
    assert choose_precision("auto", facts) == auto
    assert choose_precision("float32", facts) == "float32"  # an explicit choice wins


def test_precision_typo_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("fp16", DeviceFacts())


def test_tf_config_and_cpuinfo_parsing():
    two = '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief"}}'
    assert is_multi_worker(two)
    assert not is_multi_worker('{"cluster": {"worker": ["a:1"]}}')
    assert not is_multi_worker(None) and not is_multi_worker("")
    assert cpu_has_bf16("processor: 0\nflags\t\t: fpu sse amx_bf16 amx_tile\n")
    assert cpu_has_bf16("flags\t\t: fpu sse avx512f avx512_bf16\n")  # AMD Zen 4: no AMX
    assert not cpu_has_bf16("flags\t\t: fpu sse avx512f avx2\n")
    assert not cpu_has_bf16("bugs\t\t: avx512_bf16\n")  # only the flags line counts


def test_checkpoint_dir_is_stable_per_pipeline_run():
    from components.train.checkpoints import checkpoint_dir_for, state_dir

    assert checkpoint_dir_for("gs://b/ckpt", "run-1") == "gs://b/ckpt/run-1/train"
    assert checkpoint_dir_for("", "run-1", "/w/local_outputs") == (
        "/w/local_outputs/checkpoints/run-1/train"
    )
    assert checkpoint_dir_for("", "run-1", "gs://root") == "gs://root/checkpoints/run-1/train"
    assert checkpoint_dir_for("", "run-1", "minio://mlpipeline/v2") == ""  # TF cannot write it
    assert checkpoint_dir_for("", "run-1") == ""
    assert state_dir("gs://b/c") == "gs://b/c/state"
    assert state_dir("gs://b/c", worker=2) == "gs://b/c/state-worker-2"  # never the chief's files


@pytest.mark.slow
def test_backup_saves_every_n_steps_and_at_every_epoch_end(tmp_path, monkeypatch):
    import keras

    from components.train.checkpoints import EpochAndStepBackup

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    backup = EpochAndStepBackup(str(tmp_path / "state"), every_steps=2)
    saves = []
    original = backup._save_model
    monkeypatch.setattr(backup, "_save_model", lambda: (saves.append(1), original()))
    x, y = np.zeros((10, 2), np.float32), np.zeros((10, 1), np.float32)
    model.fit(x, y, batch_size=2, epochs=2, callbacks=[backup], verbose=0)  # 5 steps an epoch
    assert len(saves) == 2 * (2 + 1)  # steps 2 and 4, then the epoch's end, twice
    state = json.loads((tmp_path / "state" / "training_metadata.json").read_text())
    assert state["epoch"] == 2


# ---- input: joint augmentation -------------------------------------------------------------


def _column_pair(size: int = 32):
    """Image whose red channel encodes the column, mask = column // 8: alignment is checkable."""
    import tensorflow as tf

    columns = np.tile(np.arange(size, dtype=np.float32), (size, 1))
    image = np.stack([columns * 8 + 1, columns, columns], axis=-1)  # +1: never 0 (padding)
    mask = (columns // 8).astype(np.int32)[..., None]
    return tf.constant(image), tf.constant(mask)


def test_flip_moves_image_and_mask_together_and_is_seeded():
    import tensorflow as tf

    from components.train.data import Augmentation, augment

    image, mask = _column_pair()
    flipped_any = False
    for i in range(8):
        seed = tf.constant([7, i], tf.int64)
        out_image, out_mask = augment(image, mask, seed, Augmentation(flip=True))
        again_image, _ = augment(image, mask, seed, Augmentation(flip=True))
        np.testing.assert_array_equal(out_image.numpy(), again_image.numpy())
        columns = (out_image.numpy()[..., 0] - 1) / 8
        np.testing.assert_array_equal(out_mask.numpy()[..., 0], columns // 8)
        flipped_any |= bool(out_mask.numpy()[0, 0, 0] == 3)
    assert flipped_any


def test_downscale_pads_the_mask_with_the_ignore_label():
    import tensorflow as tf

    from components.train.data import Augmentation, augment

    image, mask = _column_pair()
    options = Augmentation(flip=False, scale_min=0.5, scale_max=0.5, ignore_label=255)
    out_image, out_mask = augment(image, mask, tf.constant([1, 2], tf.int64), options)
    assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32, 1)
    ignored = out_mask.numpy()[..., 0] == 255
    # the shrunk image is one block of about 16x16 (sample points fall 15 or 16 to a side)
    rows, cols = np.nonzero(~ignored)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert 15 <= height <= 16 and 15 <= width <= 16 and (~ignored).sum() == height * width
    assert (out_image.numpy()[ignored] == 0).all()
    assert (out_image.numpy()[~ignored][:, 0] > 0).all()
    assert set(np.unique(out_mask.numpy()[~ignored])) <= {0, 1, 2, 3}


def test_upscale_crops_aligned_and_jitter_keeps_range():
    import tensorflow as tf

    from components.train.data import Augmentation, augment

    image, mask = _column_pair()
    options = Augmentation(flip=False, scale_min=2.0, scale_max=2.0, color_jitter=0.0)
    out_image, out_mask = augment(image, mask, tf.constant([3, 4], tf.int64), options)
    assert not (out_mask.numpy() == 255).any()
    # nearest-resized mask vs bilinear image: classes agree away from the class borders
    columns = (out_image.numpy()[..., 0] - 1) / 8
    interior = np.abs(columns - np.round(columns / 8) * 8) > 1
    np.testing.assert_array_equal(
        out_mask.numpy()[..., 0][interior], (np.floor(columns) // 8)[interior]
    )
    jittered, _ = augment(
        image, mask, tf.constant([3, 4], tf.int64), Augmentation(color_jitter=0.4)
    )
    assert 0.0 <= jittered.numpy().min() and jittered.numpy().max() <= 255.0


def test_bad_augmentation_settings_are_refused():
    from components.train.data import Augmentation

    with pytest.raises(ValueError, match="scale_min <= scale_max"):
        Augmentation(scale_min=1.5, scale_max=1.0)
    with pytest.raises(ValueError, match="color_jitter"):
        Augmentation(color_jitter=1.5)


def test_deterministic_dataset_repeats_batches_and_adds_pixel_weights(
    tiny_shards: Path, tmp_path: Path
):
    from components.train.data import Augmentation, make_dataset

    pattern = str(tiny_shards / "train" / "train-*.tfrecord")
    options = Augmentation(scale_min=0.75, scale_max=1.25, color_jitter=0.2)
    weights = [0.5, 1.0, 2.0, 3.0]

    def first_batch():
        data = make_dataset(pattern, 4, True, 5, options, weights, deterministic=True)
        return next(iter(data))

    (image_a, mask_a, weight_a), (image_b, mask_b, _) = first_batch(), first_batch()
    np.testing.assert_array_equal(image_a.numpy(), image_b.numpy())
    np.testing.assert_array_equal(mask_a.numpy(), mask_b.numpy())
    labels, weight = mask_a.numpy()[..., 0], weight_a.numpy()
    assert weight.shape == labels.shape
    assert (weight[labels == 255] == 0).all()
    for class_id, class_weight in enumerate(weights):
        assert (weight[labels == class_id] == class_weight).all()
    for cache in ("none", str(tmp_path / "cache")):  # the same batches, cached or not
        batches = list(make_dataset(pattern, 4, True, 5, options, weights, True, cache=cache))
        np.testing.assert_array_equal(image_a.numpy(), batches[0][0].numpy())
        np.testing.assert_array_equal(mask_a.numpy(), batches[0][1].numpy())
    assert list(tmp_path.glob("cache*.index"))  # the file cache was written
    static = make_dataset(
        pattern, 4, True, 5, options, weights, image_size=(32, 32), drop_remainder=True
    )
    image_spec, mask_spec, weight_spec = static.element_spec
    assert (image_spec.shape, mask_spec.shape, weight_spec.shape) == (
        (4, 32, 32, 3),
        (4, 32, 32, 1),
        (4, 32, 32),
    )


# ---- loss and optimisation -----------------------------------------------------------------


def test_loss_ignores_the_ignore_label_and_dice_adds_to_it():
    import keras

    from components.train.losses import CrossEntropyDice

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 8, 8, 1)).astype(np.int32)
    labels[:, :2] = 255
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    plain = CrossEntropyDice(3, 255)
    assert float(plain(labels, logits)) == pytest.approx(float(reference(labels, logits)), 1e-5)
    changed = logits.copy()
    changed[:, :2] = 50.0  # only ignored pixels differ
    assert float(plain(labels, changed)) == pytest.approx(float(plain(labels, logits)), 1e-5)
    with_dice = CrossEntropyDice(3, 255, dice_weight=1.0)
    assert float(with_dice(labels, logits)) > float(plain(labels, logits)) + 0.1
    perfect = np.where(np.eye(3)[np.minimum(labels[..., 0], 2)] > 0, 30.0, -30.0)
    assert float(with_dice(labels, perfect.astype(np.float32))) < 1e-3
    weighted = float(plain(labels, logits, sample_weight=np.full(labels.shape[:3], 2.0)))
    assert weighted == pytest.approx(2 * float(plain(labels, logits)), 1e-5)


def test_class_weights_are_damped_by_their_power_or_left_out():
    from components.train.trainer import loss_class_weights

    stats = {"class_weights": [0.25, 1.0, 9.0]}
    assert loss_class_weights(stats, TrainConfig()) is None
    damped = loss_class_weights(stats, TrainConfig(class_weights=True, class_weight_power=0.5))
    assert damped == pytest.approx([0.5, 1.0, 3.0])
    assert loss_class_weights(stats, TrainConfig(class_weights=True)) == stats["class_weights"]
    with pytest.raises(ValueError, match="class_weight_power"):
        loss_class_weights(stats, TrainConfig(class_weights=True, class_weight_power=-1))


def test_schedules_warm_up_linearly_then_decay():
    from components.train.optimization import make_optimizer, make_schedule

    config = TrainConfig(epochs=10, learning_rate=0.1, warmup_epochs=2, lr_schedule="polynomial")
    schedule = make_schedule(config, steps_per_epoch=5)
    rates = [float(schedule(step)) for step in (0, 4, 9, 10, 49)]
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.05)
    assert rates[2] == pytest.approx(0.1) and rates[3] == pytest.approx(0.1)
    assert rates[4] < 0.01
    cosine = make_schedule(TrainConfig(epochs=4, learning_rate=0.1), steps_per_epoch=5)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(20)) == pytest.approx(0.005)
    sgd = make_optimizer(TrainConfig(optimizer="sgd", momentum=0.8), 5)
    assert type(sgd).__name__ == "SGD" and sgd.momentum == pytest.approx(0.8)
    assert type(make_optimizer(TrainConfig(optimizer="rmsprop"), 5)).__name__ == "RMSprop"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer(TrainConfig(optimizer="adamw"), 5)


def test_non_finite_loss_fails_with_a_clear_error():
    from components.train.trainer import StopOnNonFiniteLoss

    callback = StopOnNonFiniteLoss()
    callback.on_epoch_begin(2)
    callback.on_train_batch_end(0, {"loss": 0.7})
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 3, step 5"):
        callback.on_train_batch_end(4, {"loss": math.nan})


# ---- models ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_deeplabv3plus_gives_logits_at_input_size_and_trains_one_step():
    import keras

    from components.train.losses import CrossEntropyDice
    from components.train.model import build_deeplabv3plus, build_model

    model = build_deeplabv3plus(4, 64, 64, "mobilenetv2", filters=16)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    masks = np.random.default_rng(1).integers(0, 4, (2, 64, 64, 1)).astype(np.int32)
    assert model(images).shape == (2, 64, 64, 4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropyDice(4, 255, 0.5))
    loss = model.train_on_batch(images, masks)
    assert math.isfinite(float(loss))
    resnet = build_model(TrainConfig(architecture="deeplabv3plus", backbone="resnet50"), 3, 64, 64)
    assert resnet.output_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_deeplabv3plus(4, 64, 64, "vgg16")


@pytest.mark.slow
def test_export_resizes_like_training_so_thin_stripes_do_not_alias(tmp_path):
    """Serving at 3x the input size must average, as training's resize does, not sample."""
    import keras
    import tensorflow as tf

    from components.common.data.dataset import DatasetInfo
    from components.common.saved_model import load_segmenter
    from components.train.export import export_model

    # class 1 where the red channel is above 127.5, class 0 otherwise
    inputs = keras.Input((8, 8, 3))
    logits = keras.layers.Conv2D(2, 1, name="threshold")(inputs)
    model = keras.Model(inputs, logits)
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 1] = 1.0
    model.get_layer("threshold").set_weights([kernel, np.array([0.0, -127.5], np.float32)])
    export_model(model, str(tmp_path), DatasetInfo(2, ("dark", "bright"), 8, 8, 255))

    # columns dark, bright, dark: each 3-pixel cell averages to 85, but its centre is 255
    images = np.zeros((1, 24, 24, 3), np.uint8)
    images[:, :, 1::3, 0] = 255
    class_ids = load_segmenter(str(tmp_path))(tf.constant(images)).numpy()
    assert class_ids.shape == (1, 24, 24)
    assert (class_ids == 0).all()


# ---- warm start ----------------------------------------------------------------------------


@pytest.mark.slow
def test_warm_start_copies_matching_layers_from_the_registered_champion(mlflow_store, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.train.model import build_unet
    from components.train.warm_start import LAYER_WEIGHTS_FILE, save_layer_weights, warm_start

    champion = build_unet(4, 32, 32, base_width=4, depth=2)
    export = tmp_path / "export"
    export.mkdir()
    save_layer_weights(champion, str(export / LAYER_WEIGHTS_FILE))
    client = MlflowClient(mlflow_store)
    assert warm_start(build_unet(4, 32, 32, 4, 2), "tiny") == {"warm_start": "none"}
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("segpipe")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(export), "model")
    client.create_registered_model("tiny")
    version = client.create_model_version("tiny", f"{run.info.artifact_uri}/model", run.info.run_id)
    client.set_registered_model_alias("tiny", "champion", version.version)

    deeper = build_unet(4, 32, 32, base_width=4, depth=3)  # same names, some new shapes
    result = warm_start(deeper, "tiny")
    assert result["warm_start"] == "tiny@champion"
    assert 0 < result["warm_start_layers"] and 0 < result["warm_start_skipped"]
    for name in ("down0_conv1", "down1_bn2", "logits"):
        for new, old in zip(
            deeper.get_layer(name).get_weights(),
            champion.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(new, old)
    # the bottom block changed width (32 -> 64 filters at depth 3): left as initialised
    assert (
        deeper.get_layer("bottom_conv1").kernel.shape
        != champion.get_layer("bottom_conv1").kernel.shape
    )


# ---- the trainer end to end with the optional features on ----------------------------------


@pytest.mark.slow
def test_trainer_with_options_stops_early_and_exports(
    mlflow_store, tiny_shards, tmp_path, monkeypatch
):
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.train.trainer import train
    from components.train.warm_start import LAYER_WEIGHTS_FILE

    config = TrainConfig(
        epochs=8,
        batch_size=4,
        learning_rate=1e-9,  # next to nothing improves: early stopping must end the run
        lr_schedule="constant",
        optimizer="sgd",
        unet_width=4,
        unet_depth=2,
        class_weights=True,
        dice_weight=0.5,
        scale_min=0.75,
        scale_max=1.25,
        color_jitter=0.1,
        early_stopping_patience=1,
        checkpoint_every_steps=2,
        checkpoint_root=str(tmp_path / "ckpt"),
        jit_compile=True,
        warm_start=True,  # no champion registered yet: starts from scratch, says so
    )
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    run_id = train(str(tiny_shards), str(tmp_path / "model"), config, RunContext("segpipe", "opts"))
    client = MlflowClient(mlflow_store)
    epochs_run = len(client.get_metric_history(run_id, "val_mean_iou"))
    assert 2 <= epochs_run < 8
    assert (tmp_path / "model" / LAYER_WEIGHTS_FILE).exists()
    assert not (tmp_path / "ckpt" / "opts" / "train").exists()
    run = client.get_run(run_id)
    assert any(key.startswith("system/cpu") for key in run.data.metrics)
    with mlflow.start_run() as other:  # only the train run records system metrics
        pass
    assert not client.get_run(other.info.run_id).data.metrics
    tags = run.data.tags
    assert tags["segpipe.warm_start"] == "none"
    assert tags["segpipe.precision"] == "float32" or "bfloat16" in tags["segpipe.precision"]


# ---- pipeline wiring -------------------------------------------------------------------------


def test_every_train_setting_reaches_the_train_task_with_a_durable_checkpoint_default(tmp_path):
    import dataclasses

    import yaml
    from kfp import compiler

    from pipelines.images import step_images
    from pipelines.pipeline import build_pipeline

    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(build_pipeline(step_images(), cluster=True), str(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    # the one train pod's task: inside the exit handler, in the snapshot's condition
    (task,) = [
        c["dag"]["tasks"]["train"]
        for c in spec["components"].values()
        if "train" in c.get("dag", {}).get("tasks", {})
    ]
    inputs = task["inputs"]["parameters"]
    for name in (f.name for f in dataclasses.fields(TrainConfig)):
        assert inputs[name] == {"componentInputParameter": f"pipelinechannel--{name}"}
    # retries of one run share its id, so they find the same checkpoint folder
    assert inputs["pipeline_run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert inputs["pipeline_root"] == {"runtimeValue": {"constant": "{{$.pipeline_root}}"}}
    assert task["retryPolicy"]["maxRetryCount"] == 3


def test_flip_tta_export_averages_each_image_with_its_mirror(tmp_path):
    """The exported `segment` with flip_tta: argmax of (logits + mirrored logits of the
    mirror) / 2, at the caller's size; read back from the model info as well."""
    import keras
    import numpy as np

    from components.common.data.dataset import DatasetInfo
    from components.common.saved_model import load_signatures, read_model_info, segmenter
    from components.train.export import export_model
    from components.train.model import build_unet

    keras.utils.set_random_seed(3)
    model = build_unet(3, 32, 32, base_width=4, depth=2)
    info = DatasetInfo(3, ("a", "b", "c"), 32, 32, 255, False)
    export_model(model, str(tmp_path / "plain"), info)
    export_model(model, str(tmp_path / "tta"), info, flip_tta=True)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    logits = model(images.astype("float32"), training=False).numpy()
    mirrored = model(images[:, :, ::-1].astype("float32"), training=False).numpy()[:, :, ::-1]
    expected = ((logits + mirrored) / 2).argmax(-1)
    with_tta = segmenter(load_signatures(str(tmp_path / "tta")))(images).numpy()
    plain = segmenter(load_signatures(str(tmp_path / "plain")))(images).numpy()
    assert (with_tta == expected).mean() > 0.999  # resize rounding at the same size aside
    assert (plain == logits.argmax(-1)).mean() > 0.999
    assert (with_tta != plain).any()  # the mirror changed some pixels of this random model
    assert read_model_info(str(tmp_path / "tta"))["flip_tta"] is True


def test_tta_scales_average_the_logits_of_each_scale_and_mirror(tmp_path):
    """With test-time scales the export resizes to each multiple of the input size, runs the
    any-size twin of the fixed-size model (same weights) and averages the logits, each brought
    to the caller's size; the model info records the scales."""
    import keras
    import numpy as np
    import tensorflow as tf

    from components.common.data.dataset import DatasetInfo
    from components.common.saved_model import (
        load_signatures,
        read_model_info,
        segment_signature,
        segmenter,
    )
    from components.train.data import resize_image
    from components.train.export import export_model
    from components.train.model import any_size_model, build_unet

    keras.utils.set_random_seed(4)
    model = build_unet(3, 16, 16, base_width=4, depth=2)
    config = TrainConfig(unet_width=4, unet_depth=2, tta_scales="1,1.5", flip_tta=True)
    twin = any_size_model(model, config, 3)
    info = DatasetInfo(3, ("a", "b", "c"), 16, 16, 255, False)
    with pytest.raises(ValueError, match="any size"):
        export_model(model, str(tmp_path / "fixed"), info, True, None, (1.0, 1.5))
    export_model(twin, str(tmp_path / "tta"), info, True, (16, 16), config.tta_scale_list())
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    views = []
    for side in (16, 24):
        resized = resize_image(tf.constant(images, tf.float32), (side, side))
        for mirror in (False, True):
            flipped = resized[:, :, ::-1] if mirror else resized
            logits = twin(flipped, training=False)
            logits = logits[:, :, ::-1] if mirror else logits
            views.append(tf.image.resize(logits, (32, 32), "bilinear").numpy())
    expected = np.mean(views, axis=0).argmax(-1)
    crop = images[:, :16, :16].astype("float32")
    assert np.allclose(twin(crop), model(crop))  # the twin holds the same weights
    with_tta = segmenter(load_signatures(str(tmp_path / "tta")))(images).numpy()
    assert (with_tta == expected).mean() > 0.999
    only_one = np.mean(views[:2], axis=0).argmax(-1)
    assert (expected != only_one).any()  # the second scale changed some pixels
    info = read_model_info(str(tmp_path / "tta"))
    assert info["tta_scales"] == [1.0, 1.5]
    # segment_no_tta: one pass at the model's size, without the mirror or the other scale
    signature = segment_signature(str(tmp_path / "tta"), info, tta=False)
    one_pass = segmenter(load_signatures(str(tmp_path / "tta")), signature)(images).numpy()
    assert (one_pass == views[0].argmax(-1)).mean() > 0.999
    assert (one_pass != with_tta).any()


def test_segment_signature_leaves_tta_out_only_where_it_can():
    """The signature predict uses: `segment` with the export's TTA, `segment_no_tta` without
    it; an older export (no such signature) is used as it is where its `segment` is one pass,
    and refused, naming the folder, where it applies TTA."""
    from components.common.saved_model import segment_signature

    new = {"flip_tta": True, "signatures": ["serving_default", "segment", "segment_no_tta"]}
    assert segment_signature("m", new) == "segment"
    assert segment_signature("m", new, tta=False) == "segment_no_tta"
    assert segment_signature("m", {"tta_scales": [1.0]}, tta=False) == "segment"
    assert segment_signature("m", {}, tta=False) == "segment"
    for older in ({"flip_tta": True}, {"tta_scales": [1.0, 1.5]}):
        with pytest.raises(LookupError, match="exports/m/3 applies test-time augmentation"):
            segment_signature("exports/m/3", older, tta=False)


@pytest.mark.parametrize("scales", ["", "1,1", "0", "-1", "5", "1,x", "nan"])
def test_tta_scales_must_be_distinct_positive_scales(scales):
    with pytest.raises(ValueError, match="tta_scales"):
        TrainConfig(tta_scales=scales)


def test_tta_scales_need_a_unet():
    with pytest.raises(ValueError, match="needs architecture unet"):
        TrainConfig(architecture="deeplabv3plus", tta_scales="1,1.25")
    assert TrainConfig(architecture="deeplabv3plus").tta_scale_list() == (1.0,)


# ---- crops, any-size U-Net, refit on train + val ----------------------------------------------


def test_crops_are_aligned_windows_at_the_crop_size():
    import tensorflow as tf

    from components.train.data import Augmentation, augment

    image, mask = _column_pair(64)
    options = Augmentation(flip=False, crop=(16, 24), ignore_label=255)
    seen = set()
    for i in range(6):
        out_image, out_mask = augment(image, mask, tf.constant([5, i], tf.int64), options)
        assert out_image.shape == (16, 24, 3) and out_mask.shape == (16, 24, 1)
        # at scale 1 the window starts between source columns: the image interpolates, the
        # mask takes the nearest column's label
        columns = (out_image.numpy()[..., 0] - 1) / 8
        clear = np.abs(columns - np.floor(columns) - 0.5) > 0.01
        expected = np.round(columns) // 8
        np.testing.assert_array_equal(out_mask.numpy()[..., 0][clear], expected[clear])
        seen.add(float(columns[0, 0]))
    assert len(seen) > 1  # the window moves


def test_unet_takes_any_size_and_returns_logits_at_it():
    import tensorflow as tf

    from components.train.model import build_unet

    free = build_unet(3, None, None, base_width=4, depth=3)
    for height, width in ((20, 30), (24, 32), (9, 17)):
        logits = free(tf.zeros([2, height, width, 3]))
        assert logits.shape == (2, height, width, 3)
    fixed = build_unet(3, 20, 28, base_width=4, depth=3)  # not multiples of 8: padded inside
    assert fixed.output_shape == (None, 20, 28, 3)
    assert "pad" not in [layer.name for layer in build_unet(3, 24, 32, 4, 3).layers]


def test_a_model_of_any_size_exports_at_the_input_size_it_was_given(tmp_path):
    import tensorflow as tf

    from components.common.data.dataset import DatasetInfo
    from components.common.saved_model import load_segmenter, read_model_info
    from components.train.export import export_model
    from components.train.model import build_unet

    model = build_unet(2, None, None, base_width=4, depth=2)
    info = DatasetInfo(2, ("a", "b"), 12, 20, 255)
    with pytest.raises(ValueError, match="takes images of any size"):
        export_model(model, str(tmp_path / "no-size"), info)
    export_model(model, str(tmp_path / "model"), info, size=(12, 20))
    assert (read_model_info(str(tmp_path / "model"))["image_height"], 12) == (12, 12)
    class_ids = load_segmenter(str(tmp_path / "model"))(tf.zeros([1, 30, 50, 3], tf.uint8))
    assert class_ids.shape == (1, 30, 50)


def test_refit_counts_both_splits_and_refuses_what_it_cannot_check():
    from components.common.settings.config import PipelineConfig
    from components.train.trainer import train_steps, training_splits

    stats = {"splits": {"train": {"examples": 10}, "val": {"examples": 6}}}
    refit = TrainConfig(train_on_val=True)
    assert training_splits(refit) == ("train", "val")
    assert train_steps(stats, 4, False, "s.json", training_splits(refit)) == 4
    assert train_steps(stats, 4, False, "s.json") == 3
    with pytest.raises(ValueError, match="early_stopping_patience must be 0"):
        TrainConfig(train_on_val=True, early_stopping_patience=2)
    with pytest.raises(ValueError, match="set eval_split=test"):
        PipelineConfig().with_parameters({"train_on_val": True, "test_fraction": 0.2})


@pytest.mark.slow
def test_training_on_crops_and_refitting_on_train_and_val(mlflow_store, tiny_shards, tmp_path):
    from mlflow.tracking import MlflowClient

    from components.common.saved_model import read_model_info
    from components.train.trainer import train

    config = TrainConfig(
        epochs=2,
        batch_size=4,
        unet_width=4,
        unet_depth=2,
        crop_height=16,
        crop_width=24,
        scale_min=0.5,
        scale_max=2.0,
        train_on_val=True,
        system_metrics=False,
    )
    run_id = train(
        str(tiny_shards), str(tmp_path / "model"), config, RunContext("segpipe", "refit")
    )
    client = MlflowClient(mlflow_store)
    assert len(client.get_metric_history(run_id, "loss")) == 2
    assert not client.get_metric_history(run_id, "val_mean_iou")  # nothing held out
    info = read_model_info(str(tmp_path / "model"))
    assert (info["image_height"], info["image_width"]) == (32, 32)  # scored whole, not cropped
