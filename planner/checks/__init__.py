"""Check registry: each check is a function of (resolved spec, estimate) -> findings, registered with
its stable id, slug and default severity. The docstring is the long explanation (`planfile explain PF201`).
"""

from __future__ import annotations

import inspect
from typing import Callable

from planner.diagnostics import Finding
from planner.records import record


@record(frozen=True, eq=False)
class Check:
    """A registered check: id, slug, severity, one-line summary, the function and its What/Why/Fix text."""

    id: str
    slug: str
    severity: str
    summary: str
    fn: Callable | None
    doc: str


REGISTRY: dict[str, Check] = {}


def register(id: str, slug: str, severity: str, summary: str):
    def deco(fn):
        REGISTRY[id] = Check(id, slug, severity, summary, fn, inspect.cleandoc(fn.__doc__ or ""))
        return fn

    return deco


def describe(id: str, slug: str, severity: str, summary: str, doc: str) -> None:
    """Register a check raised elsewhere (loader, schema, semantic validation)."""
    REGISTRY[id] = Check(id, slug, severity, summary, None, doc)


def finding(check_id: str, message: str, pointer: str, remediation: str = "", severity: str | None = None, **data) -> Finding:
    c = REGISTRY[check_id]
    return Finding(c.id, c.slug, severity or c.severity, message, pointer, remediation=remediation, data=data)


def run_all(r, est, skip: tuple = ()) -> list[Finding]:
    """Every evaluation check's findings, in registry order; `skip`: ids the caller runs itself, later."""
    from planner.checks import rules  # noqa: F401  (registers the evaluation checks)

    out: list[Finding] = []
    for c in REGISTRY.values():
        if c.fn is not None and c.id not in skip:
            if getattr(r, "disagg", None) and c.id in AGGREGATED_ONLY:
                continue
            if not getattr(r, "disagg", None) and c.id.startswith("PF7"):
                continue
            out.extend(c.fn(r, est))
    return out


# checks about one aggregated pool's replicas: a disaggregated spec has PF7xx about its two pools instead
AGGREGATED_ONLY = ("PF302", "PF404", "PF503", "PF601", "PF603")


def apply_waivers(findings: list[Finding], ignores) -> list[Finding]:
    """Mark waived findings (they stay in the output) and add PF9xx findings about the waivers."""
    from dataclasses import replace

    out = []
    used = set()
    for f in findings:
        for i, (wid, reason, path) in enumerate(ignores):
            if f.id == wid and (not path or path == f.pointer) and f.id[:3] not in ("PF0", "PF9"):
                f = replace(f, waived=True, waiver_reason=reason)
                used.add(i)
                break
        out.append(f)
    for i, (wid, reason, path) in enumerate(ignores):
        ptr = f"/checks/ignore/{i}/id"
        if wid not in REGISTRY:
            out.append(finding("PF902", f"checks.ignore names {wid}, which is not a planfile check id", ptr,
                               "`planfile explain --list` shows every id"))
        elif i not in used:
            out.append(finding("PF901", f"the waiver for {wid} matched no finding", ptr,
                               "remove it: a stale waiver hides the next real problem"))
    return out


def reference_markdown() -> str:
    """docs/checks.md: every check id with its slug, severity, summary and long explanation."""
    from planner.checks import rules  # noqa: F401

    blocks = {"PF0": "Load and schema", "PF1": "Semantic and catalog", "PF2": "Memory", "PF3": "Parallelism and interconnect",
              "PF4": "Latency, SLO and roofline", "PF5": "Cost", "PF6": "Operations", "PF7": "Disaggregated serving", "PF9": "Waivers"}
    out = ["# planfile checks reference", "",
           "Generated from the check registry (`python tools/gen_docs.py`); `planfile explain PFxxx` prints the same text.",
           "Waive a finding in the spec with `checks: {ignore: [{id: PF301, reason: \"...\"}]}`; judgement-call thresholds",
           "are `checks.settings` (see the schema).", ""]
    current = None
    for c in sorted(REGISTRY.values(), key=lambda c: c.id):
        if c.id[:3] != current:
            current = c.id[:3]
            out += [f"## {current}xx — {blocks.get(current, '')}", ""]
        out += [f"### {c.id} `{c.slug}` ({c.severity})", "", c.summary, ""]
        if c.doc and c.doc != c.summary:
            out += [c.doc, ""]
    return "\n".join(out).rstrip() + "\n"
