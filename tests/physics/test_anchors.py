"""Hand-computed anchors for the memory and step-time formulas."""

import dataclasses

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


IDEAL = step.Gemm(t0_s=0.0, e_max=1.0, m_half=0.0, e_mem=1.0)


def ideal_system(tp=1, bw=3.35e12, flops=989e12, wb=2.0, kvb=2.0, allreduce=None, **kw):
    """A system whose kernels reach the peaks with no floors: the step model reduces to hand arithmetic."""
    return step.System(tp=tp, pp=1, ep=1, mem_bw=bw, linear_flops=flops, attn_flops=flops, gemm=IDEAL, gemm16=IDEAL,
                       moe=IDEAL, moe_imbalance=1.0, decode_attn_t0_s=0.0, decode_attn_e=1.0, prefill_attn_t0_s=0.0,
                       prefill_attn_e=1.0, prefill_attn_s_half=0.0, allreduce=allreduce, alltoall=None, p2p=None,
                       weight_bytes=wb, kv_bytes=kvb, **kw)


def shape_of(mid):
    m = model(mid)
    return step.shape(arch.params(m), arch.kv_layout(m), m["hidden_size"], arch.attention_flops_per_ctx_token(m), m)


def test_gemm_kernel_formula():
    # one GEMM, M = 4 tokens, N x K = 8192 x 8192 FP8 (1 B) on an H200 curve t0 5 us, e_max 0.5, m_half 100, e_mem 0.8:
    # compute 2 x 8192 x 8192 x (4 + 100) / (1979e12 x 0.5) = 14.1 us; memory (67,108,864 + 2 x 4 x 16384) B /
    # (4.8e12 x 0.8) = 17.51 us; t = 5 + max(14.1, 17.51) = 22.51 us
    g = step.Gemm(5e-6, 0.5, 100.0, 0.8)
    sysm = dataclasses.replace(ideal_system(bw=4.8e12, flops=1979e12, wb=1.0), gemm=g)
    shp = step.ModelShape(arch.params(model("llama-3.1-8b")), arch.kv_layout(model("llama-3.1-8b")), 8192, 0.0, 0,
                          attn_in=((8192, 8192),), heads=1)
    c = step.coefficients(sysm, shp)
    count, t0, a, mh, b, cc, div = c.gemms[0]
    one = t0 + max(a * (4 + mh), b + cc * 4)
    assert one == pytest.approx(5e-6 + (8192 * 8192 + 2 * 4 * 16384) / (4.8e12 * 0.8), rel=1e-9)
    assert a * (4 + mh) == pytest.approx(2 * 8192 * 8192 * 104 / (1979e12 * 0.5), rel=1e-9)
    assert count == 32  # once per layer, 32 layers


def test_allreduce_curve():
    # a = 5 us, B_0 = 20 GB/s, B_inf = 400 GB/s, knee 2 MB; S = 4 tokens x 8192 x 2 B = 65,536 B:
    # 5e-6 + 65536/400e9 + 65536 x (1/20e9 - 1/400e9) / (1 + 65536/2e6) = 5e-6 + 0.164e-6 + 3.014e-6 = 8.18 us
    c = step.Collective(5e-6, 20e9, 400e9, 2e6)
    s = 65536.0
    assert c.seconds(s) == pytest.approx(5e-6 + s / 400e9 + s * (1 / 20e9 - 1 / 400e9) / (1 + s / 2e6), rel=1e-12)
    assert c.seconds(s) == pytest.approx(8.18e-6, rel=0.01)


def test_decode_step_is_weight_bound_at_batch_1():
    # Llama-3.1-8B bf16 on ideal H100 kernels at batch 1: time ~ weights read / bandwidth
    # (the input embedding is a gather, not read whole): (8.03e9 - 128256 x 4096) x 2 B / 3.35e12
    t = float(step.step_time(ideal_system(), shape_of("llama-3.1-8b"), 1, 1, 0, 0))
    weights = 8.03e9 * 2.0 - 128256 * 4096 * 2.0
    assert t == pytest.approx(weights / 3.35e12, rel=0.03)


def test_tp4_to_tp8_decode_gets_faster_at_concurrency_4():
    """Issue 12, cause 2: the GEMM ramp is on tokens, so TP shrinks the compute floor; with the measured H200 FP8
    curves the TP8 step is faster than TP4 (measured 8.0 -> 6.3 ms/token), not equal as before (10.4 -> 10.3)."""
    from planner.run import check_spec

    import os
    import tempfile

    import yaml

    times = {}
    for tp in (4, 8):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "s.yaml")
            with open(p, "w") as fh:
                fh.write(yaml.safe_dump({
                "apiVersion": "planfile/v1", "kind": "Deployment", "metadata": {"name": "t"}, "model": {"id": "llama-3.1-70b"},
                "precision": {"weights": "fp8", "kv_cache": "fp8"}, "hardware": {"gpu": "h200-sxm", "gpus_per_replica": tp, "replicas": 1},
                "parallelism": {"tensor": tp}, "engine": {"name": "vllm"},
                "workload": {"archetype": "custom", "input_tokens": 1024, "output_tokens": 1024, "concurrency": 4}}))
            r = check_spec(p, breach=False).resolved
        from planner.evaluate import step_function

        _, _, fn = step_function(r)
        times[tp] = fn(4, 1536, 0, 0)
    assert times[8] < 0.9 * times[4]
    assert times[8] > 0.5 * times[4]  # not the 2x of a pure weight-streaming roofline: floors and all-reduces stay
    assert 4e-3 < times[8] < 10e-3 and 5e-3 < times[4] < 12e-3


def test_405b_batch_1_on_8_h100_is_not_compute_bound():
    """Issue 12: 405B on 8 x H100 at batch 1 came out "compute-bound" at 46.9 ms/token."""
    from planner.evaluate import step_function

    from planner.run import check_spec

    r = check_spec("tests/fixtures/render/multinode-405b.yaml", breach=False).resolved
    sysm, shp, fn = step_function(r)
    parts = step.step_components(sysm, shp, 1, 2048, 0, 0)
    assert str(step.bottleneck(parts)) != "compute"


def test_moe_curve_without_a_grouped_gemm_table_transfers_the_measured_ratios():
    """A100 has no usable grouped-GEMM table (SGLang's A100 fit has e_max 0.08: an untuned configuration). Its
    MoE curve is its own dense GEMM curve times the grouped/dense ratios measured for TensorRT-LLM bf16 on
    every GPU that has both (catalog/kernels.yaml, fitted from aiconfigurator's tables):

        GPU           MoE e_max / GEMM e_max   MoE m_half / GEMM m_half   MoE e_mem / GEMM e_mem  MoE t0  imbalance
        h100-sxm      0.6239 / 0.79   = 0.7898  127.2 / 46.2  = 2.7532    1.3 / 0.8027   = 1.6195  59.35   1.087
        h200-sxm      0.613  / 0.816  = 0.7512   84.6 / 72.6  = 1.1653    1.3 / 0.808    = 1.6089  56.67   1.075
        l40s          0.4597 / 0.6207 = 0.7406  194.6 / 198.3 = 0.9813    0.793 / 0.841  = 0.9429  11.33   1.157
        rtx-pro-6000  0.6425 / 0.833  = 0.7713  125.6 / 179.8 = 0.6986    0.8406 / 0.8459 = 0.9937  28.55   1.13

    medians (of four: the mean of the middle two): e_max x (0.7512 + 0.7713) / 2 = 0.7613; m_half x (0.9813 +
    1.1653) / 2 = 1.0733; e_mem x min(1, (0.9937 + 1.6089) / 2 = 1.3013) = 1; t0 (28.55 + 56.67) / 2 = 42.61 us;
    imbalance (1.087 + 1.13) / 2 = 1.1085. Before, a guess: half the dense compute efficiency, t0 x 3."""
    from planner import kernels

    k = kernels.table()
    assert k["a100-sxm-80gb"]["sglang"]["moe"]["bf16"]["e_max"] < 0.15  # the table this replaces, as stated
    r_emax, r_mhalf, r_emem, t0_us, imb, gpus, basis = kernels.moe_transfer("trtllm", "bf16", "a100-sxm-80gb")
    assert gpus == ("h100-sxm", "h200-sxm", "l40s", "rtx-pro-6000") and basis == "trtllm"
    assert r_emax == pytest.approx(0.7613, abs=1e-4)
    assert r_mhalf == pytest.approx(1.0733, abs=1e-4)
    assert r_emem == 1.0
    assert t0_us == pytest.approx(42.61)
    assert imb == pytest.approx(1.1085)
    gpu = catalog.gpus().by_id["a100-sxm-80gb"]
    ks = kernels.kernel_set(gpu, "trtllm", "bf16", "bf16", "bf16", 2, 1, 1, 8)
    dense = ks.gemm
    assert ks.moe == step.Gemm(42.61e-6, dense.e_max * r_emax, dense.m_half * r_mhalf, dense.e_mem)
    assert ks.moe_imbalance == imb
    assert any("measured grouped/dense ratios of trtllm" in why for what, why in ks.provenance if what == "MoE")
    # a GPU with its own usable table keeps it
    h100 = kernels.kernel_set(catalog.gpus().by_id["h100-sxm"], "trtllm", "bf16", "bf16", "bf16", 2, 1, 1, 8)
    assert h100.moe.e_max == pytest.approx(0.6239)


def test_a_grouped_gemm_fit_never_streams_faster_than_hbm():
    """TensorRT-LLM's H100 FP8 grouped-GEMM fit has e_mem 1.2903: above the HBM peak, i.e. the table's sizes never
    made it memory-bound and the fit left that side at its bound. The MoE curve keeps the fit's compute side
    (e_max 0.64) and streams the experts' weights at the dense FP8 GEMM's memory efficiency on the same GPU
    (0.8151), below 1."""
    from planner import kernels

    k = kernels.table()["h100-sxm"]["trtllm"]
    assert k["moe"]["fp8"]["e_mem"] > 1 and k["gemm"]["fp8"]["e_mem"] == 0.8151
    ks = kernels.kernel_set(catalog.gpus().by_id["h100-sxm"], "trtllm", "fp8", "fp8", "fp8", 1, 1, 1, 8)
    assert ks.moe.e_max == 0.64 and ks.moe.e_mem == ks.gemm.e_mem == 0.8151
    assert any("memory side unidentified" in why for what, why in ks.provenance)


@pytest.mark.parametrize("gid", ["h100-sxm", "h200-sxm", "b200"])
def test_a_host_bound_block_fp8_table_is_passed_over(gid):
    """vLLM 0.24's block-FP8 GEMM tables (aiconfigurator-core 0.12.0) take as long for a 2048 x 2048 GEMM at
    M = 8192 as at M = 1 (~60-280 us, 3.7-41x bf16's time at <= 64 tokens in the same table, while an FP8 GEMM
    streams half of bf16's weight bytes there): per-call host work that CUDA-graph replay removes, not GPU
    time. A vLLM spec's block-FP8 GEMMs take another framework's measured block-FP8 curve on the same GPU
    (the search order: TensorRT-LLM's), and say so; SGLang's own table (1.1x bf16 on B200) is kept."""
    from planner import kernels

    vt = kernels.table()[gid]["vllm"]["gemm"]["fp8-block"]
    assert vt["small_m_vs_bf16"] > kernels.HOST_BOUND
    gpu = catalog.gpus().by_id[gid]
    ks = kernels.kernel_set(gpu, "vllm", "fp8-block", "fp8-block", "bf16", 8, 1, 1, 8)
    tr = kernels.table()[gid]["trtllm"]["gemm"]["fp8-block"]
    assert ks.gemm == step.Gemm(tr["t0_us"] * 1e-6, tr["e_max"], tr["m_half"], tr["e_mem"])
    assert any("vllm fp8-block table not used" in why for what, why in ks.provenance)
    sg = kernels.table()[gid]["sglang"]["gemm"]["fp8-block"]
    assert sg["small_m_vs_bf16"] <= kernels.HOST_BOUND
    ks = kernels.kernel_set(gpu, "sglang", "fp8-block", "fp8-block", "bf16", 8, 1, 1, 8)
    assert ks.gemm.t0_s == sg["t0_us"] * 1e-6
    # one 2048 x 2048 block-FP8 GEMM at M = 8 on the B200 curves: the vLLM table's floor alone (its t0) is
    # >= 5x the curve used now (t0 + weights 4,194,304 B / (7.7e12 x e_mem) ~ 7.3 + 0.7 us)
    if gid == "b200":
        used = kernels.kernel_set(gpu, "vllm", "fp8-block", "fp8-block", "bf16", 8, 1, 1, 8).gemm
        assert vt["t0_us"] * 1e-6 > 5 * (used.t0_s + 2048 * 2048 / (7.7e12 * used.e_mem))


@pytest.mark.parametrize("engine, deepep, expect", [
    # DeepSeek-V3 at 1 B/param, tensor 8, attention_data 2 (two attention groups of 4 GPUs). Parts: dense MLP
    # 3 x 396,361,728 = 1,189,085,184; shared experts 58 x 44,040,192 = 2,554,331,136; the rest of the body
    # 15,267,871,104 - both = 11,524,454,784 (over 4: 2,881,113,696); routed experts 653,908,770,816 / 8 =
    # 81,738,596,352; embeddings + LM head 1,853,358,080 x 2 B / 4 = 926,679,040.
    # vLLM: each attention group its own tensor group of 4: dense/4 297,271,296 + shared/4 638,582,784
    ("vllm", False, 297_271_296 + 638_582_784 + 2_881_113_696 + 81_738_596_352 + 926_679_040),
    # SGLang: dense MLP and shared experts over all 8 GPUs: 148,635,648 + 319,291,392
    ("sglang", False, 148_635_648 + 319_291_392 + 2_881_113_696 + 81_738_596_352 + 926_679_040),
    # SGLang with DeepEP: the shared experts whole on every GPU: 2,554,331,136
    ("sglang", True, 148_635_648 + 2_554_331_136 + 2_881_113_696 + 81_738_596_352 + 926_679_040),
])
def test_dense_mlp_and_shared_experts_are_held_as_the_engine_splits_them(engine, deepep, expect):
    p = arch.params(model("deepseek-v3"))
    groups = arch.mlp_groups(engine, 8, 2, deepep)
    assert float(memory.weight_bytes_per_gpu(p, 1.0, 8, 1, 1.0, 2, groups)) == pytest.approx(expect, rel=1e-12)
    # the step model splits the same GEMMs the same way (dense MLP: 3 layers x gate/up + down)
    sysm = dataclasses.replace(ideal_system(bw=3.35e12, flops=989e12, wb=1.0), tp=8, ep=8, attention_dp=2,
                               dense_groups=groups[0], shared_groups=groups[1])
    shp = step.shape(arch.params(model("deepseek-v3")), arch.kv_layout(model("deepseek-v3")), 7168,
                     arch.attention_flops_per_ctx_token(model("deepseek-v3")), model("deepseek-v3"))
    c = step.coefficients(sysm, shp)
    mlp = [x for x in c.gemms if x[0] == 3]
    assert mlp and all(x[-1] == groups[0] for x in mlp)
