"""Schema validation: built-in kinds with kubernetes-validate, custom resources with our own schemas."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from deploy.check.render import Render

# The oldest Kubernetes minor the manifests target (native gRPC probes are GA since
# 1.27; matchLabelKeys in topology spread is on by default since 1.27).
KUBERNETES_VERSION = "1.30"

CRD_SCHEMAS = Path(__file__).with_name("crd_schemas.yaml")


@cache
def _crd_schemas(path: Path = CRD_SCHEMAS) -> dict[str, dict]:
    spec = yaml.safe_load(path.read_text())
    return {key: {**schema, "$defs": spec["$defs"]} for key, schema in spec["schemas"].items()}


def validate_document(doc: dict) -> list[str]:
    kind, api = doc.get("kind", "?"), doc.get("apiVersion", "?")
    where = f"{kind}/{doc.get('metadata', {}).get('name', '?')}"
    key = f"{api}/{kind}"
    crds = _crd_schemas()
    if key in crds:
        validator = jsonschema.Draft202012Validator(crds[key])
        return [
            f"{where}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        # A custom resource with no schema of ours lands here: refuse it, never wave it through.
        return [
            f"{where}: no schema for {key} (Kubernetes {KUBERNETES_VERSION}, or deploy/check/crd_schemas.yaml)"
        ]
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}"]
    return []


def check_schemas(renders: list[Render]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, list[str]] = {}
    for render in renders:
        for doc in render.docs:
            text = json.dumps(doc, sort_keys=True)
            if text not in seen:  # the same document recurs in many combinations
                seen[text] = validate_document(doc)
            problems += [f"{render.name}: {p}" for p in seen[text]]
    return problems
