"""The Dockerfiles and locks read as text: pinned bases behind ARG BASE_IMAGE, offline installs from
locks that agree with pyproject, non-root. (`make test-containers` builds and runs the images.)"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipelines.images import Images, step_images

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
LOCKS = DOCKER / "locks"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PINS = dict(
    re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(.+)", d).groups()
    for d in [
        *PROJECT["dependencies"],
        *(d for extra in PROJECT["optional-dependencies"].values() for d in extra),
    ]
    if "==" in d
)
STEP_KINDS = [f.name for f in dataclasses.fields(Images)]  # beam, trainer, runtime
EXTRAS = {"beam": ["preprocess"], "trainer": ["train"], "runtime": []}  # as in the Makefile
# What an image must not carry: another step's framework, or the full MLflow (server and all).
NOT_IN = {
    "beam": {"tensorflow", "mlflow"},
    "trainer": {"apache-beam", "mlflow"},
    "runtime": {"tensorflow", "apache-beam", "pyarrow", "mlflow"},
}
DEFAULT_BASES = {
    "beam": f"apache/beam_python3.11_sdk:{PINS['apache-beam']}",
    "trainer": f"tensorflow/tensorflow:{PINS['tensorflow']}-gpu",
    "runtime": "python:3.11.",  # a patch release of the images' Python, e.g. 3.11.13-slim-...
}
VENV = "/opt/segpipe/venv"
TARGET = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


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


def _lock(kind: str) -> dict[str, str]:
    """{canonical name: version} of docker/locks/<kind>.txt."""
    text = (LOCKS / f"{kind}.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def _requirements(kind: str) -> list[Requirement]:
    """What pyproject asks of this image: the core and its step's extra (markers for the image)."""
    wanted = [*PROJECT["dependencies"]]
    for extra in EXTRAS[kind]:
        wanted += PROJECT["optional-dependencies"][extra]
    requirements = [Requirement(text) for text in wanted]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(TARGET)]


def test_there_is_one_dockerfile_and_one_lock_per_kind_of_step_image():
    assert set(STEP_KINDS) == {"beam", "trainer", "runtime"} == set(EXTRAS)
    for kind in STEP_KINDS:
        assert (DOCKER / f"{kind}.Dockerfile").is_file()
        assert (LOCKS / f"{kind}.txt").is_file()
        assert getattr(step_images("r", "t"), kind) == f"r/segpipe-{kind}:t"
    makefile = (ROOT / "Makefile").read_text()
    for kind, extras in EXTRAS.items():
        assert re.search(rf"^EXTRAS_{kind} :=\s*{' '.join(extras)}\s*$", makefile, re.MULTILINE)


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_base_is_an_arg_whose_default_is_pinned_by_tag(kind: str):
    steps = _instructions(kind)
    assert steps[0][0] == "ARG" and steps[0][1].startswith("BASE_IMAGE=")
    default = steps[0][1].removeprefix("BASE_IMAGE=")
    assert default.startswith(DEFAULT_BASES[kind])
    name, _, tag = default.partition(":")
    assert tag and tag != "latest" and "@" not in name
    if kind == "runtime":
        assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), tag
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert bases == ["${BASE_IMAGE}", "${BASE_IMAGE}"], "a build stage and the image, same base"


def test_mlflow_server_image_base_is_pinned():
    (base,) = [args for word, args in _instructions("mlflow") if word == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base


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
def test_installs_the_wheelhouse_offline_and_ships_only_the_venv(kind: str):
    steps = _instructions(kind)
    final = len(steps) - [word for word, _ in steps][::-1].index("FROM") - 1
    build, image = steps[:final], steps[final:]
    # the context is the image's wheelhouse: deps/ (the lock's wheels) and segpipe/ (its wheel)
    assert [args for word, args in build if word == "COPY"] == ["deps /tmp/wheelhouse"]
    (install,) = [args for word, args in build if word == "RUN"]
    assert install.startswith(f"sh /tmp/wheelhouse/install-venv.sh {VENV}")
    copies = [args for word, args in image if word == "COPY"]
    assert copies == [f"--from=build {VENV} {VENV}", "segpipe /tmp/segpipe"]
    (own,) = [args for word, args in image if word == "RUN" and "pip install" in args]
    assert "--no-index --no-deps /tmp/segpipe/segpipe-" in own and "pip check" in own
    text = " ".join(args for _, args in steps)
    for fetch in ("pip download", "curl", "wget", "apt-get", "http://", "https://"):
        assert fetch not in text, fetch
    (env,) = [args for word, args in image if word == "ENV" and args.startswith("PATH=")]
    assert env.startswith(f"PATH={VENV}/bin:")
    assert f"SEGPIPE_IMAGE=segpipe-{kind}:${{SEGPIPE_VERSION}}" in env


def test_mlflow_server_image_uses_the_pinned_mlflow_with_its_auth_app():
    steps = _instructions("mlflow")
    installs = " ".join(args for word, args in steps if word == "RUN")
    assert f'"mlflow[auth]=={PINS["mlflow"]}"' in installs
    assert re.search(r'"Flask-WTF==[\d.]+"', installs)  # what the auth extra needs, pinned
    (command,) = [args for word, args in steps if word == "CMD"]
    assert '"--app-name", "basic-auth"' in command


def test_the_install_script_never_reaches_an_index():
    script = (DOCKER / "install-venv.sh").read_text().replace("\\\n", " ")
    installs = [line for line in script.splitlines() if re.search(r"pip\S* install ", line)]
    assert len(installs) == 2 and all("--no-index" in line for line in installs)
    assert "--no-deps" in installs[1] and "requirements.txt" in installs[1]
    assert "sys.version_info[:2] == (3, 11)" in script  # the wheelhouse's Python


def test_beam_image_lets_beams_boot_run_the_sdk_in_the_venv():
    env = " ".join(args for word, args in _instructions("beam") if word == "ENV")
    assert "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1" in env
    assert not [args for word, args in _instructions("beam") if word == "ENTRYPOINT"]  # base's boot


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_lock_agrees_with_pyproject_and_carries_only_its_steps_extra(kind: str):
    locked = _lock(kind)
    for requirement in _requirements(kind):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{kind}.txt lacks {name}: run make lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{kind}.txt has {name}=={locked[name]}, pyproject asks {requirement}: run make lock"
        )
    assert not NOT_IN[kind] & set(locked), NOT_IN[kind] & set(locked)
    assert "pip" in locked  # the images install with the lock's own pip


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_every_locked_version_is_exact_and_hashed(kind: str):
    text = (LOCKS / f"{kind}.txt").read_text()
    assert "make lock" in text.splitlines()[1]
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert len(entries) == len(_lock(kind))
    for entry in entries:
        assert re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*==\S+ \\\n", entry), entry[:80]
        assert "--hash=sha256:" in entry, entry[:80]


def _wheelhouse_module():
    spec = importlib.util.spec_from_file_location("wheelhouse", DOCKER / "wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wheelhouse_reads_every_lock_entry_and_its_source_only_list_is_current():
    wheelhouse = _wheelhouse_module()
    names = set()
    for kind in STEP_KINDS:
        entries = wheelhouse.lock_entries(LOCKS / f"{kind}.txt")
        assert {(canonicalize_name(n), v) for n, v, _ in entries} == set(_lock(kind).items())
        names |= {name for name, _, _ in entries}
    assert wheelhouse.SOURCE_ONLY <= names, "a source-only package no lock holds any more"


def test_wheelhouse_refill_keeps_only_the_locks_wheels(tmp_path: Path):
    wheelhouse = _wheelhouse_module()
    for name in ("kfp_server_api-2.17.3", "kfp_server_api-2.17.2", "segpipe-0.1.0", "six-1.17.0"):
        (tmp_path / f"{name}-py3-none-any.whl").touch()
    kept = wheelhouse.prune(tmp_path, [("kfp-server-api", "2.17.3", ""), ("six", "1.17.0", "")])
    assert kept == {("kfp_server_api", "2.17.3"), ("six", "1.17.0")}  # not fetched again
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert kept == ["kfp_server_api-2.17.3-py3-none-any.whl", "six-1.17.0-py3-none-any.whl"]


def test_no_image_reference_anywhere_uses_latest():
    files = [*DOCKER.glob("*.Dockerfile"), DOCKER / "mlflow.yaml", ROOT / "Makefile"]
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
