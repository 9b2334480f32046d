"""The tool's own speed: `python benchmarks/cli.py`.

`planfile check` on an example spec, end to end in a fresh process, as a ratio to `python -c pass` measured
in the same run: each check run right after a `python -c pass` run (9 pairs per variant; medians of each
side), so a shared machine's drift moves both sides alike. Warm (the result cache holds this spec: what CI
and pre-commit see on an unchanged spec), cold (PLANFILE_NO_CACHE=1: every number computed; with a second
core PF504's search runs there, and once more with PLANFILE_JOBS=1, inline) and after an edit that changes
no simulated configuration (the result cache misses; the simulation store holds every simulation). Plus
`planfile plan` over the whole catalog for a partial spec (model, workload, SLOs only), and the modules
`planfile check` imports on its cold path (`python -X importtime`), heaviest first.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTIAL = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: chat-70b}
model: {id: llama-3.1-70b}
workload:
  archetype: chat
  input_tokens: {mean: 1024, p95: 3000, max: 4096}
  output_tokens: {mean: 256, p95: 768, max: 1024}
  arrival_rate_rps: 6
  peak_factor: 1.5
slo:
  ttft_ms: {p95: 1000}
  itl_ms: {p95: 60}
"""


def timed(cmd: list[str], n: int = 5, env: dict | None = None) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, env=env)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


BASE: list[float] = []  # every `python -c pass` run, each next to a measured one


def paired(cmd: list[str], n: int = 9, env: dict | None = None) -> float:
    """Median of n runs of cmd, each right after a `python -c pass` run (kept in BASE): a shared machine's
    drift then moves both sides of a ratio alike."""
    out = []
    for _ in range(n):
        BASE.append(timed([sys.executable, "-c", "pass"], 1))
        out.append(timed(cmd, 1, env))
    return statistics.median(out)


if __name__ == "__main__":
    py = [sys.executable]
    # what users run: the installed console script (no runpy), else python -m planner
    script = Path(sys.executable).with_name("planfile")
    cmd = [str(script)] if script.exists() else py + ["-m", "planner"]
    spec = "specs/chat-llama-3.1-70b.yaml"
    import os

    # what users run: an interpreter that keeps compiled bytecode (__pycache__); a PYTHONDONTWRITEBYTECODE
    # environment would recompile every planner module on every run (about 0.1 s), which no installed
    # planfile does (pip byte-compiles a package at install)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(py + ["-c", "import planner.cli, planner.commands, planner.run, planner.evaluate, planner.checks, "
                         "planner.fixes, planner.plan"], cwd=ROOT, capture_output=True)
    cold_env = dict(os.environ, PLANFILE_NO_CACHE="1")
    subprocess.run(cmd + ["check", spec], cwd=ROOT, capture_output=True)  # fill the cache
    check = paired(cmd + ["check", spec])
    cold = paired(cmd + ["check", spec], env=cold_env)
    quick = paired(cmd + ["check", "--no-breach", spec], env=cold_env)
    # one core: PF504's search inline instead of in a forked child (planner/background.py)
    serial = paired(cmd + ["check", spec], env=dict(cold_env, PLANFILE_JOBS="1"))
    # an edit that changes no simulated configuration (a comment, the cost basis): the result cache misses,
    # the simulation store (planner/cache.py SimStore) holds every simulation the check needs
    with tempfile.TemporaryDirectory() as d:
        store_env = dict(os.environ, PLANFILE_CACHE_DIR=str(Path(d) / "cache"))
        edited = Path(d) / "spec.yaml"
        text = (ROOT / spec).read_text()
        edited.write_text(text)
        subprocess.run(cmd + ["check", str(edited)], cwd=ROOT, capture_output=True, env=store_env)
        runs = []
        for i in range(5):
            edited.write_text(text + f"# edit {i}\n")
            t = time.perf_counter()
            subprocess.run(cmd + ["check", str(edited)], cwd=ROOT, capture_output=True, env=store_env)
            runs.append(time.perf_counter() - t)
        after_edit = statistics.median(runs)
    base = statistics.median(BASE)
    tree = subprocess.run(py + ["-X", "importtime", "-m", "planner", "check", spec], cwd=ROOT, capture_output=True,
                          text=True, env=cold_env).stderr
    rows = []
    for line in tree.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    imports = timed(py + ["-c", "import planner.cli"])
    # what a cold check imports before it computes anything: the libraries (numpy for the physics, yaml for the
    # spec; a valid spec's schema check is the generated planner._fastvalidate, jsonschema only explains an invalid
    # one) and every planner module the check path loads
    floor = timed(py + ["-c", "import numpy, yaml"])
    floor_all = timed(py + ["-c", "import numpy, yaml, planner._fastvalidate, planner.run, planner.validate, "
                              "planner.evaluate, planner.checks.rules, planner.fixes, planner.plan, "
                              "planner.render.engines"])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "partial.yaml"
        p.write_text(PARTIAL)
        plan = timed(py + ["-m", "planner", "plan", str(p)], 3, env=cold_env)  # every simulation computed
    print(f"python -c pass:                 {base * 1e3:7.0f} ms")
    print(f"import planner.cli:             {imports * 1e3:7.0f} ms")
    print(f"planfile check, warm cache:     {check * 1e3:7.0f} ms  = {check / base:5.1f}x python -c pass (target <= 2x)")
    print(f"planfile check, cold:           {cold * 1e3:7.0f} ms  = {cold / base:5.1f}x python -c pass (target <= 20x)")
    print(f"planfile check, cold, one core: {serial * 1e3:7.0f} ms  = {serial / base:5.1f}x (PLANFILE_JOBS=1: PF504's search inline)")
    print(f"planfile check --no-breach, cold:{quick * 1e3:6.0f} ms  = {quick / base:5.1f}x")
    print(f"planfile check after an edit:   {after_edit * 1e3:7.0f} ms  = {after_edit / base:5.1f}x "
          "(a comment: result cache misses, every simulation stored)")
    print(f"planfile plan, whole catalog:   {plan * 1e3:7.0f} ms  (target < 2000 ms)")
    print(f"import numpy, yaml:             {floor * 1e3:7.0f} ms  = {floor / base:5.1f}x (the libraries alone)")
    print(f"  + planner's check-path modules:{floor_all * 1e3:6.0f} ms  = {floor_all / base:5.1f}x (a cold check's imports)")
    print("heaviest imports of a cold check (cumulative us, module):")
    for us, mod in sorted(rows, reverse=True)[:12]:
        print(f"  {us:>9,} {mod}")
