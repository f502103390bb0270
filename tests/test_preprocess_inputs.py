"""Layouts, label encodings and image formats the preprocess step accepts (no Beam needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.common.data.sources import SourcePair, list_sources
from components.common.settings.config import IGNORE_LABEL, PreprocessConfig
from components.preprocess.examples import RejectedInput, encode_pair
from components.preprocess.stats import median_frequency_weights

RNG = np.random.default_rng(3)


def _labels(height=20, width=30, classes=3) -> np.ndarray:
    return RNG.integers(0, classes, size=(height, width)).astype(np.uint8)


def _decode_stored(encoded) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    from components.common.data.schema import decode_example

    example = decode_example(tf.constant(encoded.serialized))
    return example["image"].numpy(), example["mask"].numpy()[..., 0]


def _encode(tmp_path: Path, image: Image.Image, mask: Image.Image, image_ext="png", **config):
    image_path, mask_path = tmp_path / f"img.{image_ext}", tmp_path / "mask.png"
    save = {"exif": config.pop("exif")} if "exif" in config else {}
    image.save(image_path, **save)
    mask.save(mask_path)
    defaults = {"num_classes": 3, "image_height": 20, "image_width": 30}
    return encode_pair(
        SourcePair("x", str(image_path), str(mask_path)), PreprocessConfig(**{**defaults, **config})
    )


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "tif"])
def test_image_formats(tmp_path, ext):
    labels = _labels()
    encoded = _encode(
        tmp_path, Image.new("RGB", (30, 20), (90, 10, 200)), Image.fromarray(labels), ext
    )
    image, mask = _decode_stored(encoded)
    np.testing.assert_array_equal(mask, labels)
    assert np.abs(image.astype(int) - [90, 10, 200]).max() <= 3  # JPEG is lossy


def test_sixteen_bit_grayscale_rgba_and_palette_images_become_rgb(tmp_path):
    labels = Image.fromarray(_labels())
    sixteen = Image.fromarray(np.full((20, 30), 65535, np.uint16))
    image, _ = _decode_stored(_encode(tmp_path, sixteen, labels, "tif"))
    assert image.shape == (20, 30, 3) and (image == 255).all()
    rgba = Image.new("RGBA", (30, 20), (100, 150, 200, 255))
    assert (_decode_stored(_encode(tmp_path, rgba, labels))[0] == [100, 150, 200]).all()
    gray = Image.new("L", (30, 20), 77)
    assert (_decode_stored(_encode(tmp_path, gray, labels))[0] == 77).all()


def test_grayscale_option_stores_one_value_per_pixel(tmp_path):
    encoded = _encode(
        tmp_path,
        Image.new("RGB", (30, 20), (255, 0, 0)),
        Image.fromarray(_labels()),
        grayscale=True,
    )
    image, _ = _decode_stored(encoded)
    assert (image[..., 0] == image[..., 1]).all() and image[0, 0, 0] == 76  # ITU-R 601 red


def test_exif_orientation_is_applied_to_the_image(tmp_path):
    pixels = np.zeros((30, 20, 3), np.uint8)  # stored portrait, 20 wide x 30 high
    pixels[:5] = 255  # top rows white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: the displayed image is 30 wide x 20 high
    labels = Image.fromarray(_labels())
    image, _ = _decode_stored(
        _encode(tmp_path, Image.fromarray(pixels), labels, "jpg", exif=exif.tobytes())
    )
    assert image.shape == (20, 30, 3)
    assert image[:, -3:].mean() > 200 and image[:, :3].mean() < 50  # white now on the right


def test_gif_one_bit_and_palette_masks_are_class_indices(tmp_path):
    labels = _labels(classes=2)
    for mask in (
        Image.fromarray(labels).convert("P"),
        Image.fromarray(labels.astype(bool)),  # mode "1"
    ):
        _, stored = _decode_stored(_encode(tmp_path, Image.new("RGB", (30, 20)), mask))
        np.testing.assert_array_equal(stored, labels)
    gif = tmp_path / "mask.gif"
    Image.fromarray(labels).convert("P").save(gif)
    Image.new("RGB", (30, 20)).save(tmp_path / "img.png")
    encoded = encode_pair(
        SourcePair("g", str(tmp_path / "img.png"), str(gif)),
        PreprocessConfig(num_classes=2, image_height=20, image_width=30),
    )
    np.testing.assert_array_equal(_decode_stored(encoded)[1], labels)


@pytest.mark.parametrize("high", [1, 255])
def test_binary_masks_0_1_and_0_255(tmp_path, high):
    labels = _labels(classes=2)
    mask = Image.fromarray(labels * high)
    _, stored = _decode_stored(
        _encode(tmp_path, Image.new("RGB", (30, 20)), mask, num_classes=2, mask_encoding="binary")
    )
    np.testing.assert_array_equal(stored, labels)


def test_palette_masks_map_colours_and_reject_unknown_ones(tmp_path):
    labels = _labels()
    colours = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], np.uint8)
    palette = "0,0,0=0;128,0,0=1;0,128,0=2"
    rgb_mask = Image.fromarray(colours[labels])
    _, stored = _decode_stored(
        _encode(
            tmp_path, Image.new("RGB", (30, 20)), rgb_mask, mask_encoding="palette", palette=palette
        )
    )
    np.testing.assert_array_equal(stored, labels)
    odd = colours[labels]
    odd[0, 0] = (1, 2, 3)
    with pytest.raises(RejectedInput, match=r"\(1, 2, 3\)") as caught:
        _encode(
            tmp_path,
            Image.new("RGB", (30, 20)),
            Image.fromarray(odd),
            mask_encoding="palette",
            palette=palette,
        )
    assert caught.value.reason == "unknown_mask_colour"


def test_ignore_values_become_the_ignore_label(tmp_path):
    labels = _labels(classes=4)  # value 3 is "void"
    _, stored = _decode_stored(
        _encode(tmp_path, Image.new("RGB", (30, 20)), Image.fromarray(labels), ignore_values="3")
    )
    np.testing.assert_array_equal(stored, np.where(labels == 3, IGNORE_LABEL, labels))


def test_pad_keeps_aspect_ratio_and_pads_masks_with_ignore(tmp_path):
    labels = np.ones((10, 30), np.uint8)  # 3:1, into a 30x30 square
    image, stored = _decode_stored(
        _encode(
            tmp_path,
            Image.new("RGB", (30, 10), (255, 255, 255)),
            Image.fromarray(labels),
            image_height=30,
            image_width=30,
            resize_mode="pad",
        )
    )
    assert (stored[10:20] == 1).all()
    assert (stored[:10] == IGNORE_LABEL).all() and (stored[20:] == IGNORE_LABEL).all()
    assert (image[:10] == 0).all() and (image[10:20] == 255).all()


def _write_pair(image: Path, mask: Path, labels: np.ndarray) -> None:
    image.parent.mkdir(parents=True, exist_ok=True)
    mask.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", labels.shape[::-1]).save(image)
    Image.fromarray(labels).save(mask)


def test_paired_globs_layout(tmp_path):
    for name in ("a", "b"):
        _write_pair(
            tmp_path / "images" / f"{name}.jpg", tmp_path / "masks" / f"{name}_mask.png", _labels()
        )
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "c.jpg")
    config = PreprocessConfig(
        layout="paired-globs", image_glob="images/*.jpg", mask_pattern="masks/{stem}_mask.png"
    )
    pairs = list_sources(str(tmp_path), config)
    assert [(p.source_id, p.mask_path is not None) for p in pairs] == [
        ("a", True),
        ("b", True),
        ("c", False),
    ]
    assert pairs[0].mask_path.endswith("masks/a_mask.png")


def test_list_files_layout_strips_prefix_and_sets_splits(tmp_path):
    for split, names in (("train", ["t1", "t2"]), ("val", ["v1"])):
        lines = []
        for name in names:
            _write_pair(
                tmp_path / split / f"{name}.png",
                tmp_path / f"{split}annot" / f"{name}.png",
                _labels(),
            )
            lines.append(f"/Prefix/{split}/{name}.png /Prefix/{split}annot/{name}.png")
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "val.txt").write_text(
        (tmp_path / "val.txt").read_text() + "/Prefix/val/gone.png /Prefix/valannot/gone.png\n"
    )
    config = PreprocessConfig(
        layout="list-files", list_files="train.txt,val.txt", strip_prefix="/Prefix/"
    )
    pairs = list_sources(str(tmp_path), config)
    assert [(p.source_id, p.split) for p in pairs] == [
        ("gone", "val"),
        ("t1", "train"),
        ("t2", "train"),
        ("v1", "val"),
    ]
    assert pairs[0].image_path is None and pairs[0].mask_path is None
    assert pairs[1].image_path == str(tmp_path / "train" / "t1.png")


def test_voc_layout(tmp_path):
    sets = tmp_path / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000001\n2007_000002\n")
    (sets / "val.txt").write_text("2007_000003\n")
    for image_id in ("2007_000001", "2007_000002", "2007_000003"):
        _write_pair(
            tmp_path / "JPEGImages" / f"{image_id}.jpg",
            tmp_path / "SegmentationClass" / f"{image_id}.png",
            _labels(),
        )
    pairs = list_sources(str(tmp_path), PreprocessConfig(layout="voc"))
    assert [(p.source_id, p.split) for p in pairs] == [
        ("2007_000001", "train"),
        ("2007_000002", "train"),
        ("2007_000003", "val"),
    ]


def test_two_inputs_with_one_source_id_are_an_error(tmp_path):
    _write_pair(tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png", _labels())
    Image.new("RGB", (30, 20)).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(ValueError, match="same source id 'a'"):
        list_sources(str(tmp_path), PreprocessConfig())


def test_median_frequency_weights_by_hand():
    # class 0: 300 px in images totalling 400 -> 0.75 ; class 1: 100 px of 400 -> 0.25
    # class 2: 50 px of 100 -> 0.5 ; median 0.5 -> weights 2/3, 2, 1 ; class 3 absent -> 0
    weights = median_frequency_weights([300, 100, 50, 0], [400, 400, 100, 0])
    assert weights == pytest.approx([2 / 3, 2.0, 1.0, 0.0])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"val_fraction": 1.5}, r"val_fraction must be in \[0, 1\), got 1.5"),
        ({"test_fraction": -0.1}, r"test_fraction must be in \[0, 1\), got -0.1"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "the train split would be empty"),
        ({"num_classes": 300}, r"num_classes must be in \[2, 255\], got 300: masks are stored as"),
        ({"num_classes": 256}, r"num_classes must be in \[2, 255\], got 256"),
        ({"ignore_values": "2"}, "not class ids"),
        ({"max_pixels": 0}, "max_pixels must be >= 1, got 0"),
        (
            {"mask_encoding": "rgb"},
            "mask_encoding must be one of index, binary, palette; got 'rgb'",
        ),
        ({"mask_encoding": "palette", "palette": "0,0,0=9"}, r"maps \(0, 0, 0\) to 9"),
        (
            {"layout": "paired-globs", "mask_pattern": "masks/{id}.png"},
            "uses id, which image_regex does not define",
        ),
        ({"layout": "paired-globs", "mask_pattern": "masks/all.png"}, "one file for every"),
        ({"image_regex": "img_(?P<id>"}, "is not a regex"),
    ],
)
def test_settings_that_lose_labels_or_train_from_nothing_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(**settings)


def test_a_0_255_mask_read_as_class_indices_is_a_reject_with_the_binary_hint(tmp_path):
    """Under `index`, 255 is the ignore label: a 0/255 mask would have no foreground left."""
    labels = _labels(classes=2)
    with pytest.raises(RejectedInput, match="mask_encoding=binary") as caught:
        _encode(tmp_path, Image.new("RGB", (30, 20)), Image.fromarray(labels * 255), num_classes=2)
    assert caught.value.reason == "foreground_ignored"
    assert caught.value.mask_values == {0: int((labels == 0).sum()), 255: int(labels.sum())}
    # one RGB 0/255 mask among 1-bit ones: its foreground would be lost the same way
    rgb = Image.fromarray(labels * 255).convert("RGB")
    with pytest.raises(RejectedInput, match="foreground_ignored"):
        _encode(tmp_path, Image.new("RGB", (30, 20)), rgb, num_classes=2)
    # a Pascal VOC mask (classes with a 255 border) keeps its classes; 255 stays ignored
    voc = np.where(labels == 1, 5, 0).astype(np.uint8)
    voc[0] = 255
    _, stored = _decode_stored(
        _encode(tmp_path, Image.new("RGB", (30, 20)), Image.fromarray(voc), num_classes=21)
    )
    np.testing.assert_array_equal(stored, voc)
    # 255 said to mean "unlabelled": kept as the ignore label, not a reject
    _, stored = _decode_stored(
        _encode(
            tmp_path,
            Image.new("RGB", (30, 20)),
            Image.fromarray(labels * 255),
            num_classes=2,
            ignore_values="255",
        )
    )
    assert set(np.unique(stored)) == {0, IGNORE_LABEL}


def test_masks_are_read_into_uint8_class_ids_with_16_bit_ignore_values(tmp_path):
    from components.preprocess.examples import to_labels

    labels = _labels(classes=3).astype(np.uint16)
    labels[0, :5] = 4000  # a 16-bit "void" value
    mask = Image.fromarray(labels)
    config = PreprocessConfig(num_classes=3, ignore_values="4000")
    stored = to_labels(mask, "mask.png", config)
    assert stored.ids.dtype == np.uint8
    np.testing.assert_array_equal(stored.ids, np.where(labels == 4000, IGNORE_LABEL, labels))
    assert stored.raw_values[4000] == 5


def _truncated_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header says width x height but whose pixels are cut off."""
    Image.new("RGB", (width, height), (10, 20, 30)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_images_over_max_pixels_are_refused_from_the_header_before_decoding(tmp_path):
    _truncated_png(tmp_path / "big.png", 300, 200)  # decoding it would fail: it never happens
    Image.new("L", (300, 200)).save(tmp_path / "big_mask.png")
    config = PreprocessConfig(num_classes=3, max_pixels=300 * 200 - 1)
    with pytest.raises(RejectedInput) as caught:
        encode_pair(
            SourcePair("big", str(tmp_path / "big.png"), str(tmp_path / "big_mask.png")), config
        )
    assert caught.value.reason == "too_large"
    assert "300x200 = 60,000 pixels is more than max_pixels 59,999" in caught.value.detail
    assert 13000 * 13000 > PreprocessConfig().max_pixels >= 8000 * 8000  # the default


def test_an_empty_file_says_so(tmp_path):
    (tmp_path / "img.png").write_bytes(b"")
    Image.new("L", (3, 3)).save(tmp_path / "mask.png")
    with pytest.raises(RejectedInput) as caught:
        encode_pair(
            SourcePair("x", str(tmp_path / "img.png"), str(tmp_path / "mask.png")),
            PreprocessConfig(),
        )
    assert caught.value.reason == "unreadable_image"
    assert caught.value.detail.endswith("img.png: empty file (0 bytes)")


def test_paired_globs_pair_masks_by_named_parts_of_the_image_name(tmp_path):
    for number in ("0001", "0002"):
        _write_pair(
            tmp_path / "images" / f"img_{number}.tif",
            tmp_path / "masks" / f"{number}_label.gif",
            _labels(),
        )
    Image.new("RGB", (30, 20)).save(tmp_path / "images" / "img_0003.tif")  # no mask
    Image.new("RGB", (30, 20)).save(tmp_path / "images" / "thumbnail.tif")  # not img_NNNN
    config = PreprocessConfig(
        layout="paired-globs",
        image_glob="images/*.tif",
        image_regex=r"img_(?P<id>\d+)",
        mask_pattern="masks/{id}_label.gif",
        num_classes=3,
        image_height=20,
        image_width=30,
    )
    pairs = {pair.source_id: pair for pair in list_sources(str(tmp_path), config)}
    assert pairs["img_0001"].mask_path == str(tmp_path / "masks" / "0001_label.gif")
    stored = _decode_stored(encode_pair(pairs["img_0002"], config))[1]
    assert stored.shape == (20, 30)
    assert pairs["img_0003"].problem == (
        "missing_mask",
        f"no mask for image {tmp_path / 'images' / 'img_0003.tif'} "
        f"at {tmp_path / 'masks' / '0003_label.gif'}",
    )
    reason, detail = pairs["thumbnail"].problem
    assert reason == "unmatched_name" and "'thumbnail' does not match image_regex" in detail
    with pytest.raises(RejectedInput, match="unmatched_name"):
        encode_pair(pairs["thumbnail"], config)


def _reject_reason(pair: SourcePair, config: PreprocessConfig) -> str:
    with pytest.raises(RejectedInput) as caught:
        encode_pair(pair, config)
    return caught.value.reason


def test_every_name_in_the_folders_is_an_input_whatever_its_name_or_format(tmp_path):
    import os

    _write_pair(tmp_path / "images" / "good.png", tmp_path / "masks" / "good.png", _labels())
    _write_pair(tmp_path / "images" / "photo.webp", tmp_path / "masks" / "photo.png", _labels())
    latin1 = os.fsdecode(b"caf\xe9")  # a name that is not UTF-8
    _write_pair(
        tmp_path / "images" / f"{latin1}.png", tmp_path / "masks" / f"{latin1}.png", _labels()
    )
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    (tmp_path / "images" / "folder.png").mkdir()
    Image.fromarray(_labels()).save(tmp_path / "masks" / "folder.png")
    (tmp_path / "images" / "loop.png").symlink_to("loop.png")
    Image.fromarray(_labels()).save(tmp_path / "masks" / "loop.png")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"\0")  # hidden: not an input
    Image.new("RGB", (30, 20)).save(tmp_path / "images" / "alone.png")

    config = PreprocessConfig(num_classes=3, image_height=20, image_width=30)
    pairs = {pair.source_id: pair for pair in list_sources(str(tmp_path), config)}
    assert set(pairs) == {"good", "photo", "caf\\xe9", "notes.txt", "folder", "loop", "alone"}
    encode_pair(pairs["good"], config)
    encode_pair(pairs["photo"], config)
    assert {key: _reject_reason(pairs[key], config) for key in set(pairs) - {"good", "photo"}} == {
        "caf\\xe9": "non_utf8_name",
        "notes.txt": "unsupported_format",
        "folder": "not_a_file",
        "loop": "not_a_file",
        "alone": "missing_mask",
    }
    assert "caf\\xe9.png: the file name is not UTF-8" in pairs["caf\\xe9"].problem[1]
    assert "a folder, not a file" in pairs["folder"].problem[1]
    assert "broken, or a loop" in pairs["loop"].problem[1]
    assert ".txt is not a supported image format" in pairs["notes.txt"].problem[1]
    assert str(tmp_path / "masks") in pairs["alone"].problem[1]
