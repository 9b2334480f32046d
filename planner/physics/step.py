"""Step times of one scheduler iteration, as the sum of its kernels.

One iteration of a continuous-batching engine runs `decode` sequences one token each and `prefill` prompt
tokens (chunked prefill) through the model. Per pipeline stage its time is the sum, over the layers of the
stage, of

- the GEMMs (attention projections, dense MLP, shared experts; the LM head once): each
  t0 + max(2NK(M + m_half)/(P e_max), (NK b + 2M(N+K))/(B e_mem)) with M = the step's tokens and N x K the
  per-GPU slice of the weight (so the compute ramp is on tokens, and TP shrinks N x K, not M);
- the routed experts of MoE layers: a grouped GEMM over the experts the tokens reach, at tokens x k / E
  tokens per expert, times the expert-parallel load imbalance;
- decode attention (paged: KV bytes read / (B e) + t0) and prefill attention (flash: causal FLOPs at an
  efficiency that ramps with the sequence length);
- tensor-parallel all-reduces (two per layer) and expert-parallel all-to-all (two per MoE layer), each
  a + S/B_inf + S (1/B_0 - 1/B_inf) / (1 + S/S_c) for S bytes, measured per GPU and group size; with
  DeepEP (engine.moe_all_to_all: deepep) the dispatch and the combine of each MoE layer are DeepEP's own
  measured curves (normal kernels for prompt steps, low-latency kernels for decode steps) on the tokens
  per rank, scaled from the measured shape by the bytes each token moves;

with two-batch overlap (engine.two_batch_overlap) the step runs as two half batches whose communication
overlaps the other half's kernels: 2 x kernels(half) + max(0, 2 x communication(half) - 2 x kernels(half));

plus the engine's host time per step (scheduling, sampling; more when the step carries a prefill chunk).
A virtual engine's step passes all pp stages. The efficiencies, floors and collective curves are the
catalog's (catalog/kernels.yaml, fitted to measured kernel tables by tools/fit_kernels.py).

The formulas live in one function, `terms`, written with `+ - * /`, `**` and a `mx` (max) argument, so the
same source runs on numpy arrays (the vectorized planner: `mx=np.maximum`) and on Python floats (the
simulator's per-iteration closure, `scalar_step`: `mx=max`) — there is no second copy to keep in sync.
Pure: no I/O, no catalog access.
"""

from __future__ import annotations

import math
from dataclasses import field, replace

import numpy as np

from planner.physics import memory
from planner.physics.arch import KVLayout, Params
from planner.records import record


@record(frozen=True)
class Gemm:
    """A GEMM kernel curve: floor t0 (s), compute efficiency ramp e_max x M / (M + m_half), memory efficiency."""

    t0_s: float
    e_max: float
    m_half: float
    e_mem: float


@record(frozen=True, eq=False)
class Collective:
    """a + S/B_inf + S (1/B_0 - 1/B_inf) / (1 + S/S_c) for S bytes (all-reduce of one group size)."""

    latency_s: float
    small_bw: float  # bytes/s
    large_bw: float  # bytes/s
    knee_bytes: float

    def seconds(self, nbytes, mx=None):
        return self.latency_s + nbytes / self.large_bw + nbytes * (1 / self.small_bw - 1 / self.large_bw) / (1 + nbytes / self.knee_bytes)


@record(frozen=True, eq=False)
class DeepEP:
    """DeepEP's dispatch and combine of one expert-parallel group: `mode` is "normal" (the high-throughput
    kernels on every step), "low_latency" (every step) or "auto" (normal on steps with prompt tokens,
    low-latency on pure decode steps: SGLang's auto mode, and the prefill/decode split of disaggregated
    pools). Each kernel is (dispatch Collective, combine Collective, dispatch scale, combine scale): the
    curves are in tokens per rank of the measured shape, a scale is the measured-shape tokens one token of
    this model is worth (the bytes it moves, relative)."""

    mode: str
    normal: tuple
    low_latency: tuple


@record(frozen=True, eq=False)
class System:
    """One replica's hardware, kernel curves and engine host costs."""

    tp: int
    pp: int
    ep: int
    mem_bw: float  # bytes/s per GPU
    linear_flops: float  # FLOP/s per GPU at the weights' math precision (dense)
    attn_flops: float  # FLOP/s per GPU for attention (16-bit math)
    gemm: Gemm  # body GEMMs at the runtime weight format
    gemm16: Gemm  # 16-bit GEMMs (LM head)
    moe: Gemm  # routed-expert grouped GEMM at the expert format
    moe_imbalance: float  # EP load imbalance (latency ratio, skewed / balanced routing)
    decode_attn_t0_s: float
    decode_attn_e: float
    prefill_attn_t0_s: float
    prefill_attn_e: float
    prefill_attn_s_half: float
    allreduce: Collective | None  # the TP group's all-reduce (None at TP 1)
    alltoall: Collective | None  # the EP group's dispatch/combine (None without EP)
    p2p: Collective | None  # pipeline stage hand-off (None at PP 1)
    weight_bytes: float  # bytes per non-expert body parameter (runtime format)
    kv_bytes: float  # bytes per KV element
    expert_weight_bytes: float | None = None  # bytes per routed-expert parameter (None: weight_bytes)
    step_overhead_s: float = 0.0  # host time of every iteration
    prefill_overhead_s: float = 0.0  # extra host time of an iteration that carries prompt tokens
    kernel_scale: float = 1.0  # engine-level multiplier of all GPU kernel time (calibrated, cross-validated)
    floor_scale: float = 1.0  # multiplier of the kernels' fixed floors (fused kernels and CUDA graphs shorten them)
    attention_dp: int = 1  # attention data-parallel groups (DeepSeek-style DP attention + EP MoE)
    act_bytes: float = 2.0  # activations exchanged in collectives (16-bit)
    deepep: DeepEP | None = None  # the expert all-to-all runs on DeepEP (None: the engine's default collective)
    two_batch_overlap: bool = False  # two micro-batches per step, communication overlapped with compute
    dense_groups: int = 0  # copies of the dense layers' MLP in a replica (arch.mlp_groups; 0: attention_dp)
    shared_groups: int = 0  # copies of the shared experts in a replica (arch.mlp_groups; 0: attention_dp)


@record(frozen=True, eq=False)
class ModelShape:
    """What the step model needs of an architecture (from arch.params and arch.kv_layout)."""

    p: Params
    lay: KVLayout
    hidden: int
    attn_flops_per_ctx: float  # decode: per query token, per attended token, per layer
    window_tokens: int
    # per-layer GEMM shapes (N x K, unsplit): attention projections, dense MLP, shared expert MLP
    attn_in: tuple = ()  # ((N, K), ...) qkv / MLA q and kv projections
    attn_out: tuple = ()  # ((N, K), ...)
    mlp: tuple = ()  # dense layers' MLP matrices ((N, K), ...)
    shared: tuple = ()  # shared experts' matrices per MoE layer
    expert_params: float = 0.0  # one routed expert's parameters
    prefill_flops_per_ctx: float = 0.0  # prefill attention FLOPs per (query, context) token pair per layer
    replicated_attn_in: tuple = ()  # projections every TP rank computes whole (MLA kv_a)
    heads: int = 1


def shape(p: Params, lay: KVLayout, hidden: int, attn_flops_per_ctx: float, model: dict | None = None) -> ModelShape:
    """The step model's view of an architecture; `model` (a catalog entry) gives the GEMM shapes."""
    if model is None:
        d = p.active_matmul / max(p.num_layers, 1)
        return ModelShape(p, lay, hidden, attn_flops_per_ctx, lay.window_tokens, attn_in=((d / hidden / 2, hidden),),
                          attn_out=(), mlp=((d / hidden / 2, hidden),), prefill_flops_per_ctx=attn_flops_per_ctx)
    h, nh, nkv, hd = model["hidden_size"], model["num_attention_heads"], model["num_kv_heads"], model["head_dim"]
    a = model["attention"]
    gated = model.get("mlp") != "gelu"
    inter = model["intermediate_size"]
    if a["type"] == "mla":
        r, rope = a["kv_lora_rank"], a["qk_rope_head_dim"]
        nope, vd, qr = a.get("qk_nope_head_dim") or 128, a.get("v_head_dim") or 128, a.get("q_lora_rank")
        attn_in = ((qr, h), (nh * (nope + rope), qr)) if qr else ((nh * (nope + rope), h),)
        attn_in = attn_in + ((nh * (nope + vd), r),)  # kv_b: the latent up-projection
        replicated = ((r + rope, h),)  # kv_a: every rank computes the whole latent
        attn_out = ((h, nh * vd),)
        prefill = nh * 2 * ((nope + rope) + vd)
    else:
        attn_in = (((nh + 2 * nkv) * hd, h),)
        replicated = ()
        attn_out = ((h, nh * hd),)
        prefill = nh * 4 * hd
    mlp = ((2 * inter if gated else inter, h), (h, inter))
    moe = model.get("moe")
    shared, expert = (), 0.0
    if moe:
        ei = moe["expert_intermediate_size"]
        expert = (3 if gated else 2) * h * ei
        if moe.get("shared_experts"):
            s = moe["shared_experts"]
            shared = ((s * (2 * ei if gated else ei), h), (h, s * ei))
    return ModelShape(p, lay, h, attn_flops_per_ctx, lay.window_tokens, attn_in=attn_in, attn_out=attn_out, mlp=mlp,
                      shared=shared, expert_params=expert, prefill_flops_per_ctx=prefill, replicated_attn_in=replicated,
                      heads=nh)


def _attended(ctx, lay: KVLayout):
    """Mean attended context per layer: windowed layers see at most the window."""
    if not lay.window_layers:
        return ctx
    w = lay.window_tokens
    if isinstance(ctx, (int, float)):
        m = ctx if ctx < w else w
    else:
        m = np.minimum(ctx, w)
    return (ctx * lay.full_layers + m * lay.window_layers) / lay.layers


def experts_touched(num_experts: int, k: int, tokens) -> np.ndarray:
    """Expected distinct experts a batch of `tokens` routes to in one layer: E(1 - (1 - k/E)^T)."""
    if not num_experts:
        return np.zeros_like(np.asarray(tokens, dtype=float))
    t = np.asarray(tokens, dtype=float)
    return num_experts * (1.0 - (1.0 - k / num_experts) ** t)


@record(frozen=True, eq=False)
class Coeffs:
    """Per-configuration constants of `terms` (floats for one configuration, or arrays for many)."""

    gemms: tuple  # ((count per VE step, t0, a, m_half, b, c, tokens divisor), ...)
    logits: tuple  # (t0, a, m_half, b, c)
    moe_layers: float
    moe: tuple  # (t0, W, E_local, k_per_rank, a, m_half, b, c_tok, imbalance)
    layers: float  # layers a VE step passes (pp stages x layers per stage)
    dec: tuple  # (t0, seconds per (sequence x attended token))
    pre: tuple  # (t0, seconds per (query x context token), s_half)
    ar: tuple  # (count per VE step, latency, 1/B_inf, 1/B_0 - 1/B_inf, knee, bytes per token) or ()
    a2a: tuple
    p2p: tuple
    host: tuple  # (per step, extra per prefill step)
    scale: float
    adp: float
    lay: KVLayout = field(default=None)
    ep_pre: tuple = ()  # DeepEP: the collectives (as `ar`) of a step with prompt tokens
    ep_dec: tuple = ()  # DeepEP: the collectives of a pure decode step (the same tuple when one mode runs)
    tbo: bool = False  # two-batch overlap


def coefficients(sys: System, m: ModelShape) -> Coeffs:
    """The constants of one configuration (every field a float)."""
    p, lay = m.p, m.lay
    tp, pp, ep, adp = float(sys.tp), float(sys.pp), float(sys.ep), float(max(sys.attention_dp, 1))
    per_stage = math.ceil(p.num_layers / pp)  # the slowest stage sets the pace (uneven splits cost a stage)
    layers = per_stage * pp
    moe_per_stage = math.ceil(p.moe_layers / pp) if p.moe_layers else 0
    dense_per_stage = per_stage - moe_per_stage
    tp_attn = max(tp / adp, 1.0)

    fs = float(sys.floor_scale)

    def g(kind: Gemm, n, k, wb, split):
        n, k = n / split, k
        return (kind.t0_s * fs, 2 * n * k / (sys.linear_flops * kind.e_max), kind.m_half,
                n * k * wb / (sys.mem_bw * min(kind.e_mem, 1.0)), 2 * (n + k) / (sys.mem_bw * min(kind.e_mem, 1.0)))

    wb = float(sys.weight_bytes)
    gemms = []
    for n, k in m.attn_in + m.attn_out:
        gemms.append((per_stage * pp,) + g(sys.gemm, n, k, wb, tp_attn) + (adp,))
    for n, k in m.replicated_attn_in:
        gemms.append((per_stage * pp,) + g(sys.gemm, n, k, wb, 1.0) + (adp,))
    # the dense MLP and the shared experts as the engine holds them and the memory plan counts them
    # (arch.mlp_groups): each copy split over tp / copies GPUs, on its own share of the tokens
    dg = float(sys.dense_groups or adp)
    sg = float(sys.shared_groups or adp)
    for n, k in m.mlp:
        gemms.append((dense_per_stage * pp,) + g(sys.gemm, n, k, wb, max(tp / dg, 1.0)) + (dg,))
    for n, k in m.shared:
        gemms.append((moe_per_stage * pp,) + g(sys.gemm, n, k, wb, max(tp / sg, 1.0)) + (sg,))
    vocab = p.logits_matrix / m.hidden
    lt = g(sys.gemm16, vocab, m.hidden, 2.0, tp)
    # routed experts: EP places whole experts (E/ep per rank); without EP each rank holds a 1/tp slice of all
    eb = float(sys.expert_weight_bytes if sys.expert_weight_bytes is not None else wb)
    E = float(p.num_experts or 0)
    if E:
        split = 1.0 if ep > 1 else tp
        W = m.expert_params / split
        e_local = E / ep if ep > 1 else E
        k_rank = p.experts_per_token / ep if ep > 1 else float(p.experts_per_token)
        mo = sys.moe
        moe = (mo.t0_s * fs, W, e_local, k_rank, 2 * W / (sys.linear_flops * mo.e_max), mo.m_half,
               W * eb / (sys.mem_bw * min(mo.e_mem, 1.0)), 2 * 2 * (m.hidden + W / m.hidden / 3) / (sys.mem_bw * min(mo.e_mem, 1.0)),
               sys.moe_imbalance if ep > 1 else 1.0)
    else:
        moe = (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    # attention: heads split over the attention TP group; MLA's latent is read whole by every rank
    kvpt = float(memory.kv_bytes_per_token_per_gpu(KVLayout(lay.elems_per_token_layer, lay.heads_shardable, 1, 0, 0),
                                                   sys.kv_bytes, tp_attn, 1))
    dec = (sys.decode_attn_t0_s * fs, kvpt / (sys.mem_bw * sys.decode_attn_e))
    pre = (sys.prefill_attn_t0_s * fs, m.prefill_flops_per_ctx / tp_attn / (sys.attn_flops * sys.prefill_attn_e), sys.prefill_attn_s_half)
    ar = ()
    if sys.allreduce is not None and tp_attn > 1:
        c = sys.allreduce
        ar = (2 * per_stage * pp, c.latency_s, 1 / c.large_bw, 1 / c.small_bw - 1 / c.large_bw, c.knee_bytes,
              m.hidden * sys.act_bytes * 2 * (tp_attn - 1) / tp_attn)
    a2a = ()
    ep_pre = ep_dec = ()
    if sys.deepep is not None and E and ep > 1:
        # DeepEP: one dispatch and one combine per MoE layer, on tokens / ep per rank, each token worth `scale`
        # tokens of the measured shape
        def kernels_of(part):
            return tuple((float(moe_per_stage * pp), x.latency_s, 1 / x.large_bw, 1 / x.small_bw - 1 / x.large_bw, x.knee_bytes,
                          float(sc) / ep) for x, sc in ((part[0], part[2]), (part[1], part[3])))

        d = sys.deepep
        normal, low = kernels_of(d.normal), kernels_of(d.low_latency)
        ep_pre = low if d.mode == "low_latency" else normal
        ep_dec = normal if d.mode == "normal" else low
    elif sys.alltoall is not None and E and ep > 1 and adp > 1:
        # tokens sharded over data-parallel attention ranks are dispatched to their experts and combined back; with
        # tensor-parallel attention every rank holds every token, runs its own experts on them and the MLP's
        # all-reduce above combines them (vLLM 0.33 FusedMoEConfig.use_all2all_kernels: use_ep and dp_size > 1;
        # SGLang and TensorRT-LLM without attention DP likewise): no all-to-all of its own
        c = sys.alltoall
        a2a = (2 * moe_per_stage * pp, c.latency_s, 1 / c.large_bw, 1 / c.small_bw - 1 / c.large_bw, c.knee_bytes,
               p.experts_per_token * m.hidden * sys.act_bytes * (ep - 1) / ep / ep)
    p2p = ()
    if sys.p2p is not None and pp > 1:
        c = sys.p2p
        p2p = (pp - 1, c.latency_s, 1 / c.large_bw, 1 / c.small_bw - 1 / c.large_bw, c.knee_bytes, m.hidden * sys.act_bytes)
    return Coeffs(tuple(gemms), lt, float(moe_per_stage * pp), moe, float(layers), dec, pre, ar, a2a, p2p,
                  (float(sys.step_overhead_s), float(sys.prefill_overhead_s)), float(sys.kernel_scale), adp, lay,
                  ep_pre, ep_dec, bool(sys.two_batch_overlap))


def _coll(c: tuple, tokens):
    """Seconds of `count` collectives of `per_token` bytes each per token (c = the Coeffs tuple)."""
    count, a, inv_large, dinv, knee, per_token = c
    s = tokens * per_token
    return count * (a + s * inv_large + s * dinv / (1 + s / knee))


def terms(c: Coeffs, decode, decode_ctx, prefill, prefill_ctx, mx, split: list | None = None) -> tuple:
    """(gemm, moe, attention, communication, host) seconds of one VE step — the one formula of the step model.

    Every operation is arithmetic or `mx` (max), so `decode`... may be floats or numpy arrays alike.
    `split`, a list [0.0, 0.0], receives the GPU kernel time split into its compute-bound and memory-bound
    parts (the side of each max() that won; decode attention streams KV, prefill attention computes): what
    `explain` prints and the bottleneck is named from, from the same expressions.
    """
    if c.tbo:
        return _two_batches(c, decode, decode_ctx, prefill, prefill_ctx, mx, split)
    tokens = decode + prefill
    has_dec = decode > 0
    has_pre = prefill > 0

    def kern(weight, t0, x, y):
        if split is not None:
            big = x >= y
            split[0] = split[0] + weight * np.where(big, t0 + x, 0.0)
            split[1] = split[1] + weight * np.where(big, 0.0, t0 + y)
        return weight * (t0 + mx(x, y))

    t_gemm = 0.0
    if split is None:  # the simulator's hot path: the same expressions as kern(), without the split
        for count, t0, a, mh, b, cc, div in c.gemms:
            m_tok = tokens / div
            t_gemm = t_gemm + count * (t0 + mx(a * (m_tok + mh), b + cc * m_tok))
    else:
        for count, t0, a, mh, b, cc, div in c.gemms:
            m_tok = tokens / div
            t_gemm = t_gemm + kern(count, t0, a * (m_tok + mh), b + cc * m_tok)
    t0, a, mh, b, cc = c.logits
    m_log = decode + has_pre
    t_gemm = t_gemm + kern(1.0, t0, a * (m_log + mh), b + cc * m_log)
    t_moe = 0.0
    if c.moe_layers:
        t0, W, el, k_rank, a, mh, b, cc, imb = c.moe
        routed = tokens * k_rank
        active = el * (1 - (1 - 1 / el) ** routed)
        per = routed / (active + 1e-9) + 1e-9
        t_moe = kern(c.moe_layers * imb, t0, a * routed * (per + mh) / per, b * active + cc * routed)
    dctx = _attended(decode_ctx, c.lay)
    pctx = _attended(prefill_ctx, c.lay)
    d_local = decode / c.adp
    p_local = prefill / c.adp
    s = 2 * pctx + 1
    t_dec = c.layers * (has_dec * c.dec[0] + c.dec[1] * d_local * dctx)
    t_pre = c.layers * (has_pre * c.pre[0] + c.pre[1] * p_local * pctx * (s + c.pre[2]) / s)
    if split is not None:
        split[0] = c.scale * (split[0] + t_pre)
        split[1] = c.scale * (split[1] + t_dec)
    t_comm = 0.0
    if c.ar:
        t_comm = t_comm + _coll(c.ar, tokens / c.adp)
    if c.a2a:
        t_comm = t_comm + _coll(c.a2a, tokens)
    if c.ep_pre:
        if c.ep_pre == c.ep_dec:
            for x in c.ep_pre:
                t_comm = t_comm + _coll(x, tokens)
        else:  # normal kernels on a step with prompt tokens, low-latency kernels on a pure decode step
            t_pre_c = 0.0
            t_dec_c = 0.0
            for x in c.ep_pre:
                t_pre_c = t_pre_c + _coll(x, tokens)
            for x in c.ep_dec:
                t_dec_c = t_dec_c + _coll(x, tokens)
            t_comm = t_comm + has_pre * t_pre_c + (1 - has_pre) * t_dec_c
    if c.p2p:
        t_comm = t_comm + _coll(c.p2p, tokens)
    host = c.host[0] + has_pre * c.host[1]
    return c.scale * t_gemm, c.scale * t_moe, c.scale * (t_dec + t_pre), t_comm, host


def _two_batches(c: Coeffs, decode, decode_ctx, prefill, prefill_ctx, mx, split) -> tuple:
    """`terms` of a two-batch-overlap step: two half batches back to back, each one's communication running
    under the other's kernels; the communication term is only what the kernels do not hide."""
    one = replace(c, tbo=False)
    sp = None if split is None else [0.0, 0.0]
    g, mo, at, cm, host = terms(one, decode / 2, decode_ctx, prefill / 2, prefill_ctx, mx, sp)
    g2, mo2, at2 = 2 * g, 2 * mo, 2 * at
    exposed = mx(2 * cm - (g2 + mo2 + at2), 0.0)
    if split is not None:
        split[0] = split[0] + 2 * sp[0]
        split[1] = split[1] + 2 * sp[1]
    return g2, mo2, at2, exposed, host


def step_components(sys: System, m: ModelShape, decode, decode_ctx, prefill, prefill_ctx) -> dict:
    """Time components (seconds) of one iteration of one virtual engine, vectorized over numpy arrays
    (any argument, and any System field, may be an array: the planner evaluates many configurations)."""
    decode = np.asarray(decode, dtype=float)
    prefill = np.asarray(prefill, dtype=float)
    if _is_array_system(sys):
        g, mo, at, cm, host, compute_s, memory_s = _grouped(sys, m, decode, np.asarray(decode_ctx, float), prefill,
                                                            np.asarray(prefill_ctx, float))
    else:
        sp = [0.0, 0.0]
        g, mo, at, cm, host = terms(coefficients(sys, m), decode, np.asarray(decode_ctx, dtype=float), prefill,
                                    np.asarray(prefill_ctx, dtype=float), np.maximum, sp)
        compute_s, memory_s = sp
    total = g + mo + at + cm + host
    # FLOPs and bytes per GPU (for the intensity the roofline finding prints): the same shapes
    p = m.p
    tokens = decode + prefill
    gpus = np.asarray(sys.tp, dtype=float)
    flops = (2.0 * p.active_matmul * tokens + 2.0 * p.logits_matrix * np.maximum(decode, np.minimum(prefill, 1.0))) / gpus
    flops = flops + m.attn_flops_per_ctx * p.num_layers * (decode * _attended(np.asarray(decode_ctx, float), m.lay)
                                                            + prefill * _attended(np.asarray(prefill_ctx, float), m.lay)) / gpus
    touched = experts_touched(p.num_experts, p.experts_per_token, tokens)
    eb = sys.weight_bytes if sys.expert_weight_bytes is None else sys.expert_weight_bytes
    adp_w = max(float(np.max(sys.attention_dp)), 1.0)
    w_bytes = (((p.non_expert - p.embed - p.lm_head) * sys.weight_bytes + p.logits_matrix * 2.0) * adp_w
               + p.expert * touched * p.moe_layers * eb) / (gpus * sys.pp)
    adp = np.maximum(np.asarray(sys.attention_dp, dtype=float), 1.0)
    kv_read = (decode / adp * _attended(np.asarray(decode_ctx, float), m.lay)
               * memory.kv_bytes_per_token_per_gpu(m.lay, sys.kv_bytes, np.asarray(sys.tp, dtype=float) / adp, sys.pp))
    bytes_gpu = w_bytes + kv_read
    return {"compute_s": compute_s, "memory_s": memory_s, "comm_s": cm, "overhead_s": np.broadcast_to(host, np.shape(total)) * 1.0,
            "gemm_s": g, "moe_s": mo, "attention_s": at, "total_s": total,
            "flops_per_gpu": flops, "bytes_per_gpu": bytes_gpu,
            "intensity_flops_per_byte": flops / np.maximum(bytes_gpu, 1.0)}


def _is_array_system(sys: System) -> bool:
    return any(np.ndim(getattr(sys, f)) > 0 for f in SYSTEM_ARRAY_FIELDS)


SYSTEM_ARRAY_FIELDS = ("tp", "pp", "ep", "mem_bw", "linear_flops", "attn_flops", "step_overhead_s", "prefill_overhead_s",
                      "kernel_scale", "floor_scale", "weight_bytes", "kv_bytes", "attention_dp")


def _grouped(sys: System, m: ModelShape, decode, dctx, prefill, pctx, split: bool = True) -> tuple:
    """`terms` (with its compute/memory split) when System fields are arrays (calibration grids, the vectorized planner): the
    operating points are grouped by distinct configuration (a million points hold a few hundred distinct
    GPU x parallelism x precision systems), and each group runs the one formula with its own coefficients."""
    raw = [np.asarray(getattr(sys, f), dtype=float) for f in SYSTEM_ARRAY_FIELDS]
    shape_ = np.broadcast_shapes(*[a.shape for a in raw], np.shape(decode), np.shape(dctx), np.shape(prefill), np.shape(pctx))
    size = int(np.prod(shape_))
    varying = [j for j, a in enumerate(raw) if a.ndim > 0]
    # distinct configurations: factorize each varying field, combine the codes into one integer key
    key = np.zeros(size, dtype=np.int64)
    values = []
    for j in varying:
        col = np.broadcast_to(raw[j], shape_).ravel()
        # np.unique(col, return_inverse=True), without the numpy.ma import it costs a cold check (7 ms)
        srt = np.sort(col)
        vals = srt[np.r_[True, srt[1:] != srt[:-1]]]
        code = np.searchsorted(vals, col)
        key = key * len(vals) + code.ravel()
        values.append(vals)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], size]
    scalar_inputs = all(np.ndim(x) == 0 for x in (decode, dctx, prefill, pctx))
    scalars = tuple(np.asarray(x, dtype=float) for x in (decode, dctx, prefill, pctx))
    ins = [] if scalar_inputs else [np.broadcast_to(np.asarray(x, dtype=float), shape_).ravel()
                                    for x in (decode, dctx, prefill, pctx)]
    outs = [np.empty(size) for _ in range(7 if split else 5)]
    for a, b in zip(starts, ends):
        idx = order[a:b]
        rest = int(sk[a])
        kw = {}
        for col in range(len(varying) - 1, -1, -1):
            n_vals = len(values[col])
            kw[SYSTEM_ARRAY_FIELDS[varying[col]]] = float(values[col][rest % n_vals])
            rest //= n_vals
        kw.update({f: int(kw[f]) for f in ("tp", "pp", "ep", "attention_dp") if f in kw})
        c = coefficients(replace(sys, **kw), m)
        sp = [0.0, 0.0] if split else None
        if scalar_inputs:  # one operating point for every configuration: one evaluation per group
            parts = terms(c, *scalars, np.maximum, sp) + tuple(sp or ())
        else:
            d, dc, p, pc = (x[idx] for x in ins)
            parts = terms(c, d, dc, p, pc, np.maximum, sp) + tuple(sp or ())
        for o, v in zip(outs, parts):
            o[idx] = v
    return tuple(o.reshape(shape_) for o in outs)


def step_time(sys: System, m: ModelShape, decode, decode_ctx, prefill, prefill_ctx) -> np.ndarray:
    """Seconds of one iteration (the total of step_components, without its breakdown)."""
    decode = np.asarray(decode, dtype=float)
    prefill = np.asarray(prefill, dtype=float)
    dctx, pctx = np.asarray(decode_ctx, dtype=float), np.asarray(prefill_ctx, dtype=float)
    if _is_array_system(sys):
        parts = _grouped(sys, m, decode, dctx, prefill, pctx, split=False)
    else:
        parts = terms(coefficients(sys, m), decode, dctx, prefill, pctx, np.maximum)
    g, mo, at, cm, host = parts[:5]
    return g + mo + at + cm + host


def bottleneck(parts: dict) -> np.ndarray:
    """'compute' | 'memory' | 'communication' | 'host' per element: what most of the step time is bound by."""
    stack = np.stack(np.broadcast_arrays(parts["compute_s"], parts["memory_s"], parts["comm_s"], parts["overhead_s"]))
    return np.array(["compute", "memory", "communication", "host"])[np.argmax(stack, axis=0)]


def scalar_step(sys: System, m: ModelShape):
    """step_time of one configuration as a plain-float function for the simulator (numpy's per-call
    overhead on scalars would dominate; so would unpacking the coefficient tuples on every step). It is
    generated from `terms`' expressions with this configuration's coefficients written in as literals,
    operation for operation in the same order, so it returns bit for bit what the vectorized path returns
    (tests/physics/test_properties.py asserts it)."""
    c = coefficients(sys, m)
    f = repr

    def mx(x, y):  # max without a call: the builtin's value (the first argument on ties)
        return f"(_x if (_x := {x}) >= (_y := {y}) else _y)"

    def attended(name):
        lay = c.lay
        if not lay.window_layers:
            return name
        w = f(lay.window_tokens)
        return f"(({name}) * {lay.full_layers} + (({name}) if ({name}) < {w} else {w}) * {lay.window_layers}) / {lay.layers}"

    def build(decode_only: bool) -> str:
        """The source; decode_only: the same expressions with prefill = prefill_ctx = 0 folded in (every term they
        zero is an exact 0.0 added or a product with one, so the value is bit for bit the general one's), and
        every term of the batch size alone computed once per batch size (decode_source)."""
        if decode_only:
            L = ["    decode = float(decode)"]
        else:
            L = ["def fn(decode, decode_ctx, prefill, prefill_ctx):",
                 "    decode = float(decode); decode_ctx = float(decode_ctx); prefill = float(prefill); prefill_ctx = float(prefill_ctx)"]
        if c.tbo:  # two half batches (_two_batches)
            L.append("    decode = decode / 2" if decode_only else "    decode = decode / 2; prefill = prefill / 2")
        L += ["    tokens = decode" if decode_only else "    tokens = decode + prefill", "    has_dec = decode > 0"]
        L += [] if decode_only else ["    has_pre = prefill > 0"]
        L += ["    t_gemm = 0.0"]
        for count, t0, a, mh, b, cc, div in c.gemms:
            L.append(f"    m_tok = tokens / {f(float(div))}")
            L.append(f"    t_gemm = t_gemm + {f(float(count))} * ({f(float(t0))} + "
                     + mx(f"{f(float(a))} * (m_tok + {f(float(mh))})", f"{f(float(b))} + {f(float(cc))} * m_tok") + ")")
        t0, a, mh, b, cc = (float(x) for x in c.logits)
        L.append("    m_log = decode" if decode_only else "    m_log = decode + has_pre")
        L.append(f"    t_gemm = t_gemm + 1.0 * ({f(t0)} + " + mx(f"{f(a)} * (m_log + {f(mh)})", f"{f(b)} + {f(cc)} * m_log") + ")")
        if c.moe_layers:
            t0, W, el, k_rank, a, mh, b, cc, imb = (float(x) for x in c.moe)
            L += [f"    routed = tokens * {f(k_rank)}", f"    active = {f(el)} * (1 - (1 - 1 / {f(el)}) ** routed)",
                  "    per = routed / (active + 1e-9) + 1e-9",
                  f"    t_moe = {f(float(c.moe_layers * imb))} * ({f(t0)} + "
                  + mx(f"{f(a)} * routed * (per + {f(mh)}) / per", f"{f(b)} * active + {f(cc)} * routed") + ")"]
        else:
            L.append("    t_moe = 0.0")
        adp = f(float(c.adp))
        dec = [f"    dctx = {attended('decode_ctx')}",
               f"    t_dec = {f(float(c.layers))} * (has_dec * {f(float(c.dec[0]))} + {f(float(c.dec[1]))} * d_local * dctx)"]
        if decode_only:  # the context's terms after the batch's (decode_source)
            L.append(f"    d_local = decode / {adp}")
        else:
            L += [dec[0], f"    d_local = decode / {adp}", dec[1],
                  f"    pctx = {attended('prefill_ctx')}", f"    p_local = prefill / {adp}", "    s = 2 * pctx + 1",
                  f"    t_pre = {f(float(c.layers))} * (has_pre * {f(float(c.pre[0]))} + {f(float(c.pre[1]))} * p_local * pctx * "
                  f"(s + {f(float(c.pre[2]))}) / s)"]
        L.append("    t_comm = 0.0")

        def coll_lines(coll, tok, acc):
            count, a, inv_large, dinv, knee, per_token = (float(x) for x in coll)
            return [f"    s_ = ({tok}) * {f(per_token)}",
                    f"    {acc} = {acc} + {f(count)} * ({f(a)} + s_ * {f(inv_large)} + s_ * {f(dinv)} / (1 + s_ / {f(knee)}))"]

        for coll, tok in ((c.ar, f"tokens / {adp}"), (c.a2a, "tokens")):
            if coll:
                L += coll_lines(coll, tok, "t_comm")
        if c.ep_pre:
            if c.ep_pre == c.ep_dec:
                for x in c.ep_pre:
                    L += coll_lines(x, "tokens", "t_comm")
            elif decode_only:  # t_comm + 0 * t_pre_c + 1 * t_dec_c
                L.append("    t_dec_c = 0.0")
                for x in c.ep_dec:
                    L += coll_lines(x, "tokens", "t_dec_c")
                L.append("    t_comm = t_comm + t_dec_c")
            else:
                L += ["    t_pre_c = 0.0", "    t_dec_c = 0.0"]
                for x in c.ep_pre:
                    L += coll_lines(x, "tokens", "t_pre_c")
                for x in c.ep_dec:
                    L += coll_lines(x, "tokens", "t_dec_c")
                L.append("    t_comm = t_comm + has_pre * t_pre_c + (1 - has_pre) * t_dec_c")
        if c.p2p:
            L += coll_lines(c.p2p, "tokens", "t_comm")
        sc = f(float(c.scale))
        L.append(f"    host = {f(float(c.host[0]))}" if decode_only else f"    host = {f(float(c.host[0]))} + has_pre * {f(float(c.host[1]))}")
        if decode_only:
            return decode_source(L, dec, sc)
        attn = "(t_dec + t_pre)"
        if c.tbo:
            L += [f"    g2 = 2 * ({sc} * t_gemm)", f"    mo2 = 2 * ({sc} * t_moe)", f"    at2 = 2 * ({sc} * {attn})",
                  "    exposed = " + mx("2 * t_comm - (g2 + mo2 + at2)", "0.0"),
                  "    return g2 + mo2 + at2 + exposed + host"]
        else:
            L.append(f"    return {sc} * t_gemm + {sc} * t_moe + {sc} * {attn} + t_comm + host")
        return "\n".join(L)

    def decode_source(batch: list[str], ctx: list[str], sc: str) -> str:
        """fn(decode, decode_ctx) for a batch of decodes: within a pure-decode run the simulator steps one batch
        size at two contexts, and every term but attention's depends on the batch size alone. Those are computed
        once per batch size (`batch`, kept in a dict by the argument) and the context's (`ctx`) on every call. The
        sum keeps the general step's order, left to right, with its first partial sums from the dict, so each
        value is the general step's bit for bit."""
        if c.tbo:  # g2 + mo2 + at2 + exposed + host, exposed = max(2 t_comm - (g2 + mo2 + at2), 0)
            head = [f"    g2 = 2 * ({sc} * t_gemm)", f"    mo2 = 2 * ({sc} * t_moe)", "    head = g2 + mo2"]
            tail = [f"    at2 = 2 * ({sc} * t_dec)", "    s3 = head + at2", "    exposed = " + mx("2 * t_comm - s3", "0.0"),
                    "    return s3 + exposed + host"]
        else:
            head = [f"    head = {sc} * t_gemm + {sc} * t_moe"]
            tail = [f"    return head + {sc} * t_dec + t_comm + host"]
        deeper = ["        " + x for x in batch + head]
        return "\n".join(["def make():", "    by_batch = {}", "    get = by_batch.get",
                          "    def fn(decode, decode_ctx):", "        hit = get(decode)", "        if hit is None:",
                          "            key = decode", *deeper,
                          "            hit = by_batch[key] = (has_dec, d_local, head, t_comm, host)",
                          "        has_dec, d_local, head, t_comm, host = hit", "        decode_ctx = float(decode_ctx)",
                          *("    " + x for x in ctx + tail), "    return fn", "fn = make()"])

    source = build(False)
    compiled: list = []
    calls = [0]

    def fn(decode, decode_ctx, prefill, prefill_ctx) -> float:
        # a configuration stepped a few times (a saturation estimate) is not worth compiling: terms() with
        # Python floats gives the same value; one the simulator steps thousands of times is compiled once
        if compiled:
            return compiled[0](decode, decode_ctx, prefill, prefill_ctx)
        calls[0] += 1
        if calls[0] > COMPILE_AFTER_CALLS:
            compiled.append(_compiled(source))
        g, mo, at, cm, host = terms(c, float(decode), float(decode_ctx), float(prefill), float(prefill_ctx), max)
        return g + mo + at + cm + host

    def hot():
        """The compiled function itself, for a caller about to step it thousands of times (the simulator):
        no wrapper call per step."""
        if not compiled:
            calls[0] = COMPILE_AFTER_CALLS
            fn(0, 0.0, 0, 0.0)
        return compiled[0]

    decode_compiled: list = []

    def hot_decode():
        """The compiled step of a batch of decodes alone, fn(decode, decode_ctx): what fn(decode, decode_ctx, 0,
        0.0) returns, bit for bit, without the prompt terms (the simulator's pure-decode runs, most of its steps).
        Its source is generated once per step model, on the first simulation that asks."""
        if not decode_compiled:
            decode_compiled.append(_compiled(build(True)))
        return decode_compiled[0]

    fn.hot = hot
    fn.hot_decode = hot_decode
    fn.key = source  # every constant of the step model: equal keys step identically
    return fn


def _compiled(source: str):
    """The generated step model's function; one compilation per source within a process (another replica count,
    a fix trial: the same step)."""
    hit = _COMPILED.get(source)
    if hit is None:
        ns: dict = {}
        exec(compile(source, "<planfile step model>", "exec"), {"max": max}, ns)  # noqa: S102 (numbers only)
        hit = ns["fn"]
        if len(_COMPILED) >= 512:
            _COMPILED.clear()
        _COMPILED[source] = hit
    return hit


def derived(base, label: str, make):
    """A step model computed from `base` by `make(inner) -> step function` (the decode pool's, one attention
    group's): it carries base's `key` under `label` (the simulator memoises and stores its runs like any step
    model's) and its `hot` path (make applied to base's compiled function)."""
    fn = make(base)
    key = getattr(base, "key", None)
    if key is not None:
        fn.key = (label, key)
    if hasattr(base, "hot"):
        fn.hot = lambda: make(base.hot())
    return fn


COMPILE_AFTER_CALLS = 64
_COMPILED: dict = {}  # generated source -> compiled step function, within a process
