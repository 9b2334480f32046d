"""Held-out accuracy against published measurements, per regime and per cross-validation fold.

    python benchmarks/accuracy.py            # print the tables
    python benchmarks/accuracy.py --rows     # and every held-out row
    python benchmarks/accuracy.py --write    # and write catalog/accuracy.yaml (the error bands planfile shows)

Every row of shared/calibration/benchmarks.csv becomes a spec (benchmarks/caldata.py) and goes through the
same load -> validate -> resolve -> evaluate path as `planfile check`. Nothing is predicted with factors
that saw it: for each fold the engine factors (benchmarks/calibrate.py: kernel scale per precision class,
floor scale, host time per step and per prefill step, per-request TTFT time) are refitted on the other
folds' rows, and the fold's rows are predicted with them. Two schemes: leave one GPU generation out, leave
one model family out. Latency is compared mean to mean (the rows are means).

Printed per fold and per regime (GPU generation x precision x dense/MoE x TP x engine): rows, median and
p90 |error|, and the signed median (bias: + means planfile predicts more than was measured).

The bands in catalog/accuracy.yaml are the leave-one-generation-out residuals log(measured / predicted)
per regime (generation x precision class x dense/MoE x engine), with coarser fallbacks; planner/accuracy.py
looks a configuration up there. The kernel curves themselves come from measured kernel tables
(catalog/kernels.yaml), never from these rows.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict

import numpy as np
import yaml

import caldata
import calibrate
from planner import catalog
from planner.evaluate import evaluate

METRICS = ("throughput", "itl", "ttft")


def metric_of(row: dict) -> str | None:
    if row["metric"] in ("output_tokens_per_s_total", "total_tokens_per_s"):
        return "throughput"
    return {"itl_ms": "itl", "ttft_ms": "ttft"}.get(row["metric"])


def predict(row: dict, cal: dict) -> float | None:
    import dataclasses

    try:
        r = caldata.resolved(row)
    except (ValueError, KeyError):
        return None
    ks = cal["kernel_scale"]
    c = dict(cal, engine=r.engine["id"], gpu=r.gpu["id"],
             kernel_scale=ks.get(calibrate.precision_class(row), ks.get("16bit", 1.0)) if isinstance(ks, dict) else ks)
    est = evaluate(dataclasses.replace(r, calibration=c), breach=False)
    perf = est.get("performance")
    if not perf:
        return None
    m = metric_of(row)
    if m == "throughput":
        v = perf["output_tokens_per_s"]
        if row["metric"] == "total_tokens_per_s":
            v *= (float(row["isl"]) + float(row["osl"])) / float(row["osl"])
        return v
    v = perf["itl_ms" if m == "itl" else "ttft_ms"]["mean"]
    return v if math.isfinite(v) else None


def moe_of(row: dict) -> str:
    return "moe" if catalog.models().get(row["model"]).entry.get("moe") else "dense"


def regime(row: dict) -> dict:
    return {"generation": caldata.generation(row), "precision": calibrate.precision_class(row), "moe": moe_of(row),
            "tp": int(row["tp"] or row["num_gpus"] or 1), "engine": caldata.ENGINE[row["engine"]]}


def fold_fit(train: list[dict]) -> dict:
    thr = calibrate.throughput_rows(train)
    itl = calibrate.online_rows(train)
    f = calibrate.fit(thr, itl)
    if not f:
        return {}
    f["request_overhead_ms"] = calibrate.request_overhead(calibrate.online_rows(train, metric="ttft_ms"), f, "trtllm")
    return f


def cross_validate(rows: list[dict], key, label: str, show_rows: bool) -> list[tuple[dict, float, float]]:
    """[(row, measured, predicted)] of every row, each predicted by a fit on the other groups of `key`."""
    out = []
    for g in sorted({key(r) for r in rows}):
        train = [r for r in rows if key(r) != g]
        test = [r for r in rows if key(r) == g]
        f = fold_fit(train)
        if not f:
            continue
        got = []
        for r in test:
            p = predict(r, f)
            if p is not None:
                got.append((r, float(r["value"]), p))
                if show_rows:
                    print(f"    {r['id']:<10} {r['gpu']:<16} {r['model']:<16} tp{regime(r)['tp']:<2} {r['isl']:>6}/{r['osl']:<6} "
                          f"{r['metric']:<26} measured {float(r['value']):>10.1f} predicted {p:>10.1f} {(p / float(r['value']) - 1) * 100:+7.1f} %")
        print(f"  {label} {g:<14} " + "; ".join(f"{m} {stats(errors(got, m))}" for m in METRICS))
        out += got
    return out


def errors(got, metric: str) -> list[float]:
    return [(p / m - 1) * 100 for r, m, p in got if metric_of(r) == metric]


def stats(errs: list[float]) -> str:
    if not errs:
        return "-"
    a = np.abs(errs)
    return f"n {len(errs)} median {np.median(a):.1f} % p90 {np.percentile(a, 90):.1f} % bias {np.median(errs):+.1f} %"


def table(got, keys: tuple[str, ...], title: str) -> None:
    print(f"\n{title}")
    print(f"  {'regime':<40} {'metric':<11} {'rows':>5} {'median':>8} {'p90':>8} {'bias':>8}")
    groups: dict[tuple, list] = defaultdict(list)
    for r, m, p in got:
        reg = regime(r)
        groups[tuple(reg[k] for k in keys) + (metric_of(r),)].append((p / m - 1) * 100)
    for k in sorted(groups, key=lambda k: tuple(map(str, k))):
        e = groups[k]
        a = np.abs(e)
        print(f"  {' x '.join(map(str, k[:-1])):<40} {k[-1]:<11} {len(e):>5} {np.median(a):>7.1f}% {np.percentile(a, 90):>7.1f}% "
              f"{np.median(e):>+7.1f}%")


BAND_KEYS = (("generation", "precision", "moe", "engine"), ("generation", "precision", "moe"), ("generation", "moe"),
             ("precision", "moe"), ("moe",), ())
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
MIN_ROWS = 20  # a band from fewer held-out rows would claim more certainty than it has


def bands(got) -> list[dict]:
    """Quantiles of log(measured / predicted) per regime level (finest first) and metric, where >= MIN_ROWS."""
    out = []
    for keys in BAND_KEYS:
        groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r, m, p in got:
            reg = regime(r)
            groups[tuple(reg[k] for k in keys)][metric_of(r)].append(math.log(m / p))
        for k, by in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
            entry = {"match": dict(zip(keys, k)), "metrics": {}}
            for metric, xs in sorted(by.items()):
                if len(xs) < MIN_ROWS:
                    continue
                q = np.quantile(xs, QUANTILES)
                entry["metrics"][metric] = {"n": len(xs), "log_ratio_quantiles": {f"q{int(round(p * 100)):02d}": round(float(v), 4)
                                                                              for p, v in zip(QUANTILES, q)},
                                            "p90_abs_error_pct": round(float(np.percentile(np.abs(np.expm1(xs)), 90) * 100), 1)}
            if entry["metrics"]:
                out.append(entry)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="store_true", help="print every held-out row")
    ap.add_argument("--write", action="store_true", help="write catalog/accuracy.yaml")
    a = ap.parse_args()
    rows = [r for r in caldata.rows() if metric_of(r) and caldata.ENGINE[r["engine"]] == "trtllm"
            and r["isl"] and r["osl"]]
    print(f"{len(rows)} TensorRT-LLM rows of shared/calibration/benchmarks.csv "
          f"({sum(metric_of(r) == 'throughput' for r in rows)} throughput, {sum(metric_of(r) == 'itl' for r in rows)} ITL, "
          f"{sum(metric_of(r) == 'ttft' for r in rows)} TTFT)")
    print("\nleave one GPU generation out (each fold predicted by factors fitted on the others):")
    by_gen = cross_validate(rows, caldata.generation, "held out", a.rows)
    print("\nleave one model family out:")
    by_fam = cross_validate(rows, calibrate.model_family, "held out", a.rows)
    for name, got in (("generation", by_gen), ("model family", by_fam)):
        print(f"\nall held-out rows, leave one {name} out: " + "; ".join(f"{m} {stats(errors(got, m))}" for m in METRICS))
    table(by_gen, ("generation", "precision", "moe", "tp", "engine"), "per regime (leave one generation out)")
    table(by_fam, ("generation", "precision", "moe", "engine"), "per regime (leave one model family out)")
    print()
    import disagg_published

    disagg_published.main()
    if a.write:
        path = caldata.ROOT / "catalog" / "accuracy.yaml"
        doc = {"source": ("benchmarks/accuracy.py --write: leave-one-GPU-generation-out residuals of "
                          f"{len(by_gen)} predictions of shared/calibration/benchmarks.csv rows (TensorRT-LLM 0.14-0.17, NIM)"),
               "summary": {name: {m: stats(errors(got, m)) for m in METRICS}
                           for name, got in (("leave_one_generation_out", by_gen), ("leave_one_model_family_out", by_fam))},
               "min_rows": MIN_ROWS, "bands": bands(by_gen)}
        header = ("# Error bands: held-out residuals log(measured / predicted) per regime, finest first. Written by\n"
                  "# benchmarks/accuracy.py --write; do not edit. planner/accuracy.py picks the first entry whose match\n"
                  "# fits a configuration and has the metric.\n")
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
