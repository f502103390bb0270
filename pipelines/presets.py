"""Named sets of pipeline parameters for known data sets (`segpipe run --preset NAME`)."""

from __future__ import annotations

CAMVID_CLASSES = "Sky,Building,Pole,Road,Pavement,Tree,SignSymbol,Fence,Car,Pedestrian,Bicyclist"

PRESETS: dict[str, dict[str, object]] = {
    # CamVid as shipped with SegNet (../shared/data/camvid): its own 367/101/233 split, void
    # (11) ignored, shards and scores at the full 360x480; the U-Net (width 16: a third of
    # width 32's train step on 2 Zen 4 cores, and better on val) trains on whole frames at
    # 240x320 with damped median-frequency class weights, scale and colour augmentation, for
    # 75 epochs, then refits on train + val for those 75 and scores with test-time
    # augmentation, the mirror and four scales of the input size (docs/results-camvid.md:
    # figures and ablation).
    "camvid": {
        "layout": "list-files",
        "list_files": "train.txt,val.txt,test.txt",
        "strip_prefix": "/SegNet/CamVid/",
        "num_classes": 11,
        "class_names": CAMVID_CLASSES,
        "ignore_values": "11",
        "image_height": 360,
        "image_width": 480,
        "input_height": 240,
        "input_width": 320,
        "unet_width": 16,
        "unet_depth": 4,
        "batch_size": 8,
        "epochs": 75,
        "warmup_epochs": 2,
        "validate_every": 2,
        "learning_rate": 0.002,
        "class_weights": True,
        "class_weight_power": 0.5,
        "scale_min": 0.75,
        "scale_max": 1.5,
        "color_jitter": 0.1,
        "train_on_val": True,
        "flip_tta": True,
        "tta_scales": "0.75,1,1.25,1.5",
        "eval_split": "test",
        "min_mean_iou": 0.45,
        "model_name": "segpipe-camvid",
    },
}
# For a first look (about 10 minutes on 2 cores with bfloat16 units): the camvid recipe for
# 12 epochs, scored with the mirror alone (docs/results-camvid.md has its figure).
PRESETS["camvid-quick"] = {
    **PRESETS["camvid"],
    "epochs": 12,
    "tta_scales": "1",
    "min_mean_iou": 0.35,
    "model_name": "segpipe-camvid-quick",
}


def preset_parameters(name: str | None) -> dict[str, object]:
    """The parameters of preset `name` (none for None); an unknown name is an error."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])
