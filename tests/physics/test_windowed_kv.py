"""Sliding-window and chunked-local layers hold at most their window only where the engine caps them.

vLLM 0.33's hybrid KV cache manager caps sliding windows but is off for chunked local attention (Llama 4),
so there every layer holds every token; SGLang 0.5.23 keeps a capped window pool only for the architectures
of is_hybrid_swa_model (Llama 4, gpt-oss: not Gemma), sized at 0.8 of the full pool's tokens. The memory
plan (sequences that fit, the simulator's KV tokens), explain and the KV a prefill pool sends all read the
one rule: planner.resolve.kv_memory_layout (catalog engines.yaml `windowed_kv`)."""

import pytest

from planner import catalog
from planner.physics import arch, memory


def resolved(tmp_path, model, engine, gpu="h200-sxm", weights="fp8"):
    from planner.loader import load_text
    from planner.resolve import resolve

    p = tmp_path / "d.yaml"
    p.write_text(f"""apiVersion: planfile/v1
kind: Deployment
metadata: {{name: w}}
model: {{id: {model}}}
precision: {{weights: {weights}, kv_cache: fp8}}
hardware: {{gpu: {gpu}, gpus_per_replica: 1, replicas: 1}}
engine: {{name: {engine}}}
workload:
  archetype: chat
  input_tokens: {{mean: 8000, p95: 20000, max: 30000}}
  output_tokens: {{mean: 400, p95: 1000, max: 2000}}
  arrival_rate_rps: 1
""")
    return resolve(load_text(p.read_bytes(), str(p)))


def seq_bytes(r, ctx=8400):
    from planner.resolve import kv_memory_layout

    return float(memory.kv_bytes_per_seq_per_gpu(kv_memory_layout(r)[0], ctx, 1.0, 1, 1, r.block_size))


# Gemma-3-27B: 62 layers, 52 sliding (window 1,024) + 10 full; 16 KV heads x 128 dim x 2 (K, V) x 1 B (FP8)
# = 4,096 B per layer-token. At 8,400 tokens (16-token blocks: 8,400 = 525 blocks exactly):
GEMMA_CAPPED = (10 * 8400 + 52 * 1024) * 4096  # = 562,102,272 B
GEMMA_FULL = 62 * 8400 * 4096  # = 2,133,196,800 B: 3.8x more


def test_vllm_caps_gemma3_sliding_layers(tmp_path):
    assert seq_bytes(resolved(tmp_path, "gemma-3-27b", "vllm")) == GEMMA_CAPPED


def test_sglang_holds_every_gemma3_token(tmp_path):
    """SGLang's hybrid SWA pool is not for Gemma3ForConditionalGeneration: one token pool, every layer."""
    assert seq_bytes(resolved(tmp_path, "gemma-3-27b", "sglang")) == GEMMA_FULL


def test_vllm_holds_every_token_of_llama4_chunked_layers(tmp_path):
    """Llama-4-Scout: 48 layers, 36 chunked (8,192) + 12 global; 8 KV heads x 128 x 2 x 1 B = 2,048 B per
    layer-token. vLLM turns its hybrid manager off for chunked local attention: 48 x 8,400 x 2,048 B."""
    assert seq_bytes(resolved(tmp_path, "llama-4-scout", "vllm")) == 48 * 8400 * 2048


def test_sglang_sizes_llama4_window_pool_at_a_fixed_ratio(tmp_path):
    """SGLang: full pool T tokens, window pool 0.8 T. A sequence of 2,000 tokens takes 2,000 of each; the
    window pool fills first (2,000 / 0.8 = 2,500 full-pool tokens' worth): (12 + 0.8 x 36) x 2,500 layer-
    tokens x 2,048 B = 208,896,000 B. At 30,000 tokens (past the 8,192 window) the full pool binds:
    (12 + 28.8) x 30,000 x 2,048 B = 2,506,752,000 B, vs 48 x 30,000 x 2,048 B held in full."""
    r = resolved(tmp_path, "llama-4-scout", "sglang")
    assert seq_bytes(r, 2000) == pytest.approx(40.8 * 2500 * 2048)
    assert seq_bytes(r, 30000) == pytest.approx(40.8 * 30000 * 2048)
    assert seq_bytes(r, 30000) < 48 * 30000 * 2048


def test_a_model_of_windowed_layers_only_is_capped_without_the_hybrid_manager(tmp_path):
    """Mistral-7B v0.1: sliding window (4,096) on all 32 layers; one kind of layer needs no hybrid manager in
    vLLM (unify_hybrid_kv_cache_specs promotes windows only beside full layers): 32 x 4,096 x 8 heads x 128
    x 2 x 1 B at any context past the window. A TPU (no hybrid manager) caps it the same."""
    for gpu in ("h200-sxm", "tpu-v6e"):
        assert seq_bytes(resolved(tmp_path, "mistral-7b", "vllm", gpu=gpu, weights="bf16")) == 32 * 4096 * 2048


def test_the_memory_plan_and_explain_read_the_engine_rule(tmp_path):
    """Sequences that fit follow the per-sequence bytes: same pool, ~3.8x the sequences on vLLM as on SGLang's
    uncapped pool (pools differ by the engines' memory rules; compare per-sequence bytes from the plan)."""
    from conftest import run_cli
    from planner.evaluate import memory_plan

    for engine, expect in (("vllm", GEMMA_CAPPED), ("sglang", GEMMA_FULL)):
        r = resolved(tmp_path, "gemma-3-27b", engine)
        mem = memory_plan(r)
        assert mem.seq_bytes_mean == pytest.approx(expect)
        assert mem.max_seqs_mean == int(mem.kv_pool_gb * 1e9 // expect)
    resolved(tmp_path, "gemma-3-27b", "sglang")
    out = run_cli("explain", str(tmp_path / "d.yaml"), "--metric", "kv").stdout
    assert "SGLang holds every token of the sliding-window layers" in out, out


def test_hf_config_marks_chunked_local_attention():
    from planner import hfconfig

    cfg = {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4_text", "num_hidden_layers": 48,
           "hidden_size": 5120, "intermediate_size": 8192, "num_attention_heads": 40, "num_key_value_heads": 8,
           "head_dim": 128, "vocab_size": 202048, "attention_chunk_size": 8192, "max_position_embeddings": 10485760}
    m = hfconfig.from_dict(cfg)
    assert m["sliding_window"]["kind"] == "chunked" and m["sliding_window"]["window_tokens"] == 8192
    lay = arch.kv_layout(m)
    assert (lay.full_layers, lay.window_layers) == (12, 36)


def test_every_catalog_window_has_a_known_kind():
    ms = [e for e in catalog.models().entries if e.get("sliding_window")]
    assert {m["id"] for m in ms} >= {"gemma-3-27b", "llama-4-scout", "gpt-oss-120b", "mistral-7b"}
    for m in ms:
        assert m["sliding_window"].get("kind", "sliding") in ("sliding", "chunked")


def test_sglang_without_radix_cache_sizes_the_window_pool_by_need(tmp_path):
    """Radix cache off (prefix caching off) and --max-running-requests rendered: SGLang's
    SWARequestCapPoolConfigurator sizes the window pool for that many windows, the rest is the full pool, so a
    sequence costs its full-layer tokens plus one window: (12 x 2,000 + 36 x 2,000) x 2,048 B at 2,000 tokens."""
    from planner.resolve import kv_memory_layout

    r = resolved(tmp_path, "llama-4-scout", "sglang")
    import dataclasses

    off = dataclasses.replace(r, prefix_caching=False)
    assert kv_memory_layout(off)[0].pool_ratio == 0.0
    assert seq_bytes(off, 2000) == (12 * 2000 + 36 * 2000) * 2048
    assert seq_bytes(off, 30000) == (12 * 30000 + 36 * 8192) * 2048
