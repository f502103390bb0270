"""The segpipe pipeline: preprocess -> train -> evaluate -> (gate) publish."""

# No `from __future__ import annotations` here: kfp reads the real parameter types.

from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask

from components.common.config import PipelineConfig
from components.common.images import Images
from components.common.pods import (
    ACCELERATOR_TAINTS,
    MLFLOW_CLIENT_LABEL,
    MLFLOW_SECRET_OPTIONAL,
    MLFLOW_SECRET_REQUIRED,
)
from components.evaluate.component import evaluate_component
from components.preprocess.component import preprocess_component
from components.publish.component import publish_component
from components.train.component import train_component
from components.train.launch_component import launch_train_component
from pipelines.vertex import VertexTraining

PIPELINE_NAME = "segpipe"
TRAIN_RETRIES = 3  # preemptible nodes: a restarted train task resumes the same run


class PipelineOutputs(NamedTuple):
    """What a pipeline run returns: the gate decision and the MLflow run of the trained model."""

    passed: bool
    train_run_id: str


def use_mlflow_secret(task: PipelineTask, secret_name) -> None:
    """MLflow tracking URI and credentials as env vars from the Kubernetes Secret `secret_name`,
    and the pod label the MLflow server's NetworkPolicy admits."""
    kubernetes.use_secret_as_env(task, secret_name, MLFLOW_SECRET_REQUIRED)
    kubernetes.use_secret_as_env(task, secret_name, MLFLOW_SECRET_OPTIONAL, optional=True)
    kubernetes.add_pod_label(task, *MLFLOW_CLIENT_LABEL)


def request_accelerator_node(
    task: PipelineTask, cpu, memory, accelerator, count, node_selector: dict[str, str]
) -> None:
    """CPU, memory and accelerators for `task`, on a (tainted) GPU or TPU node that matches
    `node_selector`. Memory is limited to what is requested: a leak ends in this pod's OOM
    kill (and a retry), not in evicting its neighbours."""
    task.set_cpu_request(cpu).set_memory_request(memory).set_memory_limit(memory)
    task.set_accelerator_type(accelerator).set_accelerator_limit(count)
    for taint in ACCELERATOR_TAINTS:
        kubernetes.add_toleration(task, key=taint, operator="Exists", effect="NoSchedule")
    for key, value in node_selector.items():
        kubernetes.add_node_selector(task, key, value)


def train_task(op, train_args: dict, **more) -> PipelineTask:
    """A train step task (one pod, a TrainJob, or a CustomJob), retried as preemption needs."""
    return (
        op(**train_args, **more)
        .set_display_name("train")
        .set_retry(num_retries=TRAIN_RETRIES, backoff_duration="60s")
    )


def build_pipeline(
    images: Images,
    defaults: PipelineConfig | None = None,
    *,
    cluster: bool = False,
    gpu_node_selector: dict[str, str] | None = None,
    vertex: VertexTraining | None = None,
):
    """The pipeline function, its steps in `images`, its parameter defaults from `defaults`.

    `cluster=True` adds what only a Kubernetes cluster uses: the MLflow Secret as env vars,
    the train task's resources, GPU and TPU tolerations and `gpu_node_selector`. Without it
    (kfp.local) the cluster parameters exist but are unused, so local runs see no no-op
    warnings. On a cluster, `train_workers` > 1 runs the train step as a Kubeflow Trainer
    TrainJob instead of one pod; `vertex` makes the train step a Vertex AI CustomJob of
    `vertex.replicas` instead (and passes the MLflow URI in place of the Secret).
    """
    d = defaults or PipelineConfig()
    node_selector = dict(gpu_node_selector or {})
    preprocess_op = preprocess_component(images.beam)
    train_op = train_component(images.trainer)
    launch_op = launch_train_component(images.trainer)
    vertex_train_op = vertex.train_op(train_op) if vertex is not None else None
    evaluate_op = evaluate_component(images.trainer)
    publish_op = publish_component(images.runtime)

    @dsl.pipeline(name=PIPELINE_NAME, description="Train, gate and publish a segmentation model.")
    def segpipe(
        data_dir: str,
        experiment: str = d.experiment,
        layout: str = d.preprocess.layout,
        image_glob: str = d.preprocess.image_glob,
        image_regex: str = d.preprocess.image_regex,
        mask_pattern: str = d.preprocess.mask_pattern,
        list_files: str = d.preprocess.list_files,
        strip_prefix: str = d.preprocess.strip_prefix,
        mask_encoding: str = d.preprocess.mask_encoding,
        binary_threshold: int = d.preprocess.binary_threshold,
        palette: str = d.preprocess.palette,
        ignore_values: str = d.preprocess.ignore_values,
        num_classes: int = d.preprocess.num_classes,
        class_names: str = d.preprocess.class_names,
        image_height: int = d.preprocess.image_height,
        image_width: int = d.preprocess.image_width,
        resize_mode: str = d.preprocess.resize_mode,
        grayscale: bool = d.preprocess.grayscale,
        val_fraction: float = d.preprocess.val_fraction,
        test_fraction: float = d.preprocess.test_fraction,
        max_reject_fraction: float = d.preprocess.max_reject_fraction,
        max_pixels: int = d.preprocess.max_pixels,
        allow_empty_train_classes: bool = d.preprocess.allow_empty_train_classes,
        num_shards: int = d.preprocess.num_shards,
        target_shard_mb: int = d.preprocess.target_shard_mb,
        runner: str = d.preprocess.runner,
        direct_running_mode: str = d.preprocess.direct_running_mode,
        beam_options: str = d.preprocess.beam_options,
        epochs: int = d.train.epochs,
        batch_size: int = d.train.batch_size,
        learning_rate: float = d.train.learning_rate,
        unet_width: int = d.train.unet_width,
        unet_depth: int = d.train.unet_depth,
        input_height: int = d.train.input_height,
        input_width: int = d.train.input_width,
        seed: int = d.train.seed,
        architecture: str = d.train.architecture,
        backbone: str = d.train.backbone,
        backbone_weights: str = d.train.backbone_weights,
        optimizer: str = d.train.optimizer,
        lr_schedule: str = d.train.lr_schedule,
        momentum: float = d.train.momentum,
        warmup_epochs: int = d.train.warmup_epochs,
        class_weights: bool = d.train.class_weights,
        class_weight_power: float = d.train.class_weight_power,
        dice_weight: float = d.train.dice_weight,
        train_cache: str = d.train.train_cache,
        flip: bool = d.train.flip,
        scale_min: float = d.train.scale_min,
        scale_max: float = d.train.scale_max,
        color_jitter: float = d.train.color_jitter,
        early_stopping_patience: int = d.train.early_stopping_patience,
        checkpoint_root: str = d.train.checkpoint_root,
        checkpoint_every_steps: int = d.train.checkpoint_every_steps,
        warm_start: bool = d.train.warm_start,
        precision: str = d.train.precision,
        jit_compile: bool = d.train.jit_compile,
        system_metrics: bool = d.train.system_metrics,
        tracking_outage_s: int = d.train.tracking_outage_s,
        min_mean_iou: float = d.gate.min_mean_iou,
        eval_split: str = d.gate.eval_split,
        max_drop: float = d.gate.max_drop,
        max_class_drop: float = d.gate.max_class_drop,
        allow_absent_classes: str = d.gate.allow_absent_classes,
        model_name: str = d.publish.model_name,
        export_root: str = d.publish.export_root,
        alias: str = d.publish.alias,
        mlflow_secret: str = d.cluster.mlflow_secret,
        train_cpu: str = d.cluster.train_cpu,
        train_memory: str = d.cluster.train_memory,
        train_accelerator: str = d.cluster.train_accelerator,
        train_gpus: int = d.cluster.train_gpus,
        train_workers: int = d.cluster.train_workers,
    ) -> PipelineOutputs:
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        prep = preprocess_op(
            data_dir=data_dir,
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
            experiment=experiment,
        ).set_display_name("preprocess")
        # Cached on a cluster: same inputs (data_dir + parameters), same shards. New files under
        # the same data_dir do not change the key: submit with --no-cache to re-read them.
        prep.set_caching_options(True)
        train_args = dict(
            dataset=prep.outputs["dataset"],
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            unet_width=unet_width,
            unet_depth=unet_depth,
            input_height=input_height,
            input_width=input_width,
            seed=seed,
            architecture=architecture,
            backbone=backbone,
            backbone_weights=backbone_weights,
            optimizer=optimizer,
            lr_schedule=lr_schedule,
            momentum=momentum,
            warmup_epochs=warmup_epochs,
            class_weights=class_weights,
            class_weight_power=class_weight_power,
            dice_weight=dice_weight,
            train_cache=train_cache,
            flip=flip,
            scale_min=scale_min,
            scale_max=scale_max,
            color_jitter=color_jitter,
            early_stopping_patience=early_stopping_patience,
            checkpoint_root=checkpoint_root,
            checkpoint_every_steps=checkpoint_every_steps,
            warm_start=warm_start,
            precision=precision,
            jit_compile=jit_compile,
            system_metrics=system_metrics,
            tracking_outage_s=tracking_outage_s,
            model_name=model_name,
            alias=alias,
            experiment=experiment,
            pipeline_run_id=run_id,
            pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,  # checkpoints when no checkpoint_root
            train_workers=train_workers,
        )
        if vertex is not None:  # Vertex AI starts the replicas and sets their TF_CONFIG
            trained = train_task(vertex_train_op, train_args)
            model, train_run = trained.outputs["model"], trained.outputs["Output"]
        elif cluster:
            with dsl.If(train_workers == 1, name="one-train-pod"):
                trained = train_task(train_op, train_args)
                request_accelerator_node(
                    trained, train_cpu, train_memory, train_accelerator, train_gpus, node_selector
                )
            with dsl.Else(name="train-workers"):
                launched = train_task(
                    launch_op,
                    train_args,
                    train_cpu=train_cpu,
                    train_memory=train_memory,
                    train_accelerator=train_accelerator,
                    train_gpus=train_gpus,
                    mlflow_secret=mlflow_secret,
                    trainer_image=images.trainer,
                    node_selector=",".join(f"{k}={v}" for k, v in node_selector.items()),
                ).set_display_name("train (TrainJob)")
            model = dsl.OneOf(trained.outputs["model"], launched.outputs["model"])
            train_run = dsl.OneOf(trained.outputs["Output"], launched.outputs["Output"])
        else:
            trained = train_task(train_op, train_args)
            model, train_run = trained.outputs["model"], trained.outputs["Output"]
        gate = (
            evaluate_op(
                dataset=prep.outputs["dataset"],
                model=model,
                min_mean_iou=min_mean_iou,
                eval_split=eval_split,
                max_drop=max_drop,
                max_class_drop=max_class_drop,
                allow_absent_classes=allow_absent_classes,
                model_name=model_name,
                alias=alias,
                train_run_id=train_run,
                experiment=experiment,
                pipeline_run_id=run_id,
            )
            .set_display_name("evaluate")
            .set_caching_options(False)
        )
        with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
            published = (
                publish_op(
                    model=model,
                    dataset=prep.outputs["dataset"],
                    train_run_id=train_run,
                    model_name=model_name,
                    export_root=export_root,
                    alias=alias,
                    experiment=experiment,
                    pipeline_run_id=run_id,
                )
                .set_display_name("publish")
                .set_caching_options(False)
            )
        if vertex is not None:
            for task in (prep, trained, gate, published):  # every step that tracks to MLflow
                task.set_env_variable("MLFLOW_TRACKING_URI", vertex.mlflow_tracking_uri)
        elif cluster:
            for task in (prep, trained, launched, gate, published):  # those that track to MLflow
                use_mlflow_secret(task, mlflow_secret)
        return PipelineOutputs(gate.outputs["Output"], train_run)

    return segpipe
