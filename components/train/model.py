"""Model zoo: a configurable U-Net and DeepLabV3+ on a keras.applications backbone."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from components.common.settings.config import ARCHITECTURES
from components.train.fused_batch_norm import FusedBatchNormalization


def _conv_block(x, filters: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        # momentum 0.9: moving statistics settle within the few hundred steps small runs take
        x = FusedBatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


@keras.saving.register_keras_serializable(package="segpipe")
class PadToMultiple(layers.Layer):
    """Zero-pads height and width (bottom, right) up to a multiple of `multiple`."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, images):
        shape = tf.shape(images)
        extra = (-shape[1:3]) % self.multiple
        return tf.pad(images, [[0, 0], [0, extra[0]], [0, extra[1]], [0, 0]])

    def compute_output_shape(self, input_shape):
        def padded(size):
            return None if size is None else -(-size // self.multiple) * self.multiple

        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="segpipe")
class CropToInput(layers.Layer):
    """The top-left height x width of the first input, those of the second."""

    def call(self, inputs):
        padded, reference = inputs
        shape = tf.shape(reference)
        return padded[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shapes):
        padded, reference = input_shapes
        return (padded[0], reference[1], reference[2], padded[3])


def build_unet(
    num_classes: int, height: int | None, width: int | None, base_width: int = 16, depth: int = 3
):
    """U-Net taking float images in 0..255 and returning per-pixel logits at input size.

    Sides that 2**depth does not divide are zero-padded inside the model and the logits
    cropped back; `height` and `width` None take any size (training on crops, scoring whole).
    """
    inputs = keras.Input((height, width, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if height is None or width is None or height % 2**depth or width % 2**depth:
        x = PadToMultiple(2**depth, name="pad")(x)
    skips = []
    for level in range(depth):
        x = _conv_block(x, base_width * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _conv_block(x, base_width * 2**depth, "bottom")
    for level in reversed(range(depth)):
        filters = base_width * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters, f"dec{level}")
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    if height is None or width is None or height % 2**depth or width % 2**depth:
        logits = CropToInput(dtype="float32", name="crop")([logits, inputs])
    return keras.Model(inputs, logits, name=f"unet_w{base_width}_d{depth}")


# (low-level feature at stride 4, high-level feature at stride 16) of each backbone
BACKBONE_FEATURES = {
    "resnet50": ("conv2_block3_2_relu", "conv4_block6_2_relu"),
    "mobilenetv2": ("block_3_expand_relu", "block_13_expand_relu"),
}


def _conv_bn_relu(x, filters: int, kernel: int, name: str, dilation: int = 1):
    x = layers.Conv2D(
        filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=name
    )(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _backbone(name: str, inputs, weights: str):
    """The backbone applied to `inputs` (0..255), and its preprocessing; weights loaded."""
    from keras import applications

    if name not in BACKBONE_FEATURES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONE_FEATURES)}, got {name!r}")
    # "imagenet" downloads (or finds in ~/.keras); any other non-empty value is a local file
    builtin = "imagenet" if weights == "imagenet" else None
    shape = tuple(inputs.shape[1:])
    if name == "resnet50":
        x = applications.resnet50.preprocess_input(inputs)
        net = applications.ResNet50(include_top=False, weights=builtin, input_shape=shape)
    else:
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
        net = applications.MobileNetV2(include_top=False, weights=builtin, input_shape=shape)
    if weights and weights != "imagenet":
        net.load_weights(weights)
    low, high = BACKBONE_FEATURES[name]
    features = keras.Model(net.input, [net.get_layer(low).output, net.get_layer(high).output])
    return features(x)


def build_deeplabv3plus(
    num_classes: int,
    height: int,
    width: int,
    backbone: str = "mobilenetv2",
    backbone_weights: str = "",
    filters: int = 256,
):
    """DeepLabV3+ (ASPP at stride 16, decoder at stride 4); logits at the input size."""
    if height % 16 or width % 16:
        raise ValueError(f"input {height}x{width} must be divisible by 16 for DeepLabV3+")
    inputs = keras.Input((height, width, 3), name="image")
    low, high = _backbone(backbone, inputs, backbone_weights)
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(high)
    pooled = _conv_bn_relu(pooled, filters, 1, "aspp_pool_conv")
    pooled = layers.UpSampling2D((height // 16, width // 16), name="aspp_pool_up")(pooled)
    branches = [pooled, _conv_bn_relu(high, filters, 1, "aspp_1x1")]
    branches += [_conv_bn_relu(high, filters, 3, f"aspp_d{r}", r) for r in (6, 12, 18)]
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, filters, 1, "aspp_out")
    x = layers.UpSampling2D(4, interpolation="bilinear", name="decoder_up4")(x)
    skip = _conv_bn_relu(low, 48, 1, "decoder_skip")
    x = layers.Concatenate(name="decoder_concat")([x, skip])
    x = _conv_bn_relu(x, filters, 3, "decoder_conv1")
    x = _conv_bn_relu(x, filters, 3, "decoder_conv2")
    x = layers.UpSampling2D(4, interpolation="bilinear", name="decoder_up_out")(x)
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"deeplabv3plus_{backbone}")


def build_model(config, num_classes: int, height: int, width: int):
    """The model `config.architecture` (a TrainConfig) names; a U-Net trained on crops takes
    images of any size."""
    if config.architecture == "unet":
        if config.crop_height:
            height = width = None
        return build_unet(num_classes, height, width, config.unet_width, config.unet_depth)
    if config.architecture == "deeplabv3plus":
        return build_deeplabv3plus(
            num_classes, height, width, config.backbone, config.backbone_weights
        )
    raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}")


def any_size_model(model: keras.Model, config, num_classes: int) -> keras.Model:
    """`model`, or for a U-Net built for one input size its twin that takes any (test-time
    scales) with the same weights: padding and cropping, the only layers it adds, have none."""
    if model.input_shape[1:3] == (None, None):
        return model
    if config.architecture != "unet":
        raise ValueError(f"only a unet takes images of any size, not {config.architecture}")
    twin = build_unet(num_classes, None, None, config.unet_width, config.unet_depth)
    twin.set_weights(model.get_weights())
    return twin
