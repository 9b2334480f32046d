"""The commands behind `planfile`: each takes the parsed arguments, calls the pipeline, prints, and
returns an exit code (or raises cli.Exit). I/O lives here and in the formatters, never in the physics."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from planner.cli import Exit

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "PASS": "bold green", "FAIL": "bold red",
         "INVALID": "bold magenta", "fix:": "green", "waived": "dim"}


def _quiet_numpy() -> None:
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # numpy on degenerate inputs: reported as findings instead


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


def expand(files: list[str]) -> list[str]:
    out = []
    for f in files:
        if f == "-" or not any(c in f for c in "*?["):
            out.append(f)
        else:
            import glob

            hits = sorted(glob.glob(f, recursive=True))
            out.extend(hits or [f])
    return out


def emit(text: str, fmt: str = "") -> None:
    if fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        _print_colour(text)
    else:
        sys.stdout.write(text)


def _invalid(res) -> None:
    from planner.output import FORMATS

    sys.stderr.write(FORMATS["text"]([res]))
    raise Exit(2)


SPEC_HEAD_BYTES = 64 * 1024


def is_spec_file(path: str) -> bool:
    """A planfile spec by content: a top-level `apiVersion: planfile/...` line in the first 64 KiB (a rendered
    Kubernetes manifest, a CI workflow or a Helm values file is not). Unreadable files count as specs, so
    `check` reports them instead of skipping them."""
    import re

    try:
        with open(path, "rb") as fh:
            head = fh.read(SPEC_HEAD_BYTES)
    except OSError:
        return True
    return re.search(rb"^apiVersion:[ \t]*[\"']?planfile/", head, re.M) is not None


def check(args) -> int:
    from planner import cache
    from planner.output import FORMATS
    from planner.run import check_spec

    _quiet_numpy()
    files = expand(args.files)
    if getattr(args, "specs_only", False):
        files = [f for f in files if f == "-" or is_spec_file(f)]
        if not files:
            return 0
    stdin = sys.stdin.buffer.read() if "-" in files else None
    # one spec (what pre-commit and editors run): the collector's passes over the catalog and the simulator's
    # lists cost a cold check ~18 ms (6 %), and one check leaves ~0.3 MB of cyclic garbage, so it is paused for
    # it (cli.main paused it before the imports); more specs keep it (80 specs: 59 MB peak with it, 83 MB without)
    import gc

    was_enabled = gc.isenabled()
    if len(files) == 1:
        gc.disable()
    else:
        gc.enable()
    try:
        results = [check_spec(f, args.fail_on, breach=not args.no_breach, stdin=stdin) for f in files]
        # formatted and written before the collector resumes: re-enabled earlier, its first allocations set off a
        # full collection of everything the check built (~6 ms), which os._exit then throws away unread
        out = FORMATS[args.format](results)
        code = 2 if any(r.status == "invalid" for r in results) else 1 if any(r.status == "fail" for r in results) else 0
        if not args.no_cache:
            cache.store_check(args, files, results, out, code, stdin)
        emit(out, args.format)
    finally:
        (gc.enable if was_enabled else gc.disable)()  # as the caller had it
    return code


def render(args) -> int:
    from planner.output import FORMATS
    from planner.render import TARGETS, RenderError
    from planner.render import render as render_files
    from planner.render.out import OutError, drift, write
    from planner.run import check_spec

    _quiet_numpy()
    targets = tuple(t.strip() for t in args.only.split(",")) if args.only else TARGETS
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise Exit(2, f"--only: unknown target {', '.join(bad)}; expected {', '.join(TARGETS)}")
    if args.templates and not Path(args.templates).is_dir():
        raise Exit(2, f"--templates: {args.templates} is not a folder")
    spec = args.spec
    stdin = sys.stdin.buffer.read() if spec == "-" else None
    res = check_spec(spec, args.fail_on, stdin=stdin)
    if res.status == "invalid":
        _invalid(res)
    if res.status == "fail" and not args.force:
        sys.stderr.write(FORMATS["text"]([res]))
        raise Exit(1, f"render: {spec} fails check at --fail-on {args.fail_on}; nothing written (--force renders anyway)")
    if res.estimate is None or res.estimate.get("performance") is None:
        raise Exit(1, f"render: {spec} has no performance estimate (it does not fit); nothing written")
    spec_text = stdin if stdin is not None else Path(spec).read_bytes()
    notes: list[str] = []
    try:
        files = render_files(res, spec_text, targets, args.templates, notes=notes)
    except RenderError as exc:
        raise Exit(2, f"render: {spec}: {exc}") from None
    root = Path(args.out)
    try:
        if args.check_only:
            diff = drift(root, files)
            if diff:
                sys.stdout.write(diff)
                raise Exit(1, f"render --check: {args.out} differs from what {spec} renders now")
            print(f"render --check: {args.out} is up to date ({len(files)} files)")
            return 0
        wp = write(root, files, spec, args.force)
    except OutError as exc:
        raise Exit(2, f"render: {exc}") from None
    print(f"wrote {len(wp.write)} files to {args.out} ({len(wp.unchanged)} unchanged, {len(wp.remove)} removed)")
    for rel in wp.write:
        print(f"  {rel}")
    for n in notes:
        sys.stderr.write(f"note: {n}\n")
    return 0


def plan(args) -> int:
    from planner import catalog, planout
    from planner.plan import Constraints, search
    from planner.run import Result, load_for_plan

    _quiet_numpy()
    gpu_list = tuple(g.strip() for g in args.gpus.split(",") if g.strip()) if args.gpus else ()
    for g in gpu_list:
        look = catalog.gpus().get(g)
        if look.entry is None:
            raise Exit(2, f"--gpus: unknown GPU {g!r}; {catalog.hint('gpus', g, look.suggestions)}")
    providers = []
    for name in ([args.provider] if args.provider else []) + ([p.strip() for p in args.providers.split(",")] if args.providers else []):
        look = catalog.providers().get(name)
        if look.entry is None:
            raise Exit(2, f"--provider: unknown provider {name!r}; `planfile catalog list prices` lists them")
        providers.append(look.entry["id"])
    precs = tuple(p.strip() for p in args.precision.split(",")) if args.precision else ()
    bad = [p for p in precs if p not in ("bf16", "fp16", "fp8", "int8", "int4", "fp4")]
    if bad:
        raise Exit(2, f"--precision: unknown {', '.join(bad)}; expected bf16, fp16, fp8, int8, int4 or fp4")
    if args.top > 50:
        raise Exit(2, "--top: at most 50")
    if args.write:
        _writable(args.write, args.force, args.spec)
    loaded, findings, base, filled = load_for_plan(args.spec)
    if base is None:
        _invalid(Result(args.spec, "invalid", findings, loaded=loaded))
    if not providers and isinstance(loaded.data.get("cost"), dict) and loaded.data["cost"].get("provider"):
        providers = [catalog.providers().get(loaded.data["cost"]["provider"]).entry["id"]]  # the spec's provider prices every option
    # what the spec states is a constraint, what it leaves out plan chooses: its precision like its provider
    prec = loaded.data.get("precision") if isinstance(loaded.data.get("precision"), dict) else {}
    if not precs and prec.get("weights"):
        precs = (prec["weights"],)
    kvs = (prec["kv_cache"],) if prec.get("kv_cache") else ()
    res = search(base, Constraints(gpu_list, tuple(providers), args.max_gpus, precs, args.no_quantize, args.objective,
                                   args.disaggregated, kvs), args.top)
    fmt = {"text": planout.to_text, "json": planout.to_json, "markdown": planout.to_markdown}[args.format]
    sys.stdout.write(fmt(args.spec, res, args.objective))
    if not res.options:
        return 1
    if args.write:
        from planner.render.out import OutError, atomic_write_text

        try:
            atomic_write_text(Path(args.write), planout.spec_for(loaded.data, res.options[0], filled))
        except OutError as exc:
            raise Exit(2, f"plan --write: {exc}") from None
        sys.stderr.write(f"wrote {args.write}\n")
    return 0


def _writable(path: str, force: bool, spec: str) -> None:
    p = Path(path)
    if p.exists() and not force:
        same = spec != "-" and Path(spec).exists() and p.resolve() == Path(spec).resolve()
        raise Exit(2, f"--write: {path} exists" + (" (it is the input spec)" if same else "") + "; add --force to overwrite it")
    if p.exists() and not p.is_file():
        raise Exit(2, f"--write: {path} is not a regular file")


def diff(args) -> int:
    import subprocess

    from planner import diff as D
    from planner.loader import load_text
    from planner.run import check_loaded, check_spec

    _quiet_numpy()
    old, new = args.old, args.new
    if args.rev:
        if new is not None:
            raise Exit(2, "diff: give one spec with --rev, or two specs without it")
        if args.rev.startswith("-"):
            raise Exit(2, f"diff: --rev {args.rev!r} is not a revision")
        p = Path(old)
        try:
            raw = subprocess.run(["git", "show", "--end-of-options", f"{args.rev}:./{p.name}"], cwd=p.parent.resolve(),
                                 capture_output=True, check=True, timeout=60).stdout
        except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired, OSError) as exc:
            msg = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
            raise Exit(2, f"diff: cannot read {old} at {args.rev}: {msg}") from None
        a = check_loaded(load_text(raw, f"{old}@{args.rev}", p.parent), f"{old}@{args.rev}")
        b = check_spec(old)
        labels = (f"{old}@{args.rev}", old)
    else:
        if new is None:
            raise Exit(2, "diff: give two specs (old new), or one spec and --rev REV")
        a, b = check_spec(old), check_spec(new)
        labels = (old, new)
    for res in (a, b):
        if res.status == "invalid":
            _invalid(res)
    d = D.compare(a, b, *labels, threshold_pct=args.threshold)
    sys.stdout.write({"text": D.to_text, "json": D.to_json, "markdown": D.to_markdown}[args.format](d))
    return 1 if args.fail_on_regression and d.regressions else 0


def sweep(args) -> int:
    from planner import sweep as S
    from planner.run import check_spec

    _quiet_numpy()
    try:
        axis, values = S.parse_vary(args.vary)
    except S.SweepError as exc:
        raise Exit(2, str(exc)) from None
    res = check_spec(args.spec, breach=False)
    if res.status == "invalid":
        _invalid(res)
    try:
        rows = S.sweep(res.resolved, axis, values, res.estimate)
    except S.SweepError as exc:
        raise Exit(2, str(exc)) from None
    sys.stdout.write({"table": S.to_table, "csv": S.to_csv, "json": S.to_json}[args.format](rows))
    return 0


def _results_setup(args):
    from planner import calibration as C
    from planner.run import check_spec

    _quiet_numpy()
    res = check_spec(args.spec, breach=False)
    if res.status == "invalid":
        _invalid(res)
    try:
        ms = C.read(args.results)
        C.check_metadata(ms, res.resolved, args.spec, allow_other=args.any_spec)
    except C.ResultsError as exc:
        raise Exit(2, str(exc)) from None
    return res.resolved, ms


def _summary_lines(title: str, summ: dict) -> list[str]:
    lines = [title]
    for k, v in summ.items():
        bias = "over" if v["bias_pct"] > 0 else "under"
        lines.append(f"  {k:<22} n={v['n']:<3} median |error| {v['median_abs_error_pct']:6.1f} %   bias {v['bias_pct']:+6.1f} % ({bias}-estimates)")
    return lines


def validate(args) -> int:
    from planner import calibration as C

    r, ms = _results_setup(args)
    rows = C.compare(r, ms)
    summ = C.summary(rows)
    scored = [x for x in rows if x["error_pct"] is not None]
    if not scored:
        raise Exit(2, "validate: no measurement could be compared with a prediction (no metric planfile predicts, or the "
                      "spec does not fit at the measured load)")
    worst = max(abs(x["error_pct"]) for x in scored)
    tol = args.tolerance
    if args.format == "json":
        import json

        sys.stdout.write(json.dumps({"spec": args.spec, "tolerance_pct": tol, "rows": rows, "summary": summ,
                                     "within_tolerance": worst <= tol}, indent=2) + "\n")
    else:
        for x in rows:
            p = "n/a" if x["predicted"] is None else f"{x['predicted']:,.2f}"
            e = "n/a" if x["error_pct"] is None else f"{x['error_pct']:+.1f} %"
            flag = "  <- beyond tolerance" if x["error_pct"] is not None and abs(x["error_pct"]) > tol else ""
            sys.stdout.write(f"{x['mode']:<11} load {x['load']:<8g} {x['metric']:<20} measured {x['measured']:>10,.2f} "
                             f"predicted {p:>10} {e:>9}{flag}\n")
        sys.stdout.write("\n".join(_summary_lines(f"{args.spec}: tolerance {tol:g} %", summ)) + "\n")
    return 1 if worst > tol else 0


def calibrate(args) -> int:
    from planner import calibration as C
    from planner.render.out import atomic_write_text

    r, ms = _results_setup(args)
    try:
        report = C.calibrate(r, ms)
    except C.ResultsError as exc:
        raise Exit(2, str(exc)) from None
    sys.stdout.write(C.report_text(report))
    if not report["accepted"] and not args.force:
        raise Exit(1, f"calibrate: not written: {report['verdict']} (--force writes it anyway)")
    from planner.render.out import OutError

    try:
        atomic_write_text(Path(args.out), C.calibration_file(r, ms, report, args.out))
    except OutError as exc:
        raise Exit(2, f"calibrate: {exc}") from None
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


def schema(args) -> int:
    import json

    from planner.resources import schema as load

    sys.stdout.write(json.dumps(load("deployment"), indent=2) + "\n")
    return 0


def explain(args) -> int:
    from planner.checks import REGISTRY, rules  # noqa: F401

    what = args.what
    if args.list_all or not what:
        for c in sorted(REGISTRY.values(), key=lambda c: c.id):
            sys.stdout.write(f"{c.id}  {c.slug:<28} {c.severity:<8} {c.summary}\n")
        return 0
    c = REGISTRY.get(what.upper())
    if c is not None:
        sys.stdout.write(f"{c.id} {c.slug} ({c.severity})\n{c.summary}\n\n{c.doc}\n")
        return 0
    if what.endswith((".yaml", ".yml")) or what == "-" or Path(what).is_file():
        from planner.explain import METRIC_SECTION, SECTIONS, explain as explain_spec
        from planner.run import check_spec

        _quiet_numpy()
        metric = args.metric
        if metric and metric not in SECTIONS and metric not in METRIC_SECTION:
            raise Exit(2, f"--metric: unknown {metric!r}; one of {', '.join(sorted(set(SECTIONS) | set(METRIC_SECTION)))}")
        res = check_spec(what)
        if res.status == "invalid":
            _invalid(res)
        sys.stdout.write(explain_spec(res, metric))
        return 0
    raise Exit(2, f"unknown check id {what}; `planfile explain --list` lists them (or pass a spec file)")


def catalog_list(args) -> int:
    from planner import catalog

    kind = args.kind
    data = catalog.raw(kind)[kind]
    if args.format == "json":
        import json

        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return 0
    for e in data:
        if kind == "gpus":
            t = e["dense_tflops"]
            line = (f"{e['id']:<18}{e['memory_gb']:>7g} GB {e['memory_bandwidth_tb_per_s']:>6.2f} TB/s "
                    f"bf16 {t['bf16']:>7g} fp8 {t.get('fp8') or '-':>7} TFLOPS  {e['name']}")
        elif kind == "models":
            line = (f"{e['id']:<18}{e['params_b']['total']:>8.1f}B total {e['params_b']['active']:>7.1f}B active "
                    f"{e['attention']['type']:<4} KV {e['kv_bytes_per_token_bf16'] / 1024:>6.1f} KiB/token bf16  {e['hf_id']}")
        elif kind == "checkpoints":
            line = f"{e['model']:<18}{e['variant']:<9}{e['precision']:<6}{e['format']:<20}{e['repo']}"
        elif kind == "prices":
            line = (f"{e['provider']:<12}{e['gpu']:<16}${e['usd_per_gpu_hour']:>6.2f}/GPU-h  {e.get('kind', 'on-demand'):<15}"
                    f"as of {e['as_of']}  {e['sku']}")
        elif kind == "archetypes":
            line = f"{e['id']:<10}{e['description']}"
        else:
            line = f"{e['id']:<8}{e['name']:<14} versions {', '.join(e['versions'])}"
        sys.stdout.write(line + "\n")
    return 0


def catalog_show(args) -> int:
    import yaml

    from planner import catalog

    for idx in (catalog.gpus(), catalog.models(), catalog.archetypes(), catalog.engines(), catalog.providers()):
        e = idx.get(args.id).entry
        if e is not None:
            sys.stdout.write(yaml.safe_dump(e, sort_keys=False, allow_unicode=True))
            return 0
    sugg = catalog.gpus().get(args.id).suggestions + catalog.models().get(args.id).suggestions
    raise Exit(2, f"no catalog entry {args.id!r}" + (f"; did you mean {' or '.join(sugg)}?" if sugg else ""))


def catalog_import_hf(args) -> int:
    import yaml

    from planner import hfconfig

    config = args.config
    path = config
    if not Path(config).exists() and config.count("/") == 1 and not config.endswith(".json"):
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise Exit(2, f"{config}: not a file; to fetch a Hub repo's config.json install the hf extra: "
                          "pip install 'planfile[hf]'") from None
        try:
            path = hf_hub_download(config, "config.json", revision=args.revision)
        except Exception as exc:  # offline, gated, missing: huggingface_hub raises many kinds
            detail = str(exc).splitlines()[0] if str(exc) else "no detail"
            raise Exit(2, f"{config}: cannot fetch config.json from the Hugging Face Hub ({type(exc).__name__}: "
                          f"{detail}); offline? download it and pass the file") from None
        repo = config
    else:
        repo = None
    try:
        entry = hfconfig.load(Path(path), repo=repo)
    except hfconfig.HFConfigError as exc:
        raise Exit(2, f"{config}: {exc}") from None
    if args.id:
        entry["id"] = entry["name"] = args.id
    sys.stdout.write(yaml.safe_dump({"models": [entry]}, sort_keys=False))
    return 0


def _edits_text(edits: list[dict]) -> str:
    """`/path: old -> new`, or `/path: new (added)` for a field the spec does not state."""
    return ", ".join(f"{e['path']}: " + (f"{e['from']} -> {e['to']}" if e["from"] is not None else f"{e['to']} (added)")
                     for e in edits)


def fix(args) -> int:
    """planfile fix SPEC [--id PF201] [--pick N] [--apply]: the verified fixes of the spec's findings; with
    --apply the chosen edit is written into the file with a round-trip YAML editor (comments, order and
    layout kept) and the spec is checked again."""
    from planner.run import check_spec

    _quiet_numpy()
    res = check_spec(args.spec)
    if res.status == "invalid":
        _invalid(res)
    open_findings = [f for f in res.findings if not f.waived and (args.check_id is None or f.id == args.check_id.upper())]
    with_fixes = [f for f in open_findings if f.data.get("fixes")]
    unresolved = [f for f in open_findings if "fixes" in f.data and not f.data["fixes"]]
    if not args.apply:
        for f in open_findings:
            if "fixes" not in f.data:
                continue
            sys.stdout.write(f"{f.id} {f.check} (line {f.line}): {f.message}\n")
            for i, fx in enumerate(f.data["fixes"], 1):
                edits = _edits_text(fx["edits"])
                cost = fx.get("usd_per_month_delta")
                sys.stdout.write(f"  {i}. {edits}" + (f" ({'+' if cost >= 0 else '-'}${abs(cost):,.0f}/month)" if cost is not None else "")
                                 + (f" — {fx['minimal']}" if fx.get("minimal") else "") + "\n")
            if not f.data["fixes"]:
                sys.stdout.write(f"  no verified fix: {f.remediation}\n")
        if not with_fixes and not unresolved:
            sys.stdout.write(f"{args.spec}: nothing to fix\n")
        return 1 if unresolved and not with_fixes else 0
    if not with_fixes:
        raise Exit(1, f"fix: no verified fix for {args.check_id or 'any finding'} of {args.spec}; nothing written")
    target = next((f for f in with_fixes if f.severity == "error"), with_fixes[0])
    fixes = target.data["fixes"]
    if args.pick > len(fixes):
        raise Exit(2, f"fix: {target.id} has {len(fixes)} fix(es); --pick {args.pick} does not exist")
    chosen = fixes[args.pick - 1]
    text = Path(args.spec).read_text(encoding="utf-8")
    try:
        new_text = apply_edits(text, chosen["edits"])
    except ValueError as exc:
        raise Exit(2, f"fix: {exc}") from None
    from planner.render.out import OutError, atomic_write_text

    try:
        atomic_write_text(Path(args.spec), new_text)
    except OutError as exc:
        raise Exit(2, f"fix: {exc}") from None
    after = check_spec(args.spec)
    # the finding as planner.fixes.resolves judged it (each PF401 of a TTFT and an ITL breach has its own fixes)
    from planner.fixes import by_path, still_open

    gone = not still_open(target, res.findings, after.findings)
    others = sorted({f.pointer for f in after.findings if f.id == target.id and f.pointer != target.pointer
                     and not f.waived}) if by_path(target, res.findings) else []
    edits = _edits_text(chosen["edits"])
    sys.stdout.write(f"{args.spec}: applied {edits} for {target.id} at {target.pointer}; re-checked: {after.status.upper()}"
                     + ("" if gone else f" ({target.id} remains)")
                     + (f" ({target.id} still open at {', '.join(others)}: `planfile fix --id {target.id}` again)" if others else "")
                     + "\n")
    return 0 if gone and after.status != "invalid" else 1


def apply_edits(text: str, edits: list[dict]) -> str:
    """The spec text with each edit (JSON pointer -> value) made by a round-trip YAML editor: comments,
    key order, flow/block style and quoting of everything else stay as they were."""
    import io

    from ruamel.yaml import YAML

    from planner.diagnostics import pointer_parts

    yaml_rt = YAML(typ="rt")
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 4096
    doc = yaml_rt.load(text)
    for e in edits:
        parts = pointer_parts(e["path"])
        node = doc
        for p in parts[:-1]:
            if p not in node or node[p] is None:
                from ruamel.yaml.comments import CommentedMap

                node[p] = CommentedMap()
            node = node[p]
            if not hasattr(node, "keys"):
                raise ValueError(f"{e['path']}: {p} is not a mapping in the file")
        node[parts[-1]] = e["to"]
    out = io.StringIO()
    yaml_rt.dump(doc, out)
    return out.getvalue()
