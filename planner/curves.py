"""Curves along one axis of a plan: latency vs load, GPUs vs load, the same workload on other GPUs.

Used by the report's charts and by `planfile sweep`; pure computation over the physics (no I/O).
"""

from __future__ import annotations

import math

import numpy as np

from planner import catalog
from planner.evaluate import limits, memory_plan, step_function, tokens_per_step
from planner.physics import serving
from planner.resolve import Resolved, batch_defaults, evolve


def latency_curve(r: Resolved, est: dict, points: int = 9) -> dict:
    """p95 TTFT/ITL along the spec's load axis (arrival rate, or requests in flight for closed-loop and
    offline specs). The planned load is one of the points, computed by the same call check makes, so the
    chart shows check's numbers at the load check evaluated."""
    from planner.evaluate import perf_at

    mem = memory_plan(r)
    _, _, fn = step_function(r)
    cap = est.get("capacity") or {}
    perf = est.get("performance") or {}
    planned = float(perf.get("load") or 0.0)
    if r.mode == "rate":
        top = max(planned, cap.get("breach_rps") or 0.0, 1e-3) * 1.3
        xs = sorted(set(np.round(np.linspace(top / points, top, points), 6).tolist()) | {planned})
        axis, marks = "arrival rate (req/s, fleet)", {"peak load": planned, "breach point": cap.get("breach_rps")}
    else:
        top = max(2 * planned, r.replicas)
        xs = sorted(set(np.linspace(max(1, top / points), top, points).round().astype(int).tolist()) | {int(planned)})
        axis, marks = "requests in flight (fleet)", {"planned": planned}
    runs = [perf_at(r, mem, fn, float(x)) for x in xs]
    return {"axis": axis, "x": [float(x) for x in xs], "marks": marks,
            "ttft_p95_ms": [run["ttft_ms"]["p95"] for run in runs], "itl_p95_ms": [run["itl_ms"]["p95"] for run in runs],
            "output_tokens_per_s": [run["output_tokens_per_s"] for run in runs],
            "slo_ttft_p95_ms": ((r.slo or {}).get("ttft_ms") or {}).get("p95"),
            "slo_itl_p95_ms": ((r.slo or {}).get("itl_ms") or {}).get("p95")}


def gpus_vs_load(r: Resolved, est: dict, points: int = 40) -> dict:
    """GPUs needed as the load grows, at the per-replica capacity the plan found (breach point, or 80 %
    of saturation without latency SLOs)."""
    cap = est.get("capacity") or {}
    perf = est.get("performance") or {}
    if cap.get("breach_rps"):
        per_replica = cap["breach_rps"] / r.replicas
        basis = "breach point"
    else:
        per_replica = 0.8 * (perf.get("saturation_requests_per_s") or 0.0) / r.replicas
        basis = "80 % of saturation"
    planned = r.rate_rps * r.peak_factor if r.mode == "rate" else (perf.get("requests_per_s") or 0.0)
    top = max(planned * 2, per_replica * 2, 1e-3)
    xs = np.linspace(top / points, top, points)
    gpus = [int(math.ceil(x / per_replica)) * r.gpus_per_replica if per_replica > 0 else None for x in xs]
    return {"x": [float(x) for x in xs], "gpus": gpus, "planned_rps": planned, "planned_gpus": r.gpus_per_replica * r.replicas,
            "per_replica_rps": per_replica, "basis": basis}


def on_gpu(r: Resolved, gpu: dict, tp: int) -> Resolved | None:
    """The same spec on another GPU at tensor parallel `tp` (one node), with the engine's defaults for that
    GPU and its cheapest catalog price; None when it cannot run there or a max-length sequence does not fit."""
    if gpu["vendor"] not in r.engine["vendors"] or tp > gpu["gpus_per_node"] or r.model["num_attention_heads"] % tp:
        return None
    prices = catalog.prices_for_gpu(gpu["id"])
    price = prices[0]["usd_per_gpu_hour"] if prices else None
    bd = batch_defaults(r.engine, gpu)
    # the spec's expert split kept in kind over the new replica (experts over all its GPUs, attention data-parallel
    # in each when the spec's is): its EP / attention groups as such cannot exceed `tp` GPUs
    moe = r.model.get("moe") or {}
    ep = tp if r.ep > 1 and tp > 1 and moe.get("num_experts", 0) % tp == 0 else 1
    adp = tp if r.attention_dp > 1 and ep > 1 else 1
    v = evolve(r, gpu=gpu, tp=tp, pp=1, gpus_per_replica=tp, gpus_per_node=gpu["gpus_per_node"], ep=ep, attention_dp=adp,
               moe_all_to_all=r.moe_all_to_all if ep > 1 else "default", two_batch_overlap=r.two_batch_overlap and ep > 1,
               max_num_seqs=bd["max_num_seqs"],
               max_num_batched_tokens=max(bd["max_num_batched_tokens"], 0 if r.chunked_prefill else r.max_model_len),
               price_usd_per_gpu_hour=price, price_source=(prices[0]["provider"] if prices else ""))
    from planner.checkpoints import CheckpointError
    from planner.resolve import with_checkpoint

    try:
        v = with_checkpoint(v)
    except CheckpointError:
        return None
    return v if memory_plan(v).fits else None


def best_on_gpu(r: Resolved, gpu: dict) -> Resolved | None:
    """The tensor-parallel size (1, 2, 4, 8) with the most output tokens/s per GPU at saturation."""
    if gpu.get("laptop_derating"):
        return None
    best, best_tps = None, -1.0
    for tp in (1, 2, 4, 8):
        v = on_gpu(r, gpu, tp)
        if v is not None:
            tps = saturation(v)["output_tokens_per_s_per_gpu"]
            if tps > best_tps * 1.05:  # a bigger split must pay for itself
                best, best_tps = v, tps
    return best


def saturation(v: Resolved) -> dict:
    """Maximum throughput of one replica (analytic steady state) and its cost per million output tokens."""
    mem = memory_plan(v)
    _, _, fn = step_function(v)
    off = serving.steady_offline(fn, limits(v, mem), v.input.mean, v.output.mean, tokens_per_step(v))
    tps = off["output_tokens_per_s"] * v.pp
    usd = (v.price_usd_per_gpu_hour * v.gpus_per_replica) if v.price_usd_per_gpu_hour else None
    return {"gpu": v.gpu["id"], "tp": v.tp, "output_tokens_per_s": tps, "output_tokens_per_s_per_gpu": tps / v.gpus_per_replica,
            "usd_per_hour": usd, "usd_per_million_output_tokens": (usd / (tps * 3600) * 1e6) if usd and tps > 0 else None,
            "bound": off["bound"]}


def gpu_comparison(r: Resolved) -> list[dict]:
    """The spec's model, precision, engine and workload at saturation on every catalog GPU it fits."""
    rows = []
    for e in catalog.raw("gpus")["gpus"]:
        v = r if e["id"] == r.gpu["id"] else best_on_gpu(r, e)
        if v is None:
            continue
        row = saturation(v)
        row["planned"] = e["id"] == r.gpu["id"]
        rows.append(row)
    return rows
