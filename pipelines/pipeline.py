"""The segpipe pipeline: preprocess -> train -> evaluate -> (gate) publish."""

# No `from __future__ import annotations` here: kfp reads the real parameter types.

import inspect
from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask
from kfp.dsl.base_component import BaseComponent

from components.common.config import (
    PipelineConfig,
    help_of,
    pipeline_setting_types,
    pipeline_settings,
)
from components.common.images import Images
from components.evaluate.component import evaluate_component
from components.preprocess.component import preprocess_component
from components.publish.component import publish_component
from components.train.component import train_component

PIPELINE_NAME = "segpipe"
TRAIN_RETRIES = 3  # preemptible nodes: a restarted train task resumes the same run
# Keys of the MLflow Secret: the tracking URI is required, credentials are per-key optional.
MLFLOW_SECRET_REQUIRED = {"tracking_uri": "MLFLOW_TRACKING_URI"}
MLFLOW_SECRET_OPTIONAL = {
    "username": "MLFLOW_TRACKING_USERNAME",
    "password": "MLFLOW_TRACKING_PASSWORD",
    "token": "MLFLOW_TRACKING_TOKEN",
}
# docker/mlflow.yaml's NetworkPolicy admits only pods with this label to the MLflow server
MLFLOW_CLIENT_LABEL = ("segpipe.io/mlflow-client", "true")
# the taints GKE (and the NVIDIA operator) put on GPU and TPU nodes; tolerating both lets
# train_accelerator pick either kind at run time
ACCELERATOR_TAINTS = ("nvidia.com/gpu", "google.com/tpu")


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
):
    """The pipeline function, its steps in `images`, its parameter defaults from `defaults`.

    Its signature is generated from PipelineConfig (kfp reads `__signature__`): one typed input
    per setting, named as the setting. Each step gets every pipeline input its component has
    an input of the same name for (`step_inputs`).

    `cluster=True` adds what only a Kubernetes cluster uses: the MLflow Secret as env vars,
    the train task's resources, GPU and TPU tolerations and `gpu_node_selector`. Without it
    (kfp.local) the cluster parameters exist but are unused, so local runs see no no-op
    warnings.
    """
    signature = pipeline_signature(defaults or PipelineConfig())
    node_selector = dict(gpu_node_selector or {})
    preprocess_op = preprocess_component(images.beam)
    train_op = train_component(images.trainer)
    evaluate_op = evaluate_component(images.trainer)
    publish_op = publish_component(images.runtime)

    def segpipe(*args, **kwargs) -> PipelineOutputs:
        p = signature.bind(*args, **kwargs).arguments
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        prep = preprocess_op(**step_inputs(preprocess_op, p)).set_display_name("preprocess")
        # Cached on a cluster: same inputs (data_dir + parameters), same shards. New files under
        # the same data_dir do not change the key: submit with --no-cache to re-read them.
        prep.set_caching_options(True)
        trained = (
            train_op(
                **step_inputs(
                    train_op,
                    p,
                    dataset=prep.outputs["dataset"],
                    pipeline_run_id=run_id,
                    # checkpoints go under the pipeline root when checkpoint_root is empty
                    pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
                )
            )
            .set_display_name("train")
            .set_retry(num_retries=TRAIN_RETRIES, backoff_duration="60s")
        )
        gate = (
            evaluate_op(
                **step_inputs(
                    evaluate_op,
                    p,
                    dataset=prep.outputs["dataset"],
                    model=trained.outputs["model"],
                    train_run_id=trained.outputs["Output"],
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
                        model=trained.outputs["model"],
                        dataset=prep.outputs["dataset"],
                        train_run_id=trained.outputs["Output"],
                        pipeline_run_id=run_id,
                    )
                )
                .set_display_name("publish")
                .set_caching_options(False)
            )
        if cluster:
            for task in (prep, trained, gate, published):  # every step that tracks to MLflow
                use_mlflow_secret(task, p["mlflow_secret"])
            resources = [p[name] for name in ("train_cpu", "train_memory", "train_accelerator")]
            request_accelerator_node(trained, *resources, p["train_gpus"], node_selector)
        return PipelineOutputs(gate.outputs["Output"], trained.outputs["Output"])

    segpipe.__signature__ = signature
    segpipe.__doc__ = pipeline_docstring()
    return dsl.pipeline(name=PIPELINE_NAME)(segpipe)
