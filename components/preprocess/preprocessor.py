"""The preprocess step as tracked in MLflow: the Beam job plus its params, counts and reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from components.common import storage
from components.common.data.table_preview import csv_text
from components.common.data.unused_files import IGNORED_FILE
from components.common.settings.config import DEFAULT_EXPERIMENT, PreprocessConfig
from components.common.tracking.lineage import DATA_FINGERPRINT_TAG
from components.common.tracking.runs import step_run
from components.preprocess.pipeline import PreprocessResult, run_preprocess
from components.preprocess.stats import stats_table

LINEAGE_FILE = "lineage.json"


def _log_outputs(output_dir: str) -> None:
    import mlflow

    stats = storage.read_json(storage.join(output_dir, "stats.json"))
    metrics = {f"examples/{name}": s["examples"] for name, s in stats["splits"].items()}
    metrics.update(rejected=stats["rejected"], inputs=stats["inputs"])
    metrics.update({f"rejects/{reason}": n for reason, n in stats["rejects_by_reason"].items()})
    mlflow.log_metrics(metrics)
    mlflow.log_dict(stats, "dataset/stats.json")
    mlflow.log_text(storage.read_text(storage.join(output_dir, "stats.md")), "dataset/stats.md")
    # the per-class table, as CSV: what the MLflow UI can preview
    mlflow.log_text(csv_text(stats_table(stats)), "dataset/stats.csv")
    rejects = storage.read_text(storage.join(output_dir, "rejects.jsonl"))
    mlflow.log_text(rejects, "dataset/rejects.jsonl")
    ignored_path = storage.join(output_dir, IGNORED_FILE)
    if storage.exists(ignored_path):
        ignored = storage.read_text(ignored_path)
        mlflow.log_text(ignored, f"dataset/{IGNORED_FILE}")
        mlflow.log_metric("ignored", len(ignored.splitlines()))


def preprocess(
    data_dir: str,
    output_dir: str,
    config: PreprocessConfig,
    experiment: str = DEFAULT_EXPERIMENT,
    beam_args: Sequence[str] = (),
    data_fingerprint: str = "",
) -> PreprocessResult:
    """Run the Beam job inside its own MLflow run; outputs are logged even when it fails.

    The run is not nested under a pipeline run: the step takes no run id, so identical inputs
    can hit the KFP cache, whose key `data_fingerprint` (the snapshot's) makes follow the data.
    The run id and the fingerprint go into `lineage.json`; train tags its run with them.
    """
    import mlflow

    with step_run("preprocess", experiment, None) as run:
        lineage = {"preprocess_run_id": run.info.run_id, "data_dir": data_dir}
        if data_fingerprint:
            lineage["data_fingerprint"] = data_fingerprint
        storage.write_json(storage.join(output_dir, LINEAGE_FILE), lineage)
        params = {k: v for k, v in dataclasses.asdict(config).items() if k != "beam_options"}
        mlflow.log_params({**params, "data_dir": data_dir, "output_dir": output_dir})
        if data_fingerprint:
            mlflow.set_tag(DATA_FINGERPRINT_TAG, data_fingerprint)
        try:
            return run_preprocess(data_dir, output_dir, config, beam_args)
        finally:
            if storage.exists(storage.join(output_dir, "stats.md")):
                _log_outputs(output_dir)
