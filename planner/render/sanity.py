"""What no Kubernetes schema checks (engines.md section 6): GPU quantities, ports, names and label values.

Run on every rendered manifest before anything is written; a failure is a RenderError naming the file.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "habana.ai/gaudi", "google.com/tpu")


def label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(LABEL_NAME.fullmatch(name))


def _labels(where: str, labels: dict | None, errors: list[str]) -> None:
    for k, v in (labels or {}).items():
        if not label_key_ok(str(k)):
            errors.append(f"{where}: label key {k!r} is not a valid Kubernetes label name")
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.fullmatch(v):
            errors.append(f"{where}: label {k}={v!r} is not a valid label value (63 characters, alphanumeric ends)")


def _walk_pods(obj: dict):
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Deployment":
        yield "spec.template", spec.get("template") or {}
    elif obj.get("kind") == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        for key in ("leaderTemplate", "workerTemplate"):
            if key in lwt:
                yield f"spec.leaderWorkerTemplate.{key}", lwt[key]


def check_object(path: str, obj: dict, gpus_per_pod: int | None = None) -> list[str]:
    errors: list[str] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not isinstance(name, str) or not DNS1123_SUBDOMAIN.fullmatch(name):
        errors.append(f"{path}: metadata.name {name!r} is not a DNS-1123 name")
    _labels(f"{path} metadata", meta.get("labels"), errors)
    for where, tpl in _walk_pods(obj):
        _labels(f"{path} {where}", (tpl.get("metadata") or {}).get("labels"), errors)
        for c in (tpl.get("spec") or {}).get("containers", []):
            for port in c.get("ports", []) or []:
                p = port.get("containerPort")
                if not isinstance(p, int) or not 1 <= p <= 65535:
                    errors.append(f"{path} {where}: containerPort {p!r} is not in 1-65535")
            res = c.get("resources") or {}
            for kind in ("limits", "requests"):
                for rname, q in (res.get(kind) or {}).items():
                    if rname in GPU_RESOURCES:
                        if not re.fullmatch(r"[1-9][0-9]*", str(q)):
                            errors.append(f"{path} {where}: {kind}[{rname}] {q!r} is not a positive whole number of GPUs")
                        elif gpus_per_pod is not None and int(q) != gpus_per_pod:
                            errors.append(f"{path} {where}: {kind}[{rname}] is {q} but the plan needs {gpus_per_pod} per pod")
            lim, req = (res.get("limits") or {}), (res.get("requests") or {})
            for rname in GPU_RESOURCES:
                if rname in req and str(req.get(rname)) != str(lim.get(rname)):
                    errors.append(f"{path} {where}: GPU requests must equal limits ({rname})")
    if obj.get("kind") == "Service":
        for port in (obj.get("spec") or {}).get("ports", []):
            p = port.get("port")
            if not isinstance(p, int) or not 1 <= p <= 65535:
                errors.append(f"{path}: service port {p!r} is not in 1-65535")
    return errors


def check_files(files: dict[str, str], gpus_per_pod: int | None = None) -> list[str]:
    import yaml

    errors: list[str] = []
    for path, text in files.items():
        if not (path.startswith("k8s/") or path.startswith("alerts/")) or not path.endswith(".yaml"):
            continue
        for obj in yaml.safe_load_all(text):
            if isinstance(obj, dict):
                errors += check_object(path, obj, gpus_per_pod)
    return errors
