"""Measured results in, efficiency factors out: `planfile calibrate` and `planfile validate`.

Reads `vllm bench serve --save-result` JSON files and CSV files with the columns of
shared/calibration/benchmarks.csv; predicts each measurement with the spec (its load replaced by the
measured one: request rate, concurrency or offline, fixed ISL/OSL) through the same evaluate() as check;
fits the engine factors the measurements identify (kernel scale, per-step and per-prefill-step host time,
per-request time to first token) by grid search on throughput (saturated runs) and mean ITL (online runs),
as benchmarks/calibrate.py does for the catalog, and judges the fit on held-out runs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from dataclasses import field
from pathlib import Path

import numpy as np

from planner.physics.serving import Lengths
from planner.records import record



class ResultsError(ValueError):
    pass


@record
class Measurement:
    """One measured benchmark run: its workload, load and the measured throughput and latencies."""

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


SCALES = np.round(np.concatenate([np.linspace(0.4, 1.0, 13), np.linspace(1.05, 2.5, 30)]), 4)
FLOORS = np.array([0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.25, 1.6, 2.0, 2.5, 3.2])
STEP_MS = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
PREFILL_MS = np.array([0.0, 1.0, 3.0, 8.0])
OVERHEAD_PRIOR = 0.002  # per ms of host time per step: engines with CUDA graphs run ~1 ms; only data may ask for more


def _parts(v, shp, sysm, decode, dctx, prefill, pctx):
    """(kernel seconds without floors, the kernels' floors, communication seconds, has prefill) of one step,
    at kernel_scale 1: the step is kernel_scale x (kernel + floor_scale x floors) + communication + host."""
    from planner.physics import step

    shp_ = np.shape(np.asarray(decode) + np.asarray(prefill))
    out = []
    for fs in (0.0, 1.0):
        c = step.coefficients(dataclasses.replace(sysm, kernel_scale=1.0, floor_scale=fs, step_overhead_s=0.0,
                                                  prefill_overhead_s=0.0), shp)
        g, mo, at, cm, _ = step.terms(c, decode, dctx, prefill, pctx, np.maximum)
        out.append((np.broadcast_to(np.asarray(g + mo + at, dtype=float), shp_), np.broadcast_to(np.asarray(cm, dtype=float), shp_)))
    (k0, cm), (k1, _) = out
    return k0, k1 - k0, cm, np.asarray(prefill, dtype=float) > 0


def grid_predictions(r, m: Measurement, grid: tuple) -> dict:
    """Predictions of one measurement for every candidate of grid = (kernel_scale, floor_scale,
    step_overhead_ms, prefill_overhead_ms) arrays (broadcast together): output tokens/s of a saturated run,
    mean ITL in ms of an online run. {} when the configuration does not fit.

    The step time is kernel_scale x kernel time + communication + host time, so the kernel time is computed
    once per operating point, not per candidate. Mean ITL is the mean iteration time at the load's steady
    state: at fixed concurrency C, D = C and P = C x ISL / OSL; at rate lambda, D = lambda x OSL x dt and
    P = D x ISL / OSL (Little's law), a fixed point in dt solved per candidate over a tabulated kernel time."""
    from planner.evaluate import limits, memory_plan, step_function, tokens_per_step
    from planner.physics import serving

    gs, gf, go, gp = np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in grid])
    v = scenario(r, m)
    mem = memory_plan(v)
    if not mem.fits or mem.kv_tokens <= 0:
        return {}
    sysm, shp, fn = step_function(v)
    lim = limits(v, mem)
    ve = v.replicas * v.pp
    tps = tokens_per_step(v)

    def dt_of(kern, floors, comm, pre):
        return gs * (kern + gf * floors) + comm + go / 1e3 + pre * gp / 1e3

    if m.mode == "offline":
        off = serving.steady_offline(fn, lim, m.isl, m.osl, tps)
        D = off["batch"]
        if D <= 0:
            return {}
        P = D * m.isl / (m.osl / tps)
        kern, fl, comm, pre = _parts(v, shp, sysm, D, m.isl + m.osl / 2.0, P, m.isl / 2.0)
        return {"output_tokens_per_s": D * tps / dt_of(kern, fl, comm, pre) * ve}
    ratio = m.isl / m.osl
    if m.mode == "concurrency":
        c = min(m.concurrency / ve, lim.max_seqs)
        kern, fl, comm, pre = _parts(v, shp, sysm, c, m.isl + m.osl / 2, c * ratio, m.isl / 2)
        return {"itl_ms_mean": dt_of(kern, fl, comm, pre) * 1e3}
    lam = m.rate / ve
    ds = np.unique(np.clip(np.geomspace(0.05, max(lim.max_seqs, 1), 48), 0.05, lim.max_seqs))
    kt, ft, ct, _ = _parts(v, shp, sysm, ds, np.full_like(ds, m.isl + m.osl / 2), np.minimum(ds * ratio, lim.token_budget),
                           np.full_like(ds, m.isl / 2))
    dt = np.full(gs.shape, 0.02)
    for _ in range(40):
        d = np.clip(lam * m.osl * dt, ds[0], ds[-1])
        dt = 0.5 * dt + 0.5 * dt_of(np.interp(d, ds, kt), np.interp(d, ds, ft), np.interp(d, ds, ct), True)
    return {"itl_ms_mean": dt * 1e3}


def check_metadata(ms: list[Measurement], r, spec_path: str, allow_other: bool = False) -> None:
    """Refuse results whose `planfile_spec` metadata (written by the rendered bench.sh) names another spec."""
    for m in ms:
        named = m.metadata.get("planfile_spec")
        if named and named != r.name and not allow_other:
            raise ResultsError(f"{m.source}: measured for spec {named!r}, but --spec {spec_path} is {r.name!r}; "
                               "pass the matching spec, or --any-spec to compare anyway")


def identifiable(ms: list[Measurement]) -> list[str]:
    """The factors the measurements can tell apart (issue: one run at one load identifies one number).

    One saturated or online run identifies a kernel scale; runs at several shapes or loads also separate a
    per-step host time; online runs whose steps mix prefill and decode also a per-prefill-step host time;
    measured TTFT identifies the per-request time to first token."""
    thr = [m for m in ms if "output_tokens_per_s" in m.metrics and m.mode == "offline"]
    itl = [m for m in ms if m.metrics.get("itl_ms_mean") and m.mode != "offline"]
    shapes = {(m.mode, round(m.isl), round(m.osl), m.rate, m.concurrency) for m in thr + itl}
    out = []
    if thr or itl:
        out.append("kernel_scale")
    if len(shapes) >= 3:
        out.append("step_overhead_ms")
    if len(shapes) >= 6:
        out.append("floor_scale")
    if len(itl) >= 4:
        out.append("prefill_overhead_ms")
    if any(m.metrics.get("ttft_ms_mean") for m in ms):
        out.append("request_overhead_ms")
    return out


def fit(r, ms: list[Measurement], params: list[str] | None = None) -> dict:
    """Grid search of the identifiable factors on saturated throughput and online mean ITL (log error), then
    the per-request TTFT time as the median residual of the TTFT rows."""
    from planner.evaluate import efficiency_for

    params = identifiable(ms) if params is None else params
    base = efficiency_for(r.engine["id"], r.gpu, r.calibration, r.weights)
    s0 = base["kernel_scale"] * base.get("vendor_scale", 1.0)
    axes = [SCALES if "kernel_scale" in params else np.array([s0]),
            FLOORS if "floor_scale" in params else np.array([base.get("floor_scale", 1.0)]),
            STEP_MS if "step_overhead_ms" in params else np.array([base["step_overhead_ms"]]),
            PREFILL_MS if "prefill_overhead_ms" in params else np.array([base["prefill_overhead_ms"]])]
    grid = np.meshgrid(*axes, indexing="ij")
    terms: dict[str, list[np.ndarray]] = {"throughput": [], "itl": []}
    for m in ms:
        pred = grid_predictions(r, m, grid)
        if "output_tokens_per_s" in pred and "output_tokens_per_s" in m.metrics and m.mode == "offline":
            terms["throughput"].append(np.abs(np.log(pred["output_tokens_per_s"] / m.metrics["output_tokens_per_s"])))
        if "itl_ms_mean" in pred and m.metrics.get("itl_ms_mean"):
            terms["itl"].append(np.abs(np.log(pred["itl_ms_mean"] / m.metrics["itl_ms_mean"])))
    out = {"kernel_scale": round(float(s0), 4), "floor_scale": float(base.get("floor_scale", 1.0)),
           "step_overhead_ms": float(base["step_overhead_ms"]),
           "prefill_overhead_ms": float(base["prefill_overhead_ms"]), "request_overhead_ms": float(base["request_overhead_ms"])}
    if terms["throughput"] or terms["itl"]:
        obj = OVERHEAD_PRIOR * (grid[2] + grid[3])
        for kind in terms.values():
            if kind:
                obj = obj + np.median(np.stack(kind), axis=0)
        i = np.unravel_index(np.argmin(obj), obj.shape)
        out.update(kernel_scale=round(float(grid[0][i]), 4), floor_scale=float(grid[1][i]),
                   step_overhead_ms=float(grid[2][i]), prefill_overhead_ms=float(grid[3][i]))
    if "request_overhead_ms" in params:
        fitted = dataclasses.replace(r, calibration=dict(out, engine=r.engine["id"], gpu=r.gpu["id"], request_overhead_ms=0.0))
        res = []
        for m in ms:
            if m.metrics.get("ttft_ms_mean") and m.mode in ("rate", "concurrency"):
                p = predict(fitted, m).get("ttft_ms_mean")
                if p is not None and math.isfinite(p):
                    res.append(((m.mode, m.isl, m.osl), m.rate if m.mode == "rate" else float(m.concurrency),
                                m.metrics["ttft_ms_mean"] - p))
        if res:
            out["request_overhead_ms"] = request_overhead_ms(res)
    out["fitted"] = params
    out["measurements"] = len(ms)
    return out


def request_overhead_ms(residuals: list[tuple[tuple, float, float]]) -> float:
    """The per-request time the step model does not see (HTTP, tokenization, scheduling hand-offs), from TTFT
    residuals [(configuration, load, measured - predicted ms)] of online runs: per configuration only its
    lowest-load run — the overhead is what remains with no queue and no batch contention; at higher loads a
    residual measures the queueing model's error instead — then the median over configurations, at least 0.
    NIM's Llama-3.3-70B sweep: 7 ms at concurrency 1, but 66 ms as the median of concurrency 1 to 250.
    One estimator for `planfile calibrate` and for the catalog's fit (benchmarks/calibrate.py)."""
    lowest: dict = {}
    for cfg, load, res in residuals:
        if math.isfinite(res) and math.isfinite(load) and (cfg not in lowest or load < lowest[cfg][0]):
            lowest[cfg] = (load, res)
    if not lowest:
        return 0.0
    return round(max(0.0, float(np.median([res for _, res in lowest.values()]))), 1)


def _errors(r, ms, calibration) -> list[float]:
    rr = dataclasses.replace(r, calibration=calibration) if calibration else r
    return [abs(x["error_pct"]) for x in compare(rr, ms) if x["error_pct"] is not None]


def calibrate(r, ms: list[Measurement]) -> dict:
    """Fit only what the data identify, and judge the fit on data it did not see: with three or more
    measurements each one is predicted by a fit on the others (leave one out); with fewer there is nothing
    to hold out, so the fit must at least not make any metric worse in sample. A fit that makes the held-out
    error worse is not accepted."""
    before = summary(compare(r, ms))
    params = identifiable(ms)
    fitted = fit(r, ms, params)
    cal = dict(fitted, engine=r.engine["id"], gpu=r.gpu["id"])
    after = summary(compare(dataclasses.replace(r, calibration=cal), ms))
    held = None
    if len(ms) >= 3:
        prior_err, held_err = [], []
        for i, m in enumerate(ms):
            rest = ms[:i] + ms[i + 1:]
            f = dict(fit(r, rest, identifiable(rest)), engine=r.engine["id"], gpu=r.gpu["id"])
            prior_err += _errors(r, [m], None)
            held_err += _errors(r, [m], f)
        held = {"n": len(held_err), "median_abs_error_pct_catalog": float(np.median(prior_err)) if prior_err else None,
                "median_abs_error_pct_fitted": float(np.median(held_err)) if held_err else None}
        accepted = bool(held_err) and held["median_abs_error_pct_fitted"] <= held["median_abs_error_pct_catalog"] + 1e-9
        verdict = (f"held-out (leave-one-out) median |error| {held['median_abs_error_pct_catalog']:.1f} % with the catalog's "
                   f"factors, {held['median_abs_error_pct_fitted']:.1f} % fitted on the other runs")
        if not accepted:
            verdict = "the fit makes the held-out error worse: " + verdict
    else:
        worse = [k for k in before if k in after and after[k]["median_abs_error_pct"] > before[k]["median_abs_error_pct"] + 1e-9]
        accepted = not worse
        verdict = (f"{len(ms)} measurement(s): nothing to hold out; fitted only {', '.join(params) or 'nothing'}"
                   + ("" if accepted else "; it makes " + ", ".join(worse) + " worse"))
    return {"fitted": fitted, "params": params, "before": before, "after": after, "held_out": held,
            "accepted": accepted, "verdict": verdict}


def report_text(rep: dict) -> str:
    def lines(title, summ):
        out = [title]
        for k, v in summ.items():
            out.append(f"  {k:<22} n={v['n']:<3} median |error| {v['median_abs_error_pct']:6.1f} %   bias {v['bias_pct']:+6.1f} %")
        return out

    f = rep["fitted"]
    desc = ", ".join(f"{k} {f[k]:g}" for k in ("kernel_scale", "floor_scale", "step_overhead_ms", "prefill_overhead_ms", "request_overhead_ms")
                     if k in rep["params"])
    return "\n".join(lines("before (catalog factors):", rep["before"]) + lines(f"after ({desc or 'nothing fitted'}):", rep["after"])
                     + [f"verdict: {rep['verdict']}"]) + "\n"


def calibration_file(r, ms: list[Measurement], rep: dict, out_name: str) -> str:
    import yaml

    f = rep["fitted"]
    doc = {"engine": r.engine["id"], "engine_version": r.engine_version, "gpu": r.gpu["id"]}
    doc.update({k: f[k] for k in rep["params"]})
    doc["fitted"] = list(rep["params"])
    doc["measurements"] = len(ms)
    doc["source"] = f"planfile calibrate on {len(ms)} measurement(s): " + ", ".join(sorted({Path(m.source.split(':')[0]).name for m in ms}))
    doc["error_before"], doc["error_after"] = rep["before"], rep["after"]
    if rep["held_out"]:
        doc["held_out"] = rep["held_out"]
    doc["verdict"] = rep["verdict"]
    return ("# Engine factors fitted by planfile calibrate; reference it from the spec as\n"
            f"#   calibration: {out_name}\n" + yaml.safe_dump(doc, sort_keys=False))
