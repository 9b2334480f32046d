"""Model architecture arithmetic: parameter breakdown and KV layout from config-style fields.

Pure functions of a catalog model entry (a dict shaped like catalog/models.yaml). No I/O.
"""

from __future__ import annotations

from planner.records import record

KV_DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


@record(frozen=True, eq=False)
class Params:
    """Parameter counts (not bytes), by role."""

    embed: float  # input embedding (a gather, no matmul FLOPs)
    lm_head: float  # 0 when tied to the embedding (then the embedding matrix is read for the logits)
    attn_per_layer: float
    dense_mlp_per_layer: float  # MLP of dense layers
    expert: float  # one routed expert, one layer
    shared_per_moe_layer: float  # shared experts of one MoE layer
    num_layers: int
    moe_layers: int
    num_experts: int
    experts_per_token: int
    total: float  # from the catalog when known (sourced), else the sum of the parts
    active: float

    @property
    def dense_layers(self) -> int:
        return self.num_layers - self.moe_layers

    @property
    def expert_total(self) -> float:
        """All routed-expert parameters."""
        return self.expert * self.num_experts * self.moe_layers

    @property
    def non_expert(self) -> float:
        """Everything that is read on every step: attention, dense MLPs, shared experts, embeddings."""
        return self.total - self.expert_total

    @property
    def logits_matrix(self) -> float:
        """Parameters of the output projection (the tied embedding when there is no separate head)."""
        return self.lm_head if self.lm_head else self.embed

    @property
    def active_matmul(self) -> float:
        """Active parameters that take part in matmuls per token, without the output projection."""
        return self.active - self.embed - self.lm_head


def mlp_groups(engine_id: str, tp: int, attention_dp: int, deepep: bool) -> tuple[int, int]:
    """(dense-MLP copies, shared-expert copies) in one replica: each copy is split over tp / copies GPUs and
    computes the tokens of its own GPUs. vLLM runs each attention data-parallel rank as its own tensor group:
    attention_dp copies of both. SGLang (0.5.23 srt/models/deepseek_v2.py) splits the dense layers' MLP over
    all of --tp-size, except with --moe-dense-tp-size 1 (planfile renders it when attention is fully data-
    parallel: one copy per GPU), and keeps the shared experts whole on every GPU with the DeepEP all-to-all
    (else split over --tp-size)."""
    adp = max(int(attention_dp), 1)
    if engine_id == "sglang":
        return (tp if adp == tp and adp > 1 else 1), (tp if deepep else 1)
    return adp, adp


def attention_params(m: dict) -> float:
    h, nh, nkv, hd = m["hidden_size"], m["num_attention_heads"], m["num_kv_heads"], m["head_dim"]
    a = m["attention"]
    if a["type"] == "mla":
        r, rope = a["kv_lora_rank"], a["qk_rope_head_dim"]
        nope, vd = a.get("qk_nope_head_dim") or 128, a.get("v_head_dim") or 128
        qr = a.get("q_lora_rank")
        q = (h * qr + qr * nh * (nope + rope)) if qr else h * nh * (nope + rope)
        kv = h * (r + rope) + r * nh * (nope + vd)
        return q + kv + nh * vd * h
    return h * nh * hd + 2 * h * nkv * hd + nh * hd * h


def params(m: dict) -> Params:
    h = m["hidden_size"]
    L = m["num_layers"]
    mats = 2 if m.get("mlp") == "gelu" else 3  # gated MLPs (SwiGLU/GeGLU) have three matrices
    embed = m["vocab_size"] * h
    lm_head = 0.0 if m.get("tie_word_embeddings") else embed
    attn = attention_params(m)
    dense_mlp = mats * h * m["intermediate_size"]
    moe = m.get("moe")
    if moe:
        step = moe.get("moe_layer_step", 1) or 1
        first = moe.get("first_k_dense_layers", 0) or 0
        moe_layers = len([i for i in range(first, L) if (i - first) % step == step - 1]) if step > 1 else L - first
        expert = mats * h * moe["expert_intermediate_size"]
        shared = moe.get("shared_experts", 0) * expert
        n_exp, k = moe["num_experts"], moe["experts_per_token"]
    else:
        moe_layers, expert, shared, n_exp, k = 0, 0.0, 0.0, 0, 0
    dense_layers = L - moe_layers
    computed_total = embed + lm_head + L * attn + dense_layers * dense_mlp + moe_layers * (n_exp * expert + shared)
    computed_active = embed + lm_head + L * attn + dense_layers * dense_mlp + moe_layers * (k * expert + shared)
    pb = m.get("params_b") or {}
    total = pb.get("total", 0) * 1e9 or computed_total
    # Keep the catalog's sourced totals; scale the computed active count by the same small correction
    # (biases, norms) so active/total stays what the architecture says.
    active = pb.get("active", 0) * 1e9 or computed_active * (total / computed_total)
    return Params(embed, lm_head, attn, dense_mlp, expert, shared, L, moe_layers, n_exp, k, total, active)


@record(frozen=True, eq=False)
class KVLayout:
    """Per-token KV elements of one layer, and how many layers hold all tokens vs a window."""

    elems_per_token_layer: float  # K and V elements (MLA: the compressed latent + rope key)
    heads_shardable: int  # KV heads TP can split (0 for MLA: the latent is replicated on every TP rank)
    full_layers: int
    window_layers: int
    window_tokens: int  # 0 when no sliding layers
    # windowed-layer pool tokens per full-layer pool token when the engine sizes two pools in a fixed ratio
    # at start-up (SGLang's hybrid SWA pool, --swa-full-tokens-ratio); 0: one pool shared by need (vLLM)
    pool_ratio: float = 0.0

    @property
    def layers(self) -> int:
        return self.full_layers + self.window_layers

    def held_in_full(self) -> "KVLayout":
        """The layout of a KV pool that keeps every token of every layer (the engine does not cap windows);
        the attention kernels still read only the window (the step model keeps the architectural layout)."""
        return KVLayout(self.elems_per_token_layer, self.heads_shardable, self.layers, 0, 0)


def kv_layout(m: dict) -> KVLayout:
    L = m["num_layers"]
    a = m["attention"]
    if a["type"] == "mla":
        elems, heads = a["kv_lora_rank"] + a["qk_rope_head_dim"], 0
    else:
        elems, heads = 2 * m["num_kv_heads"] * m["head_dim"], m["num_kv_heads"]
    sw = m.get("sliding_window")
    if sw:
        pattern = sw["layer_pattern"]
        window_layers = sum(1 for i in range(L) if pattern[i % len(pattern)] == "sliding")
        return KVLayout(elems, heads, L - window_layers, window_layers, sw["window_tokens"])
    return KVLayout(elems, heads, L, 0, 0)


def kv_bytes_per_token(m: dict, kv_dtype: str) -> float:
    """Whole-model KV bytes per token (all layers, all KV heads, no window cap) at a KV precision.

    Llama-3.1-70B bf16: 2 x 80 layers x 8 heads x 128 x 2 B = 327,680 B/token.
    """
    lay = kv_layout(m)
    return lay.elems_per_token_layer * lay.layers * KV_DTYPE_BYTES[kv_dtype]


def attention_flops_per_ctx_token(m: dict) -> float:
    """FLOPs per (query token, attended context token) summed over heads of one layer: QK^T and AV."""
    a = m["attention"]
    nh = m["num_attention_heads"]
    if a["type"] == "mla":
        # absorbed MLA (decode path of vLLM/SGLang/TRT-LLM): scores over latent+rope, values over the latent
        return nh * 2 * ((a["kv_lora_rank"] + a["qk_rope_head_dim"]) + a["kv_lora_rank"])
    return nh * 4 * m["head_dim"]
