"""DeepEP's expert all-to-all and two-batch overlap in the step model, with hand-computed expectations."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import catalog, kernels
from planner.physics import arch, step


def shape_of(mid):
    m = catalog.models().get(mid).entry
    return step.shape(arch.params(m), arch.kv_layout(m), m["hidden_size"], arch.attention_flops_per_ctx_token(m), m)


def test_units_touched_by_top_k_routing():
    # 8 experts of 256 over 4 nodes (64 experts each): P(a node gets none) = prod_{i<8} (192 - i) / (256 - i)
    # = 0.75 x 0.749 x 0.748 x 0.747 x 0.746 x 0.745 x 0.744 x 0.743 = 0.0965; nodes reached = 4 x (1 - 0.0965) = 3.614
    p = 1.0
    for i in range(8):
        p *= (192 - i) / (256 - i)
    assert kernels.units_touched(256, 8, 4) == pytest.approx(4 * (1 - p), rel=1e-12)
    assert kernels.units_touched(256, 8, 4) == pytest.approx(3.614, abs=0.001)
    # Mixtral's top-2 of 8 over 8 GPUs: every expert on its own GPU, a token reaches exactly 2
    assert kernels.units_touched(8, 2, 8) == pytest.approx(2.0)
    # one unit holds every expert: reached for sure
    assert kernels.units_touched(256, 8, 1) == pytest.approx(1.0)


def test_the_deepep_curves_reproduce_the_measured_table():
    """The fitted curves give back SGLang's measured DeepEP times on H100 (aiconfigurator-core 0.12.0,
    systems/data/h100_sxm/comm/sglang/0.5.6.post2/wideep_deepep_{normal,ll}_perf.parquet) within the fit's p90
    error. Measured (DeepSeek-V3 shape: hidden 7168, top-8, 256 experts):
      normal, 4 nodes (EP32), 4096 tokens per rank, 24 SMs: dispatch 1791.00 + 61.77 (notify) = 1852.77 us,
                                                             combine 3522.00 + 119.13 = 3641.13 us
      low-latency, 8 nodes (EP64), 128 tokens per rank: dispatch 166.77 us, combine 304.73 us."""
    h100 = catalog.gpus().get("h100-sxm").entry
    dp, prov = kernels.deepep(h100, "sglang", "auto", 32, 8, 7168, 256, 8, True)
    d, c, ds, cs = dp.normal
    assert ds == pytest.approx(1.0) and cs == pytest.approx(1.0)  # the measured shape itself
    assert d.seconds(4096) == pytest.approx(1852.77e-6, rel=0.05)
    assert c.seconds(4096) == pytest.approx(3641.13e-6, rel=0.05)
    dp64, _ = kernels.deepep(h100, "sglang", "auto", 64, 8, 7168, 256, 8, True)
    d, c, _, _ = dp64.low_latency
    assert d.seconds(128) == pytest.approx(166.77e-6, rel=0.05)
    assert c.seconds(128) == pytest.approx(304.73e-6, rel=0.05)
    assert "sglang" in prov[0][1] and "4 node" in prov[0][1]


def test_another_model_scales_by_the_bytes_its_token_moves():
    # Qwen3-235B-A22B-like shape: hidden 4096, top-8 of 128 experts, EP32 over 4 nodes.
    # normal kernels: a token goes once to each node it reaches: 4096 x touched(128, 8, 4) / (7168 x touched(256, 8, 4))
    # low-latency kernels: once per expert: 4096 x 8 / (7168 x 8) = 0.5714
    h100 = catalog.gpus().get("h100-sxm").entry
    dp, _ = kernels.deepep(h100, "sglang", "auto", 32, 8, 4096, 128, 8, True)
    want = 4096 * kernels.units_touched(128, 8, 4) / (7168 * kernels.units_touched(256, 8, 4))
    assert dp.normal[3] == pytest.approx(want, rel=1e-12)
    assert dp.low_latency[3] == pytest.approx(4096 / 7168, rel=1e-12)
    # a 16-bit dispatch (no FP8 experts) moves 2 B per element instead of 1 + 4/128 (FP8 with a scale per 128)
    dp16, _ = kernels.deepep(h100, "sglang", "auto", 32, 8, 4096, 128, 8, False)
    assert dp16.normal[2] == pytest.approx(want * 2 / (1 + 4 / 128), rel=1e-12)
    assert dp16.normal[3] == pytest.approx(want, rel=1e-12)  # the combine is BF16 either way


def _deepseek_system(mode="auto", tbo=False):
    h100 = catalog.gpus().get("h100-sxm").entry
    dp, _ = kernels.deepep(h100, "sglang", mode, 32, 8, 7168, 256, 8, True)
    g = step.Gemm(6.5e-6, 0.57, 144.0, 0.88)
    return step.System(tp=32, pp=1, ep=32, mem_bw=3.35e12, linear_flops=1979e12, attn_flops=989e12, gemm=g, gemm16=g, moe=g,
                       moe_imbalance=1.0, decode_attn_t0_s=10e-6, decode_attn_e=0.83, prefill_attn_t0_s=13e-6,
                       prefill_attn_e=0.6, prefill_attn_s_half=1000.0, allreduce=None, alltoall=step.Collective(30e-6, 10e9, 50e9, 4e6),
                       p2p=None, weight_bytes=1.0, kv_bytes=2.0, step_overhead_s=1e-3, attention_dp=32, deepep=dp,
                       two_batch_overlap=tbo), dp


def test_deepep_communication_is_one_dispatch_and_one_combine_per_moe_layer():
    # DeepSeek-V3: 58 MoE layers (61 - 3 dense). A prompt step of 32 x 4096 tokens over EP32: 4096 tokens per rank,
    # normal kernels: 58 x (dispatch(4096) + combine(4096)); a pure decode step of 32 x 128: low-latency kernels at 128
    sysm, dp = _deepseek_system()
    shp = shape_of("deepseek-v3")
    c = step.coefficients(sysm, shp)
    _, _, _, comm, _ = step.terms(c, 0.0, 0.0, 32 * 4096.0, 2048.0, max)
    assert comm == pytest.approx(58 * (dp.normal[0].seconds(4096) + dp.normal[1].seconds(4096)), rel=1e-9)
    _, _, _, comm, _ = step.terms(c, 32 * 128.0, 2000.0, 0.0, 0.0, max)
    assert comm == pytest.approx(58 * (dp.low_latency[0].seconds(128) + dp.low_latency[1].seconds(128)), rel=1e-9)
    # normal mode on every step (an aggregated vLLM replica): the decode step takes the normal kernels too
    sysn, dpn = _deepseek_system("normal")
    _, _, _, comm, _ = step.terms(step.coefficients(sysn, shp), 32 * 128.0, 2000.0, 0.0, 0.0, max)
    assert comm == pytest.approx(58 * (dpn.normal[0].seconds(128) + dpn.normal[1].seconds(128)), rel=1e-9)


def test_two_batch_overlap_hides_communication_under_the_other_half():
    # TBO step = 2 x kernels(half batch) + max(0, 2 x comm(half) - 2 x kernels(half)) + host
    shp = shape_of("deepseek-v3")
    plain, _ = _deepseek_system()
    tbo, _ = _deepseek_system(tbo=True)
    cp, ct = step.coefficients(plain, shp), step.coefficients(tbo, shp)
    for decode, prefill in ((32 * 256.0, 0.0), (0.0, 32 * 16384.0), (32 * 2.0, 0.0)):
        g, mo, at, cm, host = step.terms(cp, decode / 2, 2000.0, prefill / 2, 1000.0, max)
        kern = 2 * g + 2 * mo + 2 * at
        want = kern + max(2 * cm - kern, 0.0) + host
        got = float(step.step_time(tbo, shp, decode, 2000.0, prefill, 1000.0))
        assert got == pytest.approx(want, rel=1e-12)
        # never slower than the kernels of the whole batch alone would allow to hide... and here, with
        # communication that the kernels can hide, faster than the step without overlap
        whole = float(step.step_time(plain, shp, decode, 2000.0, prefill, 1000.0))
        if decode == 32 * 256.0 or prefill:
            assert got < whole


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(0, 20000), ctx=st.integers(1, 8192), prefill=st.integers(0, 600000), pctx=st.integers(1, 8192),
       mode=st.sampled_from(["auto", "normal", "low_latency"]), tbo=st.booleans())
def test_the_simulators_function_is_the_same_formula_with_deepep_and_overlap(batch, ctx, prefill, pctx, mode, tbo):
    """The generated scalar step (the simulator's) returns bit for bit what terms() returns."""
    sysm, _ = _deepseek_system(mode, tbo)
    shp = shape_of("deepseek-v3")
    fn = step.scalar_step(sysm, shp)
    want = float(step.step_time(sysm, shp, batch, ctx, prefill, pctx))
    assert fn(batch, ctx, prefill, pctx) == want
    assert fn.hot()(batch, ctx, prefill, pctx) == want


def test_a_dense_collective_system_is_unchanged_by_the_new_fields():
    # without DeepEP the expert all-to-all is the engine's collective: two per MoE layer, as before
    sysm, _ = _deepseek_system()
    plain = dataclasses.replace(sysm, deepep=None)
    c = step.coefficients(plain, shape_of("deepseek-v3"))
    assert c.a2a and c.a2a[0] == 2 * 58 and not c.ep_pre and not c.tbo


def test_expert_parallelism_under_tensor_parallel_attention_adds_no_communication():
    """DeepSeek-V3 FP8 on 8 x H200, TP 8: with tensor-parallel attention every rank holds every token, so expert
    parallelism (EP 8) only moves whole experts onto ranks; each rank runs its own experts on all tokens and the
    MLP's all-reduce combines them, as without EP (vLLM 0.33 FusedMoEConfig.use_all2all_kernels is
    `use_ep and dp_size > 1`). The communication of a 1,500-token prefill is the same 2 x 61 all-reduces either way;
    with 8 data-parallel attention ranks the all-reduces go (one GPU per attention group) and an all-to-all comes."""
    from planner.evaluate import step_function
    from planner.loader import load_text
    from planner.resolve import resolve

    def resolved(extra: str):
        text = f"""apiVersion: planfile/v1
kind: Deployment
metadata: {{name: x}}
model: {{id: deepseek-v3}}
precision: {{weights: fp8}}
hardware: {{gpu: h200-sxm, gpus_per_replica: 8, replicas: 1}}
parallelism: {{tensor: 8{extra}}}
engine: {{name: vllm}}
workload: {{archetype: chat, arrival_rate_rps: 1}}
slo: {{}}
"""
        return resolve(load_text(text.encode(), "x.yaml"))

    def comm_s(r):
        sysm, shp, _ = step_function(r)
        return float(step.step_components(sysm, shp, 0, 0.0, 1500, 750.0)["comm_s"])

    tp_only, tp_ep, dp_ep = resolved(""), resolved(", expert: 8"), resolved(", expert: 8, attention_data: 8")
    c = step.coefficients(*step_function(tp_ep)[:2])
    assert c.ar[0] == 2 * 61 and not c.a2a
    assert comm_s(tp_ep) == pytest.approx(comm_s(tp_only), rel=1e-9)
    c = step.coefficients(*step_function(dp_ep)[:2])
    assert not c.ar and c.a2a[0] == 2 * 58  # a dispatch and a combine per MoE layer (58 of DeepSeek-V3's 61)
