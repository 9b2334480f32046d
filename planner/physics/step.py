"""Roofline step times of one scheduler iteration, and tensor/expert-parallel communication.

One iteration of a continuous-batching engine runs `decode` sequences one token each and `prefill`
prompt tokens (chunked prefill) through the model. Its time is

    t = max(GEMM FLOPs / (peak x MFU), weight bytes / (bandwidth x MBU))
      + max(attention FLOPs / (peak x MFU), KV bytes / (bandwidth x MBU)) + t_comm + t_overhead

per pipeline stage (GEMMs and attention are separate kernels, so each has its own roofline); a virtual engine's step passes all pp stages. FLOPs: 2 x active matmul params per
token + attention (QK^T and AV over the context). Bytes: the weights the step touches (MoE: only the
experts the batch routes to) + the KV cache it reads. All arguments broadcast as numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.physics import memory
from planner.physics.arch import KVLayout, Params


@dataclass(frozen=True)
class System:
    """One replica's hardware and engine efficiency; every field a float or a broadcastable array."""

    tp: object
    pp: object
    ep: object
    mem_bw: object  # bytes/s per GPU
    linear_flops: object  # FLOP/s per GPU at the weights' math precision (dense)
    attn_flops: object  # FLOP/s per GPU for attention (16-bit math)
    mbu: object  # achievable fraction of memory bandwidth when streaming weights (GEMMs)
    mfu: object  # achievable fraction of dense peak for large matmuls
    overhead_s: object  # fixed time per iteration: scheduling, launches, sampling
    link_bw: object  # bytes/s per direction between GPUs of a replica
    link_latency_s: object  # per collective
    weight_bytes: object  # bytes per parameter of the transformer body
    kv_bytes: object  # bytes per KV element
    mbu_kv: object = None  # fraction of bandwidth paged-attention kernels reach reading the KV cache (None: mbu)
    expert_weight_bytes: object = None  # bytes per routed-expert parameter (None: weight_bytes)
    act_bytes: float = 2.0  # activations exchanged in collectives (16-bit)
    mfu_half_tokens: float = 64.0  # tokens per GPU at which a GEMM reaches half its asymptotic efficiency


@dataclass(frozen=True)
class ModelShape:
    """What the step model needs of an architecture (from arch.params and arch.kv_layout)."""

    p: Params
    lay: KVLayout
    hidden: int
    attn_flops_per_ctx: float  # per query token, per attended token, per layer
    window_tokens: int


def shape(p: Params, lay: KVLayout, hidden: int, attn_flops_per_ctx: float) -> ModelShape:
    return ModelShape(p, lay, hidden, attn_flops_per_ctx, lay.window_tokens)


def _attended(ctx, lay: KVLayout):
    """Mean attended context per layer: windowed layers see at most the window."""
    ctx = np.asarray(ctx, dtype=float)
    if not lay.window_layers:
        return ctx
    return (ctx * lay.full_layers + np.minimum(ctx, lay.window_tokens) * lay.window_layers) / lay.layers


def experts_touched(num_experts: int, k: int, tokens) -> np.ndarray:
    """Expected distinct experts a batch of `tokens` routes to in one layer: E(1 - (1 - k/E)^T)."""
    if not num_experts:
        return np.zeros_like(np.asarray(tokens, dtype=float))
    t = np.asarray(tokens, dtype=float)
    return num_experts * (1.0 - (1.0 - k / num_experts) ** t)


def comm_time(sys: System, m: ModelShape, tokens) -> np.ndarray:
    """Communication of one pipeline stage for `tokens` tokens.

    Tensor parallel: two all-reduces per layer (after attention and after the MLP), ring algorithm:
    2(N-1)/N x message / link bandwidth + a fixed latency per collective. Expert parallel: a dispatch
    and a combine all-to-all per MoE layer, each moving k/N-remote shares of the token activations.
    """
    tp = np.asarray(sys.tp, dtype=float)
    pp = np.asarray(sys.pp, dtype=float)
    ep = np.asarray(sys.ep, dtype=float)
    tokens = np.asarray(tokens, dtype=float)
    msg = tokens * m.hidden * sys.act_bytes
    layers = m.p.num_layers / pp
    ar = np.where(tp > 1, 2 * (tp - 1) / tp * msg / sys.link_bw + sys.link_latency_s, 0.0)
    t = 2 * layers * ar
    if m.p.moe_layers:
        a2a = np.where(ep > 1, m.p.experts_per_token * msg * (ep - 1) / ep / ep / sys.link_bw + sys.link_latency_s, 0.0)
        t = t + 2 * (m.p.moe_layers / pp) * a2a
    return t


def step_components(sys: System, m: ModelShape, decode, decode_ctx, prefill, prefill_ctx) -> dict:
    """Time components (seconds) of one iteration of one virtual engine.

    decode: sequences decoding one token; decode_ctx: their mean context length.
    prefill: prompt tokens processed this step; prefill_ctx: mean context those tokens attend to
    (a fresh prompt of S tokens in one chunk: S/2).
    """
    p, lay = m.p, m.lay
    tp = np.asarray(sys.tp, dtype=float)
    pp = np.asarray(sys.pp, dtype=float)
    decode = np.asarray(decode, dtype=float)
    prefill = np.asarray(prefill, dtype=float)
    tokens = decode + prefill
    gpus = tp * pp
    # FLOPs per GPU of one stage
    lin = 2.0 * p.active_matmul * tokens + 2.0 * p.logits_matrix * np.maximum(decode, np.minimum(prefill, 1.0))
    attn = m.attn_flops_per_ctx * lay.layers * (decode * _attended(decode_ctx, lay) + prefill * _attended(prefill_ctx, lay))
    tok_gpu = tokens / tp
    eff = sys.mfu * tok_gpu / (tok_gpu + sys.mfu_half_tokens)
    eff = np.maximum(eff, 1e-9)
    # Bytes per GPU of one stage: weights touched + KV read
    touched = experts_touched(p.num_experts, p.experts_per_token, tokens)
    eb = sys.weight_bytes if sys.expert_weight_bytes is None else sys.expert_weight_bytes
    w_bytes = ((p.non_expert - p.embed - p.lm_head) * np.asarray(sys.weight_bytes, dtype=float)
               + p.expert * touched * p.moe_layers * np.asarray(eb, dtype=float) + p.logits_matrix * 2.0)
    # KV bytes one GPU reads for the decode batch (TP head sharding/replication, PP layer split)
    kv_read = decode * _attended(decode_ctx, lay) * memory.kv_bytes_per_token_per_gpu(lay, sys.kv_bytes, tp, pp)
    bw = sys.mem_bw * sys.mbu
    # GEMMs and attention are separate kernels that run one after the other: each has its own roofline.
    gemm_c = lin / gpus / sys.linear_flops / eff
    gemm_m = w_bytes / gpus / bw
    attn_c = attn / gpus / sys.attn_flops / eff
    attn_m = kv_read / (sys.mem_bw * (sys.mbu if sys.mbu_kv is None else sys.mbu_kv))
    t_gemm = np.maximum(gemm_c, gemm_m)
    t_attn = np.maximum(attn_c, attn_m)
    t_compute = np.where(gemm_c >= gemm_m, t_gemm, 0.0) + np.where(attn_c >= attn_m, t_attn, 0.0)
    t_memory = np.where(gemm_c < gemm_m, t_gemm, 0.0) + np.where(attn_c < attn_m, t_attn, 0.0)
    bytes_gpu = w_bytes / gpus + kv_read
    t_comm = comm_time(sys, m, tokens)
    stage = t_gemm + t_attn + t_comm
    total = pp * stage + sys.overhead_s
    flops_gpu = (lin + attn) / gpus
    return {"compute_s": pp * t_compute, "memory_s": pp * t_memory, "comm_s": pp * t_comm,
            "overhead_s": np.broadcast_to(sys.overhead_s, np.shape(total)) * 1.0, "total_s": total,
            "flops_per_gpu": flops_gpu, "bytes_per_gpu": bytes_gpu,
            "intensity_flops_per_byte": flops_gpu / np.maximum(bytes_gpu, 1.0)}


def step_time(sys: System, m: ModelShape, decode, decode_ctx, prefill, prefill_ctx) -> np.ndarray:
    return step_components(sys, m, decode, decode_ctx, prefill, prefill_ctx)["total_s"]


def bottleneck(parts: dict) -> np.ndarray:
    """'compute' | 'memory' | 'communication' per element: what most of the step time is bound by."""
    stack = np.stack(np.broadcast_arrays(parts["compute_s"], parts["memory_s"], parts["comm_s"]))
    return np.array(["compute", "memory", "communication"])[np.argmax(stack, axis=0)]


def scalar_step(sys: System, m: ModelShape):
    """step_time for one configuration as a plain-float closure: the simulator calls it once per
    iteration, where numpy's per-call overhead on scalars would dominate (~10x slower). Same formulas as
    step_components; tests/physics check the two agree."""
    p, lay = m.p, m.lay
    tp, pp, ep = float(sys.tp), float(sys.pp), float(sys.ep)
    gpus = tp * pp
    mfu, half = float(sys.mfu), float(sys.mfu_half_tokens)
    lin_k, logits_k = 2.0 * p.active_matmul, 2.0 * p.logits_matrix
    attn_k = m.attn_flops_per_ctx * lay.layers
    full, win, wtok, layers = lay.full_layers, lay.window_layers, lay.window_tokens, lay.layers
    E, k = p.num_experts, p.experts_per_token
    wb = float(sys.weight_bytes)
    w_fixed = (p.non_expert - p.embed - p.lm_head) * wb + p.logits_matrix * 2.0
    w_expert = p.expert * p.moe_layers * float(sys.weight_bytes if sys.expert_weight_bytes is None else sys.expert_weight_bytes)
    kvpt = float(memory.kv_bytes_per_token_per_gpu(lay, sys.kv_bytes, tp, pp))
    bw = float(sys.mem_bw) * float(sys.mbu)
    bw_kv = float(sys.mem_bw) * float(sys.mbu if sys.mbu_kv is None else sys.mbu_kv)
    lin_peak, attn_peak = float(sys.linear_flops), float(sys.attn_flops)
    ar_k = 2 * (tp - 1) / tp / float(sys.link_bw) * m.hidden * sys.act_bytes if tp > 1 else 0.0
    ar_lat = float(sys.link_latency_s) if tp > 1 else 0.0
    tp_layers = 2 * p.num_layers / pp
    a2a_k = (k * m.hidden * sys.act_bytes * (ep - 1) / ep / ep / float(sys.link_bw)) if (p.moe_layers and ep > 1) else 0.0
    a2a_lat = float(sys.link_latency_s) if (p.moe_layers and ep > 1) else 0.0
    moe_layers2 = 2 * p.moe_layers / pp
    overhead = float(sys.overhead_s)

    def att(c: float) -> float:
        if not win:
            return c
        return (c * full + min(c, wtok) * win) / layers

    def fn(decode, decode_ctx, prefill, prefill_ctx) -> float:
        decode, prefill = float(decode), float(prefill)
        tokens = decode + prefill
        lin = lin_k * tokens + logits_k * max(decode, min(prefill, 1.0))
        da = att(float(decode_ctx))
        attn = attn_k * (decode * da + prefill * att(float(prefill_ctx)))
        tok_gpu = tokens / tp
        eff = max(mfu * tok_gpu / (tok_gpu + half), 1e-9)
        touched = E * (1.0 - (1.0 - k / E) ** tokens) if E else 0.0
        w_bytes = w_fixed + w_expert * touched
        kv_read = decode * da * kvpt
        t = max(lin / gpus / lin_peak / eff, w_bytes / gpus / bw) + max(attn / gpus / attn_peak / eff, kv_read / bw_kv)
        comm = tp_layers * (ar_k * tokens + ar_lat) if tp > 1 else 0.0
        if a2a_k:
            comm += moe_layers2 * (a2a_k * tokens + a2a_lat)
        return pp * (t + comm) + overhead

    return fn
