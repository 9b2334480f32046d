"""Evaluate a resolved spec with the physics: memory, step times, serving percentiles, breach point, cost.

This is the glue between catalog entries and the pure functions of planner.physics; it returns plain
data (the `estimate` of the JSON contract plus details for checks and explain).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from planner import accuracy, catalog
from planner.physics import arch, memory, serving, step
from planner.records import record
from planner.resolve import Resolved, evolve

HOURS_PER_MONTH = 730.0
NVLINK_LATENCY_S = 8e-6  # one small all-reduce over NVLink/NVSwitch (custom all-reduce kernels: 5-10 us)
PCIE_LATENCY_S = 25e-6  # through the PCIe root complex
NET_LATENCY_S = 30e-6  # InfiniBand/RoCE between nodes
PCIE_GB_PER_S = {3: 12.0, 4: 25.0, 5: 50.0, 6: 100.0}  # effective per direction, x16 (theoretical 16/32/64/128)
NET_GB_PER_S = 50.0  # 400 Gb/s NIC per GPU
ENGINE_START_S = 60.0
MAX_SIM_REQUESTS = 20_000  # closed loops beyond this are simulated with this many requests  # process start, CUDA graphs capture, warm-up: added to weight load time


def math_precision(weights: str, gpu: dict) -> str:
    """Precision the matmuls run at: FP8/INT8/FP4 only where the GPU has native tensor cores for it;
    otherwise the weights are dequantized in the kernel and the math is 16-bit (A100 runs FP8 and
    INT4 checkpoints weight-only, through Marlin kernels)."""
    if weights in ("fp8", "int8", "fp4") and weights in gpu["native_precisions"]:
        return weights
    return "bf16"


def link(gpu: dict, tp: int, gpus_per_node: int) -> tuple[float, float, str]:
    """(bytes/s per direction, latency s, kind) of the tensor-parallel group's links."""
    ic = gpu["interconnect"]
    if tp > gpus_per_node:
        return NET_GB_PER_S * 1e9, NET_LATENCY_S, "network"
    if ic.get("nvlink_gb_per_s_bidirectional") and tp <= ic.get("nvlink_domain_gpus", 1):
        return ic["nvlink_gb_per_s_bidirectional"] / 2 * 1e9, NVLINK_LATENCY_S, "nvlink"
    return PCIE_GB_PER_S.get(ic.get("pcie_gen") or 4, 25.0) * 1e9, PCIE_LATENCY_S, "pcie"


# the scale-up fabric's name per vendor, for output: link()'s kind "nvlink" is any GPU-to-GPU fabric the
# catalog gives (interconnect.nvlink_*: NVLink on NVIDIA, Infinity Fabric on AMD Instinct, ICI on TPU)
FABRIC_NAMES = {"nvidia": "NVLink", "amd": "Infinity Fabric", "google": "ICI", "intel": "on-chip RoCE"}


def link_name(gpu: dict, kind: str) -> str:
    """The link kind as a reader knows it on this GPU: NVLink, Infinity Fabric, PCIe, the network."""
    if kind == "nvlink":
        return FABRIC_NAMES.get(gpu.get("vendor"), "the GPU fabric")
    return {"pcie": "PCIe", "network": "the network"}.get(kind, kind)


PRECISION_CLASS = {"bf16": "16bit", "fp16": "16bit", "fp8": "8bit", "int8": "8bit", "fp4": "4bit", "int4": "4bit"}


def efficiency_for(engine: str, gpu: dict, calibration: dict | None = None, weights: str = "bf16") -> dict:
    """Host costs and the engine/vendor kernel scale for this GPU and weight precision (catalog, or the spec's
    calibration file). The catalog's kernel scale may differ per precision class (16-, 8-, 4-bit kernels)."""
    eff = catalog.efficiency(engine, gpu["vendor"])
    ks = eff["kernel_scale"]
    if isinstance(ks, dict):
        eff["kernel_scale"] = float(ks.get(PRECISION_CLASS.get(weights, "16bit"), 1.0))
    if calibration:
        for k in ("step_overhead_ms", "prefill_overhead_ms", "request_overhead_ms", "kernel_scale", "floor_scale"):
            if k in calibration:
                eff[k] = float(calibration[k])
        if "kernel_scale" in calibration:
            eff["vendor_scale"] = 1.0  # a calibration measured on this GPU already includes the vendor
        eff["key"] = "calibration file"
    der = gpu.get("laptop_derating")
    if der:
        f = der["thermal"] * der["power"] * der["sustained"]
        eff = dict(eff, kernel_scale=eff["kernel_scale"] / f, derating=f)
    return eff


def system(r: Resolved) -> step.System:
    """The step model's hardware, kernel curves and engine host costs for a resolved spec."""
    from planner import kernels

    gpu = r.gpu
    eff = efficiency_for(r.engine["id"], gpu, r.calibration, r.weights)
    ck = r.checkpoint
    mp = math_precision(r.weights, gpu)
    expert_fmt = ck.runtime_format if ck.format != "mxfp4" else "mxfp4"
    ks = kernels.kernel_set(gpu, r.engine["id"], ck.runtime_format, expert_fmt, r.kv_cache, r.tp, r.ep, r.pp, r.gpus_per_node,
                            ar_group=r.tp // max(r.attention_dp, 1))
    ts = accuracy.time_scale(r)  # slo.confidence: every step time at the pessimistic edge of the error band
    dp = deepep_of(r)
    from planner.resolve import mlp_groups

    groups = mlp_groups(r)

    def slow(c):
        return None if c is None or ts == 1.0 else step.Collective(c.latency_s * ts, c.small_bw / ts, c.large_bw / ts, c.knee_bytes)

    return step.System(
        tp=r.tp, pp=r.pp, ep=r.ep, mem_bw=gpu["memory_bandwidth_tb_per_s"] * 1e12,
        linear_flops=gpu["dense_tflops"][mp] * 1e12, attn_flops=gpu["dense_tflops"]["bf16"] * 1e12,
        gemm=ks.gemm, gemm16=ks.gemm16, moe=ks.moe, moe_imbalance=ks.moe_imbalance,
        decode_attn_t0_s=ks.decode_attn[0], decode_attn_e=ks.decode_attn[1],
        prefill_attn_t0_s=ks.prefill_attn[0], prefill_attn_e=ks.prefill_attn[1], prefill_attn_s_half=ks.prefill_attn[2],
        allreduce=slow(ks.allreduce) or ks.allreduce, alltoall=slow(ks.alltoall) or ks.alltoall, p2p=slow(ks.p2p) or ks.p2p,
        weight_bytes=ck.body_bytes_per_param, expert_weight_bytes=ck.expert_bytes_per_param,
        kv_bytes=arch.KV_DTYPE_BYTES[r.kv_cache],
        step_overhead_s=eff["step_overhead_ms"] / 1e3 * ts, prefill_overhead_s=eff["prefill_overhead_ms"] / 1e3 * ts,
        kernel_scale=eff["kernel_scale"] * eff["vendor_scale"] * ts, floor_scale=eff.get("floor_scale", 1.0),
        attention_dp=getattr(r, "attention_dp", 1) or 1, deepep=dp[0] if dp else None,
        two_batch_overlap=bool(r.two_batch_overlap), dense_groups=groups[0], shared_groups=groups[1])


def deepep_of(r: Resolved) -> tuple | None:
    """(step.DeepEP, provenance) when the replica's expert all-to-all runs on DeepEP, else None."""
    from planner import kernels
    from planner.resolve import deepep_mode, deepep_on

    if not deepep_on(r):
        return None
    moe = r.model["moe"]
    fp8 = (r.checkpoint.expert_bytes_per_param or r.checkpoint.body_bytes_per_param) < 2.0
    got = kernels.deepep(r.gpu, r.engine["id"], deepep_mode(r), r.ep, r.gpus_per_node, r.model["hidden_size"],
                         moe["num_experts"], moe["experts_per_token"], fp8)
    return got if got[0] is not None else None


def provenance(r: Resolved) -> tuple:
    """Where each kernel curve of this configuration comes from (measured here, or borrowed)."""
    from planner import kernels

    ck = r.checkpoint
    ks = kernels.kernel_set(r.gpu, r.engine["id"], ck.runtime_format, ck.runtime_format if ck.format != "mxfp4" else "mxfp4",
                            r.kv_cache, r.tp, r.ep, r.pp, r.gpus_per_node, ar_group=r.tp // max(r.attention_dp, 1))
    dp = deepep_of(r)
    if dp:
        from dataclasses import replace

        ks = replace(ks, provenance=ks.provenance + dp[1])
    return ks


@record(eq=False)
class Memory:
    """Per-GPU memory plan of one replica: weights, activations, runtime reserve and the KV pool it leaves."""

    total_gb: float
    usable_gb: float
    weights_gb: float
    activations_gb: float
    runtime_gb: float
    kv_pool_gb: float
    kv_bytes_per_token: float  # whole model, before sharding
    kv_bytes_per_token_per_gpu: float
    seq_bytes_mean: float  # per GPU, one sequence at mean context
    seq_bytes_max: float  # per GPU, one sequence at max_model_len
    max_seqs_mean: int
    max_seqs_max_len: int
    kv_tokens: int  # pool in tokens per GPU (full-attention equivalent at mean context)
    fits: bool
    shortfall_gb: float  # > 0: how much is missing

    def to_json(self) -> dict:
        return {"usable_gb_per_gpu": round(self.usable_gb, 2), "weights_gb_per_gpu": round(self.weights_gb, 2),
                "kv_cache_gb_per_gpu": round(max(self.kv_pool_gb, 0.0), 2), "kv_bytes_per_token": int(self.kv_bytes_per_token),
                "max_concurrent_sequences": int(self.max_seqs_mean), "fits": self.fits,
                "total_gb_per_gpu": round(self.total_gb, 2), "activations_gb_per_gpu": round(self.activations_gb, 2),
                "runtime_gb_per_gpu": round(self.runtime_gb, 2),
                "max_concurrent_sequences_at_max_model_len": int(self.max_seqs_max_len),
                "shortfall_gb_per_gpu": round(max(self.shortfall_gb, 0.0), 2)}


def memory_plan(r: Resolved) -> Memory:
    m, gpu, eng = r.model, r.gpu, r.engine
    p = arch.params(m)
    from planner.resolve import kv_memory_layout

    lay = kv_memory_layout(r)[0]  # what the engine's pool holds (windowed layers capped or not)
    total = gpu["memory_gib"] * memory.GIB
    ck = r.checkpoint
    adp = max(r.attention_dp, 1)
    tp_attn = r.tp // adp  # GPUs of one attention group: the KV heads (an MLA latent: not at all) split over these
    from planner.resolve import mlp_groups

    w = float(memory.weight_bytes_per_gpu(p, ck.body_bytes_per_param, r.tp, r.pp, ck.expert_bytes_per_param, adp, mlp_groups(r)))
    act = float(memory.activation_bytes_per_gpu(m["hidden_size"], m["intermediate_size"], m["vocab_size"],
                                                 r.max_num_batched_tokens, min(r.max_num_seqs, 1024), r.tp))
    runtime = eng["runtime_overhead_gib"] * memory.GIB
    pool = float(memory.kv_pool_bytes_per_gpu(eng["memory_mode"], total, r.gpu_memory_utilization, w, act, runtime))
    kvb = arch.KV_DTYPE_BYTES[r.kv_cache]
    seq_mean = float(memory.kv_bytes_per_seq_per_gpu(lay, r.input.mean + r.output.mean, kvb, tp_attn, r.pp, r.block_size))
    seq_max = float(memory.kv_bytes_per_seq_per_gpu(lay, r.max_model_len, kvb, tp_attn, r.pp, r.block_size))
    per_tok = float(memory.kv_bytes_per_token_per_gpu(lay, kvb, tp_attn, r.pp))
    # vLLM and SGLang cap their own use at the fraction; TensorRT-LLM's fraction applies to the KV pool only
    usable = total if eng["memory_mode"] == "fraction_of_free_after_weights" else total * r.gpu_memory_utilization
    fits = pool >= seq_max and pool > 0
    shortfall = (seq_max - pool) if not fits else 0.0
    # KV pool in "tokens at the mean context": what the simulator's token accounting uses
    seq_tokens_equiv = max(seq_mean / max(r.input.mean + r.output.mean, 1), 1e-9)
    # each attention group keeps its own sequences: the replica holds attention_dp pools' worth of them
    kv_tokens = int(max(pool, 0) / seq_tokens_equiv) * adp
    return Memory(total / 1e9, usable / 1e9, w / 1e9, act / 1e9, runtime / 1e9, pool / 1e9,
                  arch.kv_bytes_per_token(m, r.kv_cache), per_tok, seq_mean, seq_max,
                  int(memory.max_concurrent_seqs(pool, seq_mean)) * adp, int(memory.max_concurrent_seqs(pool, seq_max)) * adp,
                  kv_tokens, fits, shortfall / 1e9)


def model_shape(m: dict) -> step.ModelShape:
    p = arch.params(m)
    lay = arch.kv_layout(m)
    return step.shape(p, lay, m["hidden_size"], arch.attention_flops_per_ctx_token(m), m)


def step_function(r: Resolved):
    sysm = system(r)
    shp = model_shape(r.model)
    return sysm, shp, step.scalar_step(sysm, shp)


def tokens_per_step(r: Resolved) -> float:
    """Speculative decoding: expected tokens per verification step with k drafts accepted i.i.d. with
    probability a: (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023)."""
    s = r.speculative
    if not s:
        return 1.0
    a, k = s["acceptance_rate"], s["draft_tokens"]
    return float(k + 1) if a >= 1 else (1 - a ** (k + 1)) / (1 - a)


def limit_groups(r: Resolved) -> int:
    """How many times the engine applies its batch limits in one replica: once per attention data-parallel rank
    where every rank is an engine with its own scheduler (vLLM, TensorRT-LLM), once for the replica where the
    limits are the whole server's (SGLang divides them over its DP ranks). catalog engines.yaml dp_attention_limits."""
    return max(r.attention_dp, 1) if r.engine.get("dp_attention_limits", "per_rank") == "per_rank" else 1


def batch_cap(r: Resolved, held_seqs: int) -> int:
    """The engine's batch limit as planfile renders it (--max-num-seqs, --max-running-requests, --max_batch_size):
    the spec's or engine's max_num_seqs, capped at the sequences the replica's KV pool holds at the workload's
    mean context (`held_seqs`, Memory.max_seqs_mean), shared out over the ranks that apply it. With pipeline
    stages every sequence holds KV on each stage and one scheduler counts every micro-batch, so the replica
    holds what one stage does. The simulator runs this same limit (limits), so check predicts the engine that
    render configures. On vLLM the limit is also at most the step's token budget (max_num_batched_tokens: its
    SchedulerConfig refuses less). A model that does not fit (nothing held) keeps max_num_seqs; a published
    benchmark (kv_batch_cap False) ran with max_num_seqs itself."""
    seqs = int(r.max_num_seqs)
    if r.engine.get("max_seqs_within_token_budget"):
        seqs = min(seqs, int(r.max_num_batched_tokens))  # vLLM refuses a budget below the batch limit
    if not r.kv_batch_cap or held_seqs <= 0:
        return seqs
    return max(1, min(seqs, int(held_seqs) // limit_groups(r)))


def limits(r: Resolved, mem: Memory) -> serving.Limits:
    ve = r.pp  # virtual engines (pipeline micro-batches) per replica
    # attention groups schedule on their own: limits the engine applies per group add up over the replica
    groups = limit_groups(r)
    return serving.Limits(max_seqs=max(int(batch_cap(r, mem.max_seqs_mean) * groups // ve), 1), token_budget=int(r.max_num_batched_tokens * groups),
                          kv_tokens=max(int(mem.kv_tokens // ve), 0), block=r.block_size,
                          no_evict=r.scheduler_policy == "guaranteed-no-evict")


def _pcts(sim: serving.SimResult, request_s: float = 0.0) -> dict:
    """Percentiles of a simulation; `request_s` is the engine's per-request time outside the GPU steps
    (HTTP, tokenization, detokenization), added to every TTFT and end-to-end latency."""
    out = {"ttft_ms": {f"p{q}": (sim.pct("ttft", q) + request_s) * 1e3 for q in (50, 90, 95, 99)},
           "itl_ms": {f"p{q}": sim.pct("itl", q) * 1e3 for q in (50, 90, 95, 99)},
           "e2e_s": {f"p{q}": sim.pct("e2e", q) + request_s for q in (50, 90, 95, 99)}}
    out["ttft_ms"]["mean"] = (float(np.mean(sim.ttft_s)) + request_s) * 1e3 if len(sim.ttft_s) else float("nan")
    out["e2e_s"]["mean"] = float(np.mean(sim.e2e_s)) + request_s if len(sim.e2e_s) else float("nan")
    w = sim.itl_w.sum()
    out["itl_ms"]["mean"] = float((sim.itl_s * sim.itl_w).sum() / w) * 1e3 if w else float("nan")
    return out


HORIZON_FACTOR = 10  # a simulation runs at least this many times the requests a virtual engine holds in steady state


def per_group(fn, lim: serving.Limits, groups: int, rate_rps: float | None = None, inp=None, out=None, tps: float = 1.0,
              concurrency: int | None = None):
    """(step function, limits) of one attention group of a replica: with attention data parallelism every
    group schedules its own sequences (SGLang and vLLM run one scheduler per DP rank) while the expert
    layers step all groups together. One group is simulated at its share of the load (`rate_rps`); each of
    its steps is timed with the other groups at their mean load (mean field: Little's law on this load,
    decode sequences = rate x output tokens x step, prompt tokens per step = rate x input tokens x step, at
    the step those loads give; a closed loop of `concurrency` sequences per group keeps them all in flight,
    one prompt per request's life; without either (every request queued) the others run the saturated
    batch). Simulating the replica as one scheduler instead would need `groups` times as many requests to
    reach its steady state (evaluate.horizon)."""
    if groups <= 1:
        return fn, lim
    lim_g = replace(lim, max_seqs=max(lim.max_seqs // groups, 1), token_budget=max(lim.token_budget // groups, 1),
                    kv_tokens=lim.kv_tokens // groups)
    d_bar = p_bar = 0.0
    steps = out.mean / tps if out is not None else 1.0  # decode steps of one request
    if concurrency:
        d_bar = min(float(concurrency), float(lim_g.max_seqs)) * steps / (steps + 1)
        p_bar = min(float(concurrency), float(lim_g.max_seqs)) * inp.mean / (steps + 1)
    elif not rate_rps and inp is not None:
        off = serving.steady_offline(fn, lim, inp.mean, out.mean, tps)
        d_bar = off["batch"] / groups
        p_bar = d_bar * inp.mean / steps
    elif rate_rps:
        d_bar, p_bar, _ = _mean_load(fn, lim_g, inp, out, rate_rps, tps, scale=groups)
    others_d, others_p = (groups - 1) * d_bar, (groups - 1) * p_bar

    def make(h):
        return lambda decode, dctx, prefill, pctx: h(decode + others_d, dctx, prefill + others_p, pctx)

    return step.derived(fn, f"one of {groups} attention groups, the others at {others_d!r} decode / {others_p!r} prompt tokens",
                        make), lim_g


def _mean_load(fn, lim: serving.Limits, inp, out, rate_rps: float, tps: float = 1.0, scale: float = 1.0) -> tuple:
    """(decode sequences, prompt tokens per step, step seconds) one engine carries at `rate_rps` by Little's
    law, at the step those loads give (a fixed point; capped at the engine's limits): d = rate x output
    steps x t, p = rate x input tokens x t. `scale` times the loads for the step (the replica's whole batch
    when one of `scale` attention groups is simulated)."""
    ctx = inp.mean + out.mean / 2
    t = float(fn(scale * 1.0, ctx, 0, 0.0))
    d = p = 0.0
    for _ in range(30):
        d = min(rate_rps * out.mean / tps * t, float(lim.max_seqs))
        p = min(rate_rps * inp.mean * t, float(lim.token_budget))
        t_new = float(fn(scale * d, ctx, scale * p, inp.mean / 2))
        if abs(t_new - t) <= 1e-6 * t:
            t = t_new
            break
        t = t_new
    return d, p, t


def horizon(fn, lim: serving.Limits, inp, out, rate_rps: float, n: int, tps: float = 1.0) -> int:
    """Requests to simulate at `rate_rps` for a steady state: at least HORIZON_FACTOR x the sequences in
    flight by Little's law at this load (`_mean_load`), so the warm-up share the percentiles leave out covers
    the ramp; at most MAX_SIM_REQUESTS."""
    if not rate_rps:
        return n
    d, _, _ = _mean_load(fn, lim, inp, out, rate_rps, tps)
    held = lim.kv_tokens / max(inp.mean + out.mean / 2 + lim.block / 2, 1.0)  # sequences the KV pool holds
    if d >= min(float(lim.max_seqs), held):
        return n  # past capacity: no steady state to reach; the run's queue shows the overload
    return int(min(max(n, math.ceil(HORIZON_FACTOR * d)), MAX_SIM_REQUESTS))


def run_load(r: Resolved, mem: Memory, fn, *, rate_fleet: float = 0.0, conc_fleet: int = 0,
             n_requests: int = 1500, seed: int = 0, finite: bool = False) -> dict:
    """Simulate one virtual engine at its share of the fleet load and scale back up.

    An open-loop load above twice the analytic saturation rate is not simulated: its queue grows
    without bound (rho > 1), so TTFT and end-to-end latency are infinite and decode runs at the batch
    limit. A closed loop is simulated with at most MAX_SIM_REQUESTS requests (bounded memory).
    finite: simulate the spec's finite run (workload.requests) instead of the steady state."""
    if r.disagg:
        from planner import disagg

        if not rate_fleet:  # offline or a load given as in-flight requests: the fleet at 90 % of its capacity
            rate_fleet = 0.9 * disagg.capacity(r)["fleet"]
        return disagg.run(r, rate_fleet, n_requests, seed, finite)
    ve_count = r.replicas * r.pp
    lim = limits(r, mem)
    tps = tokens_per_step(r)
    drains = None  # an open-loop load below the saturation rate: its queue drains in steady state
    if rate_fleet and not (finite and r.requests):
        off = serving.steady_offline(fn, lim, r.input.mean, r.output.mean, tps)
        drains = rate_fleet / ve_count < off["requests_per_s"]
        if off["requests_per_s"] > 0 and rate_fleet / ve_count > 2 * off["requests_per_s"]:
            inf = {f"p{q}": math.inf for q in (50, 90, 95, 99)}
            itl = off["step_s"] / tps * 1e3
            return {"ttft_ms": dict(inf, mean=math.inf), "e2e_s": dict(inf, mean=math.inf),
                    "itl_ms": {"p50": itl, "p90": itl, "p95": itl, "p99": itl, "mean": itl},
                    "output_tokens_per_s": off["output_tokens_per_s"] * ve_count,
                    "requests_per_s": off["requests_per_s"] * ve_count, "mean_batch": off["batch"], "preemptions": 0,
                    "overloaded": True, "drains": False}
    common = dict(seed=seed, prefix_tokens=r.prefix_tokens, prefix_hit=r.prefix_hit, tokens_per_step=tps)
    groups = max(r.attention_dp, 1)
    # the simulated engine: one attention group (a whole replica without)
    sfn, slim = per_group(fn, lim, groups, rate_fleet / ve_count / groups if rate_fleet else None, r.input, r.output, tps,
                          concurrency=max(1, round(conc_fleet / ve_count / groups)) if conc_fleet and not rate_fleet else None)
    units = ve_count * groups
    if finite and r.requests:
        # a finite run (workload.requests): the fleet's N requests, each simulated engine its share, all counted
        common.update(n_requests=max(1, math.ceil(r.requests / units)), warmup_frac=0.0)
    if rate_fleet:
        common.setdefault("n_requests", horizon(sfn, slim, r.input, r.output, rate_fleet / units, n_requests, tps))
        sim = serving.simulate(sfn, slim, r.input, r.output, rate_rps=rate_fleet / units, **common)
    elif r.mode == "offline" and finite and r.requests:
        sim = serving.simulate(sfn, slim, r.input, r.output, **common)  # every request queued at t = 0
    else:
        c = max(1, round(conc_fleet / units))
        common.setdefault("n_requests", min(max(n_requests, 4 * c), MAX_SIM_REQUESTS))
        sim = serving.simulate(sfn, slim, r.input, r.output, concurrency=c, **common)
    out = _pcts(sim, efficiency_for(r.engine["id"], r.gpu, r.calibration)["request_overhead_ms"] / 1e3 * accuracy.time_scale(r))
    out["output_tokens_per_s"] = sim.output_tokens_per_s * units
    out["requests_per_s"] = (sim.completed / sim.duration_s * units) if sim.duration_s else 0.0
    out["mean_batch"] = sim.mean_batch * groups
    out["preemptions"] = sim.preemptions * units
    if drains is not None:
        out["drains"] = drains
    if finite and r.requests:
        out["requests_completed"] = sim.completed * units
        out["duration_s"] = sim.duration_s
    return out


LOAD_REQUESTS = 1500  # requests simulated per load point: check, sweep, plan and the report's curves alike


def planned_load(r: Resolved, off: dict | None = None) -> float:
    """The fleet load check evaluates, on the spec's load axis: peak req/s (open loop), peak requests in
    flight (closed loop), or every sequence the pools hold (offline)."""
    if r.mode == "rate":
        return r.rate_rps * r.peak_factor
    if r.mode == "concurrency":
        return float(int(r.concurrency * r.peak_factor))
    return float(int(max((off or {}).get("batch", 1.0), 1) * r.replicas * r.pp))


def check_load(r: Resolved, mem: Memory, fn) -> float:
    """planned_load with an offline spec's steady state computed: the load check's verdict is judged at (evaluate
    and plan.passes both read it; offline, every sequence the pools hold at saturation, not one per replica)."""
    if r.mode != "offline":
        return planned_load(r)
    return planned_load(r, serving.steady_offline(fn, limits(r, mem), r.input.mean, r.output.mean, tokens_per_step(r)))


def perf_at(r: Resolved, mem: Memory, fn, load: float) -> dict:
    """Simulated throughput and latency percentiles at one fleet load on the spec's load axis. Every
    number of that kind (check at peak, sweep, the report's latency curve) comes from this one call."""
    if r.mode == "rate":
        return run_load(r, mem, fn, rate_fleet=load, n_requests=LOAD_REQUESTS, finite=True)
    return run_load(r, mem, fn, conc_fleet=int(round(load)), n_requests=LOAD_REQUESTS, finite=True)


def slo_ok(perf: dict, slo: dict) -> bool:
    if slo.get("queue") == "drains" and not queue_drains(perf):
        return False
    for metric, targets in slo.items():
        if metric not in ("ttft_ms", "itl_ms", "e2e_s"):
            continue
        for q, target in targets.items():
            got = perf[metric].get(q)
            if got is None or not (got <= target):
                return False
    return True


def breach_point(r: Resolved, mem: Memory, fn, hi_hint: float, peak: tuple[float, dict] | None = None) -> float:
    """Highest fleet arrival rate (req/s) at which every SLO percentile holds (RadarOS ttftBreachPoint).

    Bisection on the simulator (600-request probes); 0 when even a trickle breaks an SLO. Without latency
    SLOs the breach point is where the queue stops draining (saturation throughput). `peak` (rate, perf) is
    the spec's own run at its peak (perf_at: the full steady-state horizon), which brackets the search: the
    breach point is at or above the peak exactly when that run holds every SLO, so PF401's verdict, the
    headroom and the breach point never disagree (probes alone once put the breach point at the peak of a
    spec whose ITL SLO broke there).
    """
    slo = judged_slos(r)  # every SLO, and a queue that drains (saturation, when the spec states none)
    lo, hi = 0.0, max(hi_hint, 1e-3)
    n = 600
    broken = False  # hi is known to break an SLO
    if peak is not None and peak[0] > 0:
        rate, perf = peak
        if slo_ok(perf, slo):
            lo, hi = rate, (hi if hi > rate * 1.05 else rate * 1.5)
        else:
            hi, broken = rate, True
    if not broken:
        # grow hi until it breaks
        for _ in range(20):
            if not slo_ok(run_load(r, mem, fn, rate_fleet=hi, n_requests=n), slo):
                break
            lo, hi = hi, hi * 2
        else:
            return hi
    for _ in range(10):
        mid = (lo + hi) / 2
        if slo_ok(run_load(r, mem, fn, rate_fleet=mid, n_requests=n), slo):
            lo = mid
        else:
            hi = mid
        if hi - lo < 0.02 * hi:
            break
    return lo


def roofline(r: Resolved, sysm: step.System, shp: step.ModelShape, batch: float) -> dict:
    ridge = float(sysm.linear_flops / sysm.mem_bw)
    dec = step.step_components(sysm, shp, max(batch, 1), r.input.mean + r.output.mean / 2, 0, 0)
    pre = step.step_components(sysm, shp, 0, 0, r.input.mean, r.input.mean / 2)
    return {
        "ridge_flops_per_byte": round(ridge, 1),
        "peak_tflops": float(sysm.linear_flops) / 1e12, "memory_tb_per_s": float(sysm.mem_bw) / 1e12,
        "decode": {"batch": round(float(batch), 1), "step_ms": float(dec["total_s"]) * 1e3,
                   "intensity_flops_per_byte": round(float(dec["intensity_flops_per_byte"]), 2),
                   "bottleneck": str(step.bottleneck(dec)),
                   "attained_tflops": float(dec["flops_per_gpu"] / dec["total_s"]) / 1e12,
                   "compute_ms": float(dec["compute_s"]) * 1e3, "memory_ms": float(dec["memory_s"]) * 1e3,
                   "comm_ms": float(dec["comm_s"]) * 1e3, "overhead_ms": float(dec["overhead_s"]) * 1e3},
        "prefill": {"tokens": int(r.input.mean), "time_ms": float(pre["total_s"]) * 1e3,
                    "intensity_flops_per_byte": round(float(pre["intensity_flops_per_byte"]), 2),
                    "bottleneck": str(step.bottleneck(pre)),
                    "attained_tflops": float(pre["flops_per_gpu"] / pre["total_s"]) / 1e12,
                    "compute_ms": float(pre["compute_s"]) * 1e3, "memory_ms": float(pre["memory_s"]) * 1e3,
                    "comm_ms": float(pre["comm_s"]) * 1e3},
    }


def offload(r: Resolved, mem: Memory) -> dict:
    """Sessions held in HBM vs in a KV offload tier, and the time to restore one session's KV.

    Each GPU restores its own shard over its own link, so restore = per-GPU bytes / tier bandwidth
    (RadarOS's NAND offload model: capacity / session bytes, latency = bytes / bandwidth).
    """
    seq_gpu = mem.seq_bytes_mean
    out = {"hbm_sessions_per_replica": int(mem.max_seqs_mean), "session_mb_per_gpu": round(seq_gpu / 1e6, 2),
           "tier": None}
    off = r.kv_offload
    if off:
        seq_replica = seq_gpu * r.gpus_per_replica
        cap = float(off.get("capacity_gb") or 0.0) * 1e9
        out.update({"tier": off["tier"], "capacity_gb_per_replica": cap / 1e9,
                    "tier_sessions_per_replica": int(cap // seq_replica) if seq_replica > 0 else 0,
                    "restore_ms": seq_gpu / (off["bandwidth_gb_per_s"] * 1e9) * 1e3,
                    "idle_sessions": off.get("idle_sessions")})
    return out


def peak_run(r: Resolved) -> bool:
    """Whether evaluate will have performance numbers (the spec's pools fit), with the first simulation evaluate
    makes of an aggregated spec at an arrival rate or a concurrency (its run at the planned peak) already in the
    memo, for a computation forked before evaluate (planner.background) to share it as it would inline."""
    mem = memory_plan(r)
    if not mem.fits or mem.kv_tokens <= 0:
        return False
    if not r.disagg and r.mode in ("rate", "concurrency"):
        _, _, fn = step_function(r)
        perf_at(r, mem, fn, planned_load(r))
    return True


def evaluate(r: Resolved, *, breach: bool = True) -> dict:
    """The estimate of a resolved spec (JSON-contract fields plus details)."""
    mem = memory_plan(r)
    out: dict = {"memory": mem.to_json(), "offload": offload(r, mem), "checkpoint": r.checkpoint.to_json(),
                 "cold_start": cold_start(r), "accuracy": accuracy.to_json(r)}
    sysm, shp, fn = step_function(r)
    gpus = fleet_gpus(r)
    price = r.price_usd_per_gpu_hour
    if not mem.fits or mem.kv_tokens <= 0:
        out["performance"] = None
        out["capacity"] = None
        out["roofline"] = roofline(r, sysm, shp, 1)
        out["cost"] = _cost(r, price, 0.0, 0.0)
        out["efficiency"] = efficiency_for(r.engine["id"], r.gpu, r.calibration)
        return out
    lim = limits(r, mem)
    tps = tokens_per_step(r)
    off = serving.steady_offline(fn, lim, r.input.mean, r.output.mean, tps)
    ve = r.replicas * r.pp
    sat_rps = off["requests_per_s"] * ve
    if r.disagg:
        from planner import disagg

        summ = disagg.summary(r, r.rate_rps * r.peak_factor if r.mode == "rate" else None)
        out["disaggregation"] = summ
        pre = summ["pools"]["prefill"]["memory"]
        if not pre["fits"]:
            out["performance"] = None
            out["capacity"] = None
            out["roofline"] = roofline(r, sysm, shp, 1)
            out["cost"] = _cost(_fleet_view(r), price, 0.0, 0.0)
            out["efficiency"] = efficiency_for(r.engine["id"], r.gpu, r.calibration)
            return out
        sat_rps = summ["capacity_rps"]
        off = dict(off, requests_per_s=sat_rps / ve, output_tokens_per_s=sat_rps * r.output.mean / ve)
    if r.mode == "offline":
        perf = {"output_tokens_per_s": off["output_tokens_per_s"] * ve, "requests_per_s": sat_rps,
                "mean_batch": off["batch"], "batch_bound": off["bound"]}
        sim = perf_at(r, mem, fn, planned_load(r, off))
        for k in ("ttft_ms", "itl_ms", "e2e_s"):
            perf[k] = sim[k]
        if r.requests:  # a finite run's throughput includes its ramp-up and drain
            for k in ("output_tokens_per_s", "requests_per_s", "mean_batch"):
                perf[k] = sim[k]
        normal_tps = perf["output_tokens_per_s"]
    elif r.mode == "concurrency":
        perf = perf_at(r, mem, fn, planned_load(r))
        normal = perf_at(r, mem, fn, float(r.concurrency)) if r.peak_factor != 1 else perf
        normal_tps = normal["output_tokens_per_s"]
    else:
        perf = perf_at(r, mem, fn, planned_load(r))
        normal_tps = r.rate_rps * r.output.mean
    perf["load"] = planned_load(r, off)
    perf["bottleneck"] = None
    rl = roofline(r, sysm, shp, perf.get("mean_batch") or 1)
    perf["bottleneck"] = rl["decode"]["bottleneck"]
    perf["output_tokens_per_s_per_gpu"] = perf["output_tokens_per_s"] / gpus
    perf["saturation_requests_per_s"] = sat_rps
    perf["saturation_output_tokens_per_s"] = off["output_tokens_per_s"] * ve
    out["performance"] = perf
    cost = _cost(_fleet_view(r), price, normal_tps, perf["output_tokens_per_s"])
    cap = {"breach_rps": None, "headroom_pct": None, "peak_rps": None}
    if r.mode == "rate":
        peak_rate = r.rate_rps * r.peak_factor
        cap["peak_rps"] = peak_rate
        if breach:
            b = breach_point(r, mem, fn, hi_hint=max(peak_rate, sat_rps * 0.5), peak=(peak_rate, perf))
            cap["breach_rps"] = b
            cap["headroom_pct"] = (b / peak_rate - 1) * 100 if peak_rate else None
        else:
            # the headroom verdict without the search: do the SLOs hold at the peak plus the required headroom?
            slo = judged_slos(r)
            if slo and peak_rate:
                # a load above one that breaks an SLO breaks it too (more load per replica never meets an SLO less
                # load missed: the rule the fix search bisects by), so a run above a broken one is not simulated —
                # the fix trials are such runs, for the most part (a count too small to keep the SLOs)
                at = peak_rate * (1 + r.settings["headroom_min_pct"] / 100)
                peak_holds = slo_ok(perf, slo)
                cap["holds_with_headroom"] = peak_holds and slo_ok(run_load(r, mem, fn, rate_fleet=at, n_requests=600), slo)
                # the GPUs the cost bills (an autoscaled fleet: what the normal load needs)
                billed = cost.get("gpus_billed") or fleet_gpus(r)
                share = billed / fleet_gpus(r)
                idle_at = r.rate_rps / (1 - r.settings["idle_share_max_pct"] / 100) / share
                broken_below = (not peak_holds and idle_at >= peak_rate) or (not cap["holds_with_headroom"] and idle_at >= at)
                cap["holds_at_idle_limit"] = not broken_below and slo_ok(run_load(r, mem, fn, rate_fleet=idle_at, n_requests=600), slo)
                cap["idle_limit_rps"] = idle_at
    out["capacity"] = cap
    out["roofline"] = rl
    out["cost"] = cost
    out["efficiency"] = efficiency_for(r.engine["id"], r.gpu, r.calibration)
    return out


def throughput_slo(r: Resolved) -> float | None:
    """slo.min_output_tokens_per_s: the output tokens/s the whole fleet must be able to deliver."""
    v = (r.slo or {}).get("min_output_tokens_per_s")
    return float(v) if v else None


def delivered_tokens_per_s(r: Resolved, perf: dict | None, saturation_tps: float | None = None) -> float | None:
    """What the throughput SLO judges: a closed loop's output at its peak in-flight requests; otherwise what the
    fleet delivers when every request is queued (its saturation output: an arrival rate's own throughput is
    only its load's). One rule for PF409 (check) and plan's verdict (plan.passes)."""
    if r.mode == "concurrency":
        return (perf or {}).get("output_tokens_per_s")
    return saturation_tps if saturation_tps is not None else (perf or {}).get("saturation_output_tokens_per_s")


def saturation_tps(r: Resolved, mem: Memory, fn) -> float:
    """The fleet's output tokens/s with every request queued (replicas x pipeline micro-batches of the analytic
    steady state, serving.steady_offline): `performance.saturation_output_tokens_per_s`."""
    if r.disagg:
        from planner import disagg

        return disagg.capacity(r)["fleet"] * r.output.mean
    off = serving.steady_offline(fn, limits(r, mem), r.input.mean, r.output.mean, tokens_per_step(r))
    return off["output_tokens_per_s"] * r.replicas * r.pp


def latency_slos(r: Resolved) -> dict:
    """The spec's latency SLOs (TTFT, ITL, end-to-end) that state a target (PF401 reports these)."""
    return {k: v for k, v in (r.slo or {}).items() if k in ("ttft_ms", "itl_ms", "e2e_s") and v}


DRAIN_TTFT_P95_MS = 60_000.0  # an open-loop queue whose p95 wait passes a minute does not drain (PF410)


def judged_slos(r: Resolved) -> dict:
    """What a load is judged by wherever planfile asks "does the fleet carry this load" (the breach point, plan,
    sweep, the fix search): the spec's latency SLOs and, at an arrival rate, a queue that drains (queue_drains),
    so a spec whose only SLO is ITL (which a full batch keeps) is not carried past saturation. Closed loops and
    offline runs bound their own queues."""
    slo = latency_slos(r)
    if r.mode != "rate":
        return slo
    return {**slo, "queue": "drains"}


def queue_drains(perf: dict | None) -> bool:
    """A run's queue drains: the arrival rate is below the saturation rate (run_load's `drains`: in steady state
    completions keep up with arrivals; a finite simulated run only shows the queue's first minutes), and its p95
    TTFT is finite and within DRAIN_TTFT_P95_MS."""
    if perf is None or perf.get("drains") is False:
        return False
    got = (perf.get("ttft_ms") or {}).get("p95")
    return got is not None and got == got and got <= DRAIN_TTFT_P95_MS


def fleet_gpus(r: Resolved) -> int:
    """GPUs the fleet runs on: both pools of a disaggregated spec, otherwise replicas x GPUs per replica."""
    if r.disagg:
        return sum(r.disagg[p]["replicas"] * r.disagg[p]["gpus_per_replica"] for p in ("prefill", "decode"))
    return r.gpus_per_replica * r.replicas


def _fleet_view(r: Resolved) -> Resolved:
    """The spec as the GPUs it bills: a disaggregated fleet's two pools counted together."""
    if not r.disagg:
        return r
    gpus = fleet_gpus(r)
    return evolve(r, gpus_per_replica=1, replicas=gpus, replicas_min=gpus)


def cold_start(r: Resolved) -> dict:
    """Seconds from pod creation to serving, from where the weights come from (hardware.storage).

    Every pod fetches the whole checkpoint it loads (online quantization downloads the BF16 shards) and
    reads it from the volume it landed on; engine start (process start, CUDA graphs, warm-up) follows.
    hub: download + read on every new pod; staged: the same, in an init container; pvc: the first pod
    fills the claim (download + read), later pods only read it; node-local: read only.
    """
    st = r.storage or {"source": "hub", "read_gb_per_s": r.storage_gb_per_s, "download_gb_per_s": 0.5}
    size = r.checkpoint.download_gb * 1e9
    dl = size / (st["download_gb_per_s"] * 1e9)
    read = size / (st["read_gb_per_s"] * 1e9)
    source = st["source"]
    first_dl = dl if source in ("hub", "staged", "pvc") else 0.0
    scale_dl = dl if source in ("hub", "staged") else 0.0
    return {"source": source, "download_gb": size / 1e9, "download_s": first_dl, "load_s": read,
            "engine_start_s": ENGINE_START_S, "first_start_s": first_dl + read + ENGINE_START_S,
            "scale_out_s": scale_dl + read + ENGINE_START_S}


def _cost(r: Resolved, price: float | None, normal_tps: float, peak_tps: float) -> dict:
    cs = cold_start(r)
    cold = cs["scale_out_s"]
    if price is None:
        return {"usd_per_month": None, "usd_per_million_output_tokens": None, "cold_start_s": cold,
                "first_start_s": cs["first_start_s"]}
    replicas_billed = r.replicas
    if r.autoscale:
        # autoscaled fleets are billed for what the normal load needs plus the warm pool, within [min, max]
        need = r.replicas if not normal_tps or not peak_tps else max(r.replicas_min, math.ceil(r.replicas * normal_tps / max(peak_tps, 1e-9)))
        replicas_billed = min(r.replicas, max(r.replicas_min, need))
    gpus_billed = replicas_billed * r.gpus_per_replica * (1 + r.buffer_pct / 100.0)
    usd_month = gpus_billed * price * HOURS_PER_MONTH
    per_m = usd_month / (normal_tps * 3600 * HOURS_PER_MONTH / 1e6) if normal_tps > 0 else None
    per_m_peak = usd_month / (peak_tps * 3600 * HOURS_PER_MONTH / 1e6) if peak_tps > 0 else None
    return {"usd_per_month": usd_month, "usd_per_million_output_tokens": per_m,
            "usd_per_million_output_tokens_at_peak": per_m_peak, "gpus_billed": gpus_billed,
            "usd_per_gpu_hour": price, "price_source": r.price_source, "cold_start_s": cold,
            "first_start_s": cs["first_start_s"],
            "utilization_pct": (normal_tps / peak_tps * 100) if peak_tps else None}
