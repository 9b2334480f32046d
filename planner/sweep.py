"""`planfile sweep`: the estimate along one axis of a spec (the capacity curve): load vs latency,
replicas vs headroom, prompt length vs memory."""

from __future__ import annotations

import csv
import io
import json
import math

from planner.physics.serving import Lengths
from planner.resolve import evolve

AXES = ("arrival_rate_rps", "concurrency", "replicas", "input_tokens", "output_tokens", "peak_factor")
MAX_POINTS = 200
MAX_SECONDS = 60.0  # a sweep is interactive: stop with a clear message rather than run for minutes
MAX_VALUE = 1e7  # per axis value (requests/s, tokens, replicas): beyond any deployment
INT_AXES = ("concurrency", "replicas", "input_tokens", "output_tokens", "arrival_rate_rps")


class SweepError(ValueError):
    pass


def parse_vary(text: str) -> tuple[str, list[float]]:
    """`field=start:stop:step` (inclusive) or `field=a,b,c`."""
    name, eq, rng = text.partition("=")
    name = name.strip()
    if not eq or name not in AXES:
        raise SweepError(f"--vary {text!r}: expected FIELD=START:STOP:STEP with FIELD one of {', '.join(AXES)}")
    try:
        if ":" in rng:
            parts = [float(x) for x in rng.split(":")]
            if len(parts) != 3 or not all(math.isfinite(x) for x in parts) or parts[2] <= 0 or parts[1] < parts[0]:
                raise ValueError
            n = int(math.floor((parts[1] - parts[0]) / parts[2] + 1e-9)) + 1
            if n > MAX_POINTS:
                raise SweepError(f"--vary {text!r}: {n} points; at most {MAX_POINTS}")
            values = [parts[0] + i * parts[2] for i in range(n)]
        else:
            values = [float(x) for x in rng.split(",") if x.strip()]
    except ValueError:
        raise SweepError(f"--vary {text!r}: the range must be START:STOP:STEP (STOP >= START, STEP > 0) or a comma list of numbers") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise SweepError(f"--vary {text!r}: values must be positive finite numbers")
    if any(v > MAX_VALUE for v in values):
        raise SweepError(f"--vary {text!r}: values must be at most {MAX_VALUE:g}")
    if name in ("concurrency", "replicas", "input_tokens", "output_tokens") and any(v < 1 or not float(v).is_integer() for v in values):
        raise SweepError(f"--vary {text!r}: {name} takes whole numbers >= 1")
    if len(values) > MAX_POINTS:
        raise SweepError(f"--vary {text!r}: at most {MAX_POINTS} points")
    return name, values


def _scaled(lengths: Lengths, mean: float) -> Lengths:
    f = mean / lengths.mean
    return Lengths(mean, lengths.p50 * f, lengths.p95 * f, lengths.max * f)


def point(r, axis: str, v: float):
    if axis == "arrival_rate_rps":
        return evolve(r, mode="rate", rate_rps=v, concurrency=0)
    if axis == "concurrency":
        return evolve(r, mode="concurrency", concurrency=int(v), rate_rps=0.0)
    if axis == "replicas":
        return evolve(r, replicas=int(v), replicas_min=int(v), autoscale=None)
    if axis == "peak_factor":
        return evolve(r, peak_factor=v)
    inp = _scaled(r.input, v) if axis == "input_tokens" else r.input
    out = _scaled(r.output, v) if axis == "output_tokens" else r.output
    return evolve(r, input=inp, output=out, max_model_len=max(r.max_model_len, int(inp.max + out.max)))


def sweep(r, axis: str, values: list[float], est: dict | None = None) -> list[dict]:
    import time

    from planner.evaluate import evaluate, fleet_gpus, judged_slos, slo_ok

    if getattr(r, "disagg", None) and axis in ("replicas", "concurrency"):
        raise SweepError(f"--vary {axis}: a disaggregated spec sizes each pool (disaggregation.prefill.replicas, "
                         "disaggregation.decode.replicas) and is planned at an arrival rate; vary arrival_rate_rps, "
                         "input_tokens, output_tokens or peak_factor, or diff two specs")
    rows = []
    deadline = time.monotonic() + MAX_SECONDS
    for v in values:
        if time.monotonic() > deadline:
            raise SweepError(f"sweep stopped after {len(rows)} of {len(values)} points: the time budget is {MAX_SECONDS:g} s; "
                             "sweep fewer points or a narrower range")
        rv = point(r, axis, v)
        est = evaluate(rv, breach=False)
        perf = est.get("performance") or {}
        cost = est.get("cost") or {}
        rows.append({axis: int(v) if axis in INT_AXES and float(v).is_integer() else v, "gpus": fleet_gpus(rv), "fits": est["memory"]["fits"],
                     "max_concurrent_sequences": est["memory"]["max_concurrent_sequences"],
                     "output_tokens_per_s": perf.get("output_tokens_per_s"),
                     "ttft_p95_ms": (perf.get("ttft_ms") or {}).get("p95"), "itl_p95_ms": (perf.get("itl_ms") or {}).get("p95"),
                     "e2e_p95_s": (perf.get("e2e_s") or {}).get("p95"),
                     "meets_slo": bool(perf) and slo_ok(perf, judged_slos(rv)),  # every SLO, a queue that drains (PF410)
                     "usd_per_month": cost.get("usd_per_month")})
    return rows


def _fmt(x):
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "inf" if not math.isfinite(x) else f"{x:,.1f}" if abs(x) < 1e5 else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def to_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    table = [cols] + [[_fmt(r[c]) for c in cols] for r in rows]
    w = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(row)) for row in table) + "\n"


def _csv_value(v):
    """No float noise (54662.399999999994): 6 significant digits, no trailing zeros; blank for none."""
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        return f"{v:.6g}" if abs(v) < 1e6 else f"{v:.0f}"
    return v


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        wr = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: _csv_value(v) for k, v in r.items()})
    return buf.getvalue()


def to_json(rows: list[dict]) -> str:
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    return json.dumps(clean, indent=2) + "\n"
