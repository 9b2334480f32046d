"""The published measurements in shared/calibration/benchmarks.csv, as planfile specs.

Each row becomes a deployment.yaml text (model, GPU, precision, TP/PP, engine, fixed ISL/OSL, load
mode) that goes through the same load -> validate -> resolve -> evaluate path as `planfile check`.
Shared by benchmarks/accuracy.py and benchmarks/calibrate.py.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner import catalog  # noqa: E402
from planner.loader import load_text  # noqa: E402
from planner.resolve import resolve  # noqa: E402
from planner.validate import validate  # noqa: E402

ENGINE = {"tensorrt-llm": "trtllm", "nvidia-nim": "trtllm", "vllm": "vllm"}
VERSION = {"trtllm": "0.17", "vllm": "0.33"}


def csv_path() -> Path:
    env = os.environ.get("PLANFILE_CALIBRATION_CSV")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "calibration" / "benchmarks.csv"


def rows(path: Path | None = None) -> list[dict]:
    with open(path or csv_path(), encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def qps(row: dict) -> float | None:
    m = re.search(r"QPS=([0-9.]+)", row["notes"])
    return float(m.group(1)) if m else None


def finite_requests(row: dict) -> int | None:
    """The request count of a finite measured run ("500 requests, offered load QPS=2" in the row's notes)."""
    m = re.search(r"\b(\d+) requests\b", row["notes"])
    return int(m.group(1)) if m else None


def spec_text(row: dict) -> str:
    eng = ENGINE[row["engine"]]
    tp = int(row["tp"] or row["num_gpus"] or 1)
    pp = int(row["pp"] or 1)
    prec = row["weight_precision"]
    kv = row["kv_precision"] or ("fp8" if prec == "fp8" else "fp16")
    model = catalog.models().get(row["model"]).entry["id"]
    gpu = catalog.gpus().get(row["gpu"]).entry["id"]
    if row["scenario"] == "max_throughput":
        load = "offline: true"
    elif row["scenario"] == "fixed_concurrency":
        load = f"concurrency: {int(float(row['concurrency']))}"
    else:
        load = f"arrival_rate_rps: {qps(row)}"
        n = finite_requests(row)
        if n:  # the measured run was this many requests at that rate, start to finish: simulated so
            load += f"\n  requests: {n}"
    return f"""apiVersion: planfile/v1
kind: Deployment
metadata: {{name: cal-{row['id'].lower()}}}
model: {{id: {model}, name: "benchmark/{model}-{prec}", quantized_checkpoint: {"true" if prec not in ("fp16", "bf16") else "false"}}}
precision: {{weights: {prec}, kv_cache: {kv}}}
hardware: {{gpu: {gpu}, gpus_per_replica: {tp * pp}, replicas: 1}}
parallelism: {{tensor: {tp}, pipeline: {pp}}}
engine: {{name: {eng}, version: "{VERSION[eng]}"}}
workload:
  archetype: custom
  input_tokens: {int(row['isl'])}
  output_tokens: {int(row['osl'])}
  {load}
  peak_factor: 1
slo: {{}}
"""


def resolved(row: dict):
    loaded = load_text(spec_text(row).encode(), f"{row['id']}.yaml")
    problems = [f for f in validate(loaded) if f.severity == "error"]
    if problems:
        raise ValueError(f"{row['id']}: {problems[0].message}")
    # the measured engine ran with its own batch limit (its default or the row's), not the cap planfile renders
    return dataclasses.replace(resolve(loaded), kv_batch_cap=False)


def generation(row: dict) -> str:
    return catalog.gpus().get(row["gpu"]).entry["generation"]


def family(row: dict) -> str:
    return catalog.gpus().get(row["gpu"]).entry["id"]
