"""The tool's own speed: `python benchmarks/cli.py`.

Cold `planfile check` on an example spec, end to end in a fresh process, as a ratio to `python -c pass`
measured in the same run (median of 5 each), plus `planfile plan` over the whole catalog for a partial
spec (model, workload, SLOs only) and `planfile check --no-breach`.
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


def timed(cmd: list[str], n: int = 5) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


if __name__ == "__main__":
    py = [sys.executable]
    base = timed(py + ["-c", "pass"])
    spec = "specs/chat-llama-3.1-70b.yaml"
    check = timed(py + ["-m", "planner", "check", spec])
    quick = timed(py + ["-m", "planner", "check", "--no-breach", spec])
    imports = timed(py + ["-c", "import planner.cli"])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "partial.yaml"
        p.write_text(PARTIAL)
        plan = timed(py + ["-m", "planner", "plan", str(p)], 3)
    print(f"python -c pass:                 {base * 1e3:7.0f} ms")
    print(f"import planner.cli:             {imports * 1e3:7.0f} ms")
    print(f"planfile check (with breach):   {check * 1e3:7.0f} ms  = {check / base:5.1f}x python -c pass (target <= 3x)")
    print(f"planfile check --no-breach:     {quick * 1e3:7.0f} ms  = {quick / base:5.1f}x")
    print(f"planfile plan, whole catalog:   {plan * 1e3:7.0f} ms  (target < 2000 ms)")
