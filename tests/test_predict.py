"""`segpipe predict` on files as users have them: formats, names, folders, links, sizes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.cli.main import main as segpipe

pytestmark = pytest.mark.slow  # exports TensorFlow models


def _export_red_threshold(folder: Path, grayscale: bool) -> Path:
    """A model whose class is 1 where the red channel is above 127.5, else 0."""
    import keras

    from components.common.data.dataset import DatasetInfo
    from components.train.export import export_model

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="threshold")(inputs))
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 1] = 1.0
    model.get_layer("threshold").set_weights([kernel, np.array([0.0, -127.5], np.float32)])
    info = DatasetInfo(2, ("dark", "red"), 8, 8, 255, grayscale=grayscale)
    export_model(model, str(folder), info)
    return folder


@pytest.fixture(scope="module")
def red_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export_red_threshold(tmp_path_factory.mktemp("red-model"), grayscale=False)


def _predict(model: Path, inputs: Path | str, output: Path, *flags: str) -> int:
    args = ["predict", "--model", str(model), "--input", str(inputs), "--output", str(output)]
    return segpipe([*args, *flags])


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_reads_every_format_preprocess_reads(red_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (12, 10), (250, 0, 0)).save(photos / "tiff.tif")
    Image.new("RGBA", (12, 10), (250, 0, 0, 255)).save(photos / "rgba.png")
    Image.new("RGB", (12, 10), (250, 0, 0)).save(photos / "photo.webp", lossless=True)
    Image.fromarray(np.full((10, 12), 65535, np.uint16)).save(photos / "sixteen.png")
    portrait = np.zeros((12, 10, 3), np.uint8)  # stored 10 wide x 12 high
    portrait[:, :5, 0] = 255  # the left half red: after a 90-degree turn, the top half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: 12 wide x 10 high
    Image.fromarray(portrait).save(photos / "turned.jpg", exif=exif.tobytes(), quality=100)

    assert _predict(red_model, photos, tmp_path / "out") == 0

    assert "wrote 5 masks and overlays" in capsys.readouterr().out
    for name in ("tiff", "rgba", "photo", "sixteen"):
        assert (_mask(tmp_path / "out" / f"{name}_mask.png") == 1).all(), name
    turned = _mask(tmp_path / "out" / "turned_mask.png")
    assert turned.shape == (10, 12)
    assert (turned[:4] == 1).all() and (turned[-4:] == 0).all()


def test_one_output_per_input_nested_folders_mirrored(red_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (6, 4), (250, 0, 0)).save(photos / "x.png")
    Image.new("RGB", (6, 4), (0, 0, 0)).save(photos / "x.jpg")
    Image.new("RGB", (6, 4), (0, 0, 0)).save(photos / "y.png")
    Image.new("RGB", (6, 4), (250, 0, 0)).save(photos / "a" / "b" / "c.png")
    (photos / "loop").symlink_to(".")  # a folder link loop: never followed
    (photos / "a" / "up").symlink_to("..")
    output = tmp_path / "out"

    assert _predict(red_model, photos, output) == 0

    assert "wrote 4 masks and overlays" in capsys.readouterr().out
    written = sorted(str(p.relative_to(output)) for p in output.rglob("*_mask.png"))
    assert written == ["a/b/c_mask.png", "x.jpg_mask.png", "x.png_mask.png", "y_mask.png"]
    assert (_mask(output / "x.png_mask.png") == 1).all()
    assert (_mask(output / "x.jpg_mask.png") == 0).all()
    assert (output / "a" / "b" / "c_overlay.png").is_file()


def test_a_glob_mirrors_the_folders_below_its_fixed_part(red_model, tmp_path, capsys):
    for folder in ("day", "night"):
        (tmp_path / "shots" / folder).mkdir(parents=True)
        Image.new("RGB", (6, 4)).save(tmp_path / "shots" / folder / "cam.jpg")
    assert _predict(red_model, str(tmp_path / "shots" / "*" / "*.jpg"), tmp_path / "out") == 0
    assert "wrote 2 masks" in capsys.readouterr().out
    assert (tmp_path / "out" / "day" / "cam_mask.png").is_file()
    assert (tmp_path / "out" / "night" / "cam_mask.png").is_file()


def test_inputs_over_max_pixels_or_unreadable_are_skipped_with_the_reason(
    red_model, tmp_path, capsys
):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (6, 4)).save(photos / "small.png")
    big = photos / "big.png"
    Image.new("RGB", (300, 200)).save(big)
    big.write_bytes(big.read_bytes()[:100])  # a header that says 300x200: never decoded
    (photos / "empty.png").write_bytes(b"")
    (photos / "gone.png").symlink_to("nowhere.png")

    assert _predict(red_model, photos, tmp_path / "out", "--max-pixels", "1000") == 1

    captured = capsys.readouterr()
    assert "wrote 1 masks and overlays" in captured.out
    assert "300x200 = 60,000 pixels is more than max_pixels 1,000" in captured.err
    assert f"skipped {photos / 'empty.png'}: empty file (0 bytes)" in captured.err
    assert f"skipped {photos / 'gone.png'}: a symbolic link to nothing" in captured.err
    assert sorted(os.listdir(tmp_path / "out")) == ["small_mask.png", "small_overlay.png"]


def test_a_grayscale_model_sees_grey_images_as_in_training(tmp_path):
    import tensorflow as tf

    from components.common.overlay import png_bytes

    model = _export_red_threshold(tmp_path / "grey-model", grayscale=True)
    Image.new("RGB", (6, 4), (250, 0, 0)).save(tmp_path / "red.png")  # grey: 75

    assert _predict(model, tmp_path / "red.png", tmp_path / "out") == 0
    assert (_mask(tmp_path / "out" / "red_mask.png") == 0).all()
    # serving_default, for other clients, makes the colour image grey too
    serve = tf.saved_model.load(str(model)).signatures["serving_default"]
    red = png_bytes(np.full((4, 6, 3), (250, 0, 0), np.uint8))
    assert (serve(image_bytes=tf.constant(red))["class_ids"].numpy() == 0).all()


def test_the_terminal_shows_a_bar_and_the_outcome_tensorflows_notices_go_to_a_log(
    red_model, tmp_path
):
    import subprocess
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        Image.new("RGB", (6, 4), (250, 0, 0)).save(photos / f"{index}.png")
    command = [str(Path(sys.executable).parent / "segpipe"), "predict", "--model", str(red_model)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # TF's chatter on

    done = subprocess.run(
        [*command, "--input", str(photos), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # TensorFlow's notices went to the log
    lines = done.stdout.splitlines()
    assert lines[0] == "predict  [" + "." * 24 + "] 0/3 images"
    assert lines[-2] == "predict  [" + "#" * 24 + "] 3/3 images"
    assert lines[-1] == f"wrote 3 masks and overlays to {tmp_path / 'out'}"

    failed = subprocess.run(
        [*command[:3], str(tmp_path / "no-model"), "--input", str(photos), "--output", "x"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 1
    *_, reason, log_line = failed.stderr.splitlines()
    no_model = tmp_path / "no-model"
    assert reason == f"segpipe predict: {no_model} is not a SavedModel folder (no saved_model.pb)"
    assert Path(log_line.removeprefix("  log: ")).is_file()
    assert "Traceback" not in failed.stdout + failed.stderr


def test_batches_of_one_size_give_the_masks_of_one_image_at_a_time(red_model, tmp_path):
    """Images of mixed sizes, with an unreadable one among them: batched and pipelined, each
    mask is the one a batch of one gives, and every input is written or skipped."""
    from pipelines.predict import predict

    rng = np.random.default_rng(1)
    photos = tmp_path / "photos"
    photos.mkdir()
    sizes = [(24, 32), (24, 32), (24, 32), (40, 16), (24, 32), (24, 32), (40, 16)]
    for index, (height, width) in enumerate(sizes):
        pixels = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
        pixels[:, : width // 2, 0] = 255  # the left half red
        Image.fromarray(pixels).save(photos / f"p{index}.png")
    (photos / "p3b.png").write_bytes(b"not a png")
    one = predict(str(red_model), str(photos), str(tmp_path / "one"), batch_size=1)
    many = predict(str(red_model), str(photos), str(tmp_path / "many"), batch_size=2)
    assert [p.source for p in many.written] == [p.source for p in one.written]
    assert len(many.written) == len(sizes) and [s.source for s in many.skipped] == [
        str(photos / "p3b.png")
    ]
    for first, second in zip(one.written, many.written, strict=True):
        assert (_mask(Path(first.mask_path)) == _mask(Path(second.mask_path))).all()
        red = np.asarray(Image.open(first.source))[..., 0] > 127.5
        assert (_mask(Path(second.mask_path)) == red).mean() > 0.8  # blurred at the edge


def test_no_tta_predicts_in_one_pass_what_the_plain_export_predicts(tmp_path, capsys):
    """An export with flip TTA: `--no-tta` writes the masks of the same weights exported
    without it; by default predict applies the TTA (the masks differ for this random model).
    An older TTA export without the one-pass signature is refused, naming the folder."""
    import json

    import keras

    from components.common.data.dataset import DatasetInfo
    from components.common.saved_model import MODEL_INFO_FILE
    from components.train.export import export_model
    from components.train.model import build_unet

    keras.utils.set_random_seed(5)
    model = build_unet(3, 32, 32, base_width=4, depth=2)
    info = DatasetInfo(3, ("a", "b", "c"), 32, 32, 255, False)
    export_model(model, str(tmp_path / "plain"), info)
    export_model(model, str(tmp_path / "tta"), info, flip_tta=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(2)
    for index in range(3):
        pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"p{index}.png")
    assert _predict(tmp_path / "plain", photos, tmp_path / "out-plain") == 0
    assert _predict(tmp_path / "tta", photos, tmp_path / "out-tta") == 0
    assert _predict(tmp_path / "tta", photos, tmp_path / "out-once", "--no-tta") == 0
    masks = {
        name: [_mask(tmp_path / name / f"p{i}_mask.png") for i in range(3)]
        for name in ("out-plain", "out-tta", "out-once")
    }
    assert all((a == b).all() for a, b in zip(masks["out-plain"], masks["out-once"], strict=True))
    assert any((a != b).any() for a, b in zip(masks["out-plain"], masks["out-tta"], strict=True))
    capsys.readouterr()
    info_file = tmp_path / "tta" / MODEL_INFO_FILE
    older = json.loads(info_file.read_text())
    del older["signatures"]
    info_file.write_text(json.dumps(older))
    assert _predict(tmp_path / "tta", photos, tmp_path / "out-older", "--no-tta") == 1
    reason = capsys.readouterr().err.splitlines()[0]
    assert reason.startswith(f"segpipe predict: {tmp_path / 'tta'} applies test-time augmentation")
