"""`planfile diff`: what a spec change does to capacity and cost, read like `terraform plan`.

Both sides go through the whole check pipeline; the diff lists the changed spec fields, then the
consequences (GPUs, $/month, memory headroom, concurrency, p95 TTFT/ITL, breach point), then findings
added and removed. A regression is an SLO margin, the budget margin (or, without a budget, the monthly
cost) getting worse by more than the threshold, a new error, or pass turning into fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import field

from planner import __version__
from planner.records import record


def flatten(d, prefix="") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, list):
        out[prefix] = json.dumps(d, sort_keys=True, default=str)
    else:
        out[prefix] = d
    return out


@record
class Metric:
    """One number compared between two specs, with its unit and which direction is better."""

    name: str
    old: float | None
    new: float | None
    unit: str
    better: str  # "lower" | "higher" | ""
    fmt: str = ",.0f"

    @property
    def changed(self) -> bool:
        if self.old is None or self.new is None:
            return self.old != self.new
        return not math.isclose(self.old, self.new, rel_tol=1e-3, abs_tol=1e-6)

    def pct(self) -> float | None:
        if self.old in (None, 0) or self.new is None:
            return None
        return (self.new / self.old - 1) * 100

    def render(self) -> str:
        def f(x):
            if x is None:
                return "n/a"
            if self.unit == "$":
                return f"${x:{self.fmt}}"
            return f"{x:{self.fmt}}{(' ' + self.unit) if self.unit else ''}"
        if self.unit == "%":  # a change of a percentage is in percentage points, not a relative change
            pp = None if self.old is None or self.new is None else self.new - self.old
            return f"{f(self.old)} -> {f(self.new)}" + (f" ({pp:+.1f} pp)" if pp is not None and self.changed else "")
        p = self.pct()
        return f"{f(self.old)} -> {f(self.new)}" + (f" ({p:+.1f} %)" if p is not None and self.changed else "")


@record
class Diff:
    """What changes between two specs: the fields edited, the numbers that move and the findings."""

    old_label: str
    new_label: str
    old_status: str
    new_status: str
    fields: list = field(default_factory=list)  # (path, old, new)
    metrics: list = field(default_factory=list)
    changed: list = field(default_factory=list)  # (old finding, new finding): same id and place, new numbers
    added: list = field(default_factory=list)  # findings
    removed: list = field(default_factory=list)
    regressions: list = field(default_factory=list)
    attribution: list = field(default_factory=list)  # (spec field, [regressions that field alone causes])


def _metrics(res) -> dict:
    from planner.evaluate import fleet_gpus

    est = res.estimate or {}
    r = res.resolved
    m = est.get("memory") or {}
    p = est.get("performance") or {}
    c = est.get("cost") or {}
    cap = est.get("capacity") or {}
    gpus = fleet_gpus(r) if r else None
    head = None
    if m.get("total_gb_per_gpu"):
        used = m["weights_gb_per_gpu"] + m.get("activations_gb_per_gpu", 0) + m.get("runtime_gb_per_gpu", 0)
        head = (m["usable_gb_per_gpu"] - used) / m["usable_gb_per_gpu"] * 100
    return {"gpus": gpus, "usd_per_month": c.get("usd_per_month"), "kv_headroom_pct": head,
            "max_concurrent_sequences": m.get("max_concurrent_sequences"),
            "ttft_p95_ms": (p.get("ttft_ms") or {}).get("p95"), "itl_p95_ms": (p.get("itl_ms") or {}).get("p95"),
            "output_tokens_per_s": p.get("output_tokens_per_s"), "breach_rps": cap.get("breach_rps")}


def _margins(res) -> dict:
    """Percent margin to each SLO percentile and to the budget (positive = room left)."""
    out = {}
    r, est = res.resolved, res.estimate or {}
    perf = est.get("performance") or {}
    if r is None:
        return out
    for metric, targets in (r.slo or {}).items():
        if metric not in ("ttft_ms", "itl_ms", "e2e_s"):
            continue
        for q, target in (targets or {}).items():
            got = (perf.get(metric) or {}).get(q)
            if got is not None and math.isfinite(got):
                out[f"slo {metric.split('_')[0].upper()} {q}"] = (1 - got / target) * 100
    cost = (est.get("cost") or {}).get("usd_per_month")
    if r.budget_usd_per_month and cost is not None:
        out["budget"] = (1 - cost / r.budget_usd_per_month) * 100
    return out


def compare(old, new, old_label: str, new_label: str, threshold_pct: float = 5.0) -> Diff:
    d = Diff(old_label, new_label, old.status, new.status)
    fo = flatten(old.loaded.data if old.loaded and isinstance(old.loaded.data, dict) else {})
    fn = flatten(new.loaded.data if new.loaded and isinstance(new.loaded.data, dict) else {})
    for k in sorted(set(fo) | set(fn)):
        if fo.get(k) != fn.get(k):
            d.fields.append((k, fo.get(k), fn.get(k)))
    if old.estimate and new.estimate:
        mo, mn = _metrics(old), _metrics(new)
        spec = [("GPUs", "gpus", "", "lower", ",.0f"), ("cost", "usd_per_month", "$", "lower", ",.0f"),
                ("memory headroom for KV", "kv_headroom_pct", "%", "higher", ".1f"),
                ("max concurrency", "max_concurrent_sequences", "sequences/replica", "higher", ",.0f"),
                ("p95 TTFT", "ttft_p95_ms", "ms", "lower", ",.0f"), ("p95 ITL", "itl_p95_ms", "ms", "lower", ",.1f"),
                ("throughput at peak", "output_tokens_per_s", "tok/s", "higher", ",.0f"),
                ("breach point", "breach_rps", "req/s", "higher", ",.2f")]
        d.metrics = [Metric(name, mo[k], mn[k], unit, better, fmt) for name, k, unit, better, fmt in spec]
        ma, mb = _margins(old), _margins(new)
        for k in sorted(set(ma) & set(mb)):
            if mb[k] < ma[k] - threshold_pct:
                d.regressions.append(f"{k} margin {ma[k]:.0f} % -> {mb[k]:.0f} % ({mb[k] - ma[k]:+.0f} pp)")
        if "budget" not in mb and mo["usd_per_month"] and mn["usd_per_month"]:
            if (mn["usd_per_month"] / mo["usd_per_month"] - 1) * 100 > threshold_pct:
                d.regressions.append(f"cost +{(mn['usd_per_month'] / mo['usd_per_month'] - 1) * 100:.0f} % "
                                     f"(${mo['usd_per_month']:,.0f} -> ${mn['usd_per_month']:,.0f}/month)")
    key = lambda f: (f.id, f.pointer, f.message)  # noqa: E731
    ko = {key(f): f for f in old.findings}
    kn = {key(f): f for f in new.findings}
    added = [f for k, f in kn.items() if k not in ko]
    removed = [f for k, f in ko.items() if k not in kn]
    # the same check at the same place with new numbers is a change, not a removal and an addition
    for f in list(added):
        twin = next((g for g in removed if (g.id, g.pointer) == (f.id, f.pointer)), None)
        if twin is not None:
            removed.remove(twin)
            added.remove(f)
            d.changed.append((twin, f))
    d.added, d.removed = added, removed
    new_errors = [f for f in d.added if f.severity == "error" and not f.waived]
    if new_errors:
        d.regressions.append(f"{len(new_errors)} new error finding(s): " + ", ".join(sorted({f.id for f in new_errors})))
    if old.status == "pass" and new.status != "pass":
        d.regressions.append(f"status {old.status} -> {new.status}")
    if d.regressions and 1 < len(d.fields) <= MAX_ATTRIBUTED_FIELDS:
        d.attribution = attribute(old, d, threshold_pct)
    return d


MAX_ATTRIBUTED_FIELDS = 6  # each changed field is evaluated alone: one check per field


def attribute(old, d: Diff, threshold_pct: float) -> list:
    """Which edit causes which regression: the old spec with each changed field alone set to its new value,
    checked and compared with the old spec (fields that only make sense together, such as tensor and
    gpus_per_replica, show as invalid alone)."""
    import copy

    from planner.loader import Loaded
    from planner.run import check_loaded

    out = []
    for key, _a, b in d.fields:
        data = copy.deepcopy(old.loaded.data)
        node, parts = data, key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            continue
        if b is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = json.loads(b) if isinstance(b, str) and b[:1] in "[{" else b
        res = check_loaded(Loaded(old.loaded.path, data, old.loaded.source, [], old.loaded.base_dir), old.spec,
                           breach=False, fixes=False)
        if res.status == "invalid":
            out.append((key, ["invalid alone (it changes together with another field)"]))
            continue
        regs = []
        ma, mb = _margins(old), _margins(res)
        for k in sorted(set(ma) & set(mb)):
            if mb[k] < ma[k] - threshold_pct:
                regs.append(f"{k} margin {mb[k] - ma[k]:+.0f} pp")
        oc, nc = (old.estimate or {}).get("cost", {}).get("usd_per_month"), (res.estimate or {}).get("cost", {}).get("usd_per_month")
        if oc and nc and (nc / oc - 1) * 100 > threshold_pct:
            regs.append(f"cost +{(nc / oc - 1) * 100:.0f} %")
        new_err = {f.id for f in res.findings if f.severity == "error" and not f.waived} - \
            {f.id for f in old.findings if f.severity == "error" and not f.waived}
        if new_err:
            regs.append("new error " + ", ".join(sorted(new_err)))
        out.append((key, regs))
    return out


def _val(v) -> str:
    return "(absent)" if v is None else str(v)


def to_text(d: Diff) -> str:
    lines = [f"planfile diff: {d.old_label} -> {d.new_label}", f"  status: {d.old_status} -> {d.new_status}"]
    if d.fields:
        lines.append("  spec:")
        for k, a, b in d.fields:
            sym = "+" if a is None else ("-" if b is None else "~")
            lines.append(f"    {sym} {k}: {_val(a)} -> {_val(b)}" if sym == "~" else f"    {sym} {k}: {_val(b if sym == '+' else a)}")
    if d.metrics:
        lines.append("  capacity and cost:")
        w = max(len(m.name) for m in d.metrics)
        for m in d.metrics:
            lines.append(f"    {'~' if m.changed else ' '} {m.name:<{w}}  {m.render() if m.changed else m.render().split(' -> ')[0] + ' (unchanged)'}")
    for a, b in d.changed:
        lines.append(f"  ~ {b.severity} {b.id} {b.check}: {b.message} (was: {a.message})")
    for f in d.added:
        lines.append(f"  + {f.severity} {f.id} {f.check}: {f.message}")
    for f in d.removed:
        lines.append(f"  - {f.severity} {f.id} {f.check}: {f.message}")
    if d.regressions:
        lines.append("  regressions: " + "; ".join(d.regressions))
        for key, regs in d.attribution:
            lines.append(f"    {key} alone: " + ("; ".join(regs) if regs else "no regression"))
    else:
        lines.append("  regressions: none")
    return "\n".join(lines) + "\n"


def to_markdown(d: Diff) -> str:
    from planner.escape import markdown as cell, markdown_code as code

    out = [f"### planfile diff: {code(d.old_label)} → {code(d.new_label)}", "",
           f"**status** {d.old_status} → {d.new_status}" + ("" if not d.regressions else " — **regression**"), ""]
    if d.fields:
        out += ["| spec field | before | after |", "|---|---|---|"]
        out += [f"| {code(k)} | {code(_val(a))} | {code(_val(b))} |" for k, a, b in d.fields]
        out.append("")
    if d.metrics:
        out += ["| | before → after |", "|---|---|"]
        out += [f"| {m.name} | {cell(m.render())} |" for m in d.metrics if m.changed]
        out.append("")
    if d.added or d.removed or d.changed:
        out += ["| | finding |", "|---|---|"]
        out += [f"| ✏️ {b.id} {b.severity} | {cell(b.message)} (was: {cell(a.message)}) |" for a, b in d.changed]
        out += [f"| ➕ {f.id} {f.severity} | {cell(f.message)} |" for f in d.added]
        out += [f"| ➖ {f.id} {f.severity} | {cell(f.message)} |" for f in d.removed]
        out.append("")
    if d.regressions:
        out += ["**Regressions:**", ""] + [f"- {cell(x)}" for x in d.regressions]
        if d.attribution:
            out += ["", "Each changed field alone:", ""] + [f"- {code(k)}: {cell('; '.join(r) if r else 'no regression')}"
                                                          for k, r in d.attribution]
    return "\n".join(out) + "\n"


def to_json(d: Diff) -> str:
    return json.dumps({"planfile_version": __version__, "old": d.old_label, "new": d.new_label,
                       "status": {"old": d.old_status, "new": d.new_status},
                       "spec": [{"path": k, "old": a, "new": b} for k, a, b in d.fields],
                       "metrics": [{"name": m.name, "old": m.old, "new": m.new, "unit": m.unit,
                             "change_pct": None if m.unit == "%" else m.pct(),
                             "change_pp": (m.new - m.old) if m.unit == "%" and m.old is not None and m.new is not None else None}
                                   for m in d.metrics],
                       "attribution": [{"field": k, "regressions": r} for k, r in d.attribution],
                       "findings_added": [f.to_json() for f in d.added],
                       "findings_changed": [{"old": a.to_json(), "new": b.to_json()} for a, b in d.changed], "findings_removed": [f.to_json() for f in d.removed],
                       "regressions": d.regressions}, indent=2, default=str) + "\n"
