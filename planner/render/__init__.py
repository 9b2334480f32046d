"""`planfile render`: a checked spec -> engine launch configs, Kubernetes manifests, alerts, a benchmark
script and a report. Pure up to the returned {relative path: text}; writing lives in planner.render.out.

Templates run in a sandboxed Jinja environment with StrictUndefined. Every value reaches a manifest
through a serializing filter (`q`: a quoted YAML scalar, `flow`: JSON flow, `shjoin`: shell words), so no
spec string can change a manifest's structure; HTML is autoescaped. Users may override any template
with `--templates DIR` (same relative names).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

TARGETS = ("engine", "k8s", "alerts", "bench", "report")
# escaped in YAML double-quoted scalars: non-printables, and the Unicode line breaks YAML would fold (NEL, LS, PS, BOM);
# compiled on the first string that is not plain ASCII (the class spans all of Unicode: 3 ms, on every cold check)
_NON_PRINTABLE_CLASS = "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
_NON_PRINTABLE: list = []


class RenderError(Exception):
    """A spec that cannot be rendered (e.g. a multi-node TensorRT-LLM replica), or a broken template."""


def yaml_scalar(v) -> str:
    """A YAML scalar that parses back to exactly `v` (JSON-compatible double-quoted for strings)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = json.dumps(str(v), ensure_ascii=False)
    if s.isascii() and "\x7f" not in s:
        return s  # JSON escaped every other ASCII control
    # YAML forbids some characters JSON allows raw (C1 controls, surrogates, BOM-like): escape them
    if not _NON_PRINTABLE:
        _NON_PRINTABLE.append(re.compile(_NON_PRINTABLE_CLASS))
    return _NON_PRINTABLE[0].sub(lambda m: "\\u%04x" % ord(m.group()) if ord(m.group()) < 0x10000
                              else "\\U%08x" % ord(m.group()), s)


def yaml_flow(v) -> str:
    """JSON flow style with YAML-safe strings (JSON is a subset of YAML's flow syntax)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{yaml_scalar(str(k))}: {yaml_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_flow(x) for x in v) + "]"
    return yaml_scalar(v)


def yaml_text(v) -> str:
    import yaml

    return yaml.safe_dump(v, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")


def comment(v) -> str:
    """Text safe inside a one-line comment (YAML, shell): no line breaks or control characters."""
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]+", " ", str(v))


def md(v) -> str:
    """Text safe in markdown (planner.escape.markdown): no markup, link, mention or line break survives."""
    from planner.escape import markdown

    return markdown(v)


MAX_TEMPLATE_BYTES = 256 * 1024  # a user template file
MAX_OUTPUT_BYTES = 8 * 1024 * 1024  # one rendered file
MAX_RENDER_S = 20.0  # all templates of one render
MAX_SEQUENCE = 1_000_000  # items of a string or list a template may build with * or **


class _UserTemplates:
    """Loader for --templates DIR: regular files only, no symlink anywhere on the path (a template could
    otherwise include /proc/self/environ and print the pod's secrets), bounded size, UTF-8."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def __call__(self, name: str):
        import os

        from planner import sidefile

        parts = [p for p in name.split("/") if p]
        if any(p in (".", "..") for p in parts) or name.startswith("/"):
            return None
        path = self.root
        for p in parts:
            path = path / p
            if path.is_symlink():
                raise RenderError(f"template override {name}: {path} is a symbolic link; templates must be regular files")
        if not path.exists():
            return None
        try:
            text = sidefile.read_text(path, MAX_TEMPLATE_BYTES, "template")
        except sidefile.SideFileError as exc:
            raise RenderError(f"template override {name}: {exc}") from None
        mtime = os.stat(path).st_mtime
        return text, str(path), lambda: os.stat(path).st_mtime == mtime


def environment(user_dir: str | None = None):
    import operator

    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    from planner.resources import data_dir

    class Env(SandboxedEnvironment):
        # `'a' * 10**9` and friends: cap the size of sequences and numbers a template can build
        intercepted_binops = frozenset(["*", "**", "+"])

        def call_binop(self, context, operator_, left, right):
            if operator_ == "**":
                if isinstance(right, (int, float)) and abs(right) > 64:
                    raise jinja2.exceptions.SecurityError("template exponent too large")
                return left ** right
            if operator_ == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_SEQUENCE:
                        raise jinja2.exceptions.SecurityError("template builds a sequence that is too long")
                return operator.mul(left, right)
            out = operator.add(left, right)
            if isinstance(out, (str, list, tuple)) and len(out) > MAX_SEQUENCE:
                raise jinja2.exceptions.SecurityError("template builds a sequence that is too long")
            return out

    loaders = [jinja2.FileSystemLoader(str(data_dir("templates")))]
    if user_dir:
        loaders.insert(0, jinja2.FunctionLoader(_UserTemplates(user_dir)))
    env = Env(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
              autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
              keep_trailing_newline=True, trim_blocks=False)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)  # lipsum(10**6) is a CPU and memory sink; none of them is needed
    from planner.escape import markdown_code, markdown_fence
    from planner.output import value_text

    env.filters.update(q=yaml_scalar, flow=yaml_flow, yaml_text=yaml_text, comment=comment, md=md, mdcode=markdown_code,
                       fence=markdown_fence,
                       sh=shlex.quote, shjoin=lambda argv: " ".join(shlex.quote(str(a)) for a in argv),
                       num=lambda v, d=0: "n/a" if v is None else f"{v:,.{d}f}",
                       qty=lambda v, unit, d=0: value_text(v, f",.{d}f", f" {unit}"))
    return env


def _render_bounded(tpl, ctx: dict, deadline: float, name: str) -> str:
    """Render one template within the output size and the render's time budget (checked per output chunk,
    and by an interval timer for loops that produce nothing)."""
    import signal
    import time

    def expired(*_):
        raise RenderError(f"template {name}: rendering takes longer than {MAX_RENDER_S:g} s; refusing a template this slow")

    use_timer = hasattr(signal, "setitimer") and _main_thread()
    old = None
    if use_timer:
        old = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.01))
    try:
        chunks, size = [], 0
        for chunk in tpl.generate(**ctx):
            size += len(chunk)
            if size > MAX_OUTPUT_BYTES:
                raise RenderError(f"template {name}: output beyond {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB")
            if time.monotonic() > deadline:
                expired()
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        if use_timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def plan_files(ctx: dict, targets: tuple[str, ...]) -> list[tuple[str, str]]:
    """(template, output path) pairs for the chosen targets."""
    files: list[tuple[str, str]] = []
    if "engine" in targets:
        files.append(("engine/serve.sh.j2", "engine/serve.sh"))
        if ctx["engine"]["config"] is not None:
            files.append(("engine/config.yaml.j2", f"engine/{ctx['engine']['config_name']}"))
    if "k8s" in targets:
        files.append(("k8s/leaderworkerset.yaml.j2", "k8s/leaderworkerset.yaml") if ctx["topology"]["multinode"]
                     else ("k8s/deployment.yaml.j2", "k8s/deployment.yaml"))
        files.append(("k8s/service.yaml.j2", "k8s/service.yaml"))
        files.append(("k8s/pdb.yaml.j2", "k8s/pdb.yaml"))
        if ctx["engine"]["config_mounted"]:
            files.append(("k8s/configmap.yaml.j2", "k8s/configmap.yaml"))
        if ctx["volumes"]["render_pvc"]:
            files.append(("k8s/pvc.yaml.j2", "k8s/pvc.yaml"))
        a = ctx["autoscaling"]
        if a and a.get("scaler") == "hpa":
            files.append(("k8s/hpa.yaml.j2", "k8s/hpa.yaml"))
        elif a and a.get("scaler") == "keda":
            files.append(("k8s/scaledobject.yaml.j2", "k8s/scaledobject.yaml"))
    if "alerts" in targets and ctx["alerts"]:
        files.append(("alerts/prometheusrule.yaml.j2", "alerts/prometheusrule.yaml"))
        files.append(("alerts/servicemonitor.yaml.j2", "alerts/servicemonitor.yaml"))
    if "bench" in targets:
        files.append(("bench/bench.sh.j2", "bench.sh"))
    if "report" in targets:
        files.append(("report/report.md.j2", "report.md"))
        files.append(("report/report.html.j2", "report.html"))
    return files


def report_context(res) -> dict:
    from planner import curves
    from planner.render import charts

    r, est = res.resolved, res.estimate
    svgs = {}
    if est.get("performance"):
        svgs["latency"] = charts.latency(curves.latency_curve(r, est))
        svgs["gpus_vs_load"] = charts.gpus_vs_load(curves.gpus_vs_load(r, est))
    svgs["memory"] = charts.memory(est["memory"])
    svgs["roofline"] = charts.roofline(est["roofline"])
    svgs["gpu_comparison"] = charts.gpu_comparison(curves.gpu_comparison(r))
    svgs["offload"] = charts.offload(est["offload"], r.replicas)
    return {"svgs": svgs}


def render(res, spec_text: bytes, targets: tuple[str, ...] = TARGETS, templates: str | None = None,
           notes: list[str] | None = None) -> dict[str, str]:
    """{relative output path: text} for a checked spec (run.Result with an estimate).

    `notes` collects one-line remarks for the user (e.g. the report without charts when matplotlib, the
    `report` extra, is not installed: every other artifact is still rendered)."""
    import jinja2
    import yaml

    from planner.render import context

    ctx = context.build(res, spec_text)
    if ctx["launch_errors"]:
        raise RenderError("; ".join(dict.fromkeys(ctx["launch_errors"])))
    ctx["findings"] = [dict(f.to_json(), waived=f.waived) for f in res.findings]
    ctx["status"] = res.status
    ctx["estimate"] = res.estimate
    ctx["disagg"] = None  # a disaggregated plan's pools and launches (set below)
    files = plan_files(ctx, targets)
    disagg_out: dict[str, str] = {}
    if res.resolved.disagg:
        from planner.render import dynamo

        errs = dynamo.errors(res.resolved, res.estimate)
        if errs:
            raise RenderError("; ".join(dict.fromkeys(errs)))
        # the Dynamo operator creates the pools' Deployments, Services and PodMonitors: no aggregated manifests,
        # no aggregated launch, no ServiceMonitor; the alert rules watch Dynamo's frontend (context.alerts)
        files = [(t, p) for t, p in files if not (p.startswith("k8s/") or p.startswith("engine/")
                                                  or p == "alerts/servicemonitor.yaml")]
        disagg_out = dynamo.files(res.resolved, res.estimate, ctx, targets)
        ctx["disagg"] = dynamo.report_context(res.resolved, res.estimate)
    if "report" in targets:
        from planner.render.charts import ChartsUnavailable

        try:
            ctx.update(report_context(res))
        except ChartsUnavailable as exc:
            ctx["svgs"] = {}
            if notes is not None:
                notes.append(f"report rendered without charts: {exc}")
        for name in ctx["svgs"]:
            files.append((None, f"charts/{name}.svg"))
    import time

    env = environment(templates)
    out: dict[str, str] = {}
    deadline = time.monotonic() + MAX_RENDER_S
    for tpl, path in files:
        if tpl is None:
            out[path] = ctx["svgs"][Path(path).stem] + "\n"
            continue
        try:
            text = _render_bounded(env.get_template(tpl), ctx, deadline, tpl)
        except RecursionError:
            raise RenderError(f"template {tpl}: recursion too deep") from None
        except jinja2.TemplateError as exc:
            where = f"{exc.filename or tpl}:{exc.lineno}" if getattr(exc, "lineno", None) else tpl
            raise RenderError(f"template {where}: {exc.message if hasattr(exc, 'message') else exc}") from None
        if path.endswith(".yaml"):
            try:
                list(yaml.safe_load_all(text))
            except yaml.YAMLError as exc:
                raise RenderError(f"template {tpl} produced invalid YAML: {exc}") from None
        out[path] = text if text.endswith("\n") else text + "\n"
    out.update(disagg_out)
    from planner.render import sanity

    problems = sanity.check_files({k: v for k, v in out.items() if k not in disagg_out}, ctx["gpu"]["per_pod"])
    if problems:
        raise RenderError("rendered manifests are invalid: " + "; ".join(problems))
    return dict(sorted(out.items()))
