"""The segpipe pipeline: snapshot -> (data or settings changed) preprocess -> train -> evaluate
-> (gate) publish, then finish."""

# No `from __future__ import annotations` here: kfp reads the real parameter types.

import inspect
from dataclasses import dataclass
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
    ops = _StepOps.of(images, vertex)
    placement = _Placement(cluster, dict(gpu_node_selector or {}), vertex, images.trainer)

    def segpipe(*args, **kwargs) -> PipelineOutputs:
        p = signature.bind(*args, **kwargs).arguments
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        # Runs however the steps end: the MLflow parent run gets the headline and its final
        # state, and no step run is left RUNNING.
        finish = _uncached(
            ops.finish(
                **step_inputs(
                    ops.finish,
                    p,
                    pipeline_run_id=run_id,
                    kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
                )
            ),
            "finish",
        )
        with dsl.ExitHandler(finish, name="pipeline-run"):
            # Never cached: it is what looks at the data.
            snap = _uncached(
                ops.snapshot(**step_inputs(ops.snapshot, p, pipeline_run_id=run_id)), "snapshot"
            )
            fingerprint = snap.outputs["Output"]
            with dsl.If(fingerprint != "", name="data-or-settings-changed"):
                prep = ops.preprocess(
                    **step_inputs(ops.preprocess, p, data_fingerprint=fingerprint)
                ).set_display_name("preprocess")
                # Cached: the key holds the snapshot's fingerprint of the data and the preprocess
                # settings, so it hits exactly when preprocess would write the same shards.
                prep.set_caching_options(True)
                step_artifacts = dict(
                    dataset=prep.outputs["dataset"],
                    snapshot=snap.outputs["snapshot"],
                    pipeline_run_id=run_id,
                )
                model, train_run, train_tasks = _train_tasks(ops, p, step_artifacts, placement)
                gate, published = _gate_and_publish(ops, p, step_artifacts, model, train_run)
        for task in (snap, prep, *train_tasks, gate, published, finish):  # all use MLflow
            placement.connect_to_mlflow(task, p)
        outputs = ("passed", "train_run_id", "outcome", "parent_run_id")
        return PipelineOutputs(*(finish.outputs[name] for name in outputs))

    segpipe.__signature__ = signature
    segpipe.__doc__ = pipeline_docstring()
    return dsl.pipeline(name=PIPELINE_NAME)(segpipe)


@dataclass(frozen=True)
class _StepOps:
    """The pipeline's components, each in its image."""

    snapshot: BaseComponent
    preprocess: BaseComponent
    train: BaseComponent
    launch_train: BaseComponent
    vertex_train: BaseComponent | None
    evaluate: BaseComponent
    publish: BaseComponent
    finish: BaseComponent

    @classmethod
    def of(cls, images: Images, vertex: VertexTraining | None) -> "_StepOps":
        train_op = train_component(images.trainer)
        return cls(
            snapshot=snapshot_component(images.beam),
            preprocess=preprocess_component(images.beam),
            train=train_op,
            launch_train=launch_train_component(images.trainer),
            vertex_train=vertex.train_op(train_op) if vertex is not None else None,
            evaluate=evaluate_component(images.trainer),
            publish=publish_component(images.runtime),
            finish=finish_component(images.runtime),
        )


@dataclass(frozen=True)
class _Placement:
    """Where the tasks run: kfp.local, a Kubernetes cluster, or Vertex AI for the train step."""

    cluster: bool
    node_selector: dict[str, str]
    vertex: VertexTraining | None
    trainer_image: str

    def connect_to_mlflow(self, task: PipelineTask, p: dict[str, object]) -> None:
        """The tracking server's address: Vertex AI's URI, or the cluster's MLflow Secret."""
        if self.vertex is not None:
            task.set_env_variable("MLFLOW_TRACKING_URI", self.vertex.mlflow_tracking_uri)
        elif self.cluster:
            use_mlflow_secret(task, p["mlflow_secret"])


def _uncached(task: PipelineTask, name: str) -> PipelineTask:
    return task.set_display_name(name).set_caching_options(False)


def _train_tasks(ops: _StepOps, p: dict[str, object], step_artifacts: dict, placement: _Placement):
    """The train step where it runs: one task locally or on Vertex AI; on a cluster one pod, or
    a TrainJob when `train_workers` > 1. Returns (model, train run id, the tasks made)."""
    # checkpoints go under the pipeline root when checkpoint_root is empty
    artifacts = {**step_artifacts, "pipeline_root": dsl.PIPELINE_ROOT_PLACEHOLDER}
    train_args = step_inputs(ops.train, p, **artifacts)
    if placement.vertex is not None:  # Vertex AI starts the replicas and sets their TF_CONFIG
        trained = train_task(ops.vertex_train, train_args)
        return trained.outputs["model"], trained.outputs["Output"], [trained]
    if not placement.cluster:
        trained = train_task(ops.train, train_args, retried=False)
        return trained.outputs["model"], trained.outputs["Output"], [trained]
    with dsl.If(p["train_workers"] == 1, name="one-train-pod"):
        trained = train_task(ops.train, train_args)
        resources = [p[n] for n in ("train_cpu", "train_memory", "train_accelerator")]
        request_accelerator_node(trained, *resources, p["train_gpus"], placement.node_selector)
    with dsl.Else(name="train-workers"):
        launch_args = step_inputs(
            ops.launch_train,
            p,
            **artifacts,
            trainer_image=placement.trainer_image,
            node_selector=",".join(f"{k}={v}" for k, v in placement.node_selector.items()),
        )
        launched = train_task(ops.launch_train, launch_args)
        launched.set_display_name("train (TrainJob)")
    model = dsl.OneOf(trained.outputs["model"], launched.outputs["model"])
    train_run = dsl.OneOf(trained.outputs["Output"], launched.outputs["Output"])
    return model, train_run, [trained, launched]


def _gate_and_publish(
    ops: _StepOps, p: dict[str, object], step_artifacts: dict, model, train_run
) -> tuple[PipelineTask, PipelineTask]:
    """evaluate, and publish under `dsl.If` on its verdict; neither is ever cached."""
    gate = _uncached(
        ops.evaluate(
            **step_inputs(ops.evaluate, p, **step_artifacts, model=model, train_run_id=train_run)
        ),
        "evaluate",
    )
    with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
        published = _uncached(
            ops.publish(
                **step_inputs(
                    ops.publish,
                    p,
                    dataset=step_artifacts["dataset"],
                    pipeline_run_id=step_artifacts["pipeline_run_id"],
                    model=model,
                    train_run_id=train_run,
                )
            ),
            "publish",
        )
    return gate, published
