"""One plan, one truth (issue 11): what `render` emits is read back and compared with what `check` planned.

For every example spec and a matrix of engine x GPU vendor x weight precision x weights source, the
rendered command line, engine config and manifests are parsed and each planned value is looked up in
them: the checkpoint repository, its quantization flag, TP/PP/EP, max sequences, KV dtype, memory fraction,
image vendor, GPU resource, volume size and probe timing.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shlex
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli
from planner.evaluate import limits, memory_plan
from planner.render import render
from planner.run import check_spec

SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
TARGETS = ("engine", "k8s", "alerts", "bench")

KV_FLAG = {"vllm": ("--kv-cache-dtype", {"bf16": "auto", "fp8": "fp8"}),
           "sglang": ("--kv-cache-dtype", {"bf16": "auto", "fp8": "fp8_e4m3"}),
           "trtllm": (None, {"bf16": "auto", "fp8": "fp8"})}
FLAGS = {"vllm": {"tp": "--tensor-parallel-size", "pp": "--pipeline-parallel-size", "seqs": "--max-num-seqs",
                  "frac": "--gpu-memory-utilization", "quant": "--quantization"},
         "sglang": {"tp": "--tp-size", "pp": "--pp-size", "seqs": "--max-running-requests", "frac": "--mem-fraction-static",
                    "quant": "--quantization", "ep": "--ep-size"},
         "trtllm": {"tp": "--tp_size", "pp": "--pp_size", "seqs": "--max_batch_size",
                    "frac": "--kv_cache_free_gpu_memory_fraction", "ep": "--ep_size"}}
IMAGE_REPO = {("vllm", "nvidia"): "vllm/vllm-openai:", ("vllm", "amd"): "vllm/vllm-openai-rocm:",
              ("vllm", "google"): "vllm/vllm-tpu:", ("sglang", "nvidia"): "lmsysorg/sglang:v",
              ("sglang", "amd"): "lmsysorg/sglang:v", ("trtllm", "nvidia"): "nvcr.io/nvidia/tensorrt-llm/release:"}


def opt(args: list[str], flag: str):
    """The value of `flag` in an argument list (None for a switch, KeyError when absent)."""
    for i, a in enumerate(args):
        if a == flag:
            return args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    raise KeyError(flag)


def parse_gib(q: str) -> float:
    assert q.endswith("Gi"), q
    return float(q[:-2])


def round_trip(res, files: dict[str, str]) -> None:
    """Every planned value, found in the rendered artifacts."""
    r, est = res.resolved, res.estimate
    plan = json.loads(json.dumps(est, default=str))
    ck = plan["checkpoint"]
    eng = r.engine["id"]
    f = FLAGS[eng]
    serve = shlex.split(files["engine/serve.sh"].split("exec ", 1)[1])
    k8s_name = "k8s/leaderworkerset.yaml" if "k8s/leaderworkerset.yaml" in files else "k8s/deployment.yaml"
    obj = yaml.safe_load(files[k8s_name])
    if obj["kind"] == "Deployment":
        pods = [obj["spec"]["template"]]
    else:
        t = obj["spec"]["leaderWorkerTemplate"]
        pods = [t["leaderTemplate"], t["workerTemplate"]]
    pod = pods[0]
    c = pod["spec"]["containers"][0]
    args = c["args"]
    # the model repository: the checkpoint check resolved, in serve.sh, the container and bench.sh
    model_in_args = opt(args, "--model-path") if eng == "sglang" else args[0]
    model_in_serve = opt(serve, "--model-path") if eng == "sglang" else serve[2 if eng == "vllm" else 1]
    assert model_in_args == model_in_serve == ck["repo"] == r.model_name
    assert opt(shlex.split(files["bench.sh"].split("exec ", 1)[1]), "--model") == ck["repo"]
    assert pod["metadata"]["annotations"]["planfile.dev/checkpoint"] == ck["repo"]
    # the quantization flag: present exactly when the engine quantizes at load time
    if ck["online_quantization"]:
        assert opt(args, f["quant"]) == ck["online_quantization"]
    elif "quant" in f:
        with pytest.raises(KeyError):
            opt(args, f["quant"])
    # parallelism and the batch the KV pool holds
    # (vLLM's data-parallel attention: attention_data engine ranks of tensor / attention_data GPUs each)
    assert int(opt(args, f["tp"])) == (r.tp // max(r.attention_dp, 1) if eng == "vllm" else r.tp) and int(opt(args, f["pp"])) == r.pp
    if r.ep > 1 and "ep" in f:
        assert int(opt(args, f["ep"])) == r.ep
    # the batch limit: max_num_seqs capped at what the KV pool holds at the mean context (one stage's pool with
    # pipeline stages: every sequence holds KV on each), per DP rank where every rank applies it — and the very
    # limit the simulation behind every latency and throughput figure ran (its virtual engines: one per stage)
    groups = r.attention_dp if r.attention_dp > 1 and r.engine["dp_attention_limits"] == "per_rank" else 1
    held = plan["memory"]["max_concurrent_sequences"]
    seqs = int(opt(args, f["seqs"]))
    # (vLLM: at most the step's token budget too, which its SchedulerConfig requires)
    budget = r.max_num_batched_tokens if eng == "vllm" else r.max_num_seqs
    assert seqs == max(1, min(r.max_num_seqs, budget, held // groups))
    assert limits(r, memory_plan(r)).max_seqs == max(seqs * groups // r.pp, 1)
    assert float(opt(args, f["frac"])) == pytest.approx(r.gpu_memory_utilization)
    kv_flag, kv_map = KV_FLAG[eng]
    if kv_flag:
        assert opt(args, kv_flag) == kv_map[r.kv_cache]
    else:
        cfg = yaml.safe_load(files["engine/extra-llm-api-options.yaml"])
        assert cfg["kv_cache_config"]["dtype"] == kv_map[r.kv_cache]
        assert cfg["kv_cache_config"]["free_gpu_memory_fraction"] == pytest.approx(r.gpu_memory_utilization)
    if eng == "vllm":
        cfg = yaml.safe_load(files["engine/vllm-config.yaml"])
        assert cfg["max-num-seqs"] == int(opt(args, f["seqs"])) and cfg["kv-cache-dtype"] == kv_map[r.kv_cache]
        assert cfg.get("quantization") == ck["online_quantization"]
    # image of the GPU's vendor, the vendor's device resource on every pod
    assert c["image"].startswith(IMAGE_REPO[(eng, r.gpu["vendor"])])
    resource = r.gpu["kubernetes"]["resource"]
    per_pod = r.gpus_per_replica // len(pods) if len(pods) > 1 else r.gpus_per_replica
    for p in pods:
        lim = p["spec"]["containers"][0]["resources"]["limits"]
        req = p["spec"]["containers"][0]["resources"]["requests"]
        assert lim[resource] == req[resource] == str(per_pod)
        assert {"cpu", "memory"} <= set(req)
    other = {"nvidia.com/gpu", "amd.com/gpu", "google.com/tpu", "habana.ai/gaudi"} - {resource}
    assert not other & set(c["resources"]["limits"])
    # the model volume holds the checkpoint actually downloaded, where the spec says the weights come from
    vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "model-cache")
    source = plan["cold_start"]["source"]
    if source in ("hub", "staged"):
        assert parse_gib(vol["emptyDir"]["sizeLimit"]) * 2**30 >= ck["download_gb"] * 1e9
        assert "ephemeral-storage" in c["resources"]["requests"]
    elif source == "pvc":
        claim = vol["persistentVolumeClaim"]["claimName"]
        if "k8s/pvc.yaml" in files:
            pvc = yaml.safe_load(files["k8s/pvc.yaml"])
            assert pvc["metadata"]["name"] == claim
            assert parse_gib(pvc["spec"]["resources"]["requests"]["storage"]) * 2**30 >= ck["download_gb"] * 1e9
    else:
        assert "hostPath" in vol
        assert {"name": "HF_HUB_OFFLINE", "value": "1"} in c["env"]
    inits = pod["spec"].get("initContainers") or []
    assert bool(inits) == (source == "staged")
    if inits:
        assert inits[0]["command"][:3] == ["hf", "download", ck["repo"]]
    # the startup probe covers what the engine container itself waits for: 2 x that + 60 s
    cs = plan["cold_start"]
    own = cs["load_s"] + cs["engine_start_s"] + (cs["download_s"] if source in ("hub", "pvc") else 0.0)
    probe = c["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 2 * own + 60
    assert probe["periodSeconds"] * (probe["failureThreshold"] - 1) < 2 * own + 60
    # no fixed replica count under an autoscaler
    if r.autoscale:
        assert "replicas" not in obj["spec"]
    else:
        assert obj["spec"]["replicas"] == r.replicas


def round_trip_disagg(res, files: dict[str, str]) -> None:
    """A disaggregated plan, found in its DynamoGraphDeployment and both pools' launches."""
    r, est = res.resolved, res.estimate
    plan = json.loads(json.dumps(est, default=str))
    ck, eng = plan["checkpoint"], r.engine["id"]
    f = FLAGS[eng]
    kv_flag, kv_map = KV_FLAG[eng]
    graph = yaml.safe_load(files["k8s/dynamographdeployment.yaml"])
    comps = {c["type"]: c for c in graph["spec"]["components"]}
    assert set(comps) == {"frontend", "prefill", "decode"}
    for role in ("prefill", "decode"):
        pool = plan["disaggregation"]["pools"][role]
        c = comps[role]
        assert c["replicas"] == pool["replicas"] == r.disagg[role]["replicas"]
        box = c["podTemplate"]["spec"]["containers"][0]
        launch = shlex.split(files[f"engine/{role}.sh"].split("exec ", 1)[1])
        # the pool's role reaches the worker (Dynamo's flag for vLLM, SGLang's own flag for SGLang)
        assert opt(box["args"], "--disaggregation-mode") == role
        # dynamo.vllm takes --model; `vllm serve` takes the model as its first word
        assert opt(box["args"], "--model-path" if eng == "sglang" else "--model") == ck["repo"] == r.model_name
        assert (opt(launch, "--model-path") if eng == "sglang" else launch[2]) == ck["repo"]
        for args in (box["args"], launch):
            assert int(opt(args, f["tp"])) == pool["tensor"] and int(opt(args, f["pp"])) == pool["pipeline"]
            held = pool["memory"]["max_concurrent_sequences"] * pool["pipeline"]
            assert int(opt(args, f["seqs"])) == max(1, min(r.disagg[role]["max_num_seqs"] or r.max_num_seqs, held))
            assert opt(args, kv_flag) == kv_map[r.kv_cache]  # one KV dtype on both sides of the transfer
            if ck["online_quantization"]:
                assert opt(args, f["quant"]) == ck["online_quantization"]
        res_ = box["resources"]
        g = r.gpu["kubernetes"]["resource"]
        # one pod per node of a replica (Dynamo multinode: nodeCount x the container's GPUs = the replica)
        nodes = c.get("multinode", {}).get("nodeCount", 1)
        assert res_["limits"][g] == res_["requests"][g] == str(pool["gpus_per_replica"] // nodes)
        assert nodes * int(res_["limits"][g]) == pool["gpus_per_replica"]
        assert nodes == -(-pool["gpus_per_replica"] // r.gpus_per_node)
        assert parse_gib(res_["requests"]["ephemeral-storage"]) * 2**30 >= ck["download_gb"] * 1e9
    assert sum(p["gpus"] for p in plan["disaggregation"]["pools"].values()) == plan["cost"]["gpus_billed"]


@pytest.fixture(scope="module")
def in_root():
    cwd = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(cwd)


@pytest.mark.parametrize("spec", SPECS)
def test_every_example_renders_what_check_planned(in_root, spec):
    res = check_spec(spec)
    assert res.status == "pass", [f.message for f in res.findings if f.severity == "error"]
    files = render(res, (ROOT / spec).read_bytes(), TARGETS)
    (round_trip_disagg if res.resolved.disagg else round_trip)(res, files)


GPUS = {"h100-sxm": "nvidia", "b200": "nvidia", "mi300x": "amd", "tpu-v6e": "google"}
MATRIX = list(itertools.product(("vllm", "sglang", "trtllm"), GPUS, ("bf16", "fp8", "fp4", "int4"), ("hub", "pvc", "node-local", "staged")))


def matrix_spec(engine, gpu, weights, source):
    model = "llama-3.1-8b"
    tp = 4 if gpu == "tpu-v6e" else 1
    storage = {"source": source}
    if source == "node-local":
        storage["path"] = "/mnt/hf"
    return {"apiVersion": "planfile/v1", "kind": "Deployment", "metadata": {"name": "m"},
            "model": {"id": model}, "precision": {"weights": weights, "kv_cache": "fp8" if gpu != "tpu-v6e" else "bf16"},
            "hardware": {"gpu": gpu, "gpus_per_replica": tp, "replicas": 2, "storage": storage},
            "parallelism": {"tensor": tp}, "engine": {"name": engine},
            "workload": {"archetype": "chat", "input_tokens": 1024, "output_tokens": 256, "arrival_rate_rps": 2},
            "slo": {"ttft_ms": {"p95": 5000}, "itl_ms": {"p95": 200}}, "cost": {"usd_per_gpu_hour": 2.0}}


@pytest.mark.parametrize("engine,gpu,weights,source", MATRIX, ids=["-".join(x) for x in MATRIX])
def test_matrix_round_trip(tmp_path, engine, gpu, weights, source):
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(matrix_spec(engine, gpu, weights, source)))
    res = check_spec(str(p), breach=False)
    if res.status == "invalid":
        # a pair that does not exist is refused by check with a reason, never rendered wrong
        assert {f.id for f in res.findings if f.severity == "error"} <= {"PF109", "PF118"}, [f.message for f in res.findings]
        return
    errors = [f for f in res.findings if f.severity == "error"]
    if errors:
        assert {f.id for f in errors} <= {"PF602"}, [f.message for f in errors]
        return
    round_trip(res, render(res, p.read_bytes(), TARGETS))


def test_matrix_covers_every_vendor_and_online_quantization():
    """The matrix is not vacuous: it renders AMD, TPU, online-quantized and pre-quantized plans."""
    seen = set()
    for engine, gpu, weights, source in MATRIX:
        if source != "hub":
            continue
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "m.yaml"
            p.write_text(yaml.safe_dump(matrix_spec(engine, gpu, weights, source)))
            res = check_spec(str(p), breach=False)
            if res.status != "invalid" and not any(f.severity == "error" for f in res.findings):
                ck = res.resolved.checkpoint
                seen.add((GPUS[gpu], "online" if ck.online_quant else ck.format))
    assert {("amd", "bf16"), ("google", "bf16"), ("nvidia", "fp8"), ("nvidia", "nvfp4"), ("nvidia", "awq"),
            ("amd", "fp8")} <= seen, seen


# what was seen -------------------------------------------------------------------------------------------------

def spec_text(**over) -> str:
    base = {"apiVersion": "planfile/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "model": {"id": "meta-llama/Llama-3.1-70B-Instruct"}, "precision": {"weights": "fp8"},
            "hardware": {"gpu": "h200-sxm", "replicas": 2}, "engine": {"name": "vllm"},
            "workload": {"archetype": "chat", "arrival_rate_rps": 1}}
    for k, v in over.items():
        base[k] = v
    return yaml.safe_dump(base)


def test_an_instruct_alias_with_fp8_loads_an_fp8_instruct_checkpoint(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(spec_text())
    res = check_spec(str(p), breach=False)
    ck = res.resolved.checkpoint
    assert ck.variant == "instruct" and ck.stored == "fp8" and "Instruct" in ck.repo and ck.online_quant is None
    args = yaml.safe_load(render(res, p.read_bytes(), ("k8s",))["k8s/deployment.yaml"])["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == ck.repo and args[0] != "meta-llama/Llama-3.1-70B"
    # Llama-3.1-70B FP8: 70.55e9 params; 2 x 128,256 x 8,192 embeddings/LM head at 2 B, the rest at 1 B:
    # (70.55e9 - 2.10e9) x 1 + 2.10e9 x 2 = 72.65 GB — what check plans and what the engine loads
    assert ck.download_gb == pytest.approx(72.65, abs=0.1)
    assert res.estimate["memory"]["weights_gb_per_gpu"] == pytest.approx(ck.resident_gb, abs=0.01)  # JSON rounds to 0.01 GB


@pytest.mark.parametrize("spec, repo", [("specs/agent-qwen3-32b.yaml", "Qwen/Qwen3-32B-FP8"),
                                        ("specs/small-llama-3.1-8b-l4.yaml", "nvidia/Llama-3.1-8B-Instruct-FP8")])
def test_bundled_fp8_specs_load_fp8_weights(in_root, spec, repo):
    res = check_spec(spec, breach=False)
    assert res.resolved.checkpoint.repo == repo and res.resolved.checkpoint.stored == "fp8"


def test_online_quantization_downloads_bf16_and_plans_fp8(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(spec_text(model={"id": "llama-3.1-70b", "quantized_checkpoint": False}))
    res = check_spec(str(p), breach=False)
    ck = res.resolved.checkpoint
    assert ck.online_quant == "fp8_per_tensor" and ck.stored == "bf16"
    assert ck.download_gb == pytest.approx(2 * 70.55, abs=0.1)  # the BF16 shards (70.55e9 params x 2 B) are fetched and read
    assert ck.resident_gb == pytest.approx(72.65, abs=0.1)
    cs = res.estimate["cold_start"]
    assert cs["download_gb"] == pytest.approx(ck.download_gb)


def test_hf_config_without_name_is_an_error_and_import_hf_has_no_fake_repo(tmp_path):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
           "max_position_embeddings": 131072}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text(json.dumps(cfg))
    p = tmp_path / "s.yaml"
    p.write_text(spec_text(model={"hf_config": "config/config.json"}))
    res = check_spec(str(p), breach=False)
    assert res.status == "invalid" and any(f.id == "PF119" for f in res.findings)
    r = run_cli("catalog", "import-hf", str(tmp_path / "config" / "config.json"))
    assert r.returncode == 0 and "hf_id: config" not in r.stdout and "hf_id: null" in r.stdout


@pytest.mark.parametrize("gpu, engine, image", [("mi300x", "vllm", "vllm/vllm-openai-rocm:v0.33.0"),
                                                ("mi300x", "sglang", "lmsysorg/sglang:v0.5.23-rocm720-mi30x"),
                                                ("mi355x", "sglang", "lmsysorg/sglang:v0.5.23-rocm720-mi35x"),
                                                ("tpu-v6e", "vllm", "vllm/vllm-tpu:v0.33.0")])
def test_amd_and_tpu_get_their_own_images(tmp_path, gpu, engine, image):
    tp = 4 if gpu.startswith("tpu") else 1
    p = tmp_path / "s.yaml"
    p.write_text(spec_text(model={"id": "llama-3.1-8b"}, precision={"weights": "bf16", "kv_cache": "bf16"},
                           hardware={"gpu": gpu, "gpus_per_replica": tp, "replicas": 2}, parallelism={"tensor": tp},
                           engine={"name": engine}))
    res = check_spec(str(p), breach=False)
    assert res.status != "invalid", [f.message for f in res.findings]
    dep = yaml.safe_load(render(res, p.read_bytes(), ("k8s",))["k8s/deployment.yaml"])
    spec = dep["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == image
    if gpu.startswith("tpu"):
        assert spec["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "2x2"
        assert spec["containers"][0]["resources"]["limits"]["google.com/tpu"] == "4"


def test_gaudi_without_an_image_is_refused(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(spec_text(model={"id": "llama-3.1-8b"}, precision={"weights": "bf16"}, hardware={"gpu": "gaudi3", "replicas": 2}))
    res = check_spec(str(p), breach=False)
    assert any(f.id == "PF602" and "engine.image" in f.message for f in res.findings)


@pytest.mark.parametrize("source, first, scale_out", [("hub", True, True), ("staged", True, True), ("pvc", True, False),
                                                      ("node-local", False, False)])
def test_cold_start_follows_the_weights_source(tmp_path, source, first, scale_out):
    storage = {"source": source, **({"path": "/mnt/hf"} if source == "node-local" else {})}
    p = tmp_path / "s.yaml"
    p.write_text(spec_text(hardware={"gpu": "h200-sxm", "replicas": 2, "storage": storage}))
    cs = check_spec(str(p), breach=False).estimate["cold_start"]
    # 72.65 GB over 0.5 GB/s = 145 s of download; read at 6 GB/s (1 GB/s from a PVC); 60 s engine start
    read = 72.65 / (1.0 if source == "pvc" else 6.0)
    assert cs["download_s"] == pytest.approx(145.3 if first else 0.0, abs=0.5)
    assert cs["scale_out_s"] == pytest.approx((145.3 if scale_out else 0.0) + read + 60, abs=0.6)


def test_autoscaled_trtllm_is_refused_not_rendered_as_one_replica(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(spec_text(model={"id": "llama-3.1-8b"}, hardware={"gpu": "h200-sxm", "autoscale": {"min": 2, "max": 6}},
                           engine={"name": "trtllm"}))
    res = check_spec(str(p), breach=False)
    assert any(f.id == "PF602" and "autoscale" in f.message.lower() or "scale on" in f.message for f in res.findings)


def test_render_without_the_report_extra_writes_everything_else(tmp_path, monkeypatch, in_root):
    import planner.render.charts as charts

    def missing():
        raise charts.ChartsUnavailable("the report needs matplotlib: pip install 'planfile[report]'")

    monkeypatch.setattr(charts, "_plt", missing)
    res = check_spec("specs/chat-llama-3.1-70b.yaml", breach=False)
    notes: list[str] = []
    files = render(res, (ROOT / "specs/chat-llama-3.1-70b.yaml").read_bytes(), notes=notes)
    assert {"engine/serve.sh", "k8s/deployment.yaml", "report.md", "report.html"} <= set(files)
    assert not any(k.startswith("charts/") for k in files) and len(notes) == 1 and "planfile[report]" in notes[0]


def test_version_flag():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("planfile ")


def test_report_latency_chart_at_the_planned_load_equals_check(in_root, tmp_path):
    from planner import curves

    p = tmp_path / "r1.yaml"
    p.write_text(yaml.safe_dump({"apiVersion": "planfile/v1", "kind": "Deployment", "metadata": {"name": "r1"},
                                 "model": {"id": "deepseek-r1"}, "precision": {"weights": "fp8", "kv_cache": "fp8"},
                                 "hardware": {"gpu": "h200-sxm", "gpus_per_replica": 8, "replicas": 2},
                                 "parallelism": {"tensor": 8, "expert": 8}, "engine": {"name": "sglang"},
                                 "workload": {"archetype": "chat", "input_tokens": {"mean": 2000, "p95": 6000, "max": 8192},
                                              "output_tokens": {"mean": 500, "p95": 1500, "max": 2048},
                                              "concurrency": 64, "peak_factor": 2},
                                 "slo": {"ttft_ms": {"p95": 3000}, "itl_ms": {"p95": 100}}}))
    for spec in (str(p), "specs/chat-llama-3.1-70b.yaml", "specs/batch-summarize-l40s.yaml"):
        res = check_spec(spec, breach=False)
        c = curves.latency_curve(res.resolved, res.estimate)
        perf = res.estimate["performance"]
        i = c["x"].index(perf["load"])
        assert c["ttft_p95_ms"][i] == perf["ttft_ms"]["p95"] and c["itl_p95_ms"][i] == perf["itl_ms"]["p95"]
        if res.resolved.mode != "offline":  # offline throughput is the analytic saturation, not a plotted value
            assert c["output_tokens_per_s"][i] == perf["output_tokens_per_s"]


def test_sweep_at_the_planned_load_equals_check(in_root):
    res = check_spec("specs/chat-llama-3.1-70b.yaml", breach=False)
    r = run_cli("sweep", "specs/chat-llama-3.1-70b.yaml", "--vary", "arrival_rate_rps=6", "--format", "json")
    row = json.loads(r.stdout)[0]
    # sweep sets the normal load; the peak factor 1.5 still applies: 6 x 1.5 = 9 req/s, check's peak
    assert row["ttft_p95_ms"] == pytest.approx(res.estimate["performance"]["ttft_ms"]["p95"], rel=1e-9)
    assert math.isclose(row["itl_p95_ms"], res.estimate["performance"]["itl_ms"]["p95"], rel_tol=1e-9)


SGLANG_OFFLOAD = """apiVersion: planfile/v1
kind: Deployment
metadata: {{name: sg-offload}}
model: {{id: llama-3.1-8b}}
precision: {{weights: fp8, kv_cache: fp8}}
hardware: {{gpu: h100-sxm, gpus_per_replica: 1, replicas: 2}}
engine: {{name: sglang, enable_prefix_caching: {prefix}}}
workload: {{archetype: chat, arrival_rate_rps: 2, kv_offload: {{tier: cpu, capacity_gb: 300}}}}
cost: {{usd_per_gpu_hour: 2}}
"""


def test_sglang_offload_with_prefix_caching_off_is_refused_by_check(tmp_path):
    """ServerArgs refuses --enable-hierarchical-cache with --disable-radix-cache ("mutually exclusive"):
    check must say so (PF602) rather than let render write a launch SGLang will not start."""
    p = tmp_path / "s.yaml"
    p.write_text(SGLANG_OFFLOAD.format(prefix="false"))
    r = run_cli("check", str(p), "--no-cache", "--no-breach")
    assert r.returncode == 1 and "PF602" in r.stdout and "mutually exclusive" in r.stdout


def test_sglang_hicache_size_is_gb_per_gpu_process(tmp_path):
    """--hicache-size is GB (10^9 B) per scheduler process (sglang/srt/mem_cache/memory_pool_host.py:
    host_size * 1e9): 300 GB over a 1-GPU replica is 300, not 279 (GiB)."""
    p = tmp_path / "s.yaml"
    p.write_text(SGLANG_OFFLOAD.format(prefix="true"))
    out = tmp_path / "out"
    r = run_cli("render", str(p), "--out", str(out), "--only", "engine", "--force")
    assert r.returncode == 0, r.stderr
    text = (out / "engine" / "serve.sh").read_text()
    assert "--hicache-size 300 " in text + " " and "--disable-radix-cache" not in text


@pytest.mark.parametrize("replicas", [3, 4])
def test_the_breach_point_agrees_with_the_slo_verdict_at_the_peak(tmp_path, replicas):
    """The breach point is at or above the peak exactly when check's own run at the peak holds every SLO:
    with 3 replicas the chat example breaks its ITL SLO at its 9 req/s peak (PF401), and the 600-request
    probes of the search alone had put its breach point at 9.00 req/s, headroom 0 % (`planfile diff` showed
    both)."""
    spec = tmp_path / "s.yaml"
    spec.write_text((ROOT / "specs" / "chat-llama-3.1-70b.yaml").read_text().replace("replicas: 4", f"replicas: {replicas}"))
    res = check_spec(str(spec))
    cap = res.estimate["capacity"]
    breaks = any(f.id == "PF401" for f in res.findings)
    assert breaks == (replicas == 3)
    assert (cap["breach_rps"] >= cap["peak_rps"]) == (not breaks), cap
    assert (cap["headroom_pct"] >= 0) == (not breaks)


@pytest.mark.parametrize("mid, gpu, engine, weights, repo", [
    ("deepseek-r1", "h200-sxm", "sglang", "fp8", "deepseek-ai/DeepSeek-R1"),      # released in block FP8 only
    ("gpt-oss-120b", "b200", "trtllm", "fp4", "openai/gpt-oss-120b"),            # MXFP4 experts only
    ("llama-3.1-70b", "h100-sxm", "vllm", "bf16", "meta-llama/Llama-3.1-70B-Instruct"),
])
def test_left_out_weights_default_to_what_the_model_ships(tmp_path, mid, gpu, engine, weights, repo):
    """A spec without precision.weights plans the model's own release: bf16 where one exists, else what the
    release stores (a DeepSeek-R1 spec without precision used to be PF118 "no bf16 release"), and says why."""
    par = "parallelism: {tensor: 8, expert: 8}\n" if mid == "deepseek-r1" else "parallelism: {tensor: 4}\n" if mid == "llama-3.1-70b" else ""
    gpr = 8 if mid == "deepseek-r1" else 4 if mid == "llama-3.1-70b" else 1
    spec = tmp_path / "s.yaml"
    spec.write_text(f"apiVersion: planfile/v1\nkind: Deployment\nmetadata: {{name: s}}\nmodel: {{id: {mid}}}\n"
                    f"hardware: {{gpu: {gpu}, gpus_per_replica: {gpr}, replicas: 1}}\n{par}engine: {{name: {engine}}}\n"
                    "workload: {archetype: chat, arrival_rate_rps: 1}\n")
    res = check_spec(str(spec), breach=False)
    assert res.status != "invalid", [f.message for f in res.findings]
    assert res.resolved.weights == weights and res.resolved.checkpoint.repo == repo
    (why,) = [src for ptr, value, src in res.resolved.defaults if ptr == "/precision/weights"]
    assert why == "unquantized checkpoint" if weights == "bf16" else f"{mid} has no 16-bit release" in why


def test_cheaper_gpu_compares_with_the_specs_own_split(tmp_path):
    """PF504 priced "the fewest h100-sxm replicas that do" from the cheapest analytic guess (TP1: 70B FP8 leaves 8
    sequences of KV per H100) verified: 20 x 1 GPU = $100,448/month, while this spec's own TP2 fleet carries the
    load with at most 8 x 2 GPUs = 16 x $6.88/h (aws) x 730 h = $80,358. The baseline is the cheaper of the two."""
    import re

    p = tmp_path / "s.yaml"
    p.write_text("""apiVersion: planfile/v1
kind: Deployment
metadata: {name: spec-dec}
model: {id: llama-3.1-70b}
precision: {weights: fp8, kv_cache: fp8}
hardware:
  gpu: h100-sxm
  gpus_per_replica: 2
  autoscale: {min: 2, max: 8}
parallelism: {tensor: 2}
engine: {name: sglang}
workload:
  archetype: code
  arrival_rate_rps: 5
  peak_factor: 2
  speculative: {method: eagle3, draft_model: yuhuili/EAGLE3-LLaMA3.3-Instruct-70B, draft_tokens: 3, acceptance_rate: 0.7}
  kv_offload: {tier: cpu, capacity_gb: 200}
slo:
  ttft_ms: {p95: 1500}
  itl_ms: {p95: 30}
  e2e_s: {p95: 30}
cost: {provider: aws}
""")
    r = run_cli("check", str(p), "--format", "json", "--no-cache")
    doc = json.loads(r.stdout)["results"][0]
    assert doc["status"] == "pass", doc["findings"]
    # and PF302 ("fits one GPU, yet split") is not advised: 16 one-GPU replicas break an SLO (20 are needed)
    assert "PF302" not in {f["id"] for f in doc["findings"]}
    for f in doc["findings"]:
        if f["id"] == "PF504":
            base = float(re.search(r"vs \$([0-9,]+) for the fewest", f["message"]).group(1).replace(",", ""))
            assert base <= 16 * 6.88 * 730 + 1, f["message"]


BATCH_SPEC = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: batch}
model: {id: llama-3.1-8b}
%s
workload:
  archetype: batch
  input_tokens: {mean: 3000, max: 8000}
  output_tokens: {mean: 300, max: 600}
  offline: true
slo:
  min_output_tokens_per_s: %d
cost: {provider: aws}
"""


def test_the_throughput_slo_is_checked_and_planned(tmp_path):
    """slo.min_output_tokens_per_s was in the schema and read by nothing: 4 x A10G delivering ~870 output tokens/s
    passed a 2,000 tokens/s SLO. Now PF409 (an error) with a verified fix: replicas scale the saturation
    throughput linearly, so the fix is ceil(2,000 / (delivered / 4)) replicas, and one fewer falls short."""
    import math

    from planner.commands import apply_edits

    p = tmp_path / "b.yaml"
    p.write_text(BATCH_SPEC % ("hardware: {gpu: a10g, gpus_per_replica: 1, replicas: 4}\nengine: {name: vllm}", 2000))
    doc = json.loads(run_cli("check", str(p), "--format", "json", "--no-cache").stdout)["results"][0]
    got = doc["estimate"]["performance"]["saturation_output_tokens_per_s"]
    f = next(x for x in doc["findings"] if x["id"] == "PF409")
    assert f["severity"] == "error" and got < 2000
    (fx, *_) = f["fixes"]
    assert {e["path"]: e["to"] for e in fx["edits"]} == {"/hardware/replicas": math.ceil(2000 / (got / 4))}
    q = tmp_path / "fixed.yaml"
    q.write_text(apply_edits(p.read_text(), fx["edits"]))
    assert "PF409" not in run_cli("check", str(q), "--no-breach").stdout


def test_plan_offline_options_show_checks_own_latency(tmp_path):
    """An offline spec is judged with every sequence the pools hold in flight; plan's table showed latencies at
    one sequence per replica (p95 TTFT 101 ms where check of the written spec says 14 s). The written option
    meets the throughput SLO, and its p95 TTFT and ITL are check's."""
    p = tmp_path / "p.yaml"
    p.write_text(BATCH_SPEC % ("", 20000))
    out = tmp_path / "w.yaml"
    r = run_cli("plan", str(p), "--format", "json", "--write", str(out))
    assert r.returncode == 0, r.stderr
    best = json.loads(r.stdout)["options"][0]
    assert best["saturation_output_tokens_per_s"] >= 20000
    est = json.loads(run_cli("check", str(out), "--format", "json").stdout)["results"][0]["estimate"]["performance"]
    assert best["ttft_p95_ms"] == pytest.approx(est["ttft_ms"]["p95"], abs=0.06)  # plan rounds to 0.1 ms
    assert best["itl_p95_ms"] == pytest.approx(est["itl_ms"]["p95"], abs=0.06)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_attention_data_parallel_renders_the_batch_limit_it_simulated(tmp_path, engine):
    """DeepSeek-V3 on 8 x H200 with 8 attention data-parallel ranks: vLLM applies --max-num-seqs on every rank
    (each an engine with its own scheduler), SGLang --max-running-requests for the whole server. The rendered
    limit is the KV-held sequences shared out accordingly, and the simulation runs exactly that limit."""
    text = (ROOT / "specs/deepseek-v3-h200.yaml").read_text().replace("  expert: 8\n", "  expert: 8\n  attention_data: 8\n")
    text = text.replace("  name: sglang\n", f"  name: {engine}\n")
    spec = tmp_path / "dp.yaml"
    spec.write_text(text)
    res = check_spec(str(spec))
    assert res.resolved.attention_dp == 8 and res.status in ("pass", "fail"), [f.message for f in res.findings]
    files = render(res, spec.read_bytes(), TARGETS)
    round_trip(res, files)
    held = res.estimate["memory"]["max_concurrent_sequences"]
    seqs = int(opt(shlex.split(files["engine/serve.sh"].split("exec ", 1)[1]), FLAGS[engine]["seqs"]))
    # per rank (vLLM): at most an eighth of what the replica's pools hold; whole server (SGLang): all of it
    assert seqs == (min(res.resolved.max_num_seqs, held // 8) if engine == "vllm" else min(res.resolved.max_num_seqs, held))


def test_vllm_never_launches_more_sequences_than_its_token_budget(tmp_path):
    """vLLM's SchedulerConfig refuses max_num_batched_tokens < max_num_seqs at start-up (config/scheduler.py,
    0.31-0.33; tests/test_engine_parsers.py runs it). The chat example with a 256-token budget: the KV pool holds
    389 sequences and vLLM's default max_num_seqs is 1,024, so the batch limit is min(1024, 389, 256) = 256 —
    rendered, simulated and explained alike (it once rendered --max-num-seqs 389, which vLLM does not start)."""
    spec = tmp_path / "s.yaml"
    spec.write_text((ROOT / "specs" / "chat-llama-3.1-70b.yaml").read_text()
                    .replace('  version: "0.33"', '  version: "0.33"\n  max_num_batched_tokens: 256'))
    res = check_spec(str(spec), breach=False)
    assert res.estimate["memory"]["max_concurrent_sequences"] == 389 and res.resolved.max_num_seqs == 1024
    files = render(res, spec.read_bytes(), ("engine",))
    serve = shlex.split(files["engine/serve.sh"].split("exec ", 1)[1].split("\n", 1)[0])
    assert serve[serve.index("--max-num-seqs") + 1] == "256" and serve[serve.index("--max-num-batched-tokens") + 1] == "256"
    assert limits(res.resolved, memory_plan(res.resolved)).max_seqs == 256
    r = run_cli("explain", str(spec))
    assert "capped at the token budget max_num_batched_tokens 256" in r.stdout, r.stdout


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_no_breach_verdicts_above_a_broken_peak_are_the_simulations(replicas):
    """Without the breach search (--no-breach, every fix trial) the headroom and idle-limit verdicts are runs
    above the peak; where the peak breaks an SLO they are not simulated (more load never meets an SLO less load
    missed). The chat example at 1-3 replicas (its 4 hold every SLO) breaks at the peak; the verdicts must be
    what simulating those loads gives, and evaluate must simulate the peak alone."""
    import copy

    from planner import evaluate as ev
    from planner.loader import Loaded, load_path
    from planner.physics import serving
    from planner.resolve import resolve

    ld = load_path(str(ROOT / "specs" / "chat-llama-3.1-70b.yaml"))
    data = copy.deepcopy(ld.data)
    data["hardware"]["replicas"] = replicas
    r = resolve(Loaded(ld.path, data, ld.source, [], ld.base_dir))
    serving._MEMO.clear()
    calls = []
    real = serving._simulate
    serving._simulate = lambda *a, **k: calls.append(k.get("rate_rps")) or real(*a, **k)
    try:
        est = ev.evaluate(r, breach=False)
    finally:
        serving._simulate = real
    cap, slo = est["capacity"], ev.judged_slos(r)
    assert not ev.slo_ok(est["performance"], slo)  # the peak breaks an SLO at this count
    assert len(calls) == 1  # the peak run alone
    mem, (_, _, fn) = memory_plan(r), ev.step_function(r)
    at = cap["peak_rps"] * (1 + r.settings["headroom_min_pct"] / 100)
    assert cap["holds_with_headroom"] is ev.slo_ok(ev.run_load(r, mem, fn, rate_fleet=at, n_requests=600), slo) is False
    assert cap["holds_at_idle_limit"] is ev.slo_ok(ev.run_load(r, mem, fn, rate_fleet=cap["idle_limit_rps"], n_requests=600), slo) is False


def test_evolve_builds_what_dataclasses_replace_builds():
    """plan and PF504 vary a resolved spec with resolve.evolve (a dict copy, ~20x faster than replace): every
    field must be what dataclasses.replace gives, the original untouched, and a mistyped field an error."""
    import dataclasses

    from planner.loader import load_path
    from planner.resolve import evolve, resolve

    r = resolve(load_path(str(ROOT / "specs" / "deepseek-v3-h200.yaml")))
    changes = {"replicas": 7, "replicas_min": 7, "tp": 4, "moe_all_to_all": "deepep", "gpu": dict(r.gpu, id="x")}
    a, b = evolve(r, **changes), dataclasses.replace(r, **changes)
    assert type(a) is type(b)
    for f in dataclasses.fields(r):
        assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert r.replicas != 7 and r.gpu["id"] != "x"
    with pytest.raises(TypeError):
        evolve(r, replica=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.replicas = 1
