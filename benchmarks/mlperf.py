"""Blackwell and AMD against MLPerf Inference (shared/calibration/mlperf.csv), as ratios.

    python benchmarks/mlperf.py          # print the ratio table and the AMD kernel-speed fit

MLPerf leaves out the input lengths (its data sets have variable ISL; only the mean output per sample is
in `notes`) and usually the parallelism, so its absolute throughput cannot be predicted like for like.
What it does pin down is how one GPU compares with another on the same benchmark: both run the same data
set, so the unknown lengths largely cancel in the ratio. For every offline result this script predicts the
per-GPU throughput of the GPU and of the H200 SXM reference (TensorRT-LLM, FP8, same benchmark) with
planfile, at the best tensor-parallel size of {1, 2, 4, 8} for each (a submitter tunes for it), and
compares predicted with measured ratios. Input lengths are assumed (ASSUMED_ISL, not from MLCommons) and
the ratios are printed at half and twice that length to show how much they depend on it.

The AMD kernel-speed factor (catalog/efficiency.yaml vendors.amd) is then fitted on these ratios with
leave-one-benchmark-out cross-validation: the factor for Llama-2-70B is fitted on Mixtral only and vice
versa, and the held-out ratio error is what is reported.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import statistics
import sys
from collections import defaultdict

import caldata
from planner import catalog
from planner.evaluate import evaluate
from planner.loader import load_text
from planner.resolve import resolve
from planner.validate import validate

MODELS = {"Llama-2-70B": "llama-2-70b", "Llama-3.1-405B": "llama-3.1-405b", "Llama-3.1-8B": "llama-3.1-8b",
          "Mixtral-8x7B": "mixtral-8x7b"}
# planfile's assumption, not MLCommons' statistics: OpenOrca prompts (system prompt + question) for
# Llama-2-70B and Mixtral, CNN/DailyMail articles for Llama-3.1-8B, the long-context mix for 405B
ASSUMED_ISL = {"Llama-2-70B": 300, "Mixtral-8x7B": 300, "Llama-3.1-8B": 800, "Llama-3.1-405B": 8000}
REFERENCE = ("H200-SXM-141GB", "tensorrt-llm", "fp8")
GPU_NAMES = {"B200-SXM-180GB": "b200", "MI300X-192GB": "mi300x", "MI325X-256GB": "mi325x",
             "RTX-PRO-6000-Blackwell-Server": "rtx-pro-6000"}  # MLPerf's labels -> catalog ids


def gpu_entry(name: str) -> dict:
    return catalog.gpus().get(GPU_NAMES.get(name, name)).entry


def mean_osl(row: dict) -> float:
    m = re.search(r"mean output tokens/sample = [^=]*= ([0-9.]+)", row["notes"])
    return float(m.group(1)) if m else 300.0


def spec(model: str, gpu: str, prec: str, engine: str, tp: int, isl: int, osl: int) -> str:
    return f"""apiVersion: planfile/v1
kind: Deployment
metadata: {{name: mlperf}}
model: {{id: {model}, name: "benchmark/{model}-{prec}", quantized_checkpoint: true}}
precision: {{weights: {prec}, kv_cache: fp8}}
hardware: {{gpu: {gpu}, gpus_per_replica: {tp}, replicas: 1}}
parallelism: {{tensor: {tp}}}
engine: {{name: {engine}}}
workload: {{archetype: custom, input_tokens: {isl}, output_tokens: {osl}, offline: true}}
slo: {{}}
"""


def per_gpu(model, gpu, prec, engine, isl, osl, kernel_scale=None) -> float | None:
    best = None
    for tp in (1, 2, 4, 8):
        loaded = load_text(spec(model, gpu, prec, engine, tp, isl, osl).encode(), "mlperf.yaml")
        if any(f.severity == "error" for f in validate(loaded)):
            continue
        r = resolve(loaded)
        if kernel_scale is not None:
            r = dataclasses.replace(r, calibration={"engine": r.engine["id"], "gpu": r.gpu["id"], "kernel_scale": kernel_scale})
        perf = evaluate(r, breach=False).get("performance")
        if perf:
            v = perf["output_tokens_per_s"] / tp
            best = v if best is None else max(best, v)
    return best


def cases() -> list[dict]:
    rows = [r for r in csv.DictReader(open(caldata.ROOT.parent / "shared" / "calibration" / "mlperf.csv", encoding="utf-8"))
            if r["scenario"] == "mlperf_offline" and r["model"] in MODELS and r["metric"] == "output_tokens_per_s_total"]
    groups = defaultdict(list)
    for r in rows:
        prec = r["weight_precision"] or ""
        if not prec:
            continue
        groups[(r["model"], r["gpu"], r["engine"], prec)].append(r)
    out = []
    for (model, gpu, engine, prec), rs in groups.items():
        ref = groups.get((model,) + REFERENCE)
        if not ref or (gpu, engine, prec) == REFERENCE:
            continue
        meas = statistics.median(float(r["value"]) / int(r["num_gpus"]) for r in rs)
        meas_ref = statistics.median(float(r["value"]) / int(r["num_gpus"]) for r in ref)
        out.append({"model": model, "gpu": gpu, "engine": engine, "prec": prec, "n": len(rs), "ratio": meas / meas_ref,
                    "osl": round(statistics.median(mean_osl(r) for r in rs))})
    return out


def predicted_ratio(c: dict, isl_factor: float = 1.0, kernel_scale=None) -> float | None:
    model = MODELS[c["model"]]
    gpu = gpu_entry(c["gpu"])
    eng = "vllm" if gpu["vendor"] == "amd" else "trtllm"
    isl = int(ASSUMED_ISL[c["model"]] * isl_factor)
    p = per_gpu(model, gpu["id"], c["prec"], eng, isl, c["osl"], kernel_scale)
    ref = per_gpu(model, "h200-sxm", "fp8", "trtllm", isl, c["osl"])
    return p / ref if p and ref else None


def main() -> int:
    cs = cases()
    print(f"{'benchmark':<15} {'GPU':<30} {'engine':<28} {'prec':<5} {'n':>2} {'measured':>9} {'planfile':>9} {'error':>8}"
          f"  (ISL x0.5 / x2)")
    errs = defaultdict(list)
    for c in sorted(cs, key=lambda c: (c["model"], c["gpu"])):
        p = predicted_ratio(c)
        lo, hi = predicted_ratio(c, 0.5), predicted_ratio(c, 2.0)
        if p is None:
            print(f"{c['model']:<15} {c['gpu']:<30} {c['engine']:<28} {c['prec']:<5} {c['n']:>2} {c['ratio']:>9.2f} {'-':>9}")
            continue
        e = (p / c["ratio"] - 1) * 100
        gen = gpu_entry(c["gpu"])["generation"]
        errs[gen].append(e)
        print(f"{c['model']:<15} {c['gpu']:<30} {c['engine']:<28} {c['prec']:<5} {c['n']:>2} {c['ratio']:>9.2f} {p:>9.2f} {e:>+7.1f}%"
              f"  ({(lo or 0) / c['ratio'] * 100 - 100:+.0f} % / {(hi or 0) / c['ratio'] * 100 - 100:+.0f} %)")
    print("\nratio error per generation (predicted / measured - 1, vs the H200 SXM):")
    for g, e in sorted(errs.items()):
        print(f"  {g:<10} n {len(e):>2}  median |error| {statistics.median(abs(x) for x in e):5.1f} %  bias {statistics.median(e):+5.1f} %")
    amd = [c for c in cs if gpu_entry(c["gpu"])["vendor"] == "amd" and c["engine"] == "vllm"]
    if amd:
        print("\nAMD kernel-speed factor, leave one benchmark out (fitted on the others' ratios):")
        grid = [round(1.0 + 0.1 * i, 2) for i in range(0, 11)]
        held = []
        for bench in sorted({c["model"] for c in amd}):
            train = [c for c in amd if c["model"] != bench]
            test = [c for c in amd if c["model"] == bench]
            if not train:
                continue
            score = {s: statistics.median(abs(math.log(predicted_ratio(c, kernel_scale=s) / c["ratio"])) for c in train) for s in grid}
            s = min(score, key=score.get)
            for c in test:
                e = (predicted_ratio(c, kernel_scale=s) / c["ratio"] - 1) * 100
                held.append(e)
                print(f"  held out {bench:<14} {c['gpu']:<14} factor {s:g} (fitted on {len(train)} other results): ratio error {e:+.1f} %")
        allfit = {s: statistics.median(abs(math.log(predicted_ratio(c, kernel_scale=s) / c["ratio"])) for c in amd) for s in grid}
        print(f"  held-out median |error| {statistics.median(abs(x) for x in held):.1f} %; on all results the best factor is "
              f"{min(allfit, key=allfit.get):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
