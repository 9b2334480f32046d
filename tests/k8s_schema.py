"""Offline Kubernetes validation for tests: the OpenAPI schemas bundled by `kubernetes-validate` (strict
variants: unknown fields are errors), loaded into jsonschema so every error is reported, not just the
first (engines.md section 6); CRDs against the schemas in tests/data/crds/: the published CRD itself
where it could be vendored (PrometheusRule: prometheus-operator v0.82.2; ServiceMonitor: v0.84.1, its
schema without the description prose; KEDA ScaledObject: the kedacore/charts CRD), otherwise a schema whose
description says what it is and why (LeaderWorkerSet strict, Dynamo transcribed from its Go types)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

K8S_VERSION = "v1.33.0"
DATA = Path(__file__).parent / "data" / "crds"
CRDS = {("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): "leaderworkerset-v1-strict.schema.json",
        ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
        ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
        ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
        ("nvidia.com/v1beta1", "DynamoGraphDeployment"): "dynamographdeployment-v1beta1.schema.json"}


def _schema_dir() -> Path:
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"{K8S_VERSION}-local-strict"


@lru_cache(maxsize=None)
def _registry() -> Registry:
    defs = json.loads((_schema_dir() / "_definitions.json").read_text())
    return Registry().with_resource("/api/_definitions.json", Resource.from_contents(defs, default_specification=DRAFT202012))


def _strict(node):
    """A CRD's structural schema as JSON Schema, strict the way `kubectl apply --validate=strict` is: an
    object with declared properties rejects unknown fields unless it preserves them."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_schema(path: Path, api_version: str, kind: str) -> dict:
    """The JSON Schema of one served version of a vendored CustomResourceDefinition (YAML as published)."""
    import yaml

    crd = yaml.safe_load(path.read_text())
    version = api_version.rpartition("/")[2]
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(v["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {"$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return schema


@lru_cache(maxsize=None)
def _validator(api_version: str, kind: str):
    crd = CRDS.get((api_version, kind))
    if crd and crd.endswith(".yaml"):
        return jsonschema.Draft202012Validator(crd_schema(DATA / crd, api_version, kind), registry=_registry())
    if crd:
        return jsonschema.Draft202012Validator(json.loads((DATA / crd).read_text()), registry=_registry())
    group, _, version = api_version.rpartition("/")
    name = f"{kind.lower()}-{group.split('.')[0]}-{version}.json" if group else f"{kind.lower()}-{version}.json"
    path = _schema_dir() / name
    if not path.is_file():
        raise LookupError(f"no bundled schema for {api_version} {kind} ({name})")
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=_registry())


def errors(obj: dict) -> list[str]:
    v = _validator(obj["apiVersion"], obj["kind"])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(obj)]
