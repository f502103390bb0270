"""The TrainJob launcher against a stand-in Kubernetes API on 127.0.0.1 (tests/fake_k8s.py).

The real `kubernetes` client talks HTTP to it: create, watch until Complete or Failed, the chief's
log, delete on cancel, re-attach on a retry. The last test runs the workers for real. Not a
cluster: what a real Trainer controller and JobSet do is played by each test.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_k8s import FakeKubernetes
from worker_cluster import REPO, tf_configs

from components.common.settings.config import TrainConfig
from components.train import launcher, trainjob

NAMESPACE = "team-a"
RUN_ID = "run-0001"


def _manifest(workers: int = 2) -> dict:
    return trainjob.train_job(
        RUN_ID, image="segpipe-trainer:test", args=["--epochs", "1"], workers=workers
    )


def _chief_labels(name: str) -> dict[str, str]:
    return {
        trainjob.JOBSET_NAME_LABEL: name,
        trainjob.REPLICATED_JOB_LABEL: trainjob.REPLICATED_JOB,
        trainjob.COMPLETION_INDEX_LABEL: "0",
    }


def _play(outcome: str, lines: list[str], message: str = ""):
    """A controller that runs the chief's pod, which logs `lines`, then ends the job `outcome`."""

    def on_create(fake: FakeKubernetes, job: dict) -> None:
        name = job["metadata"]["name"]
        pod = f"{name}-node-0-0-x1"
        fake.add_pod(pod, _chief_labels(name))
        for line in lines:
            time.sleep(0.05)
            fake.log(pod, line)
        fake.end_pod(pod, "Succeeded" if outcome == "Complete" else "Failed")
        time.sleep(0.3)
        fake.set_condition(name, outcome, message)

    return on_create


def _jobs(fake: FakeKubernetes) -> launcher.TrainJobs:
    return launcher.TrainJobs(fake.api_client(), NAMESPACE)


def test_a_job_is_created_strictly_watched_to_complete_and_its_chief_log_streamed():
    out = io.StringIO()
    with FakeKubernetes(on_create=_play("Complete", ["Epoch 1/1", "loss: 0.5"])) as fake:
        launcher.run_train_job(_jobs(fake), _manifest(), out)
        (post,) = fake.calls("POST", "/trainjobs")
        assert post[1] == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/trainjobs"
        assert post[2]["fieldValidation"] == "Strict"  # unknown fields refused, not dropped
        assert fake.calls("GET", "/trainjobs") and fake.calls("GET", "/log")
        assert not fake.calls("DELETE")  # a finished job stays, for its logs and re-attach
    assert "Epoch 1/1\nloss: 0.5\n" in out.getvalue()


def test_a_failed_job_fails_the_step_with_its_reason():
    play = _play("Failed", ["Traceback ..."], message="jobset failed: maxRestarts reached")
    with FakeKubernetes(on_create=play) as fake:
        with pytest.raises(launcher.TrainJobFailed, match="maxRestarts reached"):
            launcher.run_train_job(_jobs(fake), _manifest(), io.StringIO())


def test_a_retried_step_attaches_to_its_running_job_instead_of_starting_another():
    manifest = _manifest()
    name = manifest["metadata"]["name"]
    with FakeKubernetes() as fake:
        jobs = _jobs(fake)
        jobs.create(json.loads(json.dumps(manifest)))  # the first try, then its pod was lost
        pod = f"{name}-node-0-0-x1"
        fake.add_pod(pod, _chief_labels(name))

        def finish() -> None:
            fake.log(pod, "epoch 5 of the first try's job")
            fake.end_pod(pod)
            fake.set_condition(name, "Complete")

        threading.Timer(1.0, finish).start()
        out = io.StringIO()
        launcher.run_train_job(jobs, manifest, out)
        assert "epoch 5 of the first try's job" in out.getvalue()
        assert len(fake.calls("POST")) == 1  # only the first try's
        assert not fake.calls("DELETE")


def test_a_retry_after_completion_collects_and_one_after_failure_starts_afresh():
    manifest = _manifest()
    name = manifest["metadata"]["name"]
    with FakeKubernetes() as fake:
        jobs = _jobs(fake)
        jobs.create(json.loads(json.dumps(manifest)))
        fake.set_condition(name, "Complete")
        launcher.run_train_job(jobs, manifest, io.StringIO())
        assert len(fake.calls("POST")) == 1 and not fake.calls("DELETE")

    with FakeKubernetes(on_create=_play("Complete", ["resumed"])) as fake:
        jobs = _jobs(fake)
        fake.on_create, play = None, fake.on_create
        jobs.create(json.loads(json.dumps(manifest)))
        fake.set_condition(name, "Failed", "node preempted")
        fake.on_create = play
        launcher.run_train_job(jobs, manifest, io.StringIO())
        assert [c[0] for c in fake.requests if c[0] in ("POST", "DELETE")] == [
            "POST",
            "DELETE",
            "POST",
        ]


def test_a_cancelled_run_deletes_its_job():
    manifest = _manifest()
    before = signal.getsignal(signal.SIGTERM)
    with FakeKubernetes(on_create=lambda fake, job: None) as fake:  # a job that never ends
        threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(launcher.Cancelled):
            launcher.run_train_job(_jobs(fake), manifest, io.StringIO())
        (delete,) = fake.calls("DELETE")
        assert delete[1].endswith(f"/trainjobs/{manifest['metadata']['name']}")
        assert manifest["metadata"]["name"] not in fake.trainjobs
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def _run_workers(bucket: Path, secrets: dict[str, dict[str, str]], logs: Path):
    """A controller that runs a TrainJob's workers as local processes on 127.0.0.1.

    What a JobSet would give each pod: the TrainJob's command, arguments and env (Secret
    references resolved), TF_CONFIG on loopback ports in place of the JobSet's DNS names,
    and gs://segpipe-test/ mounted at `bucket`, as a GCS FUSE volume would.
    """

    def local(arg: str) -> str:
        return arg.replace("gs://segpipe-test/", f"{bucket}/")

    def on_create(fake: FakeKubernetes, job: dict) -> None:
        name, trainer = job["metadata"]["name"], job["spec"]["trainer"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        for variable in trainer["env"]:
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                ref = variable["valueFrom"]["secretKeyRef"]
                if ref["key"] in secrets.get(ref["name"], {}):
                    env[variable["name"]] = secrets[ref["name"]][ref["key"]]
        command = [sys.executable, *trainer["command"][1:], *map(local, trainer["args"])]
        pod = f"{name}-node-0-0-x1"
        fake.add_pod(pod, _chief_labels(name))
        workers = []
        for index, tf_config in enumerate(tf_configs(trainer["numNodes"])):
            worker_env = {**env, "TF_CONFIG": tf_config, "JOB_COMPLETION_INDEX": str(index)}
            output = subprocess.PIPE if index == 0 else open(logs / f"worker-{index}.log", "w")
            workers.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=worker_env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    text=True,
                )  # fmt: skip
            )
        for line in workers[0].stdout:
            fake.log(pod, line.rstrip("\n"))
        codes = [worker.wait() for worker in workers]
        fake.end_pod(pod, "Succeeded" if codes == [0] * len(codes) else "Failed")
        fake.set_condition(name, "Complete" if codes == [0] * len(codes) else "Failed", str(codes))

    return on_create


@pytest.mark.slow  # worker processes train
def test_launch_trains_on_two_workers_and_collects_the_chief_s_model(
    mlflow_store, tiny_data, tiny_shards, tmp_path, capsys
):
    from components.common.settings.config import PreprocessConfig, RunContext, SnapshotConfig
    from components.common.tracking.lineage import DATA_FINGERPRINT_TAG, MANIFEST_URI_TAG
    from components.snapshot.snapshot import take_snapshot

    bucket = tmp_path / "bucket"
    shutil.copytree(tiny_shards, bucket / "root" / "dataset")
    controller = _run_workers(bucket, {"team-mlflow": {"tracking_uri": mlflow_store}}, tmp_path)
    config = TrainConfig(epochs=2, batch_size=4, unet_width=4, unet_depth=2, system_metrics=False)
    workers = launcher.Workers(2, "segpipe-trainer:test", mlflow_secret="team-mlflow")
    model_dir = tmp_path / "model"
    snapshot = tmp_path / "snapshot"  # the snapshot step's output, which the pods do not see
    run = RunContext("segpipe", RUN_ID, "segpipe-unet", "champion")
    info = take_snapshot(
        str(tiny_data), str(snapshot), PreprocessConfig(), config, SnapshotConfig(), run
    ).info
    with FakeKubernetes(on_create=controller) as fake:
        run_id = launcher.launch(
            "gs://segpipe-test/root/dataset", str(model_dir), config, workers, run,
            "gs://segpipe-test/root",
            connect=lambda: (fake.api_client(), NAMESPACE), snapshot_dir=str(snapshot),
        )  # fmt: skip
        job = fake.trainjobs[trainjob.job_name(RUN_ID)]
    assert trainjob.condition(job) == ("Complete", "[0, 0]"), (
        tmp_path / "worker-1.log"
    ).read_text()

    from mlflow.tracking import MlflowClient

    run = MlflowClient(mlflow_store).get_run(run_id)
    assert run.data.tags["segpipe.workers"] == "2" and run.info.status == "FINISHED"
    # the snapshot, logged to the chief's run afterwards: what publish copies onto the version
    assert run.data.tags[DATA_FINGERPRINT_TAG] == info.data_fingerprint
    assert run.data.tags[MANIFEST_URI_TAG].endswith("/dataset/manifest.parquet")
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == info.digest
    assert (model_dir / "saved_model.pb").exists() and (model_dir / "segpipe_model.json").exists()
    streamed = capsys.readouterr().out
    assert "Epoch 2/2" in streamed and "--- worker 0: pod" in streamed  # the chief's log
    assert not (bucket / "root" / "checkpoints" / RUN_ID / "train").exists()  # the chief's cleanup
