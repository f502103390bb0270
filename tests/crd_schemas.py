"""Kubernetes CRD schemas (../shared/k8s) as strict JSON-schema validators for contract tests:
a property the schema does not list is an error, as under the API server's strict field
validation. CEL rules (x-kubernetes-validations) are not evaluated."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# ../shared/k8s next to a clone; ../../shared/k8s from a worktree kept under wt/
K8S = next(
    (
        p / "shared" / "k8s"
        for p in (REPO.parent, REPO.parent.parent)
        if (p / "shared/k8s").is_dir()
    ),
    REPO.parent / "shared" / "k8s",
)


def needs_crds(test):
    """A test against the CRDs: skipped where they are absent, and slow (loading their ~1 MB
    schemas takes over ten seconds of CPU)."""
    return pytest.mark.slow(pytest.mark.skipif(not K8S.is_dir(), reason=f"{K8S} is absent")(test))


def _strict(schema):
    """The schema with unknown properties refused wherever it lists the known ones."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if "properties" in schema:
        strict["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            strict["additionalProperties"] = False
    return strict


def load_yaml(name: str):
    """A file of ../shared/k8s, parsed (the C parser where there is one: these are ~1 MB)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((K8S / name).read_text(), Loader=loader)


@functools.cache
def _validator(crd_file: str, version_name: str):
    """The served `version_name` schema of a CRD file, strict; with its group and kind."""
    import jsonschema

    crd = load_yaml(crd_file)
    served = [v for v in crd["spec"]["versions"] if v["name"] == version_name and v["served"]]
    (version,) = served
    schema = _strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema), crd["spec"]["group"], crd["spec"]["names"]["kind"]


def crd_errors(crd_file: str, manifest: dict, version_name: str) -> list[str]:
    """Every way `manifest` breaks the CRD's schema (empty: valid)."""
    validator, group, kind = _validator(crd_file, version_name)
    assert (manifest["apiVersion"], manifest["kind"]) == (f"{group}/{version_name}", kind)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]
