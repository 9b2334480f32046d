"""Disaggregated serving: a prefill pool computes prompts and hands their KV cache to a decode pool.

TTFT = queueing and compute at the prefill pool + the KV transfer of the prompt (its KV bytes from the
real architecture — GQA heads, an MLA latent, sliding windows, the KV dtype — over the link's achievable
bandwidth, plus a setup cost) + the wait for the first decode step at the decode pool. ITL comes from the
decode pool's batches alone (no prompt chunks in them). Both pools are simulated with the same
continuous-batching simulator as aggregated plans, request by request: the same seed draws the same prompt
lengths in both, so the i-th request's prefill time, transfer and decode wait add up per request and the
percentiles (and the breach point, and plan) mean what they mean for an aggregated plan.

Memory per pool: a decode replica holds the KV of every sequence in flight (prompt + output); a prefill
replica only what it is computing (its own engine limits), plus the weights in both.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from planner.physics import serving
from planner.physics.serving import Lengths
from planner.resolve import evolve


def gpu_excluded(gpu: dict) -> str | None:
    """Why a disaggregated fleet cannot run on this GPU (None: it can): planfile renders the pools for NVIDIA
    Dynamo, whose runtime images are CUDA builds. One rule for check (PF122) and plan (no such candidate)."""
    if gpu.get("vendor") != "nvidia":
        return (f"disaggregated fleets are rendered for NVIDIA Dynamo, whose runtime images are CUDA builds; "
                f"{gpu['id']} is a {str(gpu.get('vendor')).upper()} GPU")
    return None


LINK_DEFAULTS = {  # (GB/s per GPU, setup ms); nvlink derives from the GPU
    "rdma": (50.0, 1.0),  # 400 Gb/s InfiniBand NIC per GPU
    "roce": (50.0, 1.0),  # 400 Gb/s RoCE NIC per GPU
    "tcp": (10.0, 5.0),  # 100 GbE at ~80 % goodput
}
NVLINK_SETUP_MS = 0.5
ONE_TOKEN = Lengths(1, 1, 1, 1)


def resolve_pools(spec: dict, default) -> dict:
    """The disaggregation section with every default taken (and recorded through `default`)."""
    out = {}
    for role in ("prefill", "decode"):
        p = spec[role]
        par = p.get("parallelism") or {}
        tp, pp = par.get("tensor", 1), par.get("pipeline", 1)
        out[role] = {"replicas": int(p["replicas"]), "tp": int(tp), "pp": int(pp),
                     "gpus_per_replica": int(p.get("gpus_per_replica", tp * pp))}
        for key, name in (("expert", "ep"), ("attention_data", "adp")):
            if par.get(key, 1) > 1:
                out[role][name] = int(par[key])
        if "max_num_seqs" in p:
            out[role]["max_num_seqs"] = int(p["max_num_seqs"])
        if "max_num_batched_tokens" in p:
            out[role]["max_num_batched_tokens"] = int(p["max_num_batched_tokens"])
    t = spec.get("transfer") or {}
    link = t.get("link") or default("/disaggregation/transfer/link", "rdma", "RDMA between the pools' nodes")
    out["transfer"] = {"link": link, "gb_per_s": t.get("gb_per_s"), "setup_ms": t.get("setup_ms"),
                       "connector": t.get("connector") or default("/disaggregation/transfer/connector", "nixl", "NIXL: vLLM's and SGLang's common connector")}
    out["router"] = spec.get("router") or default("/disaggregation/router", "dynamo", "NVIDIA Dynamo")
    return out


def pool(r, role: str):
    """The resolved spec as one pool of its own (its parallelism, replicas and engine limits)."""
    p = r.disagg[role]
    kw = dict(tp=p["tp"], pp=p["pp"], ep=p.get("ep", 1), attention_dp=p.get("adp", 1), gpus_per_replica=p["gpus_per_replica"],
              replicas=p["replicas"], replicas_min=p["replicas"], max_num_seqs=p["max_num_seqs"], autoscale=None, disagg=None,
              role=role)
    if p.get("max_num_batched_tokens"):
        kw["max_num_batched_tokens"] = p["max_num_batched_tokens"]
    if role == "prefill":
        # a prefill replica computes the prompt and the first token, then hands the sequence over
        kw["output"] = ONE_TOKEN
    return evolve(r, **kw)


def link(r) -> tuple[float, float, int]:
    """(bytes/s per GPU link, setup seconds, parallel links) of the KV transfer: each tensor-parallel rank
    sends its own shard over its own NIC, so a transfer uses min(TP prefill, TP decode) links at once (per
    attention group when the pools run attention data parallelism)."""
    t = r.disagg["transfer"]
    if t["link"] == "nvlink":
        ic = r.gpu["interconnect"]
        bw = (ic.get("nvlink_gb_per_s_bidirectional") or 0) / 2 * 0.75 or 25.0
        setup = NVLINK_SETUP_MS
    else:
        bw, setup = LINK_DEFAULTS[t["link"]]
    bw = t["gb_per_s"] or bw
    setup = t["setup_ms"] if t["setup_ms"] is not None else setup
    # with attention data parallelism a sequence's KV lives on its own attention group (tensor /
    # attention_data GPUs), so that many NICs carry it
    n = min(r.disagg[role]["tp"] // r.disagg[role].get("adp", 1) for role in ("prefill", "decode"))
    return bw * 1e9, setup / 1e3, max(n, 1)


def kv_bytes(r, prompt_tokens) -> np.ndarray:
    """KV bytes of whole prompts, all layers and heads (what a prefill replica sends)."""
    from dataclasses import replace

    from planner.physics import arch, memory
    from planner.resolve import kv_memory_layout

    lay = kv_memory_layout(r)[0]  # the blocks the prefill engine holds are what it sends
    lay = replace(lay, pool_ratio=0.0)  # a ratio sizes pools; the blocks sent are the sequence's own
    return memory.kv_bytes_per_seq_per_gpu(lay, np.asarray(prompt_tokens, dtype=float), arch.KV_DTYPE_BYTES[r.kv_cache],
                                           1, 1, 1)


def transfer_s(r, prompt_tokens) -> np.ndarray:
    bw, setup, n = link(r)
    return setup + kv_bytes(r, prompt_tokens) / (bw * n)


_POOL_CACHE: dict = {}


def _pool_model(r, role):
    """(pool Resolved, memory, step function) — cached per configuration within a process."""
    from planner.evaluate import memory_plan, step_function

    key = (id(r), role)
    hit = _POOL_CACHE.get(key)
    if hit is not None and hit[0] is r:
        return hit[1]
    v = pool(r, role)
    mem = memory_plan(v)
    _, _, fn = step_function(v)
    if role == "decode":
        fn = _decode_only(fn)
    out = (v, mem, fn)
    if len(_POOL_CACHE) > 64:
        _POOL_CACHE.clear()
    _POOL_CACHE[key] = (r, out)
    return out


def _decode_only(base):
    """The decode pool's step model: the prompt's KV arrives computed, so no prefill compute here."""
    from planner.physics.step import derived

    def make(f):
        return lambda decode, dctx, prefill, pctx: f(decode, dctx, 0, 0.0)

    return derived(base, "decode pool: prompt KV computed elsewhere", make)


def _limits(v, mem, role):
    from planner.evaluate import limits

    lim = limits(v, mem)
    if role == "decode":
        # a handed-over prompt arrives with its KV computed and enters the batch at once: the decode engine's
        # token budget counts new tokens only (vLLM schedules a remote-KV request with its prompt already
        # computed; SGLang's decode server adds transferred requests to the running batch), so prompts never
        # wait for budget here — only for a batch slot and KV blocks
        lim = replace(lim, token_budget=int(max(lim.token_budget, lim.max_seqs * (v.input.max + 1))))
    return lim


def capacity(r) -> dict:
    """Saturation of each pool (requests/s over the pool) and the fleet's (the slower pool's)."""
    out = {}
    for role in ("prefill", "decode"):
        v, mem, fn = _pool_model(r, role)
        if not mem.fits or mem.kv_tokens <= 0:
            out[role] = 0.0
            continue
        off = serving.steady_offline(fn, _limits(v, mem, role), v.input.mean, v.output.mean)
        out[role] = off["requests_per_s"] * v.replicas * v.pp
    out["fleet"] = min(out["prefill"], out["decode"])
    return out


def run(r, rate_fleet: float, n_requests: int, seed: int = 0, finite: bool = False) -> dict:
    """Simulated percentiles of the disaggregated fleet at `rate_fleet` req/s (Poisson): the same fields as
    evaluate.run_load, plus the TTFT parts."""
    from planner.evaluate import _pcts, efficiency_for
    from planner import accuracy

    sims = {}
    cap = capacity(r)
    inf = {f"p{q}": math.inf for q in (50, 90, 95, 99)}
    n = n_requests
    common = dict(seed=seed, prefix_tokens=r.prefix_tokens, prefix_hit=r.prefix_hit)
    if finite and r.requests:
        n = max(1, math.ceil(r.requests / min(r.disagg["prefill"]["replicas"], r.disagg["decode"]["replicas"])))
        common["warmup_frac"] = 0.0
    from planner.evaluate import horizon, per_group

    scale = {}
    for role in ("prefill", "decode"):
        v, mem, fn = _pool_model(r, role)
        per = rate_fleet / (v.replicas * v.pp) if rate_fleet else None
        if per and cap[role] > 0 and per > 2 * cap[role] / (v.replicas * v.pp):
            sims[role] = None  # the queue grows without bound
            continue
        # one attention group of a replica (evaluate.per_group), at its share of the load, for long enough
        groups = max(v.attention_dp, 1)
        rate = per / groups if per else None
        sfn, slim = per_group(fn, _limits(v, mem, role), groups, rate, v.input, v.output)
        scale[role] = groups
        kw = common if role == "prefill" else dict(common, prefix_hit=0.0)
        m = max(1, math.ceil(n / groups)) if finite and r.requests else horizon(sfn, slim, v.input, v.output, rate, n)
        sims[role] = serving.simulate(sfn, slim, v.input, v.output, rate_rps=rate, n_requests=m, **kw)
    request_s = efficiency_for(r.engine["id"], r.gpu, r.calibration)["request_overhead_ms"] / 1e3 * accuracy.time_scale(r)
    sp, sd = sims["prefill"], sims["decode"]
    if sp is None or sd is None:
        itl = (float(sd.pct("itl", 95)) * 1e3) if sd is not None else math.inf
        return {"ttft_ms": dict(inf, mean=math.inf), "e2e_s": dict(inf, mean=math.inf),
                "itl_ms": {"p50": itl, "p90": itl, "p95": itl, "p99": itl, "mean": itl},
                "output_tokens_per_s": cap["fleet"] * r.output.mean, "requests_per_s": cap["fleet"], "mean_batch": 0.0,
                "preemptions": 0, "overloaded": True, "transfer_ms": None}
    m = min(len(sp.ttft_s), len(sd.ttft_s))
    prompts = sp.prompt_tokens[:m]
    xfer = transfer_s(r, prompts)
    ttft = sp.ttft_s[:m] + xfer + sd.ttft_s[:m]
    e2e = sp.ttft_s[:m] + xfer + sd.e2e_s[:m]
    combined = serving.SimResult(ttft, e2e, sd.itl_s, sd.itl_w, sd.duration_s, sd.output_tokens, min(sp.completed, sd.completed),
                                 sp.preemptions + sd.preemptions, sd.mean_batch, sd.steps, sp.truncated or sd.truncated)
    out = _pcts(combined, request_s)
    dv = r.disagg["decode"]
    g = scale["decode"]
    out["output_tokens_per_s"] = sd.output_tokens_per_s * dv["replicas"] * dv["pp"] * g
    out["requests_per_s"] = (sd.completed / sd.duration_s * dv["replicas"] * dv["pp"] * g) if sd.duration_s else 0.0
    out["mean_batch"] = sd.mean_batch * g
    out["preemptions"] = combined.preemptions
    out["transfer_ms"] = {"mean": float(np.mean(xfer) * 1e3), "p95": float(np.percentile(xfer, 95) * 1e3)}
    out["prefill_ttft_ms"] = {"p95": float(np.percentile(sp.ttft_s[:m], 95) * 1e3)}
    out["decode_wait_ms"] = {"p95": float(np.percentile(sd.ttft_s[:m], 95) * 1e3)}
    if finite and r.requests:
        out["requests_completed"] = combined.completed * min(r.disagg["prefill"]["replicas"], dv["replicas"])
        out["duration_s"] = max(sp.duration_s, sd.duration_s)
    return out


def summary(r, peak_rps: float | None) -> dict:
    """Per-pool memory, capacity and utilisation at the peak, and the transfer of a mean and a p95 prompt."""
    cap = capacity(r)
    out = {"pools": {}, "router": r.disagg["router"], "transfer": dict(r.disagg["transfer"])}
    for role in ("prefill", "decode"):
        v, mem, _ = _pool_model(r, role)
        out["pools"][role] = {"replicas": v.replicas, "tensor": v.tp, "pipeline": v.pp, "gpus_per_replica": v.gpus_per_replica,
                              "gpus": v.replicas * v.gpus_per_replica, "memory": mem.to_json(),
                              "capacity_rps": cap[role], "utilisation_at_peak": (peak_rps / cap[role]) if peak_rps and cap[role] else None}
    bw, setup, n = link(r)
    out["transfer"].update(gb_per_s_effective=bw * n / 1e9, setup_ms=setup * 1e3,
                           mean_prompt_ms=float(transfer_s(r, r.input.mean) * 1e3),
                           p95_prompt_ms=float(transfer_s(r, r.input.p95) * 1e3),
                           mean_prompt_mb=float(kv_bytes(r, r.input.mean) / 1e6))
    out["capacity_rps"] = cap["fleet"]
    out["gpus"] = sum(p["gpus"] for p in out["pools"].values())
    return out
