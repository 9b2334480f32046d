"""GPU memory: weights, KV cache and the pool an engine really gets. Vectorized over numpy arrays.

Every function takes plain numbers or numpy arrays that broadcast together, so the planner can
evaluate a million configurations in one call. Units: bytes unless the name says otherwise.
"""

from __future__ import annotations

import numpy as np

from planner.physics.arch import KVLayout, Params

GIB = 2**30
GB = 1e9

WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}


def bytes_per_param(precision: str, group_size: int = 128) -> float:
    """Stored bytes per quantized parameter, scales included.

    4-bit formats keep one 16-bit scale per group (AWQ/GPTQ: group 128, plus a 4-bit zero point for
    int4 -> 0.5 + 2/128 + 0.5/128 = 0.5195 B); NVFP4/MXFP4 keep an 8-bit scale per 16/32 values
    (0.5 + 1/16 = 0.5625 B, NVFP4). 8-bit formats use per-channel or per-tensor scales (negligible).
    """
    if precision == "int4":
        return 0.5 + 2.0 / group_size + 0.5 / group_size
    if precision == "fp4":
        return 0.5 + 1.0 / 16
    return WEIGHT_BYTES[precision]


def weight_bytes_per_gpu(p: Params, wbytes, tp, pp, expert_bytes=None, attention_dp=1, mlp_groups=None) -> np.ndarray:
    """Weights resident on one GPU.

    Transformer layers (attention, MLPs, all experts) are split over tp x pp GPUs; expert parallelism
    places whole experts instead of slices but divides the same total. Routed experts may be stored at
    another width than the rest (gpt-oss: MXFP4 experts, BF16 attention). Embedding and LM head stay in
    16-bit in quantized checkpoints (FP8/AWQ/GPTQ/NVFP4 leave them unquantized) and are vocab-parallel
    over TP on the first and last pipeline stage; the busiest GPU holds one of them.

    With attention data parallelism (attention_dp groups of tp / attention_dp GPUs) every group holds a
    whole copy of the non-expert weights split over its own GPUs; the routed experts stay split over all tp.
    `mlp_groups` (dense-MLP copies, shared-expert copies; arch.mlp_groups) overrides that for the dense layers'
    MLP and the shared experts, which an engine may split otherwise (default: attention_dp copies of each).
    """
    tp = np.asarray(tp, dtype=float)
    pp = np.asarray(pp, dtype=float)
    tp_dense = tp / np.asarray(attention_dp, dtype=float)
    eb = np.asarray(wbytes if expert_bytes is None else expert_bytes, dtype=float)
    body = p.total - p.embed - p.lm_head - p.expert_total
    head = np.where(pp > 1, max(p.embed, p.lm_head), p.embed + p.lm_head)
    wb = np.asarray(wbytes, dtype=float)
    dense_copies, shared_copies = mlp_groups if mlp_groups is not None else (attention_dp, attention_dp)
    dense = p.dense_layers * p.dense_mlp_per_layer
    shared = p.moe_layers * p.shared_per_moe_layer
    split = (dense / np.maximum(tp / np.asarray(dense_copies, dtype=float), 1.0)
             + shared / np.maximum(tp / np.asarray(shared_copies, dtype=float), 1.0) + (body - dense - shared) / tp_dense)
    return (split * wb + p.expert_total * eb / tp) / pp + head * 2.0 / tp_dense


def kv_bytes_per_token_per_gpu(lay: KVLayout, kv_bytes, tp, pp, layers_full_only: bool = False) -> np.ndarray:
    """KV bytes one GPU stores per token, per layer group.

    GQA/MHA heads are split over TP, but each rank needs at least one head: when TP > kv_heads the
    heads are replicated (Llama-3.1-70B has 8 KV heads: at TP 16 each GPU still holds one full head,
    twice the even share). MLA's latent is not split by TP at all. Pipeline stages split the layers.
    """
    tp = np.asarray(tp, dtype=float)
    if lay.heads_shardable:
        heads_per_gpu = np.maximum(1.0, np.ceil(lay.heads_shardable / tp))
        frac = heads_per_gpu / lay.heads_shardable
    else:
        frac = np.ones_like(tp)
    layers = lay.full_layers if layers_full_only else lay.layers
    return lay.elems_per_token_layer * np.asarray(kv_bytes, dtype=float) * frac * layers / np.asarray(pp, dtype=float)


def kv_bytes_per_seq_per_gpu(lay: KVLayout, ctx_tokens, kv_bytes, tp, pp, block_tokens=16) -> np.ndarray:
    """KV bytes one sequence of ctx_tokens holds on one GPU, in whole pages.

    Full-attention layers hold every token; sliding-window layers at most the window (Gemma 2: 21 of 42
    layers cap at 4,096 tokens). Paged engines allocate whole blocks: the last block is partly empty.

    Two pools sized in a fixed ratio r (lay.pool_ratio: windowed-layer tokens per full-layer token) cost a
    sequence its share of both, whichever fills first: (full + r x windowed layers) x max(ctx, window part / r)
    layer-tokens. gpt-oss-120b on SGLang (18 full + 18 windowed layers of 128 tokens, r = 0.8) at 8,000
    tokens: (18 + 14.4) x 8,000 = 259,200 layer-tokens, not 18 x 8,000 + 18 x 128 = 146,304.
    """
    ctx = np.asarray(ctx_tokens, dtype=float)
    blk = np.asarray(block_tokens, dtype=float)
    per_layer = kv_bytes_per_token_per_gpu(
        KVLayout(lay.elems_per_token_layer, lay.heads_shardable, 1, 0, 0), kv_bytes, tp, pp)
    full = np.ceil(ctx / blk) * blk * lay.full_layers
    if lay.window_layers:
        win = np.ceil(np.minimum(ctx, lay.window_tokens) / blk) * blk
        if lay.pool_ratio and lay.full_layers:
            r = lay.pool_ratio
            return per_layer * (lay.full_layers + r * lay.window_layers) * np.maximum(np.ceil(ctx / blk) * blk, win / r)
        full = full + win * lay.window_layers
    return per_layer * full


def activation_bytes_per_gpu(hidden: int, intermediate: int, vocab: int, tokens, seqs, tp) -> np.ndarray:
    """Peak activation workspace of one forward pass at the step token budget (what vLLM's profile run
    measures): the widest intermediate (gate+up of the MLP, split by TP) and the residual stream in
    16-bit for every token in the step, plus fp32 logits for the sequences sampled."""
    tokens = np.asarray(tokens, dtype=float)
    tp = np.asarray(tp, dtype=float)
    per_token = (2 * intermediate / tp + 4 * hidden) * 2.0
    return tokens * per_token + np.asarray(seqs, dtype=float) * vocab * 4.0 / tp


def kv_pool_bytes_per_gpu(mode: str, total_bytes, fraction, weights, activations, runtime) -> np.ndarray:
    """KV pool per GPU as each engine computes it (shared/reference/engines.md 3.4).

    vLLM (fraction_of_total): gpu_memory_utilization x total holds weights, activations and KV.
    TensorRT-LLM (fraction_of_free_after_weights): KV gets the fraction of what is free after weights,
    activations and runtime buffers. SGLang (fraction_for_weights_and_kv): mem-fraction-static x total
    holds weights and the KV pool; activations and runtime live in the rest.
    """
    total = np.asarray(total_bytes, dtype=float)
    if mode == "fraction_of_total":
        pool = total * fraction - weights - activations - runtime
    elif mode == "fraction_of_free_after_weights":
        pool = fraction * (total - weights - activations - runtime)
    else:
        pool = total * fraction - weights
    return np.asarray(pool, dtype=float)


def max_concurrent_seqs(pool_bytes, seq_bytes) -> np.ndarray:
    """Sequences of a given size the pool holds (0 when the pool is negative)."""
    return np.floor(np.maximum(np.asarray(pool_bytes, dtype=float), 0) / np.maximum(seq_bytes, 1e-9))


def max_context_for_memory(lay: KVLayout, pool_bytes, concurrency, kv_bytes, tp, pp) -> np.ndarray:
    """Longest context each of `concurrency` sequences can have in the pool (RadarOS maxContextForMemory).

    Inverts kv_bytes_per_seq_per_gpu without page rounding: windowed layers cost per token only up to
    the window, so past it the context grows at the full-attention layers' rate.
    """
    per_seq = np.maximum(np.asarray(pool_bytes, dtype=float), 0) / np.maximum(np.asarray(concurrency, dtype=float), 1)
    one = kv_bytes_per_token_per_gpu(KVLayout(lay.elems_per_token_layer, lay.heads_shardable, 1, 0, 0), kv_bytes, tp, pp)
    all_rate = one * lay.layers
    if not lay.window_layers:
        return np.floor(per_seq / all_rate)
    inside = per_seq / all_rate
    full_rate = one * lay.full_layers
    beyond = lay.window_tokens + (per_seq - all_rate * lay.window_tokens) / np.maximum(full_rate, 1e-9)
    return np.floor(np.where(inside <= lay.window_tokens, inside, beyond))
