"""Formatters: whole-report functions keyed by --format. Machine formats use the standard library only."""

from __future__ import annotations

import math

from planner import __version__



def rps_text(x: float, decimals: int = 1) -> str:
    """A request rate for people: `decimals` decimals, or two significant digits below 0.1 req/s (not "0.0")."""
    return f"{x:,.0f}" if x >= 1000 else f"{x:.{decimals}f}" if x >= 0.1 or x == 0 else f"{x:.2g}"


def headroom_text(pct: float | None) -> str:
    """Headroom of the breach point over the peak: a signed percentage, or a multiple from 1000 % on."""
    if pct is None:
        return "n/a"
    return f"{pct:+.0f} %" if pct < 1000 else f"{1 + pct / 100:,.0f}x the peak"

def _clean(x):
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def estimate_json(est: dict | None) -> dict | None:
    if est is None:
        return None
    perf = est.get("performance")
    out = {"memory": est["memory"]}
    if perf:
        out["performance"] = {k: perf[k] for k in ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s",
                                                  "ttft_ms", "itl_ms", "e2e_s", "bottleneck")}
        out["performance"]["saturation_output_tokens_per_s"] = perf.get("saturation_output_tokens_per_s")
        for k in ("requests_completed", "duration_s", "preemptions"):  # a finite run (workload.requests)
            if k in perf:
                out["performance"][k] = perf[k]
    else:
        out["performance"] = None
    cap = est.get("capacity") or {}
    out["capacity"] = {"breach_rps": cap.get("breach_rps"), "headroom_pct": cap.get("headroom_pct"), "peak_rps": cap.get("peak_rps")}
    c = est.get("cost") or {}
    out["cost"] = {k: c.get(k) for k in ("usd_per_month", "usd_per_million_output_tokens", "usd_per_gpu_hour",
                                          "gpus_billed", "cold_start_s")}
    out["roofline"] = est.get("roofline")
    out["checkpoint"] = est.get("checkpoint")
    out["cold_start"] = est.get("cold_start")
    out["accuracy"] = est.get("accuracy")
    if est.get("disaggregation"):
        out["disaggregation"] = est["disaggregation"]
    return _clean(out)


def disagg_text(dz: dict) -> str:
    pools = dz["pools"]

    def one(role):
        p = pools[role]
        u = p.get("utilisation_at_peak")
        return (f"{role} {p['replicas']} x TP{p['tensor']}" + (f"xPP{p['pipeline']}" if p["pipeline"] > 1 else "")
                + (f" ({u * 100:.0f} % busy at peak)" if u is not None else ""))
    t = dz["transfer"]
    return (f"{one('prefill')}, {one('decode')}; KV transfer {t['mean_prompt_ms']:.1f} ms per mean prompt "
            f"({t['mean_prompt_mb']:.0f} MB over {t['link']} at {t['gb_per_s_effective']:.3g} GB/s + {t['setup_ms']:g} ms setup)")


def accuracy_text(acc: dict | None) -> str:
    """One line: the held-out error band of the regime, what it borrows, and the confidence margin."""
    if not acc:
        return ""
    parts = [f"{label} ±{acc['metrics'][m]['p90_abs_error_pct']:.0f} %"
             for m, label in (("throughput", "throughput"), ("itl", "ITL"), ("ttft", "TTFT")) if m in acc["metrics"]]
    reg = acc["regime"]
    line = ("held-out p90 |error| " + ", ".join(parts) if parts else "no held-out measurements") + \
        f" ({reg['generation']} {reg['precision']} {reg['moe']} {reg['engine']})"
    if acc["borrowed"]:
        what = {"generation": f"{reg['generation']} GPUs", "precision": f"{reg['precision']} weights", "engine": reg["engine"]}
        line += "; band borrowed: no measurements of " + " or ".join(what[k] for k in acc["borrowed"])
    if acc.get("slo_confidence"):
        line += f"; slo.confidence {acc['slo_confidence']:g}: times x {acc['time_scale']:.2f}"
    return line


def to_json(results) -> str:
    doc = {"planfile_version": __version__, "results": []}
    for r in results:
        item = {"spec": r.spec, "status": r.status,
                "findings": [f.to_json() for f in r.findings],
                "summary": _counts(r.findings)}
        if r.status != "invalid":
            item["estimate"] = estimate_json(r.estimate)
        doc["results"].append(item)
    import json

    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def _counts(findings):
    c = {"error": 0, "warning": 0, "info": 0, "waived": 0}
    for f in findings:
        if f.waived:
            c["waived"] += 1
        else:
            c[f.severity] += 1
    return c


def value_text(v, spec=",.0f", unit=""):
    """A number with its unit as check prints it, and as render's reports do (the `qty` filter): an infinite
    latency (a fleet that does not carry its peak) is "unbounded", a missing or NaN one "n/a"."""
    if isinstance(v, float) and math.isinf(v):
        return "unbounded (queue grows)"
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:{spec}}{unit}"


def to_text(results) -> str:
    from planner.escape import terminal as t, terminal_lines

    lines = []
    for r in results:
        lines.append(f"{t(r.spec)}: {r.status.upper()}")
        for f in r.findings:
            loc = f"{t(r.spec)}:{f.line}:{f.column}" if f.line else t(r.spec)
            mark = " (waived: " + t(f.waiver_reason) + ")" if f.waived else ""
            lines.append(f"  {loc}: {f.severity} {f.id} {f.check}: {t(f.message)}{mark}")
            if f.remediation:
                lines.append(f"      fix: {t(f.remediation)}")
            if f.pointer:
                lines.append(f"      at {t(f.pointer)}")
        est = r.estimate
        if est:
            m, p, c, cap = est["memory"], est.get("performance"), est.get("cost") or {}, est.get("capacity") or {}
            ck = est.get("checkpoint")
            if ck:
                how = f", quantized at load time (--quantization {ck['online_quantization']})" if ck["online_quantization"] else ""
                lines.append(f"  checkpoint  {t(ck['repo'])} ({ck['format']}{how}), {ck['download_gb']:.1f} GB download")
            if est.get("disaggregation"):
                lines.append(f"  pools       {t(disagg_text(est['disaggregation']))}")
            lines.append(f"  memory/GPU  weights {m['weights_gb_per_gpu']:.1f} GB + KV pool {m['kv_cache_gb_per_gpu']:.1f} GB "
                         f"(usable {m['usable_gb_per_gpu']:.1f} GB); {m['max_concurrent_sequences']:,} sequences fit")
            if p:
                lines.append(f"  throughput  {value_text(p['output_tokens_per_s'])} output tokens/s "
                             f"({value_text(p['output_tokens_per_s_per_gpu'])} per GPU), bottleneck {p['bottleneck']}")
                lines.append(f"  latency     p95 TTFT {value_text(p['ttft_ms'].get('p95'), ',.0f', ' ms')}, "
                             f"p95 ITL {value_text(p['itl_ms'].get('p95'), ',.1f', ' ms')}, "
                             f"p95 e2e {value_text(p['e2e_s'].get('p95'), ',.1f', ' s')}")
                if est.get("accuracy"):
                    lines.append(f"  accuracy    {t(accuracy_text(est['accuracy']))}")
            if cap.get("breach_rps") is not None:
                lines.append(f"  capacity    breach point {rps_text(cap['breach_rps'])} req/s vs peak {rps_text(cap['peak_rps'])} "
                             f"req/s (headroom {headroom_text(cap['headroom_pct'])})")
            if c.get("usd_per_month") is not None:
                per = c.get("usd_per_million_output_tokens")
                lines.append(f"  cost        ${c['usd_per_month']:,.0f}/month"
                             + (f", ${per:,.2f}/1M output tokens" if per is not None else ""))
        cnt = _counts(r.findings)
        lines.append(f"  {cnt['error']} errors, {cnt['warning']} warnings, {cnt['info']} info, {cnt['waived']} waived")
    return terminal_lines("\n".join(lines)) + "\n"


def _esc(s: str, prop: bool = False) -> str:
    from planner.escape import github_message, github_property

    return github_property(s) if prop else github_message(s)


def to_github(results) -> str:
    lines = []
    kind = {"error": "error", "warning": "warning", "info": "notice"}
    for r in results:
        for f in r.findings:
            if f.waived:
                continue
            props = [f"file={_esc(r.spec, True)}"]
            if f.line:
                props += [f"line={f.line}", f"col={f.column}"]
            props.append(f"title={_esc(f.id + ' ' + f.check, True)}")
            msg = f.message + (f" -- fix: {f.remediation}" if f.remediation else "")
            lines.append(f"::{kind[f.severity]} {','.join(props)}::{_esc(msg)}")
    return "\n".join(lines) + ("\n" if lines else "")


def _md(s) -> str:
    from planner.escape import markdown

    return markdown(s)


def _code(s) -> str:
    from planner.escape import markdown_code

    return markdown_code(s)


def to_markdown(results) -> str:
    """A pull-request comment: verdict, findings with line and fix, and the estimate in one table."""
    icon = {"pass": "✅", "fail": "❌", "invalid": "⛔"}
    out = []
    for r in results:
        cnt = _counts(r.findings)
        out.append(f"### {icon[r.status]} {_code(r.spec)}: {r.status.upper()}")
        out.append("")
        out.append(f"{cnt['error']} errors, {cnt['warning']} warnings, {cnt['info']} info, {cnt['waived']} waived")
        out.append("")
        shown = [f for f in r.findings if not f.waived and f.severity != "info"] + [f for f in r.findings if f.waived]
        infos = [f for f in r.findings if not f.waived and f.severity == "info"]
        if shown:
            out += ["| | check | where | what | fix |", "|---|---|---|---|---|"]
            for f in shown:
                where = f"line {f.line}" if f.line else "—"
                sev = {"error": "🔴 error", "warning": "🟠 warning", "info": "ℹ️ info"}[f.severity] + (" (waived)" if f.waived else "")
                out.append(f"| {sev} | {f.id} {f.check} | {where} {_code(f.pointer or '/')} | {_md(f.message)}"
                           + (f" — waived: {_md(f.waiver_reason)}" if f.waived else "") + f" | {_md(f.remediation)} |")
            out.append("")
        for f in shown:
            for fx in (f.data.get("fixes") or [])[:1]:
                from planner.fixes import suggestion

                diff = suggestion(r.loaded, fx)
                if diff:
                    from planner.escape import markdown_fence, terminal_lines

                    out += [f"Verified fix for {f.id} (line {f.line}): planfile applied it to a copy and re-checked it.", "",
                            markdown_fence(terminal_lines(diff), "diff"), ""]
        est = r.estimate
        if est:
            m, p, c, cap = est["memory"], est.get("performance"), est.get("cost") or {}, est.get("capacity") or {}
            ck = est.get("checkpoint")
            out += ["| estimate | |", "|---|---|"]
            if ck:
                out.append(f"| checkpoint | {_code(ck['repo'])} ({ck['format']}"
                           + (f", quantized at load time: `--quantization {ck['online_quantization']}`" if ck["online_quantization"] else "")
                           + f"), {ck['download_gb']:.1f} GB download |")
            if est.get("disaggregation"):
                out.append(f"| pools | {_md(disagg_text(est['disaggregation']))} |")
            out += [
                    f"| memory per GPU | weights {m['weights_gb_per_gpu']:.1f} GB + KV {m['kv_cache_gb_per_gpu']:.1f} GB of "
                    f"{m['usable_gb_per_gpu']:.1f} GB usable; {m['max_concurrent_sequences']:,} sequences |"]
            if p:
                out.append(f"| throughput | {value_text(p['output_tokens_per_s'])} output tokens/s ({value_text(p['output_tokens_per_s_per_gpu'])} per GPU) |")
                out.append(f"| p95 TTFT / ITL | {value_text(p['ttft_ms'].get('p95'), ',.0f', ' ms')} / {value_text(p['itl_ms'].get('p95'), ',.1f', ' ms')} |")
                if est.get("accuracy"):
                    out.append(f"| accuracy | {_md(accuracy_text(est['accuracy']))} |")
            if cap.get("breach_rps") is not None:
                out.append(f"| breach point | {rps_text(cap['breach_rps'])} req/s vs peak {rps_text(cap['peak_rps'])} "
                           f"({headroom_text(cap['headroom_pct'])}) |")
            if c.get("usd_per_month") is not None:
                per = c.get("usd_per_million_output_tokens")
                out.append(f"| cost | ${c['usd_per_month']:,.0f}/month" + (f", ${per:,.2f}/1M output tokens" if per is not None else "") + " |")
            out.append("")
        if infos:
            out.append("<details><summary>" + f"{len(infos)} info finding(s)</summary>")
            out.append("")
            out += [f"- {f.id} {f.check}: {_md(f.message)}" for f in infos]
            out.append("")
            out.append("</details>")
            out.append("")
    return "\n".join(out)


def _repo_uri(spec: str) -> str:
    """An RFC 3986 URI reference to the spec: relative to the working directory (the repository root in
    CI) with every character outside the unreserved set and "/" percent-encoded as UTF-8 (a space, `#`,
    `%`, non-ASCII), or a file: URI when the spec lies outside it."""
    import os
    from pathlib import Path
    from urllib.parse import quote

    if spec == "-":
        return "stdin"
    p = Path(spec)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return p.resolve().as_uri()
    text = p.as_posix()
    while text.startswith("./"):
        text = text[2:]
    return quote(text or os.path.basename(spec), safe="/")


SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def to_sarif(results) -> str:
    """SARIF 2.1.0 for GitHub code scanning: stable rule ids, repo-relative URIs, fingerprints."""
    import hashlib

    from planner.checks import REGISTRY, rules  # noqa: F401

    used = sorted({f.id for r in results for f in r.findings})
    index = {rid: i for i, rid in enumerate(used)}
    rules_out = []
    for rid in used:
        c = REGISTRY.get(rid)
        rules_out.append({"id": rid, "name": c.slug if c else rid,
                          "shortDescription": {"text": c.summary if c else rid},
                          "fullDescription": {"text": (c.doc or c.summary) if c else rid},
                          "help": {"text": f"planfile explain {rid}"},
                          "defaultConfiguration": {"level": SARIF_LEVEL[c.severity] if c else "warning"},
                          "properties": {"tags": ["planfile", "capacity"]}})
    res_out = []
    for r in results:
        uri = _repo_uri(r.spec)
        for f in r.findings:
            item = {"ruleId": f.id, "ruleIndex": index[f.id], "level": SARIF_LEVEL[f.severity],
                    "message": {"text": f.message + (f" Fix: {f.remediation}" if f.remediation else "")},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                    "partialFingerprints": {"planfile/v1": hashlib.sha256(f"{uri}|{f.id}|{f.pointer}".encode()).hexdigest()[:32]},
                    "properties": {"pointer": f.pointer or "/"}}
            if f.line:
                item["locations"][0]["physicalLocation"]["region"] = {"startLine": f.line, "startColumn": f.column or 1}
            if f.waived:
                item["suppressions"] = [{"kind": "inSource", "justification": f.waiver_reason}]
            if f.data.get("fixes"):
                from planner.fixes import sarif_fixes

                fx = sarif_fixes(r.loaded, uri, f)
                if fx:
                    item["fixes"] = fx
            res_out.append(item)
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "planfile", "version": __version__,
                                         "informationUri": "https://planfile.dev", "rules": rules_out}},
                     "results": res_out}]}
    import json

    return json.dumps(doc, indent=2) + "\n"


FORMATS = {"text": to_text, "json": to_json, "github": to_github, "markdown": to_markdown, "sarif": to_sarif}
