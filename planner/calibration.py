"""Measured results in, efficiency factors out: `planfile calibrate` and `planfile validate`.

Reads `vllm bench serve --save-result` JSON files and CSV files with the columns of
shared/calibration/benchmarks.csv; predicts each measurement with the spec (its load replaced by the
measured one: request rate, concurrency or offline, fixed ISL/OSL) through the same evaluate() as check;
fits MFU, MBU (weights and KV) and the per-step overhead for the spec's engine x GPU by grid search on
throughput (saturated runs) and mean ITL (online runs), as benchmarks/calibrate.py does for the catalog.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.physics.serving import Lengths

MFU = np.linspace(0.2, 0.95, 16)
MBU = np.linspace(0.3, 1.0, 15)
OVH_MS = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0])
OVERHEAD_PRIOR = 0.002  # per ms of per-step overhead: CUDA-graph engines run 1-5 ms; only data may ask for more


class ResultsError(ValueError):
    pass


@dataclass
class Measurement:
    source: str
    mode: str  # rate | concurrency | offline
    isl: float
    osl: float
    rate: float = 0.0
    concurrency: int = 0
    metrics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def _f(x):
    try:
        v = float(x)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


MAX_RESULTS_BYTES = 32 * 1024 * 1024
MAX_MEASUREMENTS = 200  # each costs a simulation; 200 cover any benchmark campaign


def from_vllm_json(path: Path, doc: dict) -> Measurement:
    from planner.validate import validator_for

    if "total_output_tokens" not in doc or not ("completed" in doc or "num_prompts" in doc):
        raise ResultsError(f"{path}: not a `vllm bench serve --save-result` file (no completed/total_output_tokens)")
    errs = sorted(validator_for("vllm-bench-result").iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errs:
        e = errs[0]
        where = "/".join(map(str, e.absolute_path)) or "the document"
        raise ResultsError(f"{path}: {where}: {e.message} (schemas/vllm-bench-result.schema.json)")
    done = doc.get("completed") or doc.get("num_prompts")
    isl = doc.get("total_input_tokens", 0) / done
    osl = doc["total_output_tokens"] / done
    rate = doc.get("request_rate")
    conc = doc.get("max_concurrency")
    if conc:
        mode, r, c = "concurrency", 0.0, int(conc)
    elif rate in (None, "inf") or _f(rate) is None:
        mode, r, c = "offline", 0.0, 0
    else:
        mode, r, c = "rate", float(rate), 0
    m = {"output_tokens_per_s": _f(doc.get("output_throughput"))}
    for src, dst, scale in (("ttft", "ttft_ms", 1.0), ("itl", "itl_ms", 1.0), ("e2el", "e2e_s", 1e-3)):
        for stat, key in (("mean", "mean"), ("median", "p50"), ("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99")):
            v = _f(doc.get(f"{stat}_{src}_ms"))
            if v is not None:
                m[f"{dst}_{key}"] = v * scale
    meta = {"planfile_spec": doc["planfile_spec"]} if isinstance(doc.get("planfile_spec"), str) else {}
    return Measurement(str(path), mode, isl, osl, r, c, {k: v for k, v in m.items() if v is not None}, meta)


CSV_METRIC = {"output_tokens_per_s_total": "output_tokens_per_s", "ttft_ms": "ttft_ms_mean", "itl_ms": "itl_ms_mean"}


def measurement_from_row(row: dict, source: str) -> Measurement:
    """The load of one benchmarks.csv-style row (no metrics yet)."""
    isl, osl = _f(row["isl"]), _f(row["osl"])
    if row["scenario"] == "max_throughput":
        return Measurement(source, "offline", isl, osl)
    if row["scenario"] == "fixed_concurrency":
        return Measurement(source, "concurrency", isl, osl, concurrency=int(_f(row.get("concurrency")) or 0))
    q = re.search(r"QPS=([0-9.]+)", row.get("notes", "")) or re.search(r"([0-9.]+)", row.get("concurrency") or "")
    if not q:
        raise ResultsError(f"{source}: scenario {row['scenario']!r} needs a request rate (notes 'QPS=...')")
    return Measurement(source, "rate", isl, osl, rate=float(q.group(1)))


def from_csv(path: Path) -> list[Measurement]:
    import io

    from planner import sidefile

    try:
        text = sidefile.read_text(path, MAX_RESULTS_BYTES, "results CSV")
    except sidefile.SideFileError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    out: dict[tuple, Measurement] = {}
    rd = csv.DictReader(io.StringIO(text, newline=""))
    need = {"isl", "osl", "scenario", "metric", "value"}
    if not need <= set(rd.fieldnames or []):
        raise ResultsError(f"{path}: a results CSV needs the columns {', '.join(sorted(need))} (as benchmarks.csv)")
    try:
        for i, row in enumerate(rd, start=2):
            metric = CSV_METRIC.get(row.get("metric") or "")
            val, isl, osl = _f(row.get("value")), _f(row.get("isl")), _f(row.get("osl"))
            if metric is None or val is None or not isl or not osl:
                continue
            if val <= 0 or isl <= 0 or osl <= 0 or isl > 1e8 or osl > 1e8:
                raise ResultsError(f"{path}:{i}: value, isl and osl must be positive (got {row.get('value')}, "
                                   f"{row.get('isl')}, {row.get('osl')})")
            m = measurement_from_row(row, f"{path}:{i}")
            if m.mode == "concurrency" and not 1 <= m.concurrency <= 1e8:
                raise ResultsError(f"{path}:{i}: fixed_concurrency needs a concurrency >= 1")
            if m.mode == "rate" and not 0 < m.rate <= 1e7:
                raise ResultsError(f"{path}:{i}: the request rate must be positive")
            meas = out.setdefault((m.mode, m.rate, m.concurrency, m.isl, m.osl), m)
            meas.metrics[metric] = val
            if len(out) > MAX_MEASUREMENTS:
                raise ResultsError(f"{path}: more than {MAX_MEASUREMENTS} distinct measurements; split the file")
    except csv.Error as exc:
        raise ResultsError(f"{path}: not a readable CSV ({exc})") from None
    if not out:
        raise ResultsError(f"{path}: no usable rows (metrics output_tokens_per_s_total, ttft_ms, itl_ms)")
    return list(out.values())


def read(paths: list[str]) -> list[Measurement]:
    from planner import sidefile

    ms: list[Measurement] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise ResultsError(f"{p}: no such file")
        if path.suffix.lower() == ".csv":
            ms += from_csv(path)
            continue
        try:
            text = sidefile.read_text(path, MAX_RESULTS_BYTES, "results file")
        except sidefile.SideFileError as exc:
            raise ResultsError(f"{p}: {exc}") from None
        docs = []
        try:
            docs = [json.loads(text)]
        except RecursionError:
            raise ResultsError(f"{p}: nested too deeply to be a results file") from None
        except ValueError:
            try:  # --append-result writes JSON lines
                docs = [json.loads(line) for line in text.splitlines() if line.strip()]
            except RecursionError:
                raise ResultsError(f"{p}: nested too deeply to be a results file") from None
            except ValueError:
                raise ResultsError(f"{p}: neither JSON (vllm bench serve --save-result) nor CSV") from None
        if not docs:
            raise ResultsError(f"{p}: the file is empty: no measurement to compare")
        for d in docs:
            if not isinstance(d, dict):
                raise ResultsError(f"{p}: expected a JSON object")
            ms.append(from_vllm_json(path, d))
        if len(ms) > MAX_MEASUREMENTS:
            raise ResultsError(f"{p}: more than {MAX_MEASUREMENTS} measurements; split the file")
    return ms


def scenario(r, m: Measurement):
    """The spec with its load replaced by the measured one."""
    inp, out = Lengths(m.isl, m.isl, m.isl, m.isl), Lengths(m.osl, m.osl, m.osl, m.osl)
    mml = max(r.max_model_len, int(m.isl + m.osl))
    kw = dict(input=inp, output=out, peak_factor=1.0, max_model_len=mml)
    if m.mode == "rate":
        return dataclasses.replace(r, mode="rate", rate_rps=m.rate, concurrency=0, **kw)
    if m.mode == "concurrency":
        return dataclasses.replace(r, mode="concurrency", concurrency=m.concurrency, rate_rps=0.0, **kw)
    return dataclasses.replace(r, mode="offline", rate_rps=0.0, concurrency=0, **kw)


def predict(r, m: Measurement) -> dict:
    from planner.evaluate import evaluate

    est = evaluate(scenario(r, m), breach=False)
    perf = est.get("performance")
    if not perf:
        return {}
    out = {"output_tokens_per_s": perf["output_tokens_per_s"]}
    for k in ("ttft_ms", "itl_ms", "e2e_s"):
        for stat in ("mean", "p50", "p90", "p95", "p99"):
            out[f"{k}_{stat}"] = perf[k].get(stat)
    return out


def compare(r, ms: list[Measurement]) -> list[dict]:
    rows = []
    for m in ms:
        pred = predict(r, m)
        for k, v in m.metrics.items():
            p = pred.get(k)
            err = (p / v - 1) * 100 if p is not None and v and math.isfinite(p) else None
            rows.append({"source": m.source, "mode": m.mode, "load": m.rate if m.mode == "rate" else m.concurrency,
                         "metric": k, "measured": v, "predicted": p, "error_pct": err})
    return rows


def summary(rows: list[dict]) -> dict:
    by: dict[str, list[float]] = {}
    for x in rows:
        if x["error_pct"] is not None:
            by.setdefault(x["metric"], []).append(x["error_pct"])
    return {k: {"n": len(v), "median_abs_error_pct": float(np.median(np.abs(v))), "bias_pct": float(np.median(v))}
            for k, v in sorted(by.items())}


def grid_predictions(r, m: Measurement, grid: tuple) -> dict:
    """Predictions of one measurement for every candidate of grid = (mfu, mbu, mbu_kv, overhead_ms) arrays:
    output tokens/s of a saturated (offline) run, mean ITL in ms of an online run. {} when it does not fit.

    Mean ITL is the mean iteration time at the load's steady state, found per candidate by fixed-point
    iteration: with step time dt, a replica at rate lambda decodes D = lambda x OSL x dt sequences and
    prefills P = lambda x ISL x dt prompt tokens per step (Little's law); at fixed concurrency C,
    D = C and P = C x ISL / OSL. Vectorized over the whole grid, no simulation."""
    from planner.evaluate import limits, memory_plan, step_function, tokens_per_step
    from planner.physics import serving, step

    gm, gb, gk, go = grid
    v = scenario(r, m)
    mem = memory_plan(v)
    if not mem.fits or mem.kv_tokens <= 0:
        return {}
    sysm, shp, _ = step_function(v)
    sg = dataclasses.replace(sysm, mfu=gm, mbu=gb, mbu_kv=gk, overhead_s=go / 1e3)
    lim = limits(v, mem)
    ve = v.replicas * v.pp

    def grid_step(*a):
        return step.step_time(sg, shp, *a)

    if m.mode == "offline":
        off = serving.steady_offline(grid_step, lim, m.isl, m.osl, tokens_per_step(v))
        return {"output_tokens_per_s": off["output_tokens_per_s"] * ve}
    if m.mode == "concurrency":
        c = min(m.concurrency / ve, lim.max_seqs)
        dt = grid_step(c, m.isl + m.osl / 2, c * m.isl / m.osl, m.isl / 2)
    else:
        lam = m.rate / ve
        dt = np.full(gm.shape, 0.02)
        for _ in range(30):
            d = np.minimum(lam * m.osl * dt, lim.max_seqs)
            p = np.minimum(lam * m.isl * dt, lim.token_budget)
            dt = 0.5 * dt + 0.5 * grid_step(d, m.isl + m.osl / 2, p, m.isl / 2)
    return {"itl_ms_mean": dt * 1e3}


def check_metadata(ms: list[Measurement], r, spec_path: str, allow_other: bool = False) -> None:
    """Refuse results whose `planfile_spec` metadata (written by the rendered bench.sh) names another spec."""
    for m in ms:
        named = m.metadata.get("planfile_spec")
        if named and named != r.name and not allow_other:
            raise ResultsError(f"{m.source}: measured for spec {named!r}, but --spec {spec_path} is {r.name!r}; "
                               "pass the matching spec, or --any-spec to compare anyway")


def calibrate(r, ms: list[Measurement]) -> dict:
    """Fit, then judge the fit on data it did not see where there is enough of it."""
    before = summary(compare(r, ms))
    fitted = fit(r, ms)
    after = summary(compare(dataclasses.replace(r, calibration=fitted), ms))
    worse = [k for k in before if k in after and after[k]["median_abs_error_pct"] > before[k]["median_abs_error_pct"] + 1e-9]
    accepted = not worse
    verdict = ("the fit does not make any metric worse" if accepted else
               "the fitted factors make " + ", ".join(worse) + " worse than the catalog's")
    return {"fitted": fitted, "before": before, "after": after, "accepted": accepted, "verdict": verdict}


def report_text(rep: dict) -> str:
    def lines(title, summ):
        out = [title]
        for k, v in summ.items():
            out.append(f"  {k:<22} n={v['n']:<3} median |error| {v['median_abs_error_pct']:6.1f} %   bias {v['bias_pct']:+6.1f} %")
        return out

    f = rep["fitted"]
    desc = ", ".join(f"{k} {f[k]:g}" for k in ("mfu", "mbu", "mbu_kv", "overhead_ms") if k in f)
    return "\n".join(lines("before (catalog factors):", rep["before"]) + lines(f"after ({desc}):", rep["after"])
                     + [f"verdict: {rep['verdict']}"]) + "\n"


def calibration_file(r, ms: list[Measurement], rep: dict, out_name: str) -> str:
    import yaml

    f = rep["fitted"]
    doc = {"engine": r.engine["id"], "engine_version": r.engine_version, "gpu": r.gpu["id"]}
    doc.update({k: f[k] for k in ("mfu", "mbu", "mbu_kv", "overhead_ms") if k in f})
    doc["source"] = f"planfile calibrate on {len(ms)} measurement(s): " + ", ".join(sorted({Path(m.source.split(':')[0]).name for m in ms}))
    doc["error_before"], doc["error_after"] = rep["before"], rep["after"]
    return ("# Efficiency factors fitted by planfile calibrate; reference it from the spec as\n"
            f"#   calibration: {out_name}\n" + yaml.safe_dump(doc, sort_keys=False))


def fit(r, ms: list[Measurement]) -> dict:
    """Grid search of (MFU, MBU, MBU_KV, overhead) on saturated throughput and online mean ITL."""
    grid = np.meshgrid(MFU, MBU, MBU, OVH_MS, indexing="ij")
    gm, gb, gk, go = grid
    terms: dict[str, list[np.ndarray]] = {"throughput": [], "itl": []}
    for m in ms:
        pred = grid_predictions(r, m, grid)
        if "output_tokens_per_s" in pred and "output_tokens_per_s" in m.metrics:
            terms["throughput"].append(np.abs(np.log(pred["output_tokens_per_s"] / m.metrics["output_tokens_per_s"])))
        if "itl_ms_mean" in pred and m.metrics.get("itl_ms_mean"):
            terms["itl"].append(np.abs(np.log(pred["itl_ms_mean"] / m.metrics["itl_ms_mean"])))
    if not terms["throughput"] and not terms["itl"]:
        raise ResultsError("no measurement constrains the efficiency factors: give a saturated run (request_rate inf) "
                           "with output_throughput, or online runs with mean ITL")
    # each kind of measurement weighs the same, however many rows of it there are
    obj = OVERHEAD_PRIOR * go
    for kind in terms.values():
        if kind:
            obj = obj + np.median(np.stack(kind), axis=0)
    i = np.unravel_index(np.argmin(obj), obj.shape)
    return {"mfu": round(float(gm[i]), 3), "mbu": round(float(gb[i]), 3), "mbu_kv": round(float(gk[i]), 3),
            "overhead_ms": float(go[i]), "measurements": sum(len(v) for v in terms.values())}
