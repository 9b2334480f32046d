"""Wide expert parallelism: engine.moe_all_to_all (DeepEP) and engine.two_batch_overlap through the spec, the
checks, the physics and the rendered engine flags — one choice, read by all of them."""

from __future__ import annotations

import dataclasses

import json
import re

import pytest

from conftest import ROOT, run_cli

WIDE = ROOT / "specs" / "disagg-deepseek-v3-wide-ep-h100.yaml"
AGG = ROOT / "specs" / "deepseek-v3-h200.yaml"


def with_engine(text: str, extra: str, engine: str | None = None) -> str:
    if engine:
        text = re.sub(r"(\nengine:\n  name: )\w+", r"\g<1>" + engine, text)
    return re.sub(r"(\nengine:\n  name: \w+\n)", r"\g<1>" + extra, text)


def check_json(tmp_path, text: str, name: str = "s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    r = run_cli("check", str(p), "--format", "json")
    return r, (json.loads(r.stdout) if r.stdout.strip().startswith(("{", "[")) else None)


def findings(doc) -> list[dict]:
    return doc["results"][0]["findings"]


@pytest.mark.parametrize("text, pointer, words", [
    # a dense model has no expert all-to-all
    (with_engine((ROOT / "specs" / "chat-llama-3.1-70b.yaml").read_text(), "  moe_all_to_all: deepep\n"),
     "/engine/moe_all_to_all", "not a mixture-of-experts"),
    # experts split by tensor parallelism: nothing to dispatch
    (with_engine(AGG.read_text().replace("  expert: 8\n", ""), "  two_batch_overlap: true\n"),
     "/engine/two_batch_overlap", "no expert parallelism"),
    # TensorRT-LLM's wide EP is configured otherwise: not rendered
    (with_engine(AGG.read_text(), "  moe_all_to_all: deepep\n", engine="trtllm"), "/engine/moe_all_to_all", "vLLM and SGLang"),
    # DeepEP spans the whole tensor group in both engines
    (with_engine(AGG.read_text().replace("gpus_per_replica: 8", "gpus_per_replica: 8").replace("  expert: 8", "  expert: 4"),
                 "  moe_all_to_all: deepep\n"), "/parallelism/expert", "every GPU of the tensor group"),
    # DeepEP is CUDA
    (with_engine(AGG.read_text().replace("gpu: h200-sxm", "gpu: mi300x").replace("provider: nebius", "usd_per_gpu_hour: 2.5"),
                 "  moe_all_to_all: deepep\n"), "/engine/moe_all_to_all", "CUDA"),
])
def test_expert_communication_a_deployment_cannot_run_is_refused(tmp_path, text, pointer, words):
    r, doc = check_json(tmp_path, text)
    assert r.returncode == 2, r.stderr
    bad = [f for f in findings(doc) if f["id"] == "PF124"]
    assert bad and bad[0]["location"]["path"] == pointer and words in bad[0]["message"], findings(doc)
    assert bad[0]["location"]["line"] > 0 and bad[0]["remediation"]
    # and nothing is rendered from it
    out = tmp_path / "out"
    p = tmp_path / "s.yaml"
    rr = run_cli("render", str(p), "--out", str(out), "--only", "engine")
    assert rr.returncode == 2 and not out.exists()


def vllm_wide() -> str:
    """The wide-EP example on vLLM, unchanged otherwise: it passes the same SLOs (its block-FP8 GEMMs run on
    the measured block-FP8 curve of another framework, vLLM's own table being host-bound: planner.kernels)."""
    return WIDE.read_text().replace("  name: sglang", "  name: vllm")


def _launch_words(out, name: str) -> list[str]:
    text = (out / "engine" / name).read_text()
    return text.split("exec ", 1)[1].split()


def test_the_rendered_flags_are_the_modes_the_physics_ran(tmp_path):
    """Each pool's launch names the DeepEP kernels its step model used: planner.resolve.deepep_mode, read by
    planner.evaluate.system (physics) and planner.render.engines (flags)."""
    from planner import disagg
    from planner.evaluate import system
    from planner.run import check_spec

    res = check_spec(str(WIDE), breach=False)
    out = tmp_path / "out"
    assert run_cli("render", str(WIDE), "--out", str(out), "--only", "engine,k8s").returncode == 0
    for role, mode in (("prefill", "normal"), ("decode", "low_latency")):
        words = _launch_words(out, f"{role}.sh")
        assert words[words.index("--moe-a2a-backend") + 1] == "deepep"
        assert words[words.index("--deepep-mode") + 1] == mode
        assert "--enable-two-batch-overlap" in words
        sysm = system(disagg.pool(res.resolved, role))
        assert sysm.deepep is not None and sysm.deepep.mode == mode and sysm.two_batch_overlap
    graph = (out / "k8s" / "dynamographdeployment.yaml").read_text()
    assert graph.count("--moe-a2a-backend") == 2 and "low_latency" in graph and "normal" in graph

    # vLLM: its DeepEP backends by role, and its dual-batch overlap
    spec = tmp_path / "v.yaml"
    spec.write_text(vllm_wide())
    assert check_spec(str(spec), breach=False).status == "pass"
    out = tmp_path / "vout"
    r = run_cli("render", str(spec), "--out", str(out), "--only", "engine")
    assert r.returncode == 0, r.stdout + r.stderr
    for role, backend in (("prefill", "deepep_high_throughput"), ("decode", "deepep_low_latency")):
        words = _launch_words(out, f"{role}.sh")
        assert words[words.index("--all2all-backend") + 1] == backend and "--enable-dbo" in words


def test_an_aggregated_replica_switches_kernels_per_step_on_sglang(tmp_path):
    from planner.evaluate import system
    from planner.run import check_spec

    for engine, flag, value, mode in (("sglang", "--deepep-mode", "auto", "auto"),
                                      ("vllm", "--all2all-backend", "deepep_high_throughput", "normal")):
        spec = tmp_path / f"{engine}.yaml"
        # on one node at this batch the overlap costs more than it hides (each micro-batch re-reads the experts):
        # a looser ITL SLO keeps the spec passing, the flags are what is tested
        text = AGG.read_text().replace("itl_ms: {p95: 100}", "itl_ms: {p95: 1000}")
        spec.write_text(with_engine(text, "  moe_all_to_all: deepep\n  two_batch_overlap: true\n", engine=engine))
        out = tmp_path / f"out-{engine}"
        r = run_cli("render", str(spec), "--out", str(out), "--only", "engine")
        assert r.returncode == 0, r.stdout + r.stderr
        words = _launch_words(out, "serve.sh")
        assert words[words.index(flag) + 1] == value
        assert system(check_spec(str(spec), breach=False).resolved).deepep.mode == mode


def test_the_engines_own_switches_are_refused_in_extra_args(tmp_path):
    text = with_engine(AGG.read_text(), "  extra_args: [--moe-a2a-backend, deepep]\n")
    r, doc = check_json(tmp_path, text)
    assert r.returncode == 1  # a valid spec whose launch planfile refuses: an error finding
    assert any("engine.moe_all_to_all" in f["message"] for f in findings(doc) if f["severity"] == "error"), findings(doc)


def test_sglangs_two_batch_overlap_rule_is_checked_before_the_engine_starts(tmp_path):
    """SGLang 0.5.23 refuses --enable-two-batch-overlap with moe_a2a_backend none and no DP attention
    (sglang/srt/arg_groups/validation_hook.py check_two_batch_overlap): `check` says so, from the engine's
    rule table (catalog/engines.yaml conflicts)."""
    r, doc = check_json(tmp_path, with_engine(AGG.read_text(), "  two_batch_overlap: true\n"))
    assert r.returncode == 1
    msgs = [f["message"] for f in findings(doc) if f["severity"] == "error"]
    assert any("two-batch overlap" in m and "engine.moe_all_to_all: deepep" in m for m in msgs), msgs
    # with DeepEP it is accepted
    r, _ = check_json(tmp_path, with_engine(AGG.read_text(), "  moe_all_to_all: deepep\n  two_batch_overlap: true\n"), "ok.yaml")
    assert r.returncode in (0, 1)


def test_wide_ep_without_deepep_is_told_the_verified_fix(tmp_path):
    """The wide-EP example with the engine's default all-to-all. On vLLM its network time dominates the step,
    and the fix planfile offers (checked on a copy) is the example's own DeepEP + two-batch overlap. On SGLang
    it does not load at all: without DeepEP SGLang splits the shared expert (2,048 wide) over all 32 decode
    GPUs into 64-wide shards of a 128 x 128 block-FP8 checkpoint (PF125), and DeepEP is the fix."""
    text = WIDE.read_text().replace("  moe_all_to_all: deepep\n", "").replace("  two_batch_overlap: true\n", "")
    r, doc = check_json(tmp_path, text.replace("  name: sglang", "  name: vllm"))
    fixes = [f for f in findings(doc) if f["id"] == "PF305"]
    assert fixes, findings(doc)
    assert "engine.moe_all_to_all: deepep" in fixes[0]["remediation"], fixes[0]
    r, doc = check_json(tmp_path, text, "sg.yaml")
    assert r.returncode == 2
    (f,) = [f for f in findings(doc) if f["id"] == "PF125"]
    assert f["location"]["path"] == "/disaggregation/decode/parallelism/tensor" and "64" in f["message"]
    assert f["remediation"].startswith("engine.moe_all_to_all: deepep")


def test_the_published_wide_ep_rows_are_predicted_with_what_the_blog_ran():
    """benchmarks/disagg_published.yaml states the LMSYS runs' DeepEP, two-batch overlap and per-GPU batch;
    the error of each row is what benchmarks/accuracy.py prints (never fitted)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import disagg_published

    for row, got, err in disagg_published.report():
        assert row["engine_settings"]["moe_all_to_all"] == "deepep"
        assert abs(err) < 0.5, (row["id"], got, row["measured"])


def test_plan_searches_expert_parallel_splits_and_writes_what_it_evaluated(tmp_path):
    """plan on the wide-EP example: its options include expert-parallel splits (DeepEP, overlap) — here the
    cheapest answer is one — and the spec it writes for option 1 passes `check` with plan's own numbers and
    renders the same expert switches. The example's own fleet passes check too, so plan's answer costs no
    more than it."""
    import yaml

    from planner.run import check_spec

    spec = tmp_path / "wide.yaml"
    spec.write_text(WIDE.read_text())
    out = tmp_path / "w.yaml"
    r = run_cli("plan", str(spec), "--format", "json", "--write", str(out))
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    best = plan["options"][0]
    doc = yaml.safe_load(out.read_text())
    assert "disaggregation" not in doc or best["disaggregated"], doc  # an aggregated option is written as one pool
    own = check_spec(str(WIDE), breach=False).estimate["cost"]["usd_per_month"]
    assert best["usd_per_month"] <= own
    res = check_spec(str(out), breach=False)
    assert res.status in ("pass", "warn"), [f.message for f in res.findings]
    perf = res.estimate["performance"]
    assert perf["ttft_ms"]["p95"] == pytest.approx(best["ttft_p95_ms"], abs=0.01)
    assert perf["itl_ms"]["p95"] == pytest.approx(best["itl_p95_ms"], abs=0.01)
    r = res.resolved
    assert (r.ep, r.attention_dp, r.moe_all_to_all, r.two_batch_overlap) == (
        best["expert"], best["attention_data"], best["moe_all_to_all"], best["two_batch_overlap"])
    if r.ep > 1:
        assert doc["parallelism"]["expert"] == r.ep
        assert doc["engine"].get("moe_all_to_all", "default") == r.moe_all_to_all
    assert any(o["expert"] > 1 for o in plan["options"])


def test_a_dense_plan_writes_no_expert_settings(tmp_path):
    import yaml

    spec = tmp_path / "d.yaml"
    spec.write_text((ROOT / "specs" / "chat-llama-3.1-70b.yaml").read_text())
    out = tmp_path / "w.yaml"
    assert run_cli("plan", str(spec), "--write", str(out)).returncode == 0
    doc = yaml.safe_load(out.read_text())
    assert "expert" not in doc.get("parallelism", {}) and "moe_all_to_all" not in doc["engine"]


def test_the_simulation_runs_long_enough_for_a_steady_state():
    """horizon: at least 10 x the sequences in flight by Little's law. A step of a constant 50 ms, 1,000 output
    tokens a request, 10 req/s: each request decodes 1,000 x 0.05 = 50 s, so 10 x 50 = 500 are in flight and
    5,000 requests are simulated (not the 600 asked for)."""
    from planner.evaluate import horizon
    from planner.physics import serving
    from planner.resolve import Lengths

    def fn(decode, dctx, prefill, pctx):
        return 0.05

    lim = serving.Limits(max_seqs=100000, token_budget=10**9, kv_tokens=10**12, block=1, no_evict=False)
    one = Lengths(1000, 1000, 1000, 1000)
    assert horizon(fn, lim, one, one, 10.0, 600) == 5000
    assert horizon(fn, lim, one, one, 0.01, 600) == 600  # a trickle: the default
    assert horizon(fn, lim, one, one, 1000.0, 600) == 20000  # bounded


def test_one_attention_group_is_stepped_with_the_others_at_their_mean_load():
    """per_group: the other groups' decode sequences d = rate x output tokens x step (Little's law), at the step
    those loads give. Step = 10 ms + 0.01 ms per decode sequence of the replica; 8 groups at 0.5 req/s each, 100
    output tokens: d = 0.5 x 100 x t, t = 0.010 + 1e-5 x 8 d => t = 0.010 / (1 - 4e-3) = 10.040 ms, d = 0.502."""
    from planner.evaluate import per_group
    from planner.physics import serving
    from planner.resolve import Lengths

    def fn(decode, dctx, prefill, pctx):
        return 0.010 + 1e-5 * decode

    lim = serving.Limits(max_seqs=800, token_budget=8000, kv_tokens=8_000_000, block=1, no_evict=False)
    f, lg = per_group(fn, lim, 8, 0.5, Lengths(10, 10, 10, 10), Lengths(100, 100, 100, 100))
    assert (lg.max_seqs, lg.token_budget, lg.kv_tokens) == (100, 1000, 1_000_000)
    t = 0.010 / (1 - 8 * 1e-5 * 0.5 * 100)
    d = 0.5 * 100 * t
    assert f(3, 0.0, 0, 0.0) == pytest.approx(0.010 + 1e-5 * (3 + 7 * d), rel=1e-6)


def test_a_pool_past_its_capacity_fails_check(tmp_path):
    """The wide-EP example with one decode replica: the decode pool is past its capacity at the peak, so the
    queue grows without bound and the latency SLOs fail (a 600-request run used to end inside its ramp and pass)."""
    text = (WIDE.read_text().replace("  prefill:\n    replicas: 4", "  prefill:\n    replicas: 3")
            .replace("  decode:\n    replicas: 2", "  decode:\n    replicas: 1"))
    r, doc = check_json(tmp_path, text)
    assert r.returncode == 1
    res = doc["results"][0]
    assert any(f["id"] == "PF401" and "TTFT" in f["message"] for f in res["findings"]), res["findings"]


def test_explain_names_the_collectives_the_step_model_pays_for():
    """explain's communication line is read from the step model's own coefficients: the wide-EP decode pool
    (attention 32-way data-parallel: one GPU per attention group) has no all-reduce and DeepEP for its
    all-to-all; the H200 example (tensor 8, expert 8, tensor-parallel attention) the all-reduce only: every rank holds
    every token, runs its own experts and the MLP's all-reduce combines them (vLLM's FusedMoE takes its all-to-all
    kernels only with data-parallel attention), so no all-to-all is paid on top."""
    from planner import disagg
    from planner.evaluate import provenance, step_function
    from planner.explain import _communication
    from planner.physics import step
    from planner.run import check_spec

    res = check_spec(str(WIDE), breach=False)
    dec = disagg.pool(res.resolved, "decode")
    text = _communication(dec, provenance(dec))
    c = step.coefficients(*step_function(dec)[:2])
    assert not c.ar and c.ep_dec and "all-reduce" not in text and "on DeepEP, low-latency kernels" in text
    r = check_spec(str(ROOT / "specs" / "deepseek-v3-h200.yaml"), breach=False).resolved
    text = _communication(r, provenance(r))
    c = step.coefficients(*step_function(r)[:2])
    assert c.ar and not c.a2a and not c.ep_dec
    assert f"2 per layer, {c.ar[1] * 1e6:.1f} us" in text and "experts over EP 8 without an all-to-all" in text
    # with attention data-parallel the tokens are sharded over the ranks: dispatch and combine are paid
    dp = dataclasses.replace(r, attention_dp=8)
    c = step.coefficients(*step_function(dp)[:2])
    assert c.a2a and not c.ar and "expert all-to-all over EP 8" in _communication(dp, provenance(dp))
