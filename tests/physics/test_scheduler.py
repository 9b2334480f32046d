"""The serving simulator as a benchmark runs it: finite runs, the engines' admission policies, a horizon
bounded by events, and data-parallel attention (issue 12, causes 4 and 6)."""

from __future__ import annotations

import math

import pytest

from conftest import run_cli
from planner.physics.serving import Lengths, Limits, simulate


def constant_step(seconds: float):
    """A step model where every iteration takes the same time (isolates the scheduler)."""
    return lambda decode, dctx, prefill, pctx: seconds


FIXED_1K = Lengths(1000, 1000, 1000, 1000)
FIXED_500 = Lengths(500, 500, 500, 500)


def test_offline_near_kv_capacity_does_not_thrash():
    """Every request queued at once into a pool of ~10 whole sequences: the max-utilization scheduler
    preempts when decodes outgrow the pool, but a preempted request is readmitted only when its prompt
    plus what it had generated fits again, so preemptions stay below one per request (the old admission
    readmitted it at once and preempted it again: thousands per run)."""
    lim = Limits(max_seqs=256, token_budget=8192, kv_tokens=15_000, block=16)  # 15,000 / (1,000 + 500) = 10 sequences
    sim = simulate(constant_step(0.02), lim, FIXED_1K, FIXED_500, n_requests=200, warmup_frac=0.0)
    assert sim.completed == 200 and not sim.truncated
    assert sim.preemptions < 200


def test_no_evict_never_preempts_and_admits_only_whole_sequences():
    """GUARANTEED_NO_EVICT reserves prompt + output per request: 15,000 / (1,000 + 500 + 16) = 9 sequences at
    once, never a preemption; the mean batch cannot exceed 9."""
    lim = Limits(max_seqs=256, token_budget=8192, kv_tokens=15_000, block=16, no_evict=True)
    sim = simulate(constant_step(0.02), lim, FIXED_1K, FIXED_500, n_requests=200, warmup_frac=0.0)
    assert sim.completed == 200 and sim.preemptions == 0
    assert sim.mean_batch <= 9.0 + 1e-9


def test_light_load_is_simulated_to_completion():
    """0.001 req/s for 300 requests is ~300,000 simulated seconds: the run ends when its last request
    finishes (no simulated-time horizon), so nothing is reported as infinite latency."""
    lim = Limits(max_seqs=64, token_budget=2048, kv_tokens=100_000)
    sim = simulate(constant_step(0.01), lim, FIXED_500, FIXED_500, rate_rps=0.001, n_requests=300)
    assert not sim.truncated and math.isfinite(sim.pct("ttft", 99))
    # alone in the engine: TTFT = one prefill step of 10 ms (500 tokens fit the 2,048-token budget)
    assert sim.pct("ttft", 50) == pytest.approx(0.01)


def test_long_outputs_finish():
    """64 requests of 30,000 output tokens at concurrency 8, 20 ms per step: 8 rounds x 30,000 steps x 20 ms
    = 4,800 s; all finish (an hours-long run is a run, not an infinite TTFT)."""
    lim = Limits(max_seqs=8, token_budget=2048, kv_tokens=1_000_000)
    out = Lengths(30_000, 30_000, 30_000, 30_000)
    sim = simulate(constant_step(0.02), lim, FIXED_500, out, concurrency=8, n_requests=64, warmup_frac=0.0)
    assert sim.completed == 64 and not sim.truncated
    assert sim.duration_s == pytest.approx(8 * 30_000 * 0.02, rel=0.01)


def test_finite_run_counts_every_request():
    lim = Limits(max_seqs=64, token_budget=2048, kv_tokens=100_000)
    sim = simulate(constant_step(0.01), lim, FIXED_500, FIXED_500, concurrency=4, n_requests=40, warmup_frac=0.0)
    assert len(sim.ttft_s) == 40 and len(sim.e2e_s) == 40


SPEC = """apiVersion: planfile/v1
kind: Deployment
metadata: {{name: bench}}
model: {{id: llama-3.1-8b}}
precision: {{weights: fp8, kv_cache: fp8}}
hardware: {{gpu: h100-sxm, gpus_per_replica: 1, replicas: 1}}
engine: {{name: {engine}{extra}}}
workload:
  archetype: custom
  input_tokens: 1000
  output_tokens: 1000
  concurrency: 16
{requests}slo: {{ttft_ms: {{p95: 100000}}}}
cost: {{usd_per_gpu_hour: 2}}
"""


def check_json(tmp_path, **kw):
    import json

    kw.setdefault("engine", "trtllm")
    kw.setdefault("extra", "")
    kw.setdefault("requests", "")
    p = tmp_path / "s.yaml"
    p.write_text(SPEC.format(**kw))
    r = run_cli("check", str(p), "--format", "json", "--no-cache")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return json.loads(r.stdout)["results"][0]


def test_workload_requests_is_a_finite_run(tmp_path):
    """16 in flight, 32 requests: exactly 32 complete, and the run lasts at least two rounds of 1,000 decode
    steps (each >= the 1.2 ms decode floor of an 8 GB FP8 model on 3.35 TB/s: 2 x 1,000 x 2.4 ms >= 4.8 s)."""
    finite = check_json(tmp_path, requests="  requests: 32\n")["estimate"]["performance"]
    assert finite["requests_completed"] == 32
    assert finite["duration_s"] >= 2 * 1000 * 8.0e9 / 3.35e12
    steady = check_json(tmp_path)["estimate"]["performance"]
    assert "requests_completed" not in steady


def test_scheduler_policy_default_and_refusal(tmp_path):
    doc = check_json(tmp_path, extra=", scheduler_policy: max-utilization")
    assert doc["status"] in ("pass", "fail")
    p = tmp_path / "v.yaml"
    p.write_text(SPEC.format(engine="vllm", extra=", scheduler_policy: guaranteed-no-evict", requests=""))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "PF121" in r.stdout + r.stderr and "vLLM has no guaranteed-no-evict" in r.stdout + r.stderr


DSV3 = """apiVersion: planfile/v1
kind: Deployment
metadata: {{name: dsv3}}
model: {{id: deepseek-v3}}
precision: {{weights: fp8, kv_cache: fp8}}
hardware: {{gpu: h200-sxm, gpus_per_replica: 8, replicas: 1}}
parallelism: {{tensor: 8, expert: 8{adp}}}
engine: {{name: sglang}}
workload: {{archetype: chat, concurrency: 64}}
cost: {{usd_per_gpu_hour: 3}}
"""


def resolved(tmp_path, text):
    from planner.loader import load_text
    from planner.resolve import resolve

    p = tmp_path / "d.yaml"
    p.write_text(text)
    return resolve(load_text(p.read_bytes(), str(p)))


def test_attention_data_parallel_stores_the_mla_latent_once_per_group(tmp_path):
    """DeepSeek-V3, FP8 KV: the MLA latent is (512 + 64) x 61 layers x 1 B = 35,136 B per token and is not split
    by TP, so at TP 8 every GPU stores every token's latent. With attention_data: 8 each GPU stores only its
    own group's tokens: the replica holds 8 pools' worth. Non-expert weights are copied into every group
    instead, so each pool is a little smaller: the gain is 8 x (pool with DP) / (pool without)."""
    from planner.evaluate import memory_plan

    tp = memory_plan(resolved(tmp_path, DSV3.format(adp="")))
    dp = memory_plan(resolved(tmp_path, DSV3.format(adp=", attention_data: 8")))
    assert tp.kv_bytes_per_token_per_gpu == 35_136 == dp.kv_bytes_per_token_per_gpu
    assert dp.weights_gb > tp.weights_gb
    assert dp.kv_tokens == pytest.approx(8 * tp.kv_tokens * dp.kv_pool_gb / tp.kv_pool_gb, rel=0.01)


def test_attention_data_must_divide_tensor_and_needs_moe(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(DSV3.format(adp=", attention_data: 3"))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "PF120" in r.stdout
    p.write_text(DSV3.replace("deepseek-v3", "llama-3.1-70b").replace("expert: 8", "expert: 1").format(adp=", attention_data: 2"))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "not a mixture-of-experts" in r.stdout
