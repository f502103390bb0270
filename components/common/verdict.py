"""The MLflow tags in which evaluate records what it judged, and which publish checks."""

PASSED_TAG = "gate.passed"  # "true" | "false"
REASON_TAG = "gate.reason"
MODEL_SHA256_TAG = "segpipe.model_sha256"  # digest.folder_sha256 of the model folder scored
TRAIN_RUN_TAG = "segpipe.train_run_id"  # the candidate's train run, when evaluate was told
MODEL_NAME_TAG = "segpipe.model_name"  # the registered model whose alias it was compared with
ALIAS_TAG = "segpipe.alias"  # that alias (champion)
CHAMPION_VERSION_TAG = "champion_version"  # the version behind the alias then, or NO_CHAMPION
NO_CHAMPION = "none"
PUBLISH_REFUSED_TAG = "publish.refused"  # on publish's run (and the pipeline run): why it refused
