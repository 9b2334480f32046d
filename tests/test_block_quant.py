"""Block-scaled FP8 checkpoints: which tensor-parallel splits the engines can load (PF125), that plan never
proposes another, and that SGLang's rendered launch splits the dense MLP the way the physics does."""

from __future__ import annotations

import pytest

from conftest import ROOT, run_cli
from planner import catalog, checkpoints


def model(mid: str) -> dict:
    return catalog.models().get(mid).entry


def test_qwen3_fp8_releases_are_block_quantized():
    # the Qwen3 -FP8 model cards: "fine-grained fp8 quantization with block size of 128"
    for repo in ("Qwen/Qwen3-8B-FP8", "Qwen/Qwen3-32B-FP8", "Qwen/Qwen3-30B-A3B-FP8", "Qwen/Qwen3-235B-A22B-FP8"):
        assert checkpoints.find_repo(repo)["format"] == "fp8-block"
    assert checkpoints.weight_block("fp8-block", "vllm") == (128, 128)
    assert checkpoints.weight_block("fp8-block", "trtllm") is None  # not checked there
    assert checkpoints.weight_block("fp8", "vllm") is None


def test_routed_expert_shards_by_hand():
    m = model("qwen3-235b-a22b")  # 128 experts of 1,536 intermediate; 64 heads x 128, 4 KV heads
    # tensor 8: 1,536 / 8 = 192 = 1.5 blocks of 128 -> refused
    assert checkpoints.misfit_shard(m, 8, 1, 1, 128) == ("each routed expert (gate/up and down)", 1536, 8)
    # tensor 4: 1,536 / 4 = 384 = 3 x 128; attention 8,192 / 4 = 2,048 = 16 x 128 -> loads
    assert checkpoints.misfit_shard(m, 4, 1, 1, 128) is None
    # tensor 8 with expert 8: whole experts; attention 8,192 / 8 = 1,024; KV heads replicated (4 < 8)
    assert checkpoints.misfit_shard(m, 8, 8, 1, 128) is None
    m = model("qwen3-30b-a3b")  # 768 intermediate: tensor 4 -> 192 (refused), tensor 2 -> 384 (loads)
    assert checkpoints.misfit_shard(m, 4, 1, 1, 128)[2] == 4
    assert checkpoints.misfit_shard(m, 2, 1, 1, 128) is None


@pytest.mark.parametrize("engine,deepep,expect", [
    # SGLang, tensor 32, attention 32-way data-parallel: dense MLP replicated (--moe-dense-tp-size 1); the shared
    # expert (1 x 2,048) over all 32 GPUs = 64 wide (refused) unless DeepEP keeps it whole on each GPU
    ("sglang", False, ("the shared experts (gate/up and down)", 2048, 32)),
    ("sglang", True, None),
    # vLLM: each data-parallel rank is its own tensor group of 32 / 32 = 1 GPU: nothing is split
    ("vllm", False, None),
])
def test_deepseek_at_tensor_32_by_hand(engine, deepep, expect):
    assert checkpoints.misfit_shard(model("deepseek-v3"), 32, 32, 32, 128, engine, deepep) == expect


def test_deepseek_at_tensor_16_without_data_parallel_attention_loads():
    # attention q up-projection 128 heads x 192 / 16 = 1,536 = 12 x 128; output 128 x 128 / 16 = 1,024; dense MLP
    # 18,432 / 16 = 1,152 = 9 x 128; shared expert 2,048 / 16 = 128; routed experts whole (expert 16)
    assert checkpoints.misfit_shard(model("deepseek-v3"), 16, 16, 1, 128, "sglang") is None
    # at tensor 32 the dense MLP is 576 wide per GPU (4.5 blocks): sgl-project/sglang#3345
    assert checkpoints.misfit_shard(model("deepseek-v3"), 32, 32, 1, 128, "sglang")[:2] == ("the dense layers' MLP (gate/up and down)", 18432)


def test_plan_never_proposes_a_split_the_engine_refuses(tmp_path):
    from planner.plan import Constraints, candidates
    from planner.run import load_for_plan

    spec = tmp_path / "q.yaml"
    spec.write_text("apiVersion: planfile/v1\nkind: Deployment\nmetadata: {name: q}\nmodel: {id: qwen3-235b-a22b}\n"
                    "precision: {weights: fp8}\nengine: {name: vllm}\n"
                    "workload: {archetype: chat, arrival_rate_rps: 4}\nslo: {ttft_ms: {p95: 2000}, itl_ms: {p95: 80}}\n")
    _, findings, base, _ = load_for_plan(str(spec))
    opts, rejected = candidates(base, Constraints(gpus=("h200-sxm",)))
    assert rejected.get("block_shard", 0) >= 1  # TP 8 with the experts split by tensor parallelism
    assert opts and all(checkpoints.shard_misfit(o.r) is None for o in opts)
    assert any(o.r.tp == 8 and o.r.ep == 8 for o in opts)  # the loadable TP 8: whole experts


def test_sglang_full_data_parallel_attention_renders_a_replicated_dense_mlp(tmp_path):
    wide = ROOT / "specs" / "disagg-deepseek-v3-wide-ep-h100.yaml"
    out = tmp_path / "out"
    assert run_cli("render", str(wide), "--out", str(out), "--only", "engine").returncode == 0
    for role in ("prefill", "decode"):
        words = (out / "engine" / f"{role}.sh").read_text().split("exec ", 1)[1].split()
        assert words[words.index("--moe-dense-tp-size") + 1] == "1"
    # attention in two groups of 4 GPUs on a tensor-8 replica: SGLang's default (the dense MLP over --tp-size)
    spec = tmp_path / "s.yaml"
    spec.write_text((ROOT / "specs" / "deepseek-v3-h200.yaml").read_text().replace("  expert: 8\n", "  expert: 8\n  attention_data: 2\n"))
    out = tmp_path / "out2"
    r = run_cli("render", str(spec), "--out", str(out), "--only", "engine")
    assert r.returncode == 0, r.stdout + r.stderr
    words = (out / "engine" / "serve.sh").read_text().split("exec ", 1)[1].split()
    assert words[words.index("--dp-size") + 1] == "2" and "--moe-dense-tp-size" not in words


@pytest.mark.parametrize("par, expect", [
    # 64 query heads, 4 KV heads: tensor 8 holds each KV head on 2 GPUs (replicated 2x); the fix keeps expert
    # parallelism within the smaller replica (expert: 8 > tensor: 4 would be PF112)
    ("{tensor: 8, expert: 8}", "tensor: 4 with expert: 4 and more replicas"),
    # attention 8-way data-parallel: one GPU per attention group holds all 4 KV heads, nothing replicated
    ("{tensor: 8, expert: 8, attention_data: 8}", None),
    # 2 attention groups of 4 GPUs: one KV head per GPU
    ("{tensor: 8, expert: 8, attention_data: 2}", None),
])
def test_kv_replication_counts_the_gpus_of_one_attention_group(tmp_path, par, expect):
    from planner.run import check_spec

    spec = tmp_path / "s.yaml"
    spec.write_text("apiVersion: planfile/v1\nkind: Deployment\nmetadata: {name: q}\nmodel: {id: qwen3-235b-a22b}\n"
                    f"precision: {{weights: fp8}}\nhardware: {{gpu: h200-sxm, gpus_per_replica: 8, replicas: 1}}\nparallelism: {par}\n"
                    "engine: {name: vllm}\nworkload: {archetype: chat, arrival_rate_rps: 1}\n")
    res = check_spec(str(spec), breach=False)
    got = [f.remediation for f in res.findings if f.id == "PF203"]
    assert got == ([expect] if expect else [])
