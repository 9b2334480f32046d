"""Hand-computed anchors for the memory and step-time formulas."""

import numpy as np
import pytest

from planner import catalog
from planner.physics import arch, memory, step


def model(mid):
    return catalog.models().get(mid).entry


def test_llama70b_kv_per_token():
    # 2 (K,V) x 80 layers x 8 KV heads x 128 head_dim x 2 B = 327,680 B/token
    assert arch.kv_bytes_per_token(model("llama-3.1-70b"), "bf16") == 327_680


def test_llama70b_one_128k_request():
    # 327,680 B/token x 131,072 tokens = 42,949,672,960 B = 42.9 GB (block-aligned: 131072 % 16 == 0)
    lay = arch.kv_layout(model("llama-3.1-70b"))
    b = memory.kv_bytes_per_seq_per_gpu(lay, 131_072, 2.0, 1, 1, 16)
    assert float(b) == 42_949_672_960
    assert round(float(b) / 1e9, 1) == 42.9


def test_deepseek_mla_kv():
    # MLA: 61 layers x (512 latent + 64 rope) x 2 B = 70,272 B/token, not split by TP
    m = model("deepseek-v3")
    assert arch.kv_bytes_per_token(m, "bf16") == 70_272
    lay = arch.kv_layout(m)
    assert float(memory.kv_bytes_per_token_per_gpu(lay, 2.0, 8, 1)) == 70_272


def test_kv_replicated_when_tp_exceeds_kv_heads():
    # Llama-3.1-70B has 8 KV heads. TP 8: one head per GPU = 40,960 B/token/GPU.
    # TP 16: still one whole head per GPU (replicated), not half a head.
    lay = arch.kv_layout(model("llama-3.1-70b"))
    assert float(memory.kv_bytes_per_token_per_gpu(lay, 2.0, 8, 1)) == 327_680 / 8
    assert float(memory.kv_bytes_per_token_per_gpu(lay, 2.0, 16, 1)) == 327_680 / 8


def test_gemma2_sliding_window_caps_local_layers():
    # Gemma 2 9B: 42 layers, 21 local (window 4096) + 21 global; 8 KV heads x 256 dim.
    # per layer per token: 2 x 8 x 256 x 2 B = 8,192 B
    # at 8,192 tokens: 21 x 8192 x 8192 + 21 x 4096 x 8192 = 2,113,929,216 B
    lay = arch.kv_layout(model("gemma-2-9b"))
    assert (lay.full_layers, lay.window_layers, lay.window_tokens) == (21, 21, 4096)
    assert float(memory.kv_bytes_per_seq_per_gpu(lay, 8192, 2.0, 1, 1, 16)) == 21 * 8192 * 8192 + 21 * 4096 * 8192


def test_paged_last_block_waste():
    # 17 tokens in 16-token blocks occupy 2 blocks = 32 token slots
    lay = arch.kv_layout(model("llama-3.1-8b"))
    one = float(memory.kv_bytes_per_seq_per_gpu(lay, 1, 2.0, 1, 1, 1))
    assert float(memory.kv_bytes_per_seq_per_gpu(lay, 17, 2.0, 1, 1, 16)) == 32 * one


def test_weights_fp8_llama70b_tp2():
    # body (70.55e9 - 2 x 128256 x 8192) x 1 B / 2 + embed and head (2 x 1.0507e9) x 2 B / 2
    p = arch.params(model("llama-3.1-70b"))
    emb = 128256 * 8192
    expect = (70.55e9 - 2 * emb) * 1.0 / 2 + 2 * emb * 2.0 / 2
    assert float(memory.weight_bytes_per_gpu(p, 1.0, 2, 1)) == pytest.approx(expect)


def test_int4_scale_overhead():
    # group 128: 0.5 B + 2 B fp16 scale / 128 + 0.5 B zero-point / 128 = 0.51953125 B/param
    assert memory.bytes_per_param("int4", 128) == 0.51953125


@pytest.mark.parametrize("mid", [m["id"] for m in catalog.raw("models")["models"]])
def test_computed_params_match_catalog(mid):
    # the architecture arithmetic reproduces the sourced parameter totals within 3 %
    m = model(mid)
    p = arch.params(dict(m, params_b=None))
    assert p.total == pytest.approx(m["params_b"]["total"] * 1e9, rel=0.03)


def test_moe_experts_touched():
    # E(1 - (1 - k/E)^T): Mixtral 8 experts, top-2, one token: exactly 2; many tokens: all 8
    assert float(step.experts_touched(8, 2, 1)) == pytest.approx(2.0)
    assert float(step.experts_touched(8, 2, 1000)) == pytest.approx(8.0)


def test_tp_allreduce_time():
    # one all-reduce of 1 token x 8192 hidden x 2 B = 16,384 B at TP 2 over 450 GB/s + 8 us:
    # 2 x 1/2 x 16384 / 450e9 + 8e-6 s; two per layer x 80 layers
    m = step.shape(arch.params(model("llama-3.1-70b")), arch.kv_layout(model("llama-3.1-70b")), 8192, 1.0)
    s = step.System(tp=2, pp=1, ep=1, mem_bw=3.35e12, linear_flops=1979e12, attn_flops=989e12, mbu=1, mfu=1,
                    overhead_s=0, link_bw=450e9, link_latency_s=8e-6, weight_bytes=1.0, kv_bytes=1.0)
    expect = 2 * 80 * (2 * 0.5 * 16384 / 450e9 + 8e-6)
    assert float(step.comm_time(s, m, 1)) == pytest.approx(expect)


def test_decode_step_is_weight_bound_at_batch_1():
    # Llama-3.1-8B bf16 on H100 at batch 1: time ~ weights / bandwidth
    m8 = model("llama-3.1-8b")
    shp = step.shape(arch.params(m8), arch.kv_layout(m8), 4096, arch.attention_flops_per_ctx_token(m8))
    s = step.System(tp=1, pp=1, ep=1, mem_bw=3.35e12, linear_flops=989e12, attn_flops=989e12, mbu=1, mfu=1,
                    overhead_s=0, link_bw=1, link_latency_s=0, weight_bytes=2.0, kv_bytes=2.0)
    t = float(step.step_time(s, shp, 1, 1, 0, 0))
    weights = 8.03e9 * 2.0 - 128256 * 4096 * 2.0  # the input embedding is a gather, not read whole
    assert t == pytest.approx(weights / 3.35e12, rel=0.02)
