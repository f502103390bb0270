"""The segpipe pipeline: snapshot -> (changed) preprocess -> train -> evaluate -> (gate) publish."""

# No `from __future__ import annotations` here: kfp reads the real parameter types.

import inspect
from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, PipelineTask
from kfp.dsl.base_component import BaseComponent

from components.common.config import (
    PipelineConfig,
    help_of,
    pipeline_setting_types,
    pipeline_settings,
)
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
from components.snapshot.component import snapshot_component
from components.train.component import train_component
from components.train.launch_component import launch_train_component
from pipelines.vertex import VertexTraining

PIPELINE_NAME = "segpipe"
TRAIN_RETRIES = 3  # preemptible nodes: a restarted train task resumes the same run


class PipelineOutputs(NamedTuple):
    """What a pipeline run returns: the data snapshot, whose metadata says whether the run went
    on (`status`) and names the pipeline run the steps' MLflow runs are tagged with. (The gate's
    outputs cannot be the pipeline's: a run that finds nothing changed never reaches it.)"""

    snapshot: Dataset


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


def train_task(op, train_args: dict) -> PipelineTask:
    """A train step task (one pod, a TrainJob, or a CustomJob), retried as preemption needs."""
    return (
        op(**train_args)
        .set_display_name("train")
        .set_retry(num_retries=TRAIN_RETRIES, backoff_duration="60s")
    )


DATA_DIR_HELP = "the data folder (local or gs://) of image and mask pairs"


def pipeline_signature(defaults: PipelineConfig) -> inspect.Signature:
    """The pipeline's inputs: `data_dir`, then every setting of `defaults`, flat and typed."""
    values, types = defaults.parameters(), pipeline_setting_types()
    inputs = [
        inspect.Parameter("data_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)
    ]
    for _, setting in pipeline_settings():
        inputs.append(
            inspect.Parameter(
                setting.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=values[setting.name],
                annotation=types[setting.name],
            )
        )
    return inspect.Signature(inputs, return_annotation=PipelineOutputs)


def pipeline_docstring() -> str:
    """The pipeline's docstring: kfp reads its `Args:` into the inputs' descriptions."""
    lines = [f"    {s.name}: {help_of(s)}" for _, s in pipeline_settings()]
    return "\n".join(
        [
            "Train, gate and publish a segmentation model.",
            "",
            "Args:",
            f"    data_dir: {DATA_DIR_HELP}",
            *lines,
        ]
    )


def step_inputs(step: BaseComponent, params: dict[str, object], **others) -> dict[str, object]:
    """The arguments of one step call: each of its inputs named like a pipeline parameter gets
    that parameter, the rest come from `others` (artifacts, run ids); any left over is an error,
    so no input is silently left at a default."""
    inputs = set(step.component_spec.inputs or {})
    wired = {name: params[name] for name in inputs if name in params}
    clash = set(wired) & set(others)
    missing = inputs - set(wired) - set(others)
    if clash or missing:
        raise TypeError(
            f"step {step.name}: inputs {sorted(clash)} given twice, {sorted(missing)} not given"
        )
    return {**wired, **others}


def build_pipeline(
    images: Images,
    defaults: PipelineConfig | None = None,
    *,
    cluster: bool = False,
    gpu_node_selector: dict[str, str] | None = None,
    vertex: VertexTraining | None = None,
):
    """The pipeline function, its steps in `images`, its parameter defaults from `defaults`.

    Its signature is generated from PipelineConfig (kfp reads `__signature__`): one typed input
    per setting, named as the setting. Each step gets every pipeline input its component has
    an input of the same name for (`step_inputs`).

    `cluster=True` adds what only a Kubernetes cluster uses: the MLflow Secret as env vars,
    the train task's resources, GPU and TPU tolerations and `gpu_node_selector`. Without it
    (kfp.local) the cluster parameters exist but are unused, so local runs see no no-op
    warnings. On a cluster, `train_workers` > 1 runs the train step as a Kubeflow Trainer
    TrainJob instead of one pod; `vertex` makes the train step a Vertex AI CustomJob of
    `vertex.replicas` instead (and passes the MLflow URI in place of the Secret).
    """
    signature = pipeline_signature(defaults or PipelineConfig())
    node_selector = dict(gpu_node_selector or {})
    snapshot_op = snapshot_component(images.beam)
    preprocess_op = preprocess_component(images.beam)
    train_op = train_component(images.trainer)
    launch_op = launch_train_component(images.trainer)
    vertex_train_op = vertex.train_op(train_op) if vertex is not None else None
    evaluate_op = evaluate_component(images.trainer)
    publish_op = publish_component(images.runtime)

    def segpipe(*args, **kwargs) -> PipelineOutputs:
        p = signature.bind(*args, **kwargs).arguments
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        # Never cached: it is what looks at the data. It returns the data fingerprint, or ""
        # when data and training settings equal the champion's and skip_unchanged is on.
        snap = (
            snapshot_op(**step_inputs(snapshot_op, p, pipeline_run_id=run_id))
            .set_display_name("snapshot")
            .set_caching_options(False)
        )
        snapshot = snap.outputs["snapshot"]
        launched = None
        with dsl.If(snap.outputs["Output"] != "", name="data-or-settings-changed"):
            prep = preprocess_op(
                **step_inputs(preprocess_op, p, data_fingerprint=snap.outputs["Output"])
            ).set_display_name("preprocess")
            # Cached: the key holds the snapshot's fingerprint of the data and the preprocess
            # settings, so it hits exactly when preprocess would write the same shards.
            prep.set_caching_options(True)
            step_artifacts = dict(
                dataset=prep.outputs["dataset"],
                snapshot=snapshot,
                pipeline_run_id=run_id,
                # checkpoints go under the pipeline root when checkpoint_root is empty
                pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
            )
            train_args = step_inputs(train_op, p, **step_artifacts)
            if vertex is not None:  # Vertex AI starts the replicas and sets their TF_CONFIG
                trained = train_task(vertex_train_op, train_args)
                model, train_run = trained.outputs["model"], trained.outputs["Output"]
            elif cluster:
                with dsl.If(p["train_workers"] == 1, name="one-train-pod"):
                    trained = train_task(train_op, train_args)
                    resources = [p[n] for n in ("train_cpu", "train_memory", "train_accelerator")]
                    request_accelerator_node(trained, *resources, p["train_gpus"], node_selector)
                with dsl.Else(name="train-workers"):
                    launch_args = step_inputs(
                        launch_op,
                        p,
                        **step_artifacts,
                        trainer_image=images.trainer,
                        node_selector=",".join(f"{k}={v}" for k, v in node_selector.items()),
                    )
                    launched = train_task(launch_op, launch_args).set_display_name(
                        "train (TrainJob)"
                    )
                model = dsl.OneOf(trained.outputs["model"], launched.outputs["model"])
                train_run = dsl.OneOf(trained.outputs["Output"], launched.outputs["Output"])
            else:
                trained = train_task(train_op, train_args)
                model, train_run = trained.outputs["model"], trained.outputs["Output"]
            gate = (
                evaluate_op(
                    **step_inputs(
                        evaluate_op,
                        p,
                        dataset=prep.outputs["dataset"],
                        model=model,
                        snapshot=snapshot,
                        train_run_id=train_run,
                        pipeline_run_id=run_id,
                    )
                )
                .set_display_name("evaluate")
                .set_caching_options(False)
            )
            with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                published = (
                    publish_op(
                        **step_inputs(
                            publish_op,
                            p,
                            model=model,
                            dataset=prep.outputs["dataset"],
                            train_run_id=train_run,
                            pipeline_run_id=run_id,
                        )
                    )
                    .set_display_name("publish")
                    .set_caching_options(False)
                )
        tracked = [snap, prep, trained, launched, gate, published]  # the steps that use MLflow
        for task in filter(None, tracked):
            if vertex is not None:
                task.set_env_variable("MLFLOW_TRACKING_URI", vertex.mlflow_tracking_uri)
            elif cluster:
                use_mlflow_secret(task, p["mlflow_secret"])
        return PipelineOutputs(snapshot)

    segpipe.__signature__ = signature
    segpipe.__doc__ = pipeline_docstring()
    return dsl.pipeline(name=PIPELINE_NAME)(segpipe)
