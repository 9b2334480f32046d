"""The `planfile` command: argparse wiring from the command line to the command functions.

Kept deliberately small and cheap to import: argparse is part of the interpreter, every heavy module
(numpy, jsonschema, jinja2, yaml, rich) is imported by the command that needs it, and `planfile check`
first asks the content-hash result cache (planner.cache), which needs nothing but hashlib and json.
"""

from __future__ import annotations

import sys

FORMATS = ("text", "json", "github", "markdown", "sarif")
FAIL_ON = ("error", "warning", "info", "never")


class Exit(Exception):
    """Stop with an exit code (0 ok, 1 findings or drift, 2 usage, invalid input or internal error)."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message


COMMANDS = ("check", "render", "plan", "fix", "diff", "sweep", "validate", "calibrate", "schema", "explain", "catalog")


def _parser(only: str | None = None):
    """The argument parser; with `only` (a command name) just that command's sub-parser, whose arguments, help
    and errors are the same (tests/test_cli.py compares them): building the other ten costs a cold check ~6 ms."""
    import argparse

    from planner import __version__

    p = argparse.ArgumentParser(prog="planfile", description="Capacity planning for LLM inference, written as code.")
    p.add_argument("--version", action="version", version=f"planfile {__version__}")
    p.add_argument("--debug", action="store_true", help="Show tracebacks of internal errors.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, text: str):
        return sub.add_parser(name, help=text) if only in (None, name) else None

    if (c := add("check", "Check specs: memory fit, SLOs at peak load, budget (exit 0 pass, 1 findings, 2 invalid).")) is not None:
        c.add_argument("files", nargs="+", help="Spec files, globs, or - for standard input.")
        c.add_argument("--fail-on", choices=FAIL_ON, default="error", help="Lowest severity that fails the check.")
        c.add_argument("-f", "--format", choices=FORMATS, default="text", help="Output format.")
        c.add_argument("--no-breach", action="store_true", help="Skip the breach-point search (faster; the findings are the same).")
        c.add_argument("--no-cache", action="store_true", help="Do not read or write the result cache or the simulation store.")
        c.add_argument("--specs-only", action="store_true", help="Skip files that are not planfile specs (no top-level "
                       "`apiVersion: planfile/v1`) quietly: for hooks that see every YAML file of a repository.")

    if (r := add("render", "Render engine configs, Kubernetes manifests, alerts, bench.sh and a report.")) is not None:
        r.add_argument("spec", help="The spec to render (must pass `planfile check`).")
        r.add_argument("-o", "--out", required=True, help="Output folder; nothing is written outside it.")
        r.add_argument("--only", help="Comma-separated targets: engine,k8s,alerts,bench,report.")
        r.add_argument("--templates", help="Folder of template overrides (same names as templates/).")
        r.add_argument("--check", dest="check_only", action="store_true", help="Write nothing; exit 1 with a diff when --out differs.")
        r.add_argument("--force", action="store_true", help="Render a failing spec, and overwrite files planfile did not write.")
        r.add_argument("--fail-on", choices=FAIL_ON, default="error", help="Lowest check severity that blocks rendering.")

    if (pl := add("plan", "Find the cheapest fleet that fits and meets every SLO (exit 0 options, 1 none, 2 invalid).")) is not None:
        pl.add_argument("spec", help="A spec, or a partial one with only model, workload and SLOs.")
        pl.add_argument("--objective", choices=("cost", "latency", "throughput", "balanced"), default="cost", help="How to rank the options.")
        pl.add_argument("--gpus", help="Only these GPUs (comma-separated ids or aliases).")
        pl.add_argument("--provider", help="Price with this provider only (default: the spec's cost.provider).")
        pl.add_argument("--providers", help="Compare these providers (comma-separated).")
        pl.add_argument("--max-gpus", type=_positive_int, help="At most this many GPUs in the fleet.")
        pl.add_argument("--precision", help="Allowed weight precisions (e.g. bf16,fp8).")
        pl.add_argument("--no-quantize", action="store_true", help="bf16 weights and KV only.")
        pl.add_argument("--disaggregated", choices=("auto", "never", "only"), default="auto",
                        help="Disaggregated prefill/decode candidates: auto (for prompts of 1,000+ tokens), never, only.")
        pl.add_argument("--top", type=_positive_int, default=5, help="How many options to show (at most 50).")
        pl.add_argument("-f", "--format", choices=("text", "json", "markdown"), default="text", help="Output format.")
        pl.add_argument("--write", help="Write a complete spec for option 1 to this file.")
        pl.add_argument("--force", action="store_true", help="With --write: overwrite an existing file.")

    if (fx := add("fix", "Show or apply the verified fixes of a spec's findings (exit 0 fixed or nothing to fix, 1 unresolved, 2 invalid).")) is not None:
        fx.add_argument("spec", help="The spec to fix.")
        fx.add_argument("--id", dest="check_id", help="Only this check's finding (e.g. PF201).")
        fx.add_argument("--pick", type=_positive_int, default=1, help="Which of a finding's fixes (1 = the cheapest).")
        fx.add_argument("--apply", action="store_true", help="Write the edit into the spec (comments and layout kept), then re-check.")

    if (d := add("diff", "What a spec change does to GPUs, cost, memory, latency, breach point and findings.")) is not None:
        d.add_argument("old", help="The old spec (or, with --rev, the spec in the working tree).")
        d.add_argument("new", nargs="?", help="The new spec (omit with --rev).")
        d.add_argument("--rev", help="Compare the spec at this git revision with the working tree.")
        d.add_argument("-f", "--format", choices=("text", "json", "markdown"), default="text", help="Output format.")
        d.add_argument("--fail-on-regression", action="store_true", help="Exit 1 when an SLO or budget margin gets worse.")
        d.add_argument("--threshold", type=_nonneg_float, default=5.0, help="Percentage points of margin a change may lose.")

    if (s := add("sweep", "The estimate along one axis: load vs latency, replicas vs cost, prompt length vs memory.")) is not None:
        s.add_argument("spec")
        s.add_argument("--vary", required=True, help="FIELD=START:STOP:STEP or FIELD=a,b,c; FIELD: arrival_rate_rps, "
                       "concurrency, replicas, input_tokens, output_tokens, peak_factor.")
        s.add_argument("-f", "--format", choices=("table", "csv", "json"), default="table")

    if (v := add("validate", "Predicted vs measured per metric; exit 1 when an error exceeds --tolerance.")) is not None:
        v.add_argument("results", nargs="+", help="vllm bench serve --save-result JSON files, or CSV files.")
        v.add_argument("--spec", required=True, help="The spec the results were measured on.")
        v.add_argument("--tolerance", type=_nonneg_float, default=20.0, help="Largest acceptable |error| in percent.")
        v.add_argument("--any-spec", action="store_true", help="Accept results whose planfile_spec metadata names another spec.")
        v.add_argument("-f", "--format", choices=("text", "json"), default="text")

    if (ca := add("calibrate", "Fit the efficiency factors the measurements identify; write a calibration file.")) is not None:
        ca.add_argument("results", nargs="+", help="vllm bench serve --save-result JSON files, or CSV files.")
        ca.add_argument("--spec", required=True, help="The spec the results were measured on (engine x GPU to fit).")
        ca.add_argument("-o", "--out", default="calibration.yaml", help="Calibration file to write.")
        ca.add_argument("--any-spec", action="store_true", help="Accept results whose planfile_spec metadata names another spec.")
        ca.add_argument("--force", action="store_true", help="Write the file even when the fit does not improve held-out error.")

    add("schema", "Print the deployment.yaml JSON Schema.")

    if (e := add("explain", "Explain a check id (what, why, fix), or a spec's numbers: formulas, values, sources.")) is not None:
        e.add_argument("what", nargs="?", help="A check id (PF201), or a spec file.")
        e.add_argument("--metric", help="With a spec: one section (kv, weights, memory, decode, prefill, ttft_p95, itl_p95, breach, cost, accuracy).")
        e.add_argument("--list", dest="list_all", action="store_true", help="List every check id.")

    if (cat := add("catalog", "Browse the catalog of GPUs, models, checkpoints, prices, archetypes and engines.")) is not None:
        csub = cat.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND")
        cl = csub.add_parser("list", help="List catalog entries.")
        cl.add_argument("kind", choices=("gpus", "models", "checkpoints", "prices", "archetypes", "engines"))
        cl.add_argument("-f", "--format", choices=("text", "json"), default="text")
        cs = csub.add_parser("show", help="Show one catalog entry in full.")
        cs.add_argument("id", help="An id or alias of a GPU, model, archetype, engine or provider.")
        ci = csub.add_parser("import-hf", help="Print a catalog model entry computed from a Hugging Face config.json.")
        ci.add_argument("config", help="A config.json, or a repo id (org/name) with the hf extra.")
        ci.add_argument("--id", help="Catalog id for the entry.")
        ci.add_argument("--revision", help="With a repo id: branch, tag or commit.")
    return p


def _positive_int(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {v}")
    return v


def _nonneg_float(text: str) -> float:
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


SIMULATING = ("check", "plan", "sweep", "render", "explain", "diff", "fix", "validate")  # the commands that run the simulator


def run(argv: list[str]) -> int:
    """Parse argv and run the command; returns the exit code."""
    if argv[:1] == ["check"]:
        from planner import cache

        hit = cache.lookup_check(argv[1:])
        if hit is not None:
            return hit
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1, cutoff=0.6)
        raise Exit(2, f"planfile: unknown command '{argv[0]}'" + (f"; did you mean '{close[0]}'?" if close else "")
                   + f" (commands: {', '.join(COMMANDS)})")
    parser = _parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from planner import commands

    if args.command in SIMULATING and not getattr(args, "no_cache", False):
        from planner import cache

        if cache.enabled():
            from planner.physics import serving

            serving.STORE = cache.SimStore()  # simulations kept across runs (planner/cache.py)
    if args.command == "catalog":
        if not args.catalog_command:
            _parser("catalog").parse_args(["catalog", "--help"])
        fn = getattr(commands, "catalog_" + args.catalog_command.replace("-", "_"))
    else:
        fn = getattr(commands, args.command)
    return fn(args) or 0


def main() -> None:
    import os

    # numpy's OpenBLAS starts a thread pool when it loads (~6 ms of a cold check) for linear algebra planfile does
    # not do at a size threads help; one thread also leaves nothing running beside a fork (planner.background).
    # A user's own setting stands.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = sys.argv[1:]
    if argv[:1] == ["check"]:
        import gc

        # from the start: the imports alone ran ~22 young collections (~2.4 ms of a cold check); commands.check
        # turns it back on for more than one spec
        gc.disable()
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        code = run(argv)
    except Exit as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        code = exc.code
    except KeyboardInterrupt:  # pragma: no cover
        code = 130
    except BrokenPipeError:  # pragma: no cover - `planfile ... | head`
        code = 0
    except Exception as exc:  # a crash is never exit 1: that means "findings"
        if debug:
            raise
        sys.stderr.write(f"planfile: internal error: {type(exc).__name__}: {exc}\n")
        code = 2
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # pragma: no cover
        pass
    sys.stderr.flush()
    # skip interpreter teardown (garbage collection of every module and the catalog): output is flushed
    os._exit(code)
