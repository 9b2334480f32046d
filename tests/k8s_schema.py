"""Offline Kubernetes validation for tests: the OpenAPI schemas bundled by `kubernetes-validate` (strict
variants: unknown fields are errors), loaded into jsonschema so every error is reported, not just the
first (engines.md section 6); CRDs against the schemas in tests/data/crds/."""

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
        ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.schema.json",
        ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.schema.json",
        ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
        ("nvidia.com/v1beta1", "DynamoGraphDeployment"): "dynamographdeployment-v1beta1.schema.json"}


def _schema_dir() -> Path:
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"{K8S_VERSION}-local-strict"


@lru_cache(maxsize=None)
def _registry() -> Registry:
    defs = json.loads((_schema_dir() / "_definitions.json").read_text())
    return Registry().with_resource("/api/_definitions.json", Resource.from_contents(defs, default_specification=DRAFT202012))


@lru_cache(maxsize=None)
def _validator(api_version: str, kind: str):
    crd = CRDS.get((api_version, kind))
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
