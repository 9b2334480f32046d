"""Engine launch configurations from the evaluated plan (not copied from the spec).

One function per engine turns a resolved spec and its estimate into the program, the model argument,
the option list and (where the engine has one) a config file. Spellings follow
shared/reference/engines.md: vLLM dashed options with plain integers and `--no-enable-*` negatives
(accepted by 0.32 and 0.33), SGLang `fp8_e4m3` KV, TensorRT-LLM's strict LLM-API YAML.
Anything the chosen engine cannot do is returned as an error, never rendered.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from planner.resolve import Resolved

VLLM_KV = {"bf16": "auto", "fp16": "auto", "fp8": "fp8", "int8": "int8_per_token_head", "int4": "int4_per_token_head"}
# online quantization of an unquantized checkpoint (engines.md 1.2: fp8_per_tensor, not the deprecated fp8)
VLLM_ONLINE_QUANT = {"fp8": "fp8_per_tensor", "int8": "int8_per_channel_weight_only", "fp4": "nvfp4_per_token"}
SGLANG_KV = {"bf16": "auto", "fp16": "auto", "fp8": "fp8_e4m3"}
SGLANG_ONLINE_QUANT = {"fp8": "fp8", "fp4": "nvfp4_online"}
TRTLLM_KV = {"bf16": "auto", "fp16": "auto", "fp8": "fp8"}
VLLM_SPEC = {"eagle": "eagle", "eagle3": "eagle3", "mtp": "mtp", "ngram": "ngram", "draft_model": "draft_model"}
SGLANG_SPEC = {"eagle": "EAGLE", "eagle3": "EAGLE3", "mtp": "NEXTN", "ngram": "NGRAM", "draft_model": "STANDALONE"}
TRTLLM_SPEC = {"eagle": "Eagle", "eagle3": "Eagle3", "mtp": "MTP", "ngram": "NGram", "draft_model": "DraftTarget"}
IMAGE_TAGS = {"vllm": "v{v}.0", "sglang": "v{v}", "trtllm": "{v}.0"}
MULTINODE_PORT = 29501  # vLLM --master-port default; SGLang dist-init port as in the LWS example uses 20000
SGLANG_DIST_PORT = 20000
CONFIG_DIR = "/etc/planfile"


@dataclass
class Launch:
    engine: str
    version: str
    program: list[str]  # e.g. ["vllm", "serve"]
    model: str
    model_flag: str | None  # None: the model is positional
    options: list[str]  # everything after the model
    config_name: str | None = None  # config file the options reference (TRT-LLM) or an equivalent (vLLM)
    config: dict | None = None
    config_mounted: bool = False  # the command line needs the config file (mounted from a ConfigMap)
    metrics_prefix: str | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (spec pointer, message)
    values: dict = field(default_factory=dict)  # the planned values, for reports

    def argv(self) -> list[str]:
        head = self.program + ([self.model_flag, self.model] if self.model_flag else [self.model])
        return head + self.options

    def container_command(self) -> tuple[list[str], list[str]]:
        """(command, args) for a container: explicit command so the image's entrypoint does not matter."""
        if self.model_flag:
            return self.program, [self.model_flag, self.model] + self.options
        return self.program, [self.model] + self.options


def planned_max_seqs(r: Resolved, est: dict) -> int:
    """The batch cap the KV pool really holds at the workload's mean context, within the engine's limit."""
    held = int(est["memory"]["max_concurrent_sequences"] or 0) * r.pp
    return max(1, min(r.max_num_seqs, held)) if held else r.max_num_seqs


def multinode(r: Resolved) -> int:
    """Nodes one replica spans (1 = fits a node)."""
    return max(1, math.ceil(r.gpus_per_replica / r.gpus_per_node))


def _spec(r: Resolved, launch: Launch, table: dict) -> dict | None:
    s = r.speculative
    if not s:
        return None
    method = table.get(s["method"])
    if s["method"] in ("eagle", "eagle3", "draft_model") and not s.get("draft_model"):
        launch.errors.append(("/workload/speculative/draft_model", f"speculative method {s['method']} needs draft_model"))
    return {"method": method, "k": int(s["draft_tokens"]), "draft": s.get("draft_model")}


def _offload_gib(r: Resolved) -> float | None:
    off = r.kv_offload
    if not off or off["tier"] != "cpu" or not off.get("capacity_gb"):
        return None
    return round(off["capacity_gb"] * 1e9 / 2**30, 1)


def vllm(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    v = r.engine_version
    L = Launch("vllm", v, ["vllm", "serve"], r.model_name, None, [], metrics_prefix="vllm")
    seqs = planned_max_seqs(r, est)
    o = L.options
    o += ["--host", "0.0.0.0", "--port", str(r.port), "--served-model-name", r.served_name]
    o += ["--tensor-parallel-size", str(r.tp), "--pipeline-parallel-size", str(r.pp)]
    if r.ep > 1:
        o += ["--enable-expert-parallel"]
        if r.ep != r.tp:
            L.notes.append(f"vLLM sets the expert-parallel size to TP x DP = {r.tp}, not {r.ep}")
    o += ["--max-model-len", str(r.max_model_len), "--max-num-seqs", str(seqs),
          "--max-num-batched-tokens", str(r.max_num_batched_tokens),
          "--gpu-memory-utilization", f"{r.gpu_memory_utilization:g}", "--kv-cache-dtype", VLLM_KV[r.kv_cache]]
    if r.weights == "fp16":
        o += ["--dtype", "float16"]
    if not r.quantized_checkpoint and r.weights not in ("bf16", "fp16"):
        q = VLLM_ONLINE_QUANT.get(r.weights)
        if q is None:
            L.errors.append(("/precision/weights", f"vLLM cannot quantize to {r.weights} online: point model.name at a "
                             f"pre-quantized {r.weights} checkpoint (AWQ/GPTQ) and set model.quantized_checkpoint: true"))
        else:
            o += ["--quantization", q]
    o += ["--enable-prefix-caching"] if r.prefix_caching else ["--no-enable-prefix-caching"]
    o += ["--enable-chunked-prefill"] if r.chunked_prefill else ["--no-enable-chunked-prefill"]
    if r.block_size != r.engine["block_size_tokens"]:
        o += ["--block-size", str(r.block_size)]
    gib = _offload_gib(r)
    if gib:
        o += ["--kv-offloading-size", f"{gib:g}"]
    s = _spec(r, L, VLLM_SPEC)
    if s:
        cfg = {"method": s["method"], "num_speculative_tokens": s["k"]}
        if s["draft"]:
            cfg["model"] = s["draft"]
        if s["method"] == "ngram":
            cfg["prompt_lookup_max"] = 4
        o += ["--speculative-config", json.dumps(cfg, sort_keys=True, separators=(",", ":"))]
    nodes = multinode(r)
    if nodes > 1:
        o += ["--nnodes", str(nodes), "--node-rank", "0" if rank != "worker" else "$(LWS_WORKER_INDEX)",
              "--master-addr", "$(LWS_LEADER_ADDRESS)", "--master-port", str(MULTINODE_PORT)]
        if rank == "worker":
            o += ["--headless"]
    o += list(r.extra_args)
    # the equivalent --config YAML: never `key: false` (dropped under `vllm serve`), write no-<key>: true
    cfg: dict = {}
    i = 0
    while i < len(o):
        key = o[i][2:]
        if i + 1 < len(o) and not o[i + 1].startswith("--"):
            val = o[i + 1]
            cfg[key] = int(val) if val.isdigit() else (float(val) if _is_float(val) else val)
            i += 2
        else:
            cfg[key] = True
            i += 1
    for k in ("host", "nnodes", "node-rank", "master-addr", "master-port", "headless"):
        cfg.pop(k, None)
    L.config_name, L.config = "vllm-config.yaml", cfg
    L.values = {"max_num_seqs": seqs, "max_model_len": r.max_model_len, "max_num_batched_tokens": r.max_num_batched_tokens,
                "gpu_memory_utilization": r.gpu_memory_utilization, "kv_cache_dtype": VLLM_KV[r.kv_cache]}
    return L


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def sglang(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    L = Launch("sglang", r.engine_version, ["python3", "-m", "sglang.launch_server"], r.model_name, "--model-path", [],
               metrics_prefix="sglang")
    seqs = planned_max_seqs(r, est)
    o = L.options
    o += ["--host", "0.0.0.0", "--port", str(r.port), "--served-model-name", r.served_name,
          "--tp-size", str(r.tp), "--pp-size", str(r.pp)]
    if r.ep > 1:
        o += ["--ep-size", str(r.ep)]
    kv = SGLANG_KV.get(r.kv_cache)
    if kv is None:
        L.errors.append(("/precision/kv_cache", f"SGLang has no {r.kv_cache} KV cache (it accepts auto, fp8_e4m3, fp8_e5m2, "
                         "bf16, nvfp4): use kv_cache: fp8"))
        kv = "auto"
    o += ["--context-length", str(r.max_model_len), "--max-running-requests", str(seqs),
          "--chunked-prefill-size", str(r.max_num_batched_tokens) if r.chunked_prefill else "-1",
          "--mem-fraction-static", f"{r.gpu_memory_utilization:g}", "--kv-cache-dtype", kv]
    if not r.quantized_checkpoint and r.weights not in ("bf16", "fp16"):
        q = SGLANG_ONLINE_QUANT.get(r.weights)
        if q is None:
            L.errors.append(("/precision/weights", f"SGLang cannot quantize to {r.weights} online: use a pre-quantized "
                             "checkpoint and set model.quantized_checkpoint: true"))
        else:
            o += ["--quantization", q]
    if r.weights == "fp16":
        o += ["--dtype", "float16"]
    if not r.prefix_caching:
        o += ["--disable-radix-cache"]
    if r.block_size != r.engine["block_size_tokens"]:
        o += ["--page-size", str(r.block_size)]
    gib = _offload_gib(r)
    if gib:
        o += ["--enable-hierarchical-cache", "--hicache-size", str(int(gib))]
    s = _spec(r, L, SGLANG_SPEC)
    if s:
        o += ["--speculative-algorithm", s["method"], "--speculative-num-draft-tokens", str(s["k"] + 1)]
        if s["method"] in ("EAGLE", "EAGLE3", "NEXTN", "STANDALONE"):
            o += ["--speculative-num-steps", str(s["k"]), "--speculative-eagle-topk", "1"]
        if s["draft"]:
            o += ["--speculative-draft-model-path", s["draft"]]
    o += ["--enable-metrics"]
    nodes = multinode(r)
    if nodes > 1:
        o += ["--nnodes", str(nodes), "--node-rank", "0" if rank != "worker" else "$(LWS_WORKER_INDEX)",
              "--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{SGLANG_DIST_PORT}"]
    o += list(r.extra_args)
    L.values = {"max_num_seqs": seqs, "max_model_len": r.max_model_len, "max_num_batched_tokens": r.max_num_batched_tokens,
                "gpu_memory_utilization": r.gpu_memory_utilization, "kv_cache_dtype": kv}
    return L


def trtllm(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    L = Launch("trtllm", r.engine_version, ["trtllm-serve"], r.model_name, None, [], metrics_prefix=None)
    seqs = planned_max_seqs(r, est)
    kv = TRTLLM_KV.get(r.kv_cache)
    if kv is None:
        L.errors.append(("/precision/kv_cache", f"TensorRT-LLM's PyTorch backend has no {r.kv_cache} KV cache: use kv_cache: fp8"))
        kv = "auto"
    if not r.quantized_checkpoint and r.weights not in ("bf16", "fp16"):
        L.errors.append(("/precision/weights", f"trtllm-serve loads {r.weights} weights from a pre-quantized (ModelOpt) "
                         "checkpoint: point model.name at one and set model.quantized_checkpoint: true"))
    if multinode(r) > 1:
        L.errors.append(("/hardware/gpus_per_replica", f"a TensorRT-LLM replica of {r.gpus_per_replica} GPUs spans nodes "
                         "(it runs under mpirun/Slurm): planfile renders multi-node replicas for vLLM and SGLang only"))
    frac = r.gpu_memory_utilization
    cfg_path = f"{CONFIG_DIR}/extra-llm-api-options.yaml"
    o = L.options
    o += ["--host", "0.0.0.0", "--port", str(r.port), "--backend", "pytorch", "--tp_size", str(r.tp), "--pp_size", str(r.pp)]
    if r.ep > 1:
        o += ["--ep_size", str(r.ep)]
    o += ["--max_batch_size", str(seqs), "--max_num_tokens", str(r.max_num_batched_tokens),
          "--max_seq_len", str(r.max_model_len), "--kv_cache_free_gpu_memory_fraction", f"{frac:g}",
          "--extra_llm_api_options", cfg_path]
    o += list(r.extra_args)
    cfg: dict = {
        "kv_cache_config": {"dtype": kv, "free_gpu_memory_fraction": frac, "enable_block_reuse": r.prefix_caching,
                            "tokens_per_block": r.block_size},
        "enable_chunked_prefill": r.chunked_prefill,
        "cuda_graph_config": {"enable_padding": True, "max_batch_size": min(seqs, 512)},
        "enable_iter_perf_stats": True,
    }
    if r.kv_offload and r.kv_offload.get("capacity_gb"):
        cfg["kv_cache_config"]["host_cache_size"] = int(r.kv_offload["capacity_gb"] * 1e9)
    s = _spec(r, L, TRTLLM_SPEC)
    if s:
        sc = {"decoding_type": s["method"]}
        if s["method"] == "MTP":
            sc["num_nextn_predict_layers"] = s["k"]
        else:
            sc["max_draft_len"] = s["k"]
        if s["draft"]:
            sc["speculative_model"] = s["draft"]
        cfg["speculative_config"] = sc
    L.config_name, L.config, L.config_mounted = "extra-llm-api-options.yaml", cfg, True
    L.notes.append("trtllm-serve serves the model under its path name (no --served-model-name); "
                   "its /metrics are JSON iteration stats, not Prometheus: no alert rules are rendered")
    L.values = {"max_num_seqs": seqs, "max_model_len": r.max_model_len, "max_num_batched_tokens": r.max_num_batched_tokens,
                "gpu_memory_utilization": frac, "kv_cache_dtype": kv}
    return L


BUILDERS = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}


def launch(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    """The engine launch for a resolved spec; rank is None (single node), "leader" or "worker"."""
    L = BUILDERS[r.engine["id"]](r, est, rank)
    from planner.render.flags import manifest

    m = manifest(r.engine["id"], r.engine_version)
    for err in m.check_argv(L.options):
        ptr = "/engine/extra_args" if any(a in err for a in r.extra_args) else "/engine"
        L.errors.append((ptr, f"{m.name} would reject the command: {err}"))
    return L


def image(r: Resolved) -> str:
    if r.image:
        return r.image
    return f"{r.engine['image']}:{IMAGE_TAGS[r.engine['id']].format(v=r.engine_version)}"
