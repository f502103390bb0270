"""The Dockerfiles read as text (no Docker here): pinned bases, this package, non-root."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from components.common.images import Images, step_images

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINS = dict(
    re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(.+)", d).groups()
    for d in [
        *PYPROJECT["project"]["dependencies"],
        *(d for extra in PYPROJECT["project"]["optional-dependencies"].values() for d in extra),
    ]
    if "==" in d
)
STEP_KINDS = [f.name for f in dataclasses.fields(Images)]  # beam, trainer, runtime
EXPECTED_BASES = {
    "beam": f"apache/beam_python3.11_sdk:{PINS['apache-beam']}",
    "trainer": f"tensorflow/tensorflow:{PINS['tensorflow']}-gpu",
    "runtime": "python:3.11.",  # a patch release of the project's Python, e.g. 3.11.13-slim-...
    "mlflow": "python:3.11.",
}


def _instructions(kind: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (DOCKER / f"{kind}.Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_there_is_one_dockerfile_per_kind_of_step_image():
    assert set(STEP_KINDS) == {"beam", "trainer", "runtime"}
    for kind in STEP_KINDS:
        assert (DOCKER / f"{kind}.Dockerfile").is_file()
        assert getattr(step_images("r", "t"), kind) == f"r/segpipe-{kind}:t"


@pytest.mark.parametrize("kind", [*STEP_KINDS, "mlflow"])
def test_base_image_is_pinned_by_tag(kind: str):
    bases = [args for word, args in _instructions(kind) if word == "FROM"]
    assert len(bases) == 1
    (base,) = bases
    assert base.startswith(EXPECTED_BASES[kind])
    name, _, tag = base.partition(":")
    assert tag and tag != "latest" and "@" not in name
    if kind in ("runtime", "mlflow"):
        assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), tag


@pytest.mark.parametrize("kind", [*STEP_KINDS, "mlflow"])
def test_runs_as_a_numeric_non_root_user_it_creates(kind: str):
    steps = _instructions(kind)
    users = [args for word, args in steps if word == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes can check runAsNonRoot"
    created = " ".join(args for word, args in steps if word == "RUN")
    assert f"useradd --uid {uid}" in created
    # the last RUN (the last root-owned step) comes before the switch to the user
    assert steps.index(("USER", users[-1])) > max(
        i for i, (word, _) in enumerate(steps) if word == "RUN"
    )


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_installs_this_package_and_the_pinned_kfp(kind: str):
    steps = _instructions(kind)
    copied = {args.split()[0] for word, args in steps if word == "COPY"}
    assert {"pyproject.toml", "components", "pipelines"} <= copied
    installs = " ".join(args for word, args in steps if word == "RUN" and "pip install" in args)
    assert re.search(r"pip install \.(\s|$)", installs), "installs segpipe from the build context"
    assert f'"kfp=={PINS["kfp"]}"' in installs


def test_mlflow_server_image_uses_the_pinned_mlflow_with_its_auth_app():
    steps = _instructions("mlflow")
    installs = " ".join(args for word, args in steps if word == "RUN")
    assert f'"mlflow[auth]=={PINS["mlflow"]}"' in installs
    assert re.search(r'"Flask-WTF==[\d.]+"', installs)  # what the auth extra needs, pinned
    (command,) = [args for word, args in steps if word == "CMD"]
    assert '"--app-name", "basic-auth"' in command


def test_no_image_reference_anywhere_uses_latest():
    files = [*DOCKER.iterdir(), ROOT / "Makefile"]
    for path in files:
        code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any(":latest" in line for line in code), path.name


def test_the_mlflow_manifest_is_a_service_account_deployment_service_and_network_policy():
    import yaml

    docs = list(yaml.safe_load_all((DOCKER / "mlflow.yaml").read_text()))
    kinds = ["ServiceAccount", "Deployment", "Service", "NetworkPolicy"]
    assert [d["kind"] for d in docs] == kinds
    pod = docs[1]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert "--serve-artifacts" in container["args"]

    policy = docs[3]["spec"]
    assert policy["podSelector"] == docs[1]["spec"]["selector"]  # it guards the server's pods
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]  # one peer: namespace AND pod label, not either
    assert set(source) == {"namespaceSelector", "podSelector"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 5000}]


def test_the_mlflow_server_runs_with_authentication_configured_from_a_secret():
    import yaml

    deployment = list(yaml.safe_load_all((DOCKER / "mlflow.yaml").read_text()))[1]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    key = env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "mlflow-auth", "key": "flask_secret_key"}
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if config.parent == Path(m["mountPath"])]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "mlflow-auth"
    assert volume["secret"]["items"] == [{"key": config.name, "path": config.name}]
    assert not any("MLFLOW_AUTH_ADMIN" in name for name in env)  # no credentials in the YAML


def test_the_mlflow_manifest_references_secrets_by_name_only():
    manifest = (DOCKER / "mlflow.yaml").read_text()
    assert "secretKeyRef" in manifest
    assert "postgresql+psycopg://mlflow:PASSWORD@" in manifest  # the placeholder, in a comment
    body = "\n".join(line for line in manifest.splitlines() if not line.lstrip().startswith("#"))
    assert "postgresql" not in body and "PASSWORD" not in body
