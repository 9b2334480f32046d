"""Accuracy against published measurements: `python benchmarks/accuracy.py [--rows] [--no-holdout]`.

Every row of shared/calibration/benchmarks.csv becomes a spec (benchmarks/caldata.py) and goes through the
same load -> validate -> resolve -> evaluate path as `planfile check`. Prints predicted vs measured per row
(--rows), the median absolute percentage error per metric, per GPU family and per scenario, and two
honesty checks of the calibration:

* hold-out: refit the efficiency factors without one GPU (H200) and without one model (Llama-3.1-70B) and
  report the error on the held-out rows, predicted with factors that never saw them;
* split halves: fit on half A of the throughput rows and report half B's error before (uncalibrated prior
  factors) and after.

No factor is ever fitted to a single row; the fit has three physical parameters per engine x GPU generation.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import statistics
import sys
from collections import defaultdict

import caldata
import calibrate
from planner.evaluate import evaluate

PRIOR = {"mfu": 0.5, "mbu": 0.75, "mbu_kv": 0.75, "overhead_ms": 3.0}  # textbook guesses before any calibration


def predict(row: dict, calibration: dict | None = None) -> float | None:
    try:
        r = caldata.resolved(row)
    except (ValueError, KeyError):
        return None
    if calibration:
        r = dataclasses.replace(r, calibration=calibration)
    est = evaluate(r, breach=False)
    perf = est.get("performance")
    if not perf:
        return None
    m = row["metric"]
    if m == "output_tokens_per_s_total":
        return perf["output_tokens_per_s"]
    if m == "total_tokens_per_s":
        return perf["output_tokens_per_s"] * (r.input.mean + r.output.mean) / r.output.mean
    if m == "requests_per_s":
        return perf["requests_per_s"]
    if m == "ttft_ms":
        return perf["ttft_ms"]["mean"]
    if m == "itl_ms":
        return perf["itl_ms"]["mean"]
    return None


def err_pct(pred: float, meas: float) -> float:
    return (pred / meas - 1) * 100


def median_abs(xs) -> float:
    return statistics.median(abs(x) for x in xs) if xs else float("nan")


def metric_group(row: dict) -> str:
    if row["metric"] in ("output_tokens_per_s_total", "total_tokens_per_s", "requests_per_s"):
        return "throughput"
    return row["metric"].replace("_ms", "")


def report(rows: list[dict], preds: list[float | None], title: str, by_row: bool = False) -> dict:
    groups: dict[str, list[float]] = defaultdict(list)
    fam: dict[str, list[float]] = defaultdict(list)
    scen: dict[str, list[float]] = defaultdict(list)
    skipped = 0
    for row, p in zip(rows, preds):
        if p is None or not math.isfinite(p):
            skipped += 1
            if by_row:
                print(f"  {row['id']:<10} {row['gpu']:<16} {row['model']:<16} {row['metric']:<26} no prediction (does not fit)")
            continue
        e = err_pct(p, float(row["value"]))
        groups[metric_group(row)].append(e)
        fam[f"{caldata.family(row)} {metric_group(row)}"].append(e)
        scen[f"{row['scenario']} {metric_group(row)}"].append(e)
        if by_row:
            print(f"  {row['id']:<10} {row['gpu']:<16} {row['model']:<16} tp{row['tp'] or row['num_gpus']:<2} "
                  f"{row['isl']:>6}/{row['osl']:<6} {row['metric']:<26} measured {float(row['value']):>10.1f} "
                  f"predicted {p:>10.1f}  {e:+7.1f} %")
    print(f"\n{title}")
    for k in ("throughput", "itl", "ttft"):
        xs = groups.get(k, [])
        bias = statistics.median(xs) if xs else float("nan")
        print(f"  {k:<11} rows {len(xs):>4}  median |error| {median_abs(xs):6.1f} %   median signed {bias:+6.1f} %")
    print("  per GPU family:")
    for k in sorted(fam):
        print(f"    {k:<30} rows {len(fam[k]):>4}  median |error| {median_abs(fam[k]):6.1f} %")
    print("  per scenario:")
    for k in sorted(scen):
        print(f"    {k:<30} rows {len(scen[k]):>4}  median |error| {median_abs(scen[k]):6.1f} %")
    if skipped:
        print(f"  {skipped} rows without a prediction (the configuration does not fit in memory in planfile's model)")
    return {k: median_abs(v) for k, v in groups.items()}


def holdout(rows: list[dict], name: str, test) -> None:
    """Refit trtllm factors per generation without the held-out rows, predict them with those factors."""
    train = [r for r in calibrate.throughput_rows(rows) if not test(r)]
    held = [r for r in calibrate.throughput_rows(rows) if test(r)]
    itl_train = [r for r in calibrate.online_rows(rows) if not test(r)]
    held_online = [r for r in rows if test(r) and r["scenario"] != "max_throughput" and r["metric"] in ("itl_ms", "ttft_ms")]
    fitted = _fit_by_generation(train, itl_train)
    errs, online = [], defaultdict(list)
    for r in held + held_online:
        f = fitted.get(caldata.generation(r))
        p = predict(r, f) if f else None
        if p:
            (errs if r in held else online[r["metric"]]).append(err_pct(p, float(r["value"])))
    print(f"  hold out {name:<22} throughput rows {len(errs):>4} median |error| {median_abs(errs):5.1f} %"
          + "".join(f"; {m[:-3].upper()} rows {len(v)} median |error| {median_abs(v):5.1f} %" for m, v in sorted(online.items()))
          + f"  (fitted on {len(train)} + {len(itl_train)} other rows)")


def _fit_by_generation(train: list[dict], itl_train: list[dict]) -> dict:
    by_gen, itl_by_gen = defaultdict(list), defaultdict(list)
    for r in train:
        by_gen[caldata.generation(r)].append(r)
    for r in itl_train:
        itl_by_gen[caldata.generation(r)].append(r)
    return {g: calibrate.fit(rs, itl_by_gen.get(g))[0] for g, rs in by_gen.items()}


def halves(rows: list[dict]) -> None:
    tr = calibrate.throughput_rows(rows)
    a = [r for r in tr if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 2 == 0]
    b = [r for r in tr if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 2 == 1]
    online = calibrate.online_rows(rows)
    fitted = _fit_by_generation(a, [r for r in online if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 2 == 0])
    before, after = [], []
    for r in b:
        p0 = predict(r, PRIOR)
        f = fitted.get(caldata.generation(r))
        p1 = predict(r, f) if f else None
        if p0 and p1:
            before.append(err_pct(p0, float(r["value"])))
            after.append(err_pct(p1, float(r["value"])))
    print(f"  split halves: fit on half A ({len(a)} rows), half B ({len(before)} rows): median |error| "
          f"{median_abs(before):.1f} % with prior factors -> {median_abs(after):.1f} % after calibration")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="store_true", help="print every row")
    ap.add_argument("--no-holdout", action="store_true")
    a = ap.parse_args()
    rows = [r for r in caldata.rows() if r["metric"] in ("output_tokens_per_s_total", "total_tokens_per_s",
                                                         "requests_per_s", "ttft_ms", "itl_ms")]
    preds = [predict(r) for r in rows]
    report(rows, preds, f"All {len(rows)} rows, catalog efficiency factors (in-sample for throughput):", a.rows)
    if not a.no_holdout:
        print("\nOut of sample:")
        holdout(rows, "GPU h200-sxm", lambda r: caldata.family(r) == "h200-sxm")
        holdout(rows, "model Llama-3.1-70B", lambda r: r["model"] == "Llama-3.1-70B")
        halves(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
