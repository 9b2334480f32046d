"""How sure planfile is: the held-out error band of a configuration's regime, and what was borrowed.

catalog/accuracy.yaml (written by benchmarks/accuracy.py) holds quantiles of log(measured / predicted)
from leave-one-GPU-generation-out cross-validation, per regime (GPU generation x precision class x
dense/MoE x engine) and coarser fallbacks. A configuration takes the finest entry that matches it and
has the metric; when that entry does not name its generation or its engine, the band is borrowed from
other hardware or another engine, and `Band.borrowed` says from what.

`time_scale(r)` turns `slo.confidence` into a multiplier of every step and request time: the c-quantile
of the regime's measured/predicted latency ratio (from the ITL residuals where the regime has them, else
from throughput: a run measured at x times the predicted throughput took 1/x the predicted step time).
It is never below 1: a confidence asks for margin, never for a more optimistic prediction.
"""

from __future__ import annotations

import math
from functools import lru_cache

from planner import catalog
from planner.records import record

PRECISION_CLASS = {"bf16": "16bit", "fp16": "16bit", "fp8": "8bit", "int8": "8bit", "fp4": "4bit", "int4": "4bit"}
METRICS = ("throughput", "itl", "ttft")
QS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


@lru_cache(maxsize=1)
def _doc() -> dict:
    return catalog.raw("accuracy")


def regime(r) -> dict:
    return {"generation": r.gpu["generation"], "precision": PRECISION_CLASS.get(r.weights, "16bit"),
            "moe": "moe" if r.model.get("moe") else "dense", "engine": r.engine["id"]}


@record(frozen=True, eq=False)
class MetricBand:
    """One metric's held-out error band: quantiles of log(measured / predicted) over n runs."""

    n: int
    quantiles: dict  # q05..q95 of log(measured / predicted)
    p90_abs_error_pct: float
    match: dict  # the regime entry it came from

    def ratio(self, q: float) -> float:
        """measured / predicted at quantile q (linear between stored quantiles, clamped to q05..q95)."""
        q = min(max(q, QS[0]), QS[-1])
        for lo, hi in zip(QS, QS[1:]):
            if lo <= q <= hi:
                a, b = self.quantiles[f"q{round(lo * 100):02d}"], self.quantiles[f"q{round(hi * 100):02d}"]
                return math.exp(a + (b - a) * (q - lo) / (hi - lo))
        return math.exp(self.quantiles["q50"])


@record(frozen=True, eq=False)
class Band:
    """The error bands of a spec's regime, and which regime keys they were borrowed across."""

    regime: dict
    metrics: dict  # metric -> MetricBand
    borrowed: tuple  # ("generation", "engine", ...): regime keys the bands do not match

    def describe(self, metric: str) -> str:
        b = self.metrics.get(metric)
        if not b:
            return "no held-out data"
        where = " ".join(str(v) for v in b.match.values()) or "all rows"
        return f"±{b.p90_abs_error_pct:.0f} % (p90 held-out, {b.n} rows: {where})"


def band(r) -> Band:
    reg = regime(r)
    out: dict[str, MetricBand] = {}
    for entry in _doc()["bands"]:
        if all(reg.get(k) == v for k, v in entry["match"].items()):
            for m, v in entry["metrics"].items():
                if m not in out:
                    out[m] = MetricBand(v["n"], v["log_ratio_quantiles"], v["p90_abs_error_pct"], entry["match"])
    borrowed = []
    for key in ("generation", "precision", "engine"):
        if not any(key in b.match for b in out.values()):
            borrowed.append(key)
    return Band(reg, out, tuple(borrowed))


def time_scale(r) -> float:
    """Multiplier of step and request times that puts the prediction at the slo.confidence edge (1 without)."""
    c = getattr(r, "slo_confidence", None)
    if not c:
        return 1.0
    b = band(r)
    if "itl" in b.metrics:
        m = b.metrics["itl"].ratio(c)
    elif "throughput" in b.metrics:
        m = 1.0 / b.metrics["throughput"].ratio(1.0 - c)
    else:
        return 1.0
    return max(1.0, m)


def to_json(r) -> dict:
    b = band(r)
    out = {"regime": b.regime, "borrowed": list(b.borrowed), "slo_confidence": getattr(r, "slo_confidence", None),
           "time_scale": round(time_scale(r), 4), "metrics": {}}
    for m, mb in b.metrics.items():
        out["metrics"][m] = {"n": mb.n, "p90_abs_error_pct": mb.p90_abs_error_pct, "from": mb.match,
                             "ratio_p10": round(mb.ratio(0.1), 4), "ratio_p90": round(mb.ratio(0.9), 4)}
    return out


def summary_line(r) -> str:
    b = band(r)
    parts = []
    for m, label in (("throughput", "throughput"), ("itl", "ITL"), ("ttft", "TTFT")):
        mb = b.metrics.get(m)
        if mb:
            parts.append(f"{label} ±{mb.p90_abs_error_pct:.0f} %")
    line = "held-out p90 |error| " + ", ".join(parts) if parts else "no held-out measurements for this regime"
    if b.borrowed:
        line += " (borrowed: no measured " + " or ".join(
            {"generation": f"{b.regime['generation']} GPUs", "precision": f"{b.regime['precision']} weights",
             "engine": r.engine["name"]}[k] for k in b.borrowed) + ")"
    ts = time_scale(r)
    if ts > 1.0:
        line += f"; slo.confidence {r.slo_confidence:g}: step and request times x {ts:.2f}"
    return line
