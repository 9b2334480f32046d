"""Monotonicity properties of the physics (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import catalog
from planner.physics import arch, memory, serving, step

M = catalog.models().get("llama-3.1-70b").entry
P, LAY = arch.params(M), arch.kv_layout(M)
SHAPE = step.shape(P, LAY, M["hidden_size"], arch.attention_flops_per_ctx_token(M), M)
H200_FP8 = step.Gemm(13.7e-6, 0.56, 100.0, 0.82)


def system(bw=3.35e12, tp=2):
    return step.System(tp=tp, pp=1, ep=1, mem_bw=bw, linear_flops=1979e12, attn_flops=989e12, gemm=H200_FP8,
                       gemm16=step.Gemm(4e-6, 0.8, 80.0, 0.8), moe=H200_FP8, moe_imbalance=1.0, decode_attn_t0_s=12e-6,
                       decode_attn_e=0.6, prefill_attn_t0_s=13e-6, prefill_attn_e=0.8, prefill_attn_s_half=1000.0,
                       allreduce=step.Collective(3e-6, 100e9, 260e9, 5e6) if tp > 1 else None, alltoall=None, p2p=None,
                       weight_bytes=1.0, kv_bytes=1.0, step_overhead_s=1e-3, prefill_overhead_s=2e-3)


@given(batch=st.integers(1, 512), extra=st.integers(1, 512), ctx=st.integers(1, 32768))
def test_a_bigger_batch_never_steps_faster(batch, extra, ctx):
    s = system()
    assert float(step.step_time(s, SHAPE, batch + extra, ctx, 0, 0)) >= float(step.step_time(s, SHAPE, batch, ctx, 0, 0))


def _shape(mid):
    m = catalog.models().get(mid).entry
    return step.shape(arch.params(m), arch.kv_layout(m), m["hidden_size"], arch.attention_flops_per_ctx_token(m), m)


# dense GQA, MoE, sliding-window layers, MLA: every branch of the formula
SHAPES = {mid: _shape(mid) for mid in ("llama-3.1-70b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite")}


@given(batch=st.integers(0, 256), ctx=st.integers(1, 32768), prefill=st.integers(0, 8192), pctx=st.integers(1, 16384),
       mid=st.sampled_from(sorted(SHAPES)), tp=st.sampled_from([1, 2, 8]))
def test_scalar_and_vector_paths_are_one_formula(batch, ctx, prefill, pctx, mid, tp):
    """The simulator's generated scalar function returns bit for bit what the vectorized terms() return."""
    s, shp = system(tp=tp), SHAPES[mid]
    fn = step.scalar_step(s, shp)
    want = float(step.step_time(s, shp, batch, ctx, prefill, pctx))
    assert fn(batch, ctx, prefill, pctx) == want  # the first calls evaluate terms() with Python floats
    for _ in range(step.COMPILE_AFTER_CALLS + 1):
        fn(1, 1, 0, 0)
    assert fn(batch, ctx, prefill, pctx) == want  # then the generated, compiled function


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


MIXTRAL = catalog.models().get("mixtral-8x7b").entry
MIXTRAL_SHAPE = step.shape(arch.params(MIXTRAL), arch.kv_layout(MIXTRAL), MIXTRAL["hidden_size"],
                           arch.attention_flops_per_ctx_token(MIXTRAL), MIXTRAL)


@given(batch=st.integers(0, 256), ctx=st.integers(1, 32768), prefill=st.integers(0, 8192), pctx=st.integers(1, 16384),
       moe=st.booleans())
def test_the_parts_explain_prints_add_up_to_the_step(batch, ctx, prefill, pctx, moe):
    """explain prints step = memory-bound + compute-bound kernels + communication + host: the split must
    cover every kernel (MoE and the LM head included), or the printed sum is not the step."""
    shape = MIXTRAL_SHAPE if moe else SHAPE
    parts = step.step_components(system(), shape, batch, ctx, prefill, pctx)
    total = float(parts["compute_s"] + parts["memory_s"] + parts["comm_s"] + parts["overhead_s"])
    assert abs(total - float(parts["total_s"])) <= 1e-12 + 1e-9 * float(parts["total_s"])


@settings(max_examples=400)
@given(values=st.lists(st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=300),
       qs=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=6))
def test_linear_percentiles_are_numpys_bit_for_bit(values, qs):
    # SimResult's percentiles skip np.percentile (its per-call cost, the numpy.ma import of its first call):
    # the same numbers, to the last bit, for every sample and percentile
    expected = np.percentile(np.asarray(values), qs).tolist()
    assert serving.linear_percentiles(sorted(values), qs) == expected


def test_unfinished_requests_keep_the_inverted_cdf_percentile():
    # an infinite latency (a request the run never finished) is not interpolated with a finite one:
    # p50 of [1, 2, inf, inf] is the 2nd order statistic (inverted CDF), 2.0; p95 is inf
    res = serving.SimResult(np.array([1.0, 2.0, np.inf, np.inf]), np.zeros(4), np.array([]), np.array([]),
                            1.0, 0, 2, 0, 0.0)
    assert res.pct("ttft", 50) == 2.0 and res.pct("ttft", 95) == np.inf


def _resolved_steps():
    """Step models of real resolved specs, one per branch of the generated source: dense, MoE over expert
    parallelism, DeepEP (prefill and decode collectives differ), DeepEP with two-batch overlap, sliding-window
    layers, attention data parallelism."""
    from dataclasses import replace

    from planner import evaluate
    from planner.loader import load_path
    from planner.resolve import resolve

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    dense = resolve(load_path(str(root / "specs" / "chat-llama-3.1-70b.yaml")))
    moe = resolve(load_path(str(root / "specs" / "deepseek-v3-h200.yaml")))
    gemma = replace(dense, model=catalog.models().get("gemma-2-9b").entry, tp=1, gpus_per_replica=1)
    variants = [dense, moe, replace(moe, moe_all_to_all="deepep"),
                replace(moe, moe_all_to_all="deepep", two_batch_overlap=True), gemma, replace(moe, attention_dp=8)]
    return [evaluate.step_function(v)[2] for v in variants]


RESOLVED_STEPS = _resolved_steps()


@given(i=st.integers(0, len(RESOLVED_STEPS) - 1), batch=st.integers(0, 1024), ctx=st.floats(0.0, 131072.0))
def test_the_pure_decode_step_is_the_general_one_bit_for_bit(i, batch, ctx):
    """The simulator's pure-decode runs call a generated step with the prompt terms folded out (hot_decode): it
    must return exactly what the general step returns with no prompt tokens, on every branch of the source."""
    fn = RESOLVED_STEPS[i]
    assert fn.hot_decode()(batch, ctx) == fn.hot()(batch, ctx, 0, 0.0) == fn(batch, ctx, 0, 0.0)


@given(i=st.integers(0, len(RESOLVED_STEPS) - 1), batch=st.integers(0, 1024),
       ctxs=st.lists(st.floats(0.0, 131072.0), min_size=2, max_size=6))
def test_the_pure_decode_step_at_one_batch_and_many_contexts(i, batch, ctxs):
    """hot_decode keeps the batch size's terms from its first call at that size (a pure-decode run steps one batch
    at two contexts): later contexts at the same size, passed as int or float, still get the general step's value."""
    fn, hot = RESOLVED_STEPS[i], RESOLVED_STEPS[i].hot_decode()
    for j, ctx in enumerate(ctxs):
        assert hot(batch if j % 2 else float(batch), ctx) == fn(batch, ctx, 0, 0.0)
