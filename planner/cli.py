"""The `planfile` command: thin wiring from typer to the pipeline functions."""

from __future__ import annotations

import glob
import json
import os
import sys
from enum import Enum
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Capacity planning for LLM inference, written as code.")
catalog_app = typer.Typer(no_args_is_help=True, help="Browse the catalog of GPUs, models, prices and archetypes.")
app.add_typer(catalog_app, name="catalog")


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


class Fmt(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    markdown = "markdown"
    sarif = "sarif"


STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "PASS": "bold green", "FAIL": "bold red",
         "INVALID": "bold magenta", "fix:": "green", "waived": "dim"}


def _print_colour(text: str) -> None:
    """The text report with severities coloured (rich; only on a terminal and without NO_COLOR)."""
    import re

    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    pattern = re.compile(r"\b(error|warning|info|PASS|FAIL|INVALID|waived)\b|fix:")
    for line in text.splitlines():
        t = Text(line)
        for m in pattern.finditer(line):
            t.stylize(STYLE[m.group(0)], m.start(), m.end())
        console.print(t)


def _expand(files: List[str]) -> list[str]:
    out = []
    for f in files:
        if f == "-" or not any(c in f for c in "*?["):
            out.append(f)
        else:
            hits = sorted(glob.glob(f, recursive=True))
            out.extend(hits or [f])
    return out


@app.command()
def check(files: List[str] = typer.Argument(..., help="Spec files, globs, or - for standard input."),
          fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Lowest severity that fails the check."),
          format: Fmt = typer.Option(Fmt.text, "--format", "-f", help="Output format."),
          no_breach: bool = typer.Option(False, "--no-breach", help="Skip the breach-point search (faster).")):
    """Check specs: memory fit, SLOs at peak load, budget. Exit 0 pass, 1 findings, 2 invalid spec."""
    from planner.output import FORMATS
    from planner.run import check_spec

    results = [check_spec(f, fail_on.value, breach=not no_breach) for f in _expand(files)]
    out = FORMATS[format.value](results)
    if format == Fmt.text and sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        _print_colour(out)
    else:
        sys.stdout.write(out)
    if any(r.status == "invalid" for r in results):
        raise typer.Exit(2)
    if any(r.status == "fail" for r in results):
        raise typer.Exit(1)


@app.command()
def render(spec: str = typer.Argument(..., help="The spec to render (must pass `planfile check`)."),
           out: str = typer.Option(..., "--out", "-o", help="Output folder; nothing is written outside it."),
           only: Optional[str] = typer.Option(None, "--only", help="Comma-separated targets: engine,k8s,alerts,bench,report."),
           templates: Optional[str] = typer.Option(None, "--templates", help="Folder of template overrides (same names as templates/)."),
           check_only: bool = typer.Option(False, "--check", help="Write nothing; exit 1 with a diff when --out differs."),
           force: bool = typer.Option(False, "--force", help="Render a failing spec, and overwrite files planfile did not write."),
           fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Lowest check severity that blocks rendering.")):
    """Render engine launch configs, Kubernetes manifests, alerts, bench.sh and a report from a spec."""
    from pathlib import Path

    from planner.output import FORMATS
    from planner.render import TARGETS, RenderError
    from planner.render import render as render_files
    from planner.render.out import OutError, drift, write
    from planner.run import check_spec

    targets = tuple(t.strip() for t in only.split(",")) if only else TARGETS
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        typer.echo(f"--only: unknown target {', '.join(bad)}; expected {', '.join(TARGETS)}", err=True)
        raise typer.Exit(2)
    if templates and not Path(templates).is_dir():
        typer.echo(f"--templates: {templates} is not a folder", err=True)
        raise typer.Exit(2)
    res = check_spec(spec, fail_on.value)
    if res.status == "invalid":
        sys.stderr.write(FORMATS["text"]([res]))
        raise typer.Exit(2)
    if res.status == "fail" and not force:
        sys.stderr.write(FORMATS["text"]([res]))
        typer.echo(f"render: {spec} fails check at --fail-on {fail_on.value}; nothing written (--force renders anyway)", err=True)
        raise typer.Exit(1)
    if res.estimate is None or res.estimate.get("performance") is None and not force:
        typer.echo(f"render: {spec} has no performance estimate (it does not fit); nothing written", err=True)
        raise typer.Exit(1)
    spec_text = sys.stdin.buffer.read() if spec == "-" else Path(spec).read_bytes()
    try:
        files = render_files(res, spec_text, targets, templates)
    except RenderError as exc:
        typer.echo(f"render: {spec}: {exc}", err=True)
        raise typer.Exit(2)
    except ImportError as exc:
        typer.echo(f"render: {exc}", err=True)
        raise typer.Exit(2)
    root = Path(out)
    try:
        if check_only:
            diff = drift(root, files)
            if diff:
                sys.stdout.write(diff)
                typer.echo(f"render --check: {out} differs from what {spec} renders now", err=True)
                raise typer.Exit(1)
            typer.echo(f"render --check: {out} is up to date ({len(files)} files)")
            return
        wp = write(root, files, spec, force)
    except OutError as exc:
        typer.echo(f"render: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {len(wp.write)} files to {out} ({len(wp.unchanged)} unchanged, {len(wp.remove)} removed)")
    for rel in wp.write:
        typer.echo(f"  {rel}")


class PlanFmt(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


class Objective(str, Enum):
    cost = "cost"
    latency = "latency"
    throughput = "throughput"
    balanced = "balanced"


@app.command()
def plan(spec: str = typer.Argument(..., help="A spec, or a partial one with only model, workload and SLOs."),
         objective: Objective = typer.Option(Objective.cost, "--objective", help="How to rank the options."),
         gpus: Optional[str] = typer.Option(None, "--gpus", help="Only these GPUs (comma-separated ids or aliases)."),
         provider: Optional[str] = typer.Option(None, "--provider", help="Price with this provider only."),
         max_gpus: Optional[int] = typer.Option(None, "--max-gpus", min=1, help="At most this many GPUs in the fleet."),
         precision: Optional[str] = typer.Option(None, "--precision", help="Allowed weight precisions (e.g. bf16,fp8)."),
         no_quantize: bool = typer.Option(False, "--no-quantize", help="bf16 weights and KV only."),
         top: int = typer.Option(5, "--top", min=1, max=50, help="How many options to show."),
         format: PlanFmt = typer.Option(PlanFmt.text, "--format", "-f", help="Output format."),
         write: Optional[str] = typer.Option(None, "--write", help="Write a complete spec for option 1 to this file.")):
    """Find the cheapest fleet that fits and meets every SLO. Exit 0 with options, 1 when none, 2 invalid."""
    from planner import catalog
    from planner import planout
    from planner.output import FORMATS
    from planner.plan import Constraints, search
    from planner.run import Result, load_for_plan

    gpu_list = tuple(g.strip() for g in gpus.split(",") if g.strip()) if gpus else ()
    for g in gpu_list:
        look = catalog.gpus().get(g)
        if look.entry is None:
            typer.echo(f"--gpus: unknown GPU {g!r}; {catalog.hint('gpus', g, look.suggestions)}", err=True)
            raise typer.Exit(2)
    if provider and catalog.providers().get(provider).entry is None:
        typer.echo(f"--provider: unknown provider {provider!r}; `planfile catalog list prices` lists them", err=True)
        raise typer.Exit(2)
    precs = tuple(p.strip() for p in precision.split(",")) if precision else ()
    bad = [p for p in precs if p not in ("bf16", "fp16", "fp8", "int8", "int4", "fp4")]
    if bad:
        typer.echo(f"--precision: unknown {', '.join(bad)}; expected bf16, fp16, fp8, int8, int4 or fp4", err=True)
        raise typer.Exit(2)
    loaded, findings, base, filled = load_for_plan(spec)
    if base is None:
        sys.stderr.write(FORMATS["text"]([Result(spec, "invalid", findings, loaded=loaded)]))
        raise typer.Exit(2)
    if not provider and isinstance(loaded.data.get("cost"), dict) and loaded.data["cost"].get("provider"):
        provider = loaded.data["cost"]["provider"]  # the spec's provider prices every option
    pid = catalog.providers().get(provider).entry["id"] if provider else None
    res = search(base, Constraints(gpu_list, pid, max_gpus, precs, no_quantize, objective.value), top)
    fmt = {"text": planout.to_text, "json": planout.to_json, "markdown": planout.to_markdown}[format.value]
    sys.stdout.write(fmt(spec, res, objective.value))
    if not res.options:
        raise typer.Exit(1)
    if write:
        from pathlib import Path

        Path(write).write_text(planout.spec_for(loaded.data, res.options[0], filled), encoding="utf-8")
        typer.echo(f"wrote {write}", err=True)


@app.command()
def diff(old: str = typer.Argument(..., help="The old spec (or, with --rev, the spec in the working tree)."),
         new: Optional[str] = typer.Argument(None, help="The new spec (omit with --rev)."),
         rev: Optional[str] = typer.Option(None, "--rev", help="Compare the spec at this git revision with the working tree."),
         format: PlanFmt = typer.Option(PlanFmt.text, "--format", "-f", help="text | json | markdown (for a PR comment)."),
         fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="Exit 1 when an SLO or budget margin gets worse."),
         threshold: float = typer.Option(5.0, "--threshold", min=0, help="Percentage points of margin a change may lose.")):
    """What a spec change does: GPUs, $/month, memory, concurrency, p95 TTFT/ITL, breach point, findings."""
    import subprocess
    from pathlib import Path

    from planner import diff as D
    from planner.loader import load_text
    from planner.output import FORMATS
    from planner.run import check_loaded, check_spec

    if rev:
        if new is not None:
            typer.echo("diff: give one spec with --rev, or two specs without it", err=True)
            raise typer.Exit(2)
        p = Path(old)
        try:
            raw = subprocess.run(["git", "show", f"{rev}:./{p.name}"], cwd=p.parent.resolve(), capture_output=True, check=True).stdout
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            msg = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
            typer.echo(f"diff: cannot read {old} at {rev}: {msg}", err=True)
            raise typer.Exit(2)
        a = check_loaded(load_text(raw, f"{old}@{rev}", p.parent), f"{old}@{rev}")
        b = check_spec(old)
        labels = (f"{old}@{rev}", old)
    else:
        if new is None:
            typer.echo("diff: give two specs (old new), or one spec and --rev REV", err=True)
            raise typer.Exit(2)
        a, b = check_spec(old), check_spec(new)
        labels = (old, new)
    for res in (a, b):
        if res.status == "invalid":
            sys.stderr.write(FORMATS["text"]([res]))
            raise typer.Exit(2)
    d = D.compare(a, b, *labels, threshold_pct=threshold)
    sys.stdout.write({"text": D.to_text, "json": D.to_json, "markdown": D.to_markdown}[format.value](d))
    if fail_on_regression and d.regressions:
        raise typer.Exit(1)


@app.command()
def sweep(spec: str = typer.Argument(..., help="The spec to sweep."),
          vary: str = typer.Option(..., "--vary", help="FIELD=START:STOP:STEP or FIELD=a,b,c; FIELD: arrival_rate_rps, "
                                   "concurrency, replicas, input_tokens, output_tokens, peak_factor."),
          format: str = typer.Option("table", "--format", "-f", help="table | csv | json")):
    """The estimate along one axis: load vs latency, replicas vs cost, prompt length vs memory."""
    from planner import sweep as S
    from planner.output import FORMATS
    from planner.run import check_spec

    if format not in ("table", "csv", "json"):
        typer.echo(f"--format: {format!r} is not table, csv or json", err=True)
        raise typer.Exit(2)
    try:
        axis, values = S.parse_vary(vary)
    except S.SweepError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    res = check_spec(spec, breach=False)
    if res.status == "invalid":
        sys.stderr.write(FORMATS["text"]([res]))
        raise typer.Exit(2)
    rows = S.sweep(res.resolved, axis, values)
    sys.stdout.write({"table": S.to_table, "csv": S.to_csv, "json": S.to_json}[format](rows))


def _results_setup(results: List[str], spec: str):
    from planner import calibration as C
    from planner.output import FORMATS
    from planner.run import check_spec

    res = check_spec(spec, breach=False)
    if res.status == "invalid":
        sys.stderr.write(FORMATS["text"]([res]))
        raise typer.Exit(2)
    try:
        ms = C.read(results)
    except C.ResultsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    return res.resolved, ms


def _summary_lines(title: str, summ: dict) -> list[str]:
    lines = [title]
    for k, v in summ.items():
        bias = "over" if v["bias_pct"] > 0 else "under"
        lines.append(f"  {k:<22} n={v['n']:<3} median |error| {v['median_abs_error_pct']:6.1f} %   bias {v['bias_pct']:+6.1f} % ({bias}-estimates)")
    return lines


@app.command()
def validate(results: List[str] = typer.Argument(..., help="vllm bench serve --save-result JSON files, or CSV files."),
             spec: str = typer.Option(..., "--spec", help="The spec the results were measured on."),
             tolerance: float = typer.Option(20.0, "--tolerance", min=0, help="Largest acceptable |error| in percent."),
             format: str = typer.Option("text", "--format", "-f", help="text | json")):
    """Predicted vs measured per metric, error and bias; exit 1 when an error exceeds --tolerance."""
    from planner import calibration as C

    r, ms = _results_setup(results, spec)
    rows = C.compare(r, ms)
    summ = C.summary(rows)
    worst = max((abs(x["error_pct"]) for x in rows if x["error_pct"] is not None), default=0.0)
    if format == "json":
        sys.stdout.write(json.dumps({"spec": spec, "tolerance_pct": tolerance, "rows": rows, "summary": summ,
                                     "within_tolerance": worst <= tolerance}, indent=2) + "\n")
    else:
        for x in rows:
            p = "n/a" if x["predicted"] is None else f"{x['predicted']:,.2f}"
            e = "n/a" if x["error_pct"] is None else f"{x['error_pct']:+.1f} %"
            flag = "  <- beyond tolerance" if x["error_pct"] is not None and abs(x["error_pct"]) > tolerance else ""
            sys.stdout.write(f"{x['mode']:<11} load {x['load']:<8g} {x['metric']:<20} measured {x['measured']:>10,.2f} "
                             f"predicted {p:>10} {e:>9}{flag}\n")
        sys.stdout.write("\n".join(_summary_lines(f"{spec}: tolerance {tolerance:g} %", summ)) + "\n")
    if worst > tolerance:
        raise typer.Exit(1)


@app.command()
def calibrate(results: List[str] = typer.Argument(..., help="vllm bench serve --save-result JSON files, or CSV files."),
              spec: str = typer.Option(..., "--spec", help="The spec the results were measured on (engine x GPU to fit)."),
              out: str = typer.Option("calibration.yaml", "--out", "-o", help="Calibration file to write.")):
    """Fit MFU, MBU and per-step overhead for the spec's engine x GPU to measured runs; write a calibration file."""
    import dataclasses
    from pathlib import Path

    import yaml

    from planner import calibration as C

    r, ms = _results_setup(results, spec)
    before = C.summary(C.compare(r, ms))
    try:
        fitted = C.fit(r, ms)
    except C.ResultsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    after = C.summary(C.compare(dataclasses.replace(r, calibration=fitted), ms))
    doc = {"engine": r.engine["id"], "engine_version": r.engine_version, "gpu": r.gpu["id"],
           "mfu": fitted["mfu"], "mbu": fitted["mbu"], "mbu_kv": fitted["mbu_kv"], "overhead_ms": fitted["overhead_ms"],
           "source": f"planfile calibrate on {len(ms)} measurement(s): " + ", ".join(sorted({Path(m.source.split(':')[0]).name for m in ms})),
           "error_before": before, "error_after": after}
    Path(out).write_text("# Efficiency factors fitted by planfile calibrate; reference it from the spec as\n"
                         f"#   calibration: {out}\n" + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    lines = _summary_lines("before (catalog factors):", before) + _summary_lines(
        f"after (mfu {fitted['mfu']}, mbu {fitted['mbu']}, mbu_kv {fitted['mbu_kv']}, overhead {fitted['overhead_ms']} ms):", after)
    sys.stdout.write("\n".join(lines) + f"\nwrote {out}\n")


@app.command()
def schema():
    """Print the deployment.yaml JSON Schema."""
    from planner.resources import schema as load

    sys.stdout.write(json.dumps(load("deployment"), indent=2) + "\n")


@app.command()
def explain(what: str = typer.Argument(None, help="A check id (PF201), or a spec file to explain its numbers."),
            metric: Optional[str] = typer.Option(None, "--metric", help="With a spec: one section (kv, weights, memory, decode, "
                                                 "prefill, ttft_p95, itl_p95, breach, cost)."),
            list_all: bool = typer.Option(False, "--list", help="List every check id.")):
    """Explain a check id (what, why, fix), or a spec's numbers: formulas, values and sources."""
    from planner.checks import REGISTRY, rules  # noqa: F401

    if list_all or not what:
        for c in sorted(REGISTRY.values(), key=lambda c: c.id):
            sys.stdout.write(f"{c.id}  {c.slug:<28} {c.severity:<8} {c.summary}\n")
        return
    c = REGISTRY.get(what.upper())
    if c is not None:
        sys.stdout.write(f"{c.id} {c.slug} ({c.severity})\n{c.summary}\n\n{c.doc}\n")
        return
    if what.endswith((".yaml", ".yml")) or what == "-":
        from planner.explain import METRIC_SECTION, SECTIONS, explain as explain_spec
        from planner.output import FORMATS
        from planner.run import check_spec

        if metric and metric not in SECTIONS and metric not in METRIC_SECTION:
            typer.echo(f"--metric: unknown {metric!r}; one of {', '.join(sorted(set(SECTIONS) | set(METRIC_SECTION)))}", err=True)
            raise typer.Exit(2)
        res = check_spec(what)
        if res.status == "invalid":
            sys.stderr.write(FORMATS["text"]([res]))
            raise typer.Exit(2)
        sys.stdout.write(explain_spec(res, metric))
        return
    typer.echo(f"unknown check id {what}; `planfile explain --list` lists them (or pass a spec file)", err=True)
    raise typer.Exit(2)


@catalog_app.command("list")
def catalog_list(kind: str = typer.Argument(..., help="gpus | models | prices | archetypes | engines"),
                 format: str = typer.Option("text", "--format", "-f", help="text | json")):
    """List catalog entries."""
    from planner import catalog

    if kind not in ("gpus", "models", "prices", "archetypes", "engines"):
        typer.echo(f"unknown catalog kind {kind!r}: expected gpus, models, prices, archetypes or engines", err=True)
        raise typer.Exit(2)
    data = catalog.raw(kind)[kind if kind != "prices" else "prices"]
    if format == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    for e in data:
        if kind == "gpus":
            t = e["dense_tflops"]
            line = (f"{e['id']:<18}{e['memory_gb']:>7g} GB {e['memory_bandwidth_tb_per_s']:>6.2f} TB/s "
                    f"bf16 {t['bf16']:>7g} fp8 {t.get('fp8') or '-':>7} TFLOPS  {e['name']}")
        elif kind == "models":
            line = (f"{e['id']:<18}{e['params_b']['total']:>8.1f}B total {e['params_b']['active']:>7.1f}B active "
                    f"{e['attention']['type']:<4} KV {e['kv_bytes_per_token_bf16'] / 1024:>6.1f} KiB/token bf16  {e['hf_id']}")
        elif kind == "prices":
            line = f"{e['provider']:<12}{e['gpu']:<16}${e['usd_per_gpu_hour']:>6.2f}/GPU-h  as of {e['as_of']}  {e['sku']}"
        elif kind == "archetypes":
            line = f"{e['id']:<10}{e['description']}"
        else:
            line = f"{e['id']:<8}{e['name']:<14} versions {', '.join(e['versions'])}"
        sys.stdout.write(line + "\n")


@catalog_app.command("show")
def catalog_show(id: str = typer.Argument(..., help="An id or alias of a GPU, model, archetype or engine.")):
    """Show one catalog entry in full."""
    import yaml

    from planner import catalog

    for idx in (catalog.gpus(), catalog.models(), catalog.archetypes(), catalog.engines(), catalog.providers()):
        e = idx.get(id).entry
        if e is not None:
            sys.stdout.write(yaml.safe_dump(e, sort_keys=False, allow_unicode=True))
            return
    sugg = catalog.gpus().get(id).suggestions + catalog.models().get(id).suggestions
    typer.echo(f"no catalog entry {id!r}" + (f"; did you mean {' or '.join(sugg)}?" if sugg else ""), err=True)
    raise typer.Exit(2)


@catalog_app.command("import-hf")
def import_hf(config: str = typer.Argument(..., help="A Hugging Face config.json, or a repo id (org/name) with the hf extra."),
              id: Optional[str] = typer.Option(None, "--id", help="Catalog id for the entry."),
              revision: Optional[str] = typer.Option(None, "--revision", help="With a repo id: branch, tag or commit.")):
    """Print a catalog model entry computed from a Hugging Face config.json (file or Hub repo id)."""
    from pathlib import Path

    import yaml

    from planner import hfconfig

    path = config
    if not Path(config).exists() and config.count("/") == 1 and not config.endswith(".json"):
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            typer.echo(f"{config}: not a file; to fetch a Hub repo's config.json install the hf extra: "
                       "pip install 'planfile[hf]'", err=True)
            raise typer.Exit(2)
        try:
            path = hf_hub_download(config, "config.json", revision=revision)
        except Exception as exc:  # offline, gated, missing: huggingface_hub raises many kinds
            typer.echo(f"{config}: cannot fetch config.json from the Hugging Face Hub ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); offline? download it and pass the file", err=True)
            raise typer.Exit(2)
    try:
        entry = hfconfig.load(path)
    except hfconfig.HFConfigError as exc:
        typer.echo(f"{config}: {exc}", err=True)
        raise typer.Exit(2)
    if id:
        entry["id"] = entry["name"] = id
    sys.stdout.write(yaml.safe_dump({"models": [entry]}, sort_keys=False))


def main() -> None:
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # numpy on degenerate inputs: reported as findings instead
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # a crash is never exit 1: that means "findings"
        if "--debug" in sys.argv:
            raise
        sys.stderr.write(f"planfile: internal error: {type(exc).__name__}: {exc}\n")
        sys.exit(2)
