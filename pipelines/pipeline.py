"""The segpipe pipeline: snapshot -> (data or settings changed) preprocess -> train -> evaluate
-> (gate) publish, then finish."""

# No `from __future__ import annotations` here: kfp reads the real parameter types.

import inspect
from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask
from kfp.dsl.base_component import BaseComponent

from components.common.pods import (
    ACCELERATOR_TAINTS,
    MLFLOW_CLIENT_LABEL,
    MLFLOW_SECRET_OPTIONAL,
    MLFLOW_SECRET_REQUIRED,
)
from components.common.settings.config import (
    PipelineConfig,
    help_of,
    pipeline_setting_types,
    pipeline_settings,
)
from components.evaluate.component import evaluate_component
from components.finish.component import finish_component
from components.preprocess.component import preprocess_component
from components.publish.component import publish_component
from components.snapshot.component import snapshot_component
from components.train.component import train_component
from components.train.launch_component import launch_train_component
from pipelines.cluster.vertex import VertexTraining
from pipelines.images import Images

PIPELINE_NAME = "segpipe"
TRAIN_RETRIES = 3  # preemptible nodes: a restarted train task resumes the same run


class PipelineOutputs(NamedTuple):
    """What a pipeline run returns (the finish task's outputs): the gate decision, the MLflow
    run of the trained model ("" when none), the snapshot's outcome ("unchanged, nothing to
    do" when the run ended after it) and the MLflow parent run with the run's headline."""

    passed: bool
    train_run_id: str
    outcome: str
    parent_run_id: str


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


def train_task(op, train_args: dict, retried: bool = True) -> PipelineTask:
    """A train step task (one pod, a TrainJob, or a CustomJob), retried as preemption needs.

    Not `retried` on one machine (kfp.local): nothing preempts it there, and a retry would only
    repeat an error after minutes of backoff.
    """
    task = op(**train_args).set_display_name("train")
    return task.set_retry(num_retries=TRAIN_RETRIES, backoff_duration="60s") if retried else task


FINAL_STATUS = "PipelineTaskFinalStatus"  # the input type kfp fills for an exit task
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
    so no input is silently left at a default. An exit task's final status is kfp's to fill."""
    specs = step.component_spec.inputs or {}
    inputs = {name for name, spec in specs.items() if spec.type != FINAL_STATUS}
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
    an input of the same name for (`step_inputs`). The steps run inside an exit handler whose
    `finish` task closes the MLflow parent run however they end; its outputs are the pipeline's.
    The first step, snapshot, returns the data fingerprint (an input of preprocess, so the KFP
    cache follows the data) or "" when the data and training settings equal the champion's and
    `skip_unchanged` is on: every later step sits under a `dsl.If` on it.

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
    finish_op = finish_component(images.runtime)

    def segpipe(*args, **kwargs) -> PipelineOutputs:
        p = signature.bind(*args, **kwargs).arguments
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        # Runs however the steps end: the MLflow parent run gets the headline and its final
        # state, and no step run is left RUNNING.
        finish = (
            finish_op(
                **step_inputs(
                    finish_op,
                    p,
                    pipeline_run_id=run_id,
                    kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
                )
            )
            .set_display_name("finish")
            .set_caching_options(False)
        )
        with dsl.ExitHandler(finish, name="pipeline-run"):
            # Never cached: it is what looks at the data.
            snap = (
                snapshot_op(**step_inputs(snapshot_op, p, pipeline_run_id=run_id))
                .set_display_name("snapshot")
                .set_caching_options(False)
            )
            snapshot = snap.outputs["snapshot"]
            launched = None
            fingerprint = snap.outputs["Output"]
            with dsl.If(fingerprint != "", name="data-or-settings-changed"):
                prep = preprocess_op(
                    **step_inputs(preprocess_op, p, data_fingerprint=fingerprint)
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
                        resources = [
                            p[n] for n in ("train_cpu", "train_memory", "train_accelerator")
                        ]
                        request_accelerator_node(
                            trained, *resources, p["train_gpus"], node_selector
                        )
                    with dsl.Else(name="train-workers"):
                        launch_args = step_inputs(
                            launch_op,
                            p,
                            **step_artifacts,
                            trainer_image=images.trainer,
                            node_selector=",".join(f"{k}={v}" for k, v in node_selector.items()),
                        )
                        launched = train_task(launch_op, launch_args)
                        launched.set_display_name("train (TrainJob)")
                    model = dsl.OneOf(trained.outputs["model"], launched.outputs["model"])
                    train_run = dsl.OneOf(trained.outputs["Output"], launched.outputs["Output"])
                else:
                    trained = train_task(train_op, train_args, retried=False)
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
        tracked = [snap, prep, trained, launched, gate, published, finish]  # all use MLflow
        for task in filter(None, tracked):
            if vertex is not None:
                task.set_env_variable("MLFLOW_TRACKING_URI", vertex.mlflow_tracking_uri)
            elif cluster:
                use_mlflow_secret(task, p["mlflow_secret"])
        outputs = ("passed", "train_run_id", "outcome", "parent_run_id")
        return PipelineOutputs(*(finish.outputs[name] for name in outputs))

    segpipe.__signature__ = signature
    segpipe.__doc__ = pipeline_docstring()
    return dsl.pipeline(name=PIPELINE_NAME)(segpipe)
