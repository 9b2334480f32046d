"""One spec through the whole pipeline: load -> validate -> resolve -> evaluate -> checks -> result."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.diagnostics import Finding
from planner.loader import Loaded, load_path


@dataclass
class Result:
    spec: str
    status: str  # pass | fail | invalid
    findings: list[Finding]
    estimate: dict | None = None
    resolved: object = None
    loaded: Loaded | None = field(default=None, repr=False)


def check_spec(path: str, fail_on: str = "error", breach: bool = True, stdin: bytes | None = None) -> Result:
    """Check one spec file; `-` is standard input (pass its bytes as `stdin` when the caller read them)."""
    if path == "-" and stdin is not None:
        from pathlib import Path

        from planner.loader import load_text

        return check_loaded(load_text(stdin, "-", Path.cwd()), path, fail_on, breach)
    return check_loaded(load_path(path), path, fail_on, breach)


def check_loaded(loaded: Loaded, path: str, fail_on: str = "error", breach: bool = True, fixes: bool = True) -> Result:
    from planner.validate import locate, validate

    findings = validate(loaded)
    if any(f.severity == "error" for f in findings):
        return Result(path, "invalid", findings, loaded=loaded)
    from planner import checks
    from planner.evaluate import evaluate
    from planner.resolve import resolve

    r = resolve(loaded)
    est = evaluate(r, breach=breach)
    if not fixes:
        est["trial"] = True  # a fix being verified: the checks that search other fleets (PF504) stay out
    findings += checks.run_all(r, est)
    est.pop("trial", None)
    findings = locate(checks.apply_waivers(findings, r.ignores), loaded)
    res = Result(path, status(findings, fail_on), findings, est, r, loaded)
    if fixes:
        from planner.fixes import verify

        res.findings = verify(res)
    return res


RANK = {"error": 3, "warning": 2, "info": 1, "never": 99}


def status(findings: list[Finding], fail_on: str) -> str:
    level = RANK[fail_on]
    return "fail" if any(not f.waived and RANK[f.severity] >= level for f in findings) else "pass"


PLAN_PLACEHOLDERS = ("hardware", "engine")


def load_for_plan(path: str):
    """Load a spec that may be partial (only model, workload and SLOs): hardware and engine get
    placeholders the planner replaces. Returns (loaded, findings, resolved or None, filled sections)."""
    from planner import catalog
    from planner.loader import load_path
    from planner.validate import locate, validate

    loaded = load_path(path)
    filled = []
    d = loaded.data
    if isinstance(d, dict):
        if "hardware" not in d:
            provider = (d.get("cost") or {}).get("provider") if isinstance(d.get("cost"), dict) else None
            gpu = "h100-sxm"
            if isinstance(provider, str) and catalog.providers().get(provider).entry:
                pid = catalog.providers().get(provider).entry["id"]
                priced = [p["gpu"] for p in catalog.raw("prices")["prices"] if p["provider"] == pid]
                gpu = "h100-sxm" if "h100-sxm" in priced or not priced else priced[0]
            d["hardware"] = {"gpu": gpu, "gpus_per_replica": 1, "replicas": 1}
            d.pop("parallelism", None)
            filled.append("hardware")
        if "engine" not in d:
            d["engine"] = {"name": "vllm"}
            filled.append("engine")
    findings = validate(loaded)
    if any(f.severity == "error" for f in findings):
        return loaded, locate(findings, loaded), None, filled
    from planner.resolve import resolve

    return loaded, findings, resolve(loaded), filled
