"""Monotonicity properties of the physics (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import catalog
from planner.physics import arch, memory, serving, step

M = catalog.models().get("llama-3.1-70b").entry
P, LAY = arch.params(M), arch.kv_layout(M)
SHAPE = step.shape(P, LAY, M["hidden_size"], arch.attention_flops_per_ctx_token(M))


def system(bw=3.35e12, tp=2):
    return step.System(tp=tp, pp=1, ep=1, mem_bw=bw, linear_flops=1979e12, attn_flops=989e12, mbu=0.7, mfu=0.6,
                       overhead_s=2e-3, link_bw=450e9, link_latency_s=8e-6, weight_bytes=1.0, kv_bytes=1.0)


@given(bw=st.floats(1e11, 1e13), extra=st.floats(1.0, 4.0), batch=st.integers(1, 512), ctx=st.integers(1, 32768))
def test_more_bandwidth_is_never_slower(bw, extra, batch, ctx):
    assert float(step.step_time(system(bw * extra), SHAPE, batch, ctx, 0, 0)) <= float(step.step_time(system(bw), SHAPE, batch, ctx, 0, 0))


@given(tp=st.sampled_from([1, 2, 4, 8]))
def test_more_gpus_never_hold_less(tp):
    w1 = float(memory.weight_bytes_per_gpu(P, 1.0, tp, 1))
    w2 = float(memory.weight_bytes_per_gpu(P, 1.0, tp * 2, 1))
    assert w2 <= w1
    pool1 = memory.kv_pool_bytes_per_gpu("fraction_of_total", 80 * 2**30, 0.9, w1, 1e9, 1e9) * tp
    pool2 = memory.kv_pool_bytes_per_gpu("fraction_of_total", 80 * 2**30, 0.9, w2, 1e9, 1e9) * tp * 2
    assert pool2 >= pool1


@given(ctx=st.integers(1, 100_000), k=st.integers(2, 5))
def test_kv_grows_linearly_with_context(ctx, k):
    a = float(memory.kv_bytes_per_seq_per_gpu(LAY, ctx * 16, 1.0, 1, 1, 16))
    b = float(memory.kv_bytes_per_seq_per_gpu(LAY, ctx * 16 * k, 1.0, 1, 1, 16))
    assert b == k * a


@settings(max_examples=15, deadline=None)
@given(rate=st.floats(0.5, 20.0), seed=st.integers(0, 1000))
def test_percentiles_are_ordered(rate, seed):
    s = system()
    fn = lambda d, dc, p, pc: step.step_time(s, SHAPE, d, dc, p, pc)  # noqa: E731
    lim = serving.Limits(max_seqs=256, token_budget=8192, kv_tokens=400_000)
    res = serving.simulate(fn, lim, serving.Lengths(1000, 800, 3000, 4000), serving.Lengths(200, 150, 600, 1000),
                           rate_rps=rate, n_requests=300, seed=seed)
    for w in ("ttft", "itl", "e2e"):
        assert res.pct(w, 50) <= res.pct(w, 95) <= res.pct(w, 99)


def test_latency_grows_with_load():
    s = system()
    fn = lambda d, dc, p, pc: step.step_time(s, SHAPE, d, dc, p, pc)  # noqa: E731
    lim = serving.Limits(max_seqs=256, token_budget=8192, kv_tokens=400_000)
    ttft = [serving.simulate(fn, lim, serving.Lengths(1000, 1000, 1000, 1000), serving.Lengths(200, 200, 200, 200),
                             rate_rps=r, n_requests=600, seed=1).pct("ttft", 95) for r in (1, 5, 15, 40)]
    assert ttft == sorted(ttft)
