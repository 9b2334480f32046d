"""Disaggregated serving (issue 16): the spec, the physics of the two pools and the transfer between them,
plan's disaggregated candidates, the checks, and the Dynamo render against its schema."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT, run_cli

EXAMPLE = ROOT / "specs" / "disagg-llama-3.1-70b-h200.yaml"


def resolved(text: str, tmp_path):
    from planner.loader import load_text
    from planner.resolve import resolve
    from planner.validate import validate

    p = tmp_path / "d.yaml"
    p.write_text(text)
    loaded = load_text(p.read_bytes(), str(p))
    assert not [f for f in validate(loaded) if f.severity == "error"]
    return resolve(loaded)


def one_link(text: str) -> str:
    return (text.replace("parallelism: {tensor: 2}", "parallelism: {tensor: 1}")
            .replace("    connector: nixl", "    connector: nixl\n    gb_per_s: 50\n    setup_ms: 1"))


def test_kv_transfer_of_one_prompt_by_hand(tmp_path):
    """One 4,000-token Llama-3.1-70B prompt at FP8 KV: 4,000 x 163,840 B (2 x 80 layers x 8 KV heads x 128 x 1 B)
    = 655,360,000 B; over one 400 Gb/s link (50 GB/s) that is 13.1 ms, plus 1 ms setup = 14.1 ms."""
    from planner import disagg

    r = resolved(one_link(EXAMPLE.read_text()), tmp_path)
    assert float(disagg.kv_bytes(r, 4000)) == 4000 * 2 * 80 * 8 * 128 * 1
    assert float(disagg.transfer_s(r, 4000)) == pytest.approx(0.001 + 655_360_000 / 50e9)


def test_each_tensor_parallel_rank_sends_its_shard_over_its_own_nic(tmp_path):
    from planner import disagg

    r = resolved(EXAMPLE.read_text(), tmp_path)  # TP2 in both pools: two 50 GB/s links at once
    assert float(disagg.transfer_s(r, 4000)) == pytest.approx(0.001 + 655_360_000 / 100e9)


def test_pool_balance_by_hand(tmp_path):
    """The fleet carries what its slower pool carries: capacity = min(prefill pool, decode pool), each the
    single-replica steady-state capacity times its replicas."""
    from planner import disagg

    r = resolved(EXAMPLE.read_text(), tmp_path)
    one = resolved(EXAMPLE.read_text().replace("replicas: 3", "replicas: 1").replace("replicas: 2", "replicas: 1"), tmp_path)
    c, c1 = disagg.capacity(r), disagg.capacity(one)
    assert c["prefill"] == pytest.approx(3 * c1["prefill"]) and c["decode"] == pytest.approx(2 * c1["decode"])
    assert c["fleet"] == min(c["prefill"], c["decode"])


def check(path, *extra):
    r = run_cli("check", str(path), "--format", "json", "--no-cache", *extra)
    assert r.returncode in (0, 1, 2), r.stderr
    return json.loads(r.stdout)["results"][0]


def test_ttft_adds_prefill_transfer_and_decode_wait_and_itl_has_no_prompt_chunks(tmp_path):
    res = check(EXAMPLE)
    assert res["status"] == "pass", res["findings"]
    est = res["estimate"]
    perf, dz = est["performance"], est["disaggregation"]
    assert perf["ttft_ms"]["p95"] > dz["transfer"]["p95_prompt_ms"]
    # the decode pool alone (2 x TP2) serving the same load aggregated must also run every 4,000-token prompt in
    # its steps: a step that carries a prompt chunk takes the chunk's prefill time on top of the decode batch, so
    # the token gaps of the same sequences get longer (the disaggregated decode pool never runs a prompt)
    agg = tmp_path / "agg.yaml"
    text = EXAMPLE.read_text()
    start, end = text.index("disaggregation:"), text.index("engine:")
    agg.write_text(text[:start].replace("  gpu: h200-sxm\n", "  gpu: h200-sxm\n  gpus_per_replica: 2\n  replicas: 2\n")
                   + "parallelism: {tensor: 2}\n" + text[end:])
    a = check(agg)["estimate"]["performance"]
    assert perf["itl_ms"]["p50"] < a["itl_ms"]["p50"]
    assert perf["itl_ms"]["p99"] < a["itl_ms"]["p99"]
    assert est["cost"]["gpus_billed"] == 10  # 3 x 2 prefill + 2 x 2 decode


def test_disaggregated_spec_rejects_an_aggregated_fleet_and_unknown_connectors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(EXAMPLE.read_text().replace("  gpu: h200-sxm\n", "  gpu: h200-sxm\n  replicas: 2\n"))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "PF122" in r.stdout
    p.write_text(EXAMPLE.read_text().replace("connector: nixl", "connector: mooncake"))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "PF123" in r.stdout and "vLLM has no mooncake" in r.stdout


def test_dynamo_graph_and_pool_launches_validate(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import k8s_schema

    out = tmp_path / "out"
    r = run_cli("render", str(EXAMPLE), "--out", str(out), "--only", "engine,k8s")
    assert r.returncode == 0, r.stderr
    (doc,) = list(yaml.safe_load_all((out / "k8s" / "dynamographdeployment.yaml").read_text()))
    assert k8s_schema.errors(doc) == []
    comps = {c["name"]: c for c in doc["spec"]["components"]}
    assert set(comps) == {"Frontend", "prefill", "decode"}
    # the CRD's CEL rules (x-kubernetes-validations, not JSON Schema): names unique case-insensitively,
    # at most one epp component, minAvailable <= replicas
    names = [c["name"].lower() for c in doc["spec"]["components"]]
    assert len(names) == len(set(names))
    assert sum(c.get("type") == "epp" for c in doc["spec"]["components"]) <= 1
    assert all(c.get("minAvailable", 1) <= c.get("replicas", 1) or c.get("replicas") == 0 for c in doc["spec"]["components"])
    assert doc["spec"]["backendFramework"] == "vllm"
    assert comps["prefill"]["replicas"] == 3 and comps["decode"]["replicas"] == 2
    pre = comps["prefill"]["podTemplate"]["spec"]["containers"][0]
    assert pre["command"] == ["python3", "-m", "dynamo.vllm"]
    args = pre["args"]
    assert args[args.index("--disaggregation-mode") + 1] == "prefill" and args[args.index("--tensor-parallel-size") + 1] == "2"
    assert pre["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # the schema is not a look-alike that accepts anything: a misspelled container field is an error
    bad = json.loads(json.dumps(doc))
    bad["spec"]["components"][1]["podTemplate"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert k8s_schema.errors(bad)
    # the engines' own role flags, checked against vLLM's real option manifest by render itself
    assert "kv_producer" in (out / "engine" / "prefill.sh").read_text()
    assert "kv_consumer" in (out / "engine" / "decode.sh").read_text()
    assert not (out / "k8s" / "deployment.yaml").exists()


def test_sglang_pools_render_its_disaggregation_flags(tmp_path):
    p = tmp_path / "sg.yaml"
    p.write_text(EXAMPLE.read_text().replace("name: vllm", "name: sglang"))
    out = tmp_path / "out"
    r = run_cli("render", str(p), "--out", str(out), "--only", "engine,k8s", "--force")
    assert r.returncode == 0, r.stderr
    text = (out / "engine" / "prefill.sh").read_text()
    assert "--disaggregation-mode prefill" in text and "--disaggregation-transfer-backend nixl" in text
    # and in the graph: each SGLang worker with its own role, once
    (doc,) = list(yaml.safe_load_all((out / "k8s" / "dynamographdeployment.yaml").read_text()))
    for c in doc["spec"]["components"][1:]:
        args = c["podTemplate"]["spec"]["containers"][0]["args"]
        assert args.count("--disaggregation-mode") == 1 and args[args.index("--disaggregation-mode") + 1] == c["type"]


def test_plan_offers_disaggregated_fleets_and_the_written_spec_checks_and_renders(tmp_path):
    spec = tmp_path / "partial.yaml"
    spec.write_text("""apiVersion: planfile/v1
kind: Deployment
metadata: {name: long-prompts}
model: {id: llama-3.1-70b}
precision: {weights: fp8, kv_cache: fp8}
workload: {archetype: custom, input_tokens: 4000, output_tokens: 500, arrival_rate_rps: 2, peak_factor: 1.25}
slo: {ttft_ms: {p95: 1500}, itl_ms: {p95: 50}}
cost: {provider: runpod}
""")
    out = tmp_path / "written.yaml"
    r = run_cli("plan", str(spec), "--gpus", "h200-sxm", "--disaggregated", "only", "--write", str(out), "-f", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["options"] and all(o["disaggregated"] for o in doc["options"])
    c = check(out)
    assert c["status"] == "pass", c["findings"]
    rr = run_cli("render", str(out), "--out", str(tmp_path / "r"), "--only", "k8s")
    assert rr.returncode == 0, rr.stderr


def test_disaggregated_spec_needs_nvidia_and_no_pipeline_with_vllm_nixl(tmp_path):
    p = tmp_path / "amd.yaml"
    p.write_text(EXAMPLE.read_text().replace("gpu: h200-sxm", "gpu: mi300x").replace("name: nvidia/Llama-3.1-70B-Instruct-FP8\n", ""))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "PF122" in r.stdout and "CUDA builds" in r.stdout
    # vllm-project/vllm#40674: NixlConnector and pipeline-parallel-size > 1 do not work together
    p.write_text(EXAMPLE.read_text().replace("  prefill:\n    replicas: 3\n    parallelism: {tensor: 2}",
                                             "  prefill:\n    replicas: 3\n    parallelism: {tensor: 1, pipeline: 2}"))
    r = run_cli("check", str(p), "--no-cache")
    assert r.returncode == 2 and "PF123" in r.stdout and "pipeline" in r.stdout


def test_diff_and_explain_treat_a_disaggregated_spec(tmp_path):
    p = tmp_path / "more-prefill.yaml"
    p.write_text(EXAMPLE.read_text().replace("  prefill:\n    replicas: 3", "  prefill:\n    replicas: 4"))
    r = run_cli("diff", str(EXAMPLE), str(p))
    # one more TP2 prefill replica: 3 x 2 + 2 x 2 = 10 GPUs -> 4 x 2 + 2 x 2 = 12
    assert "disaggregation.prefill.replicas: 3 -> 4" in r.stdout and "10 -> 12" in r.stdout, r.stdout
    e = run_cli("explain", str(EXAMPLE))
    assert e.returncode == 0 and "163,840 B/token" in e.stdout
    # the transfer by hand: 4,000 x 163,840 B = 655.4 MB over 2 x 50 GB/s + 1 ms = 7.55 ms
    t = run_cli("explain", str(EXAMPLE), "--metric", "transfer")
    assert "655.4 MB" in t.stdout and "7.55 ms (mean prompt)" in t.stdout and "[kv]" not in t.stdout, t.stdout


def test_report_shows_the_pools_and_both_launches(tmp_path):
    out = tmp_path / "out"
    r = run_cli("render", str(EXAMPLE), "--out", str(out), "--only", "report")
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    # 3 x TP2 prefill + 2 x TP2 decode = 10 GPUs; each pool's own max sequences (304 prompts, 270 contexts)
    assert "10 x NVIDIA H200 SXM in two pools" in md and "| pools |" in md
    assert "--max-num-seqs 304" in md and "--max-num-seqs 270" in md and "kv_producer" in md
    assert "10 x" in (out / "report.html").read_text()


def test_sweep_counts_both_pools():
    r = run_cli("sweep", str(EXAMPLE), "--vary", "arrival_rate_rps=2:2:1", "--format", "csv")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.strip().splitlines()[:2]
    assert dict(zip(header.split(","), row.split(",")))["gpus"] == "10"  # 3 x 2 prefill + 2 x 2 decode


def test_sweep_refuses_axes_a_disaggregated_spec_does_not_have():
    r = run_cli("sweep", str(EXAMPLE), "--vary", "replicas=1:3:1")
    assert r.returncode == 2 and "sizes each pool" in (r.stdout + r.stderr) and "Traceback" not in r.stderr


def test_decode_pool_admits_handed_over_prompts_without_a_prompt_token_budget(tmp_path):
    """A handed-over prompt arrives with its KV computed: the decode engine spends no token budget on it, so
    a decode replica saturates on batch slots or KV, never on the 8,192-token step budget. With 4,000-token
    prompts that budget would admit two prompts per step; the decode pool's limits admit a full batch."""
    from planner import disagg
    from planner.physics import serving

    r = resolved(EXAMPLE.read_text(), tmp_path)
    v, mem, fn = disagg._pool_model(r, "decode")
    lim = disagg._limits(v, mem, "decode")
    assert lim.token_budget >= lim.max_seqs * (v.input.max + 1)
    off = serving.steady_offline(fn, lim, v.input.mean, v.output.mean)
    assert off["bound"] in ("max_seqs", "kv_cache"), off


DS_POOLS = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: ds}
model: {id: deepseek-v3}
precision: {weights: fp8, kv_cache: bf16}
hardware: {gpu: h200-sxm}
disaggregation:
  prefill: {replicas: 1, gpus_per_replica: 16, parallelism: {tensor: 16, expert: EP_P, attention_data: ADP_P}}
  decode: {replicas: 1, gpus_per_replica: 16, parallelism: {tensor: 16, expert: 16, attention_data: 16}}
engine: {name: sglang}
workload: {archetype: custom, input_tokens: 2000, output_tokens: 200, arrival_rate_rps: 2}
cost: {usd_per_gpu_hour: 3}
"""


def test_each_pool_states_expert_and_attention_data_parallelism(tmp_path):
    """Per-pool EP and DP attention reach the pool's physics and its launch, and are checked per pool."""
    from planner import disagg

    r = resolved(DS_POOLS.replace("EP_P", "16").replace("ADP_P", "16"), tmp_path)
    assert (disagg.pool(r, "prefill").ep, disagg.pool(r, "prefill").attention_dp) == (16, 16)
    # DP attention over 16 groups of one GPU: a sequence's KV lives on one GPU and crosses one NIC, not 16
    assert disagg.link(r)[2] == 1
    four = DS_POOLS.replace("EP_P", "16").replace("ADP_P", "4").replace("expert: 16, attention_data: 16}", "expert: 16, attention_data: 4}")
    assert disagg.link(resolved(four, tmp_path))[2] == 16 // 4  # groups of 4 GPUs in both pools: 4 NICs at once
    p = tmp_path / "ds.yaml"
    p.write_text(DS_POOLS.replace("EP_P", "16").replace("ADP_P", "16"))
    out = tmp_path / "out"
    rr = run_cli("render", str(p), "--out", str(out), "--only", "engine", "--force")
    assert rr.returncode == 0, rr.stderr
    for role in ("prefill", "decode"):
        text = (out / "engine" / f"{role}.sh").read_text()
        assert "--ep-size 16" in text and "--enable-dp-attention" in text and "--dp-size 16" in text, text
    # 24 does not divide the 256 experts; 3 does not divide tensor 16: both refused at the pool's own path
    p.write_text(DS_POOLS.replace("EP_P", "24").replace("ADP_P", "3"))
    got = check(p)
    where = {(f["id"], f["location"]["path"]) for f in got["findings"]}
    assert ("PF112", "/disaggregation/prefill/parallelism/expert") in where, where
    assert ("PF120", "/disaggregation/prefill/parallelism/attention_data") in where, where


def test_published_disaggregated_rows_are_predicted_by_checks_own_capacity():
    """benchmarks/disagg_published.py reads the measured pool's saturation from planner.disagg.capacity,
    the number check and plan use; every published row is a valid spec."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import disagg_published

    got = disagg_published.report()
    assert len(got) == len(disagg_published.rows()) >= 3
    assert all(pred > 0 for _, pred, _ in got)


def test_disaggregated_pools_are_planned_for_the_engine_dynamo_runs(tmp_path):
    """Dynamo 1.6.1's runtime images run vLLM 0.31.0 / SGLang 0.5.21 (the ai-dynamo 1.6.1 wheel's extras):
    a disaggregated spec defaults to that release, is refused (PF122) when it states another, and plan
    only offers disaggregated fleets when the spec does not pin a different version."""
    from planner import catalog
    from planner.render import dynamo

    for engine, version in (("vllm", "0.31"), ("sglang", "0.5.21")):
        eng = catalog.engines().get(engine).entry
        assert eng["dynamo"] == {**eng["dynamo"], "runtime": dynamo.DYNAMO_VERSION, "engine_version": version}
        r = resolved(EXAMPLE.read_text().replace("  name: vllm", f"  name: {engine}"), tmp_path)
        assert r.engine_version == version
    p = tmp_path / "pinned.yaml"
    p.write_text(EXAMPLE.read_text().replace("  name: vllm", "  name: vllm\n  version: \"0.33\""))
    got = check(p)
    assert got["status"] == "invalid"
    assert any(f["id"] == "PF122" and f["location"]["path"] == "/engine/version" for f in got["findings"]), got["findings"]
    # plan on an aggregated spec that pins 0.33 says why no disaggregated fleet is offered
    r = run_cli("plan", "specs/chat-llama-3.1-70b.yaml", "--gpus", "h200-sxm", "--top", "2")
    assert r.returncode == 0, r.stderr
    assert "disaggregated fleets not considered: the spec states engine.version 0.33" in r.stdout


def test_the_decode_pool_step_model_is_memoised_like_any_other():
    """The decode pool steps its model with no prompt compute (the KV arrives computed). That model keeps the
    base model's identity in its `key` — so the simulator memoises its runs in the process and in the store —
    and its compiled `hot` path, and both paths give the base model's decode-only step time."""
    from planner import disagg
    from planner.loader import load_path
    from planner.resolve import resolve

    r = resolve(load_path(str(ROOT / "specs" / "disagg-llama-3.1-70b-h200.yaml")))
    v, _, dec = disagg._pool_model(r, "decode")
    from planner.evaluate import step_function

    _, _, own = step_function(v)
    assert dec.key == ("decode pool: prompt KV computed elsewhere", own.key)
    hot = dec.hot()
    for d, ctx, p, pctx in ((8, 1000.0, 0, 0.0), (64, 3000.0, 4096, 2000.0)):
        # a prompt chunk in the arguments is ignored: the decode pool never computes one
        assert dec(d, ctx, p, pctx) == own(d, ctx, 0, 0.0) == hot(d, ctx, p, pctx)


def test_a_ttft_one_prefill_outlasts_is_fixed_by_splitting_the_prefill_pool(tmp_path):
    """Qwen3-32B FP8, 16,000-token prompts, TTFT p95 1.5 s, prefill on one H100 per replica: one prompt's prefill is
    2 x 32.8 B x 16,000 = 1.05 PFLOP of matmuls plus attention over 16k tokens, about a second and a half on one
    H100 before any queueing, so more TP1 prefill replicas cannot reach the SLO. The verified fix doubles the prefill
    pool's tensor parallelism (with the replicas it then needs), and applied it clears PF401."""
    from planner.commands import apply_edits

    text = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: dtp}
model: {id: qwen3-32b}
precision: {weights: fp8, kv_cache: fp8}
hardware: {gpu: h100-sxm}
disaggregation:
  prefill: {replicas: 2, parallelism: {tensor: 1}}
  decode: {replicas: 2, parallelism: {tensor: 1}}
  transfer: {link: rdma}
engine: {name: sglang}
workload: {archetype: custom, input_tokens: 16000, output_tokens: 200, arrival_rate_rps: 0.3}
slo: {ttft_ms: {p95: 1500}, itl_ms: {p95: 40}}
cost: {provider: nebius}
"""
    p = tmp_path / "dtp.yaml"
    p.write_text(text)
    r = run_cli("check", str(p), "--format", "json", "--no-cache")
    f = next(x for x in json.loads(r.stdout)["results"][0]["findings"] if x["id"] == "PF401")
    fx = next(x for x in f["fixes"] if any(e["path"] == "/disaggregation/prefill/parallelism/tensor" for e in x["edits"]))
    assert {e["path"]: e["to"] for e in fx["edits"]}["/disaggregation/prefill/parallelism/tensor"] == 2
    q = tmp_path / "fixed.yaml"
    q.write_text(apply_edits(text, fx["edits"]))
    after = json.loads(run_cli("check", str(q), "--format", "json", "--no-cache").stdout)["results"][0]["findings"]
    assert not any(x["id"] == "PF401" for x in after)


WIDE = ROOT / "specs" / "disagg-deepseek-v3-wide-ep-h100.yaml"
NODE_FLAGS = {"--nnodes", "--node-rank", "--dist-init-addr", "--master-addr", "--master-port", "--headless"}


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_a_pool_that_spans_nodes_is_one_dynamo_multinode_component_of_one_pod_per_node(tmp_path, engine):
    """A prefill replica of 16 H100s is 2 pods of 8 GPUs and a decode replica of 32 is 4 pods: Dynamo's
    `multinode: {nodeCount: N}` ("Total GPUs used is NodeCount * container GPU request", v1beta1 MultinodeSpec,
    minimum 2). The operator writes the node flags itself: SGLang `--dist-init-addr <leader>:29500 --nnodes N
    --node-rank R` (deploy/operator/internal/dynamo/backend_sglang.go@7caca06), vLLM its mp/Ray or data-parallel
    flags, chosen from the container's GPU limit (backend_vllm.go@18bda51). Before, each pool was one pod
    asking for 16 (32) GPUs, which no 8-GPU node can schedule, with --node-rank 0 on every node and an LWS
    variable the operator's pods do not have."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import k8s_schema

    p = tmp_path / "wide.yaml"
    text = WIDE.read_text()
    if engine == "vllm":  # vLLM's wide-EP spelling of the same pools (DeepEP needs SGLang's flags; drop it)
        text = text.replace("name: sglang", "name: vllm").replace("  moe_all_to_all: deepep\n", "").replace(
            "  two_batch_overlap: true\n", "")
    p.write_text(text)
    out = tmp_path / "out"
    r = run_cli("render", str(p), "--out", str(out), "--only", "engine,k8s", "--force")
    assert r.returncode == 0, r.stderr
    (doc,) = list(yaml.safe_load_all((out / "k8s" / "dynamographdeployment.yaml").read_text()))
    assert k8s_schema.errors(doc) == []
    comps = {c["name"]: c for c in doc["spec"]["components"]}
    for role, nodes in (("prefill", 2), ("decode", 4)):  # 16 and 32 GPUs over 8-GPU H100 nodes
        c = comps[role]
        assert c["multinode"] == {"nodeCount": nodes}
        main = c["podTemplate"]["spec"]["containers"][0]
        assert main["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert main["resources"]["requests"]["nvidia.com/gpu"] == "8"
        assert not NODE_FLAGS & set(main["args"]), main["args"]
        assert not [a for a in main["args"] if "$(" in a]
    assert "multinode" not in comps["Frontend"]
    # the schema types multinode as the CRD does: nodeCount only, at least 2
    for bad in ({"nodeCount": 1}, {"nodes": 2}, {"nodeCount": "2"}):
        broken = json.loads(json.dumps(doc))
        broken["spec"]["components"][1]["multinode"] = bad
        assert k8s_schema.errors(broken), bad
    # the plain launch of a multi-node pool (node 0's): the leader's address from the environment, not the
    # literal text '$(LWS_LEADER_ADDRESS)' a quoted shell word would pass to the engine
    for role in ("prefill", "decode"):
        sh = (out / "engine" / f"{role}.sh").read_text()
        assert "'$(" not in sh and "${LWS_LEADER_ADDRESS}" in sh, sh


def test_a_forced_render_of_pools_that_do_not_carry_the_peak_writes_unbounded_not_a_crash(tmp_path):
    """The wide-EP example without data-parallel attention in its prefill pool cannot prefill 90 req/s: TTFT has
    no bound (PF401 "queue never drains"). `render --force` once crashed on it ("cannot convert float infinity
    to integer": the frontend-queue alert multiplied the peak rate by that TTFT; benchmarks/fuzz.py, seed
    20261203). Now the alert fires past what the decode pool holds and the report says "unbounded", as check does."""
    text = (ROOT / "specs" / "disagg-deepseek-v3-wide-ep-h100.yaml").read_text()
    old = "parallelism: {tensor: 16, expert: 16, attention_data: 16}"
    assert old in text
    p = tmp_path / "p.yaml"
    p.write_text(text.replace(old, "parallelism: {tensor: 16, expert: 16}"))
    r = run_cli("check", str(p), "--no-breach")
    assert r.returncode == 1 and "unbounded (queue never drains)" in r.stdout, r.stdout
    out = tmp_path / "out"
    r = run_cli("render", str(p), "--out", str(out), "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    rules = yaml.safe_load((out / "alerts" / "prometheusrule.yaml").read_text())
    queue = next(x for g in rules["spec"]["groups"] for x in g["rules"] if x.get("alert") == "LLMRequestsQueueing")
    assert "does not carry its peak" in queue["annotations"]["description"]
    report = (out / "report.md").read_text()
    assert "| p95 TTFT / ITL | unbounded (queue grows) /" in report and "inf" not in report.replace("info", "")
