"""Read a Hugging Face config.json into a catalog model entry (the shape of catalog/models.yaml).

Handles the families of the catalog: Llama/Mistral/Qwen/Phi (GQA), Mixtral/Qwen-MoE/gpt-oss/Llama 4
(MoE, `text_config` nesting), DeepSeek V2/V3 (MLA), Gemma 2/3 (sliding-window layer patterns) and
Falcon (MQA, non-gated MLP). Parameter counts are computed from the architecture.
"""

from __future__ import annotations

import re
from pathlib import Path

from planner.physics import arch


class HFConfigError(Exception):
    pass


def _first(cfg: dict, *keys, default=None):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def from_dict(cfg: dict, name: str = "custom", params_b: float | None = None) -> dict:
    if not isinstance(cfg, dict):
        raise HFConfigError("config.json must hold a JSON object")
    top = cfg
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"]}
    try:
        hidden = int(_first(cfg, "hidden_size", "d_model", "n_embd"))
        layers = int(_first(cfg, "num_hidden_layers", "n_layer", "num_layers"))
        heads = int(_first(cfg, "num_attention_heads", "n_head"))
    except (TypeError, ValueError):
        raise HFConfigError("missing hidden_size, num_hidden_layers or num_attention_heads") from None
    model_type = str(_first(cfg, "model_type", default=top.get("model_type", "")))
    archs = top.get("architectures") or [model_type]
    kv_heads = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if kv_heads is None:
        kv_heads = 1 if cfg.get("multi_query") else (cfg.get("num_kv_heads") or heads)
    if isinstance(kv_heads, bool) or not isinstance(kv_heads, int) or kv_heads < 1:
        raise HFConfigError(f"num_key_value_heads {kv_heads!r} must be a whole number >= 1")
    if heads % kv_heads:
        raise HFConfigError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    head_dim = int(_first(cfg, "head_dim", default=hidden // heads) or hidden // heads)
    if head_dim < 1:
        raise HFConfigError(f"head_dim {head_dim} must be at least 1 (hidden_size {hidden} / {heads} heads)")
    inter = int(_first(cfg, "intermediate_size_mlp", "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden))
    falcon = model_type in ("falcon", "RefinedWeb", "RefinedWebModel")
    attention: dict = {"type": "mha" if kv_heads == heads else ("mqa" if kv_heads == 1 else "gqa")}
    if cfg.get("kv_lora_rank"):
        attention = {"type": "mla", "kv_lora_rank": int(cfg["kv_lora_rank"]),
                     "qk_rope_head_dim": int(cfg.get("qk_rope_head_dim", 64)), "q_lora_rank": cfg.get("q_lora_rank"),
                     "qk_nope_head_dim": cfg.get("qk_nope_head_dim", 128), "v_head_dim": cfg.get("v_head_dim", 128)}
        head_dim = int(cfg.get("qk_nope_head_dim", 128)) + int(cfg.get("qk_rope_head_dim", 64))
        kv_heads = heads
    sliding = None
    window = cfg.get("sliding_window") or cfg.get("attention_chunk_size")
    layer_types = cfg.get("layer_types")
    if window and cfg.get("use_sliding_window", True) is not False and model_type not in ("phi3",):
        if isinstance(layer_types, list) and layer_types:
            pattern = ["sliding" if "sliding" in str(t) or "chunk" in str(t) else "full" for t in layer_types]
        elif cfg.get("sliding_window_pattern"):
            n = int(cfg["sliding_window_pattern"])
            pattern = ["sliding"] * (n - 1) + ["full"]
        elif model_type.startswith("gemma2"):
            pattern = ["sliding", "full"]
        elif model_type.startswith("llama4"):
            pattern = ["sliding", "sliding", "sliding", "full"]
        else:
            pattern = ["sliding"]
        if "full" in pattern or pattern == ["sliding"]:
            sliding = {"window_tokens": int(window), "layer_pattern": pattern, "description": "from config.json"}
            if not cfg.get("sliding_window") and cfg.get("attention_chunk_size"):
                sliding["kind"] = "chunked"  # chunked local attention: engines cap it differently (engines.yaml)
    moe = None
    n_exp = _first(cfg, "num_local_experts", "n_routed_experts", "num_experts")
    if n_exp:
        moe = {"num_experts": int(n_exp),
               "experts_per_token": int(_first(cfg, "num_experts_per_tok", "num_experts_per_token", "experts_per_token", default=2)),
               "shared_experts": int(_first(cfg, "n_shared_experts", "num_shared_experts", default=0) or 0),
               "expert_intermediate_size": int(_first(cfg, "moe_intermediate_size", "intermediate_size", default=inter)),
               "first_k_dense_layers": int(cfg.get("first_k_dense_replace", 0) or 0),
               "moe_layer_step": int(cfg.get("interleave_moe_layer_step", cfg.get("decoder_sparse_step", 1)) or 1)}
        if model_type.startswith("llama4") and cfg.get("interleave_moe_layer_step"):
            moe["shared_experts"] = 1
    entry = {
        "id": name, "name": name, "hf_id": None, "aliases": [],
        "architecture": archs[0], "num_layers": layers, "hidden_size": hidden, "intermediate_size": inter,
        "num_attention_heads": heads, "num_kv_heads": int(kv_heads), "head_dim": head_dim,
        "vocab_size": int(_first(cfg, "vocab_size", default=top.get("vocab_size", 32000))),
        "max_position_embeddings": int(_first(cfg, "max_position_embeddings", "max_seq_len", "n_positions", default=2048)),
        "tie_word_embeddings": bool(top.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        "mlp": "gelu" if falcon else "gated", "attention": attention, "sliding_window": sliding, "moe": moe,
        "params_b": None, "kv_bytes_per_token_bf16": None, "source": "Hugging Face config.json", "notes": None,
    }
    p = arch.params(entry)
    total = (params_b * 1e9) if params_b else p.total
    entry["params_b"] = {"total": round(total / 1e9, 2), "active": round(p.active * total / p.total / 1e9, 2)}
    entry["kv_bytes_per_token_bf16"] = int(arch.kv_bytes_per_token(entry, "bf16"))
    return entry


def load(path: Path, params_b: float | None = None, repo: str | None = None) -> dict:
    """A catalog-shaped model entry from a config.json file (bounded read, schema, cross-field checks).

    `repo`: the Hub repository it was fetched from, when known; otherwise the config's own `_name_or_path`
    if that is a repository id. Never the file or folder name: `hf_id` says what an engine would load."""
    from planner.sideload import SideFileProblem, read_hf_config

    try:
        cfg = read_hf_config(Path(path))
    except SideFileProblem as exc:
        raise HFConfigError("; ".join(exc.problems)) from None
    hf_id = repo
    nop = cfg.get("_name_or_path")
    if hf_id is None and isinstance(nop, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*", nop):
        hf_id = nop
    stem = (repo.split("/")[-1] if repo else Path(path).parent.name or Path(path).stem) or "custom"
    name = re.sub(r"[^a-z0-9.-]+", "-", stem.lower()).strip("-") or "custom"
    entry = from_dict(cfg, name, params_b)
    entry["hf_id"] = hf_id
    return entry
