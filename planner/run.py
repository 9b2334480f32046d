"""One spec through the whole pipeline: load -> validate -> resolve -> evaluate -> checks -> result."""

from __future__ import annotations

from dataclasses import field

from planner.diagnostics import Finding
from planner.loader import Loaded, load_path
from planner.records import record


@record(eq=False)
class Result:
    """check's outcome for one spec: status, located findings, the estimate and the resolved spec behind them."""

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
    pending = _start_searches(r) if fixes else {}
    # a deferred check's findings join after the fix trials, which never read them (PF504 is info: neither an error,
    # nor an SLO finding, nor one they fix); unless the spec waives it: then PF901's verdict on that waiver is part
    # of what the trials compare, and PF504 is waited for in its place
    defer = tuple(c for c in pending if not any(w[0] == c for w in r.ignores))
    try:
        est = evaluate(r, breach=breach)
        if not fixes:
            est["trial"] = True  # a fix being verified: the checks that search other fleets (PF504) stay out
        est["pending"] = pending
        findings += checks.run_all(r, est, skip=defer)
        located = locate(checks.apply_waivers(findings, r.ignores), loaded)
        res = Result(path, status(located, fail_on), located, est, r, loaded)
        if fixes:
            from planner.fixes import verify

            res.findings = verify(res)
        late = [f for c in defer for f in checks.REGISTRY[c].fn(r, est)]
    finally:
        for p in pending.values():
            p.cancel()  # not read (the spec has no performance to compare) or an error on the way: stop the child
    if late:  # exactly where inline checking puts them: locate sorts every finding by its place in the spec
        res.status = status(located + late, fail_on)
        res.findings = sorted(res.findings + locate(late, loaded), key=Finding.sort_key)
    est.pop("trial", None)
    est.pop("pending", None)
    return res


def _start_searches(r) -> dict:
    """PF504's search (plan's on the provider's other GPUs), started on a second core where there is one
    (planner.background) before evaluate, after the spec's own peak run, which it reads from the memo as it
    would inline; PF504 then takes its result after the fix trials. Nothing where PF504 has nothing to compare."""
    from planner import background

    if not background.usable():
        return {}
    from planner.checks.rules import cheaper_applies, cheaper_search
    from planner.evaluate import peak_run

    if not cheaper_applies(r) or not peak_run(r):
        return {}
    return {"PF504": background.start(cheaper_search, r)}


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
