"""Fit the roofline efficiency factors (MFU, MBU, per-step overhead) per engine x GPU generation on the
published max-throughput measurements, and write catalog/efficiency.yaml.

    python benchmarks/calibrate.py            # fit on all rows, write the catalog file
    python benchmarks/calibrate.py --dry-run  # print the fit only

Three physical parameters per group, one grid search each (vectorized: every candidate is evaluated
in one numpy call per row), minimizing the median absolute log error of output tokens/s. No per-row
or per-model factor exists anywhere. Rows of engines without enough data (vLLM: 6 user-reported rows,
SGLang: none) are not fitted: those engines fall back to the TensorRT-LLM factors of the same
generation, and the file says so.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np

import caldata
from planner import calibration
from planner.calibration import OVERHEAD_PRIOR

MFU = np.linspace(0.20, 0.95, 16)
MBU = np.linspace(0.40, 1.00, 13)
MBU_KV = np.linspace(0.40, 1.00, 13)
OVH_MS = np.array([0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 25.0])
G_MFU, G_MBU, G_KV, G_OVH = GRID = np.meshgrid(MFU, MBU, MBU_KV, OVH_MS, indexing="ij")


def throughput_grid(row: dict) -> np.ndarray | None:
    """Predicted output tokens/s of a max-throughput row for every grid candidate (None: does not fit)."""
    tput = calibration.grid_predictions(caldata.resolved(row), calibration.measurement_from_row(row, row["id"]),
                                        GRID).get("output_tokens_per_s")
    if tput is not None and row["metric"] == "total_tokens_per_s":
        tput = tput * (float(row["isl"]) + float(row["osl"])) / float(row["osl"])
    return tput


def itl_grid(row: dict) -> np.ndarray | None:
    """Predicted mean ITL (ms) of an online row for every grid candidate (planner.calibration.grid_predictions)."""
    return calibration.grid_predictions(caldata.resolved(row), calibration.measurement_from_row(row, row["id"]),
                                        GRID).get("itl_ms_mean")


def online_rows(rows, engine="trtllm"):
    return [r for r in rows if r["scenario"] in ("other", "fixed_concurrency") and r["metric"] == "itl_ms"
            and caldata.ENGINE[r["engine"]] == engine]


def fit(rows: list[dict], itl_rows: list[dict] | None = None) -> tuple[dict, float, int]:
    """Three physical parameters (+ KV-read efficiency) minimizing the median |log error| of throughput,
    plus that of mean ITL where online measurements exist (they pin the per-step overhead)."""
    errs = []
    for row in rows:
        g = throughput_grid(row)
        if g is None:
            continue
        errs.append(np.abs(np.log(g / float(row["value"]))))
    if not errs:
        return {}, float("nan"), 0
    med = np.median(np.stack(errs), axis=0)
    objective = med + OVERHEAD_PRIOR * G_OVH
    ierrs = [np.abs(np.log(g / float(r["value"]))) for r in (itl_rows or []) for g in [itl_grid(r)] if g is not None]
    if ierrs:
        objective = objective + np.median(np.stack(ierrs), axis=0)
    i = np.unravel_index(np.argmin(objective), objective.shape)
    best = {"mfu": round(float(G_MFU[i]), 3), "mbu": round(float(G_MBU[i]), 3), "mbu_kv": round(float(G_KV[i]), 3),
            "overhead_ms": float(G_OVH[i])}
    return best, float(np.expm1(med[i]) * 100), len(errs)


def throughput_rows(rows, engine="trtllm"):
    return [r for r in rows if r["scenario"] == "max_throughput" and caldata.ENGINE[r["engine"]] == engine
            and r["metric"] in ("output_tokens_per_s_total", "total_tokens_per_s")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    all_rows = caldata.rows()
    rows = throughput_rows(all_rows)
    groups = defaultdict(list)
    for r in rows:
        groups[caldata.generation(r)].append(r)
    itl_groups = defaultdict(list)
    for r in online_rows(all_rows):
        itl_groups[caldata.generation(r)].append(r)
    factors = {}
    print(f"{'group':<18}{'rows':>6}{'mfu':>7}{'mbu':>7}{'mbu_kv':>8}{'ovh ms':>8}{'median |err| %':>16}")
    for gen, rs in sorted(groups.items()):
        best, err, n = fit(rs, itl_groups.get(gen))
        print(f"{'trtllm/' + gen:<18}{n:>6}{best['mfu']:>7}{best['mbu']:>7}{best['mbu_kv']:>8}{best['overhead_ms']:>8}{err:>16.1f}")
        gpus = sorted({caldata.family(r) for r in rs})
        n_itl = len(itl_groups.get(gen, []))
        best["source"] = (f"fitted by benchmarks/calibrate.py on {n} TensorRT-LLM max-throughput rows"
                          + (f" and {n_itl} online mean-ITL rows" if n_itl else "")
                          + f" of shared/calibration/benchmarks.csv ({', '.join(gpus)}); throughput median |error| {err:.1f}%")
        factors[f"trtllm/{gen}"] = best
    if args.dry_run:
        return 0
    import yaml

    fallbacks = {
        # Engines without published measurements here share TensorRT-LLM's kernels-level efficiency
        # of the same generation (uncalibrated; see README "Accuracy").
        "vllm/*": "trtllm/hopper", "sglang/*": "trtllm/hopper",
        "*/blackwell": "trtllm/hopper", "*/cdna3": "trtllm/hopper", "*/cdna4": "trtllm/hopper",
        "*/cdna2": "trtllm/ampere", "*/gaudi3": "trtllm/hopper", "*/tpu-v5e": "trtllm/ampere",
        "*/tpu-v6e": "trtllm/hopper",
    }
    for gen in ("ampere", "ada", "hopper"):
        fallbacks[f"vllm/{gen}"] = f"trtllm/{gen}"
        fallbacks[f"sglang/{gen}"] = f"trtllm/{gen}"
    doc = {"fallbacks": fallbacks,
           "factors": {**factors, "default": dict(factors.get("trtllm/hopper", {"mfu": 0.5, "mbu": 0.75, "overhead_ms": 3.0}),
                                                   source="fallback: TensorRT-LLM on Hopper")}}
    header = ("# Roofline efficiency factors per engine/generation, written by benchmarks/calibrate.py from\n"
              "# shared/calibration/benchmarks.csv (published TensorRT-LLM measurements). mfu: fraction of dense\n"
              "# peak reached by large GEMMs; mbu: fraction of memory bandwidth reached when streaming weights and\n"
              "# KV; overhead_ms: fixed time per scheduler iteration. Groups without data use `fallbacks`.\n")
    path = caldata.ROOT / "catalog" / "efficiency.yaml"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
