"""Ten typo'd settings and what their refusal must name (the allowed values), shared by
tests/test_settings_entry.py and tests/benchmarks/bench_refusals.py."""

TYPOS = [
    ("optimizer=adamw", "optimizer must be one of adam, sgd, rmsprop; got 'adamw'"),
    ("architecture=unet++", "architecture must be one of unet, deeplabv3plus; got 'unet++'"),
    ("backbone=resnet", "backbone must be one of mobilenetv2, resnet50; got 'resnet'"),
    ("lr_schedule=cosine_decay", "lr_schedule must be one of cosine, polynomial, constant"),
    ("precision=fp16", "precision must be one of auto, float32, mixed_float16, mixed_bfloat16"),
    ("layout=folders", "layout must be one of paired-folders, paired-globs, list-files, voc"),
    ("mask_encoding=rgb", "mask_encoding must be one of index, binary, palette; got 'rgb'"),
    ("resize_mode=crop", "resize_mode must be one of stretch, pad; got 'crop'"),
    ("eval_split=validation", "eval_split must be one of train, val, test; got 'validation'"),
    (
        "direct_running_mode=multiprocessing",
        "direct_running_mode must be one of in_memory, multi_threading, multi_processing",
    ),
]
