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
from dataclasses import field

from planner.records import record
from planner.resolve import Resolved, deepep_mode, deepep_on

VLLM_KV = {"bf16": "auto", "fp16": "auto", "fp8": "fp8", "int8": "int8_per_token_head", "int4": "int4_per_token_head"}
SGLANG_KV = {"bf16": "auto", "fp16": "auto", "fp8": "fp8_e4m3"}
TRTLLM_KV = {"bf16": "auto", "fp16": "auto", "fp8": "fp8"}
VLLM_SPEC = {"eagle": "eagle", "eagle3": "eagle3", "mtp": "mtp", "ngram": "ngram", "draft_model": "draft_model"}
SGLANG_SPEC = {"eagle": "EAGLE", "eagle3": "EAGLE3", "mtp": "NEXTN", "ngram": "NGRAM", "draft_model": "STANDALONE"}
TRTLLM_SPEC = {"eagle": "Eagle", "eagle3": "Eagle3", "mtp": "MTP", "ngram": "NGram", "draft_model": "DraftTarget"}
MULTINODE_PORT = 29501  # vLLM --master-port default; SGLang dist-init port as in the LWS example uses 20000
SGLANG_DIST_PORT = 20000
CONFIG_DIR = "/etc/planfile"


@record(eq=False)
class Launch:
    """An engine's launch, typed: program, model and options, rendered to a command line or a config file."""

    engine: str
    version: str
    program: list[str]  # e.g. ["vllm", "serve"]
    model: str
    model_flag: str | None  # None: the model is positional
    opts: list[tuple[str, object]] = field(default_factory=list)  # (flag, value or None for a switch), typed values
    config_name: str | None = None  # config file the options reference (TRT-LLM) or an equivalent (vLLM)
    config: dict | None = None
    config_mounted: bool = False  # the command line needs the config file (mounted from a ConfigMap)
    metrics_prefix: str | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (spec pointer, message)
    dangerous: list[tuple[str, str]] = field(default_factory=list)  # (spec pointer, message): PF604
    values: dict = field(default_factory=dict)  # the planned values, for reports
    env_refs: set = field(default_factory=set)  # values planfile itself writes as $(VAR) for Kubernetes to expand
    pointers: dict = field(default_factory=dict)  # dest -> spec pointer of the planned options

    def add(self, flag: str, value=None, pointer: str = "") -> None:
        self.opts.append((flag, value))
        if pointer:
            self.pointers[flag] = pointer

    @property
    def options(self) -> list[str]:
        """Everything after the model, as argv words (values are never re-parsed from this list)."""
        out: list[str] = []
        for flag, value in self.opts:
            out.append(flag)
            if value is not None:
                out.append(_word(value))
        return out

    def argv(self) -> list[str]:
        head = self.program + ([self.model_flag, self.model] if self.model_flag else [self.model])
        return head + self.options

    def shell_command(self) -> str:
        """argv as one POSIX shell command line: every word quoted, except that the references planfile
        writes for Kubernetes to expand, $(VAR), become the shell's "${VAR}" (a script runs in the same
        environment as the container)."""
        import re
        import shlex

        out = []
        for w in self.argv():
            if w in self.env_refs:
                parts = re.split(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", w)
                out.append("".join(shlex.quote(p) if i % 2 == 0 and p else f'"${{{p}}}"' if i % 2 else ""
                                   for i, p in enumerate(parts)))
            else:
                out.append(shlex.quote(w))
        return " ".join(out)

    def container_command(self) -> tuple[list[str], list[str]]:
        """(command, args) for a container: explicit command so the image's entrypoint does not matter.

        Kubernetes expands $(VAR) in command and args from the container's environment; every value that
        planfile did not write as such a reference on purpose has `$(` escaped as `$$(`, so a spec string
        cannot pull a secret (HF_TOKEN) into the served model name or an argument."""
        words = ([self.model_flag, self.model] if self.model_flag else [self.model]) + self.options
        return self.program, self.k8s_words(words)

    def k8s_words(self, words: list[str]) -> list[str]:
        """Container args as Kubernetes must read them: `$(` escaped as `$$(` except in this launch's own env_refs."""
        return [w if w in self.env_refs else w.replace("$(", "$$(") for w in words]


def _word(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def planned_max_seqs(r: Resolved, est: dict) -> int:
    """The batch limit the engine is launched with: planner.evaluate.batch_cap, the one the simulation ran."""
    from planner.evaluate import batch_cap

    return batch_cap(r, int(est["memory"]["max_concurrent_sequences"] or 0))


def multinode(r: Resolved) -> int:
    """Nodes one replica spans (1 = fits a node)."""
    return max(1, math.ceil(r.gpus_per_replica / r.gpus_per_node))


def _spec(r: Resolved, launch: Launch, table: dict) -> dict | None:
    s = r.speculative
    if not s:
        return None
    method = table.get(s["method"])
    if s["method"] in ("eagle", "eagle3", "draft_model") and not s.get("draft_model"):
        launch.errors.append(("/workload/speculative/draft_model", f"speculative method {s['method']} needs draft_model: add "
                              "workload.speculative.draft_model (the Hub repository or path of the draft model or head)"))
    return {"method": method, "k": int(s["draft_tokens"]), "draft": s.get("draft_model")}


def _offload_gib(r: Resolved) -> float | None:
    """vLLM --kv-offloading-size: GiB over all TP ranks of the replica (engines.md 1.1)."""
    off = r.kv_offload
    if not off or off["tier"] != "cpu" or not off.get("capacity_gb"):
        return None
    return round(off["capacity_gb"] * 1e9 / 2**30, 1)


def _offload_gb_per_rank(r: Resolved) -> int | None:
    """SGLang --hicache-size: whole GB (10^9) per GPU process of the replica."""
    off = r.kv_offload
    if not off or off["tier"] != "cpu" or not off.get("capacity_gb"):
        return None
    return max(1, int(off["capacity_gb"] / r.gpus_per_replica))


def vllm(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    L = Launch("vllm", r.engine_version, ["vllm", "serve"], r.model_name, None, metrics_prefix="vllm")
    seqs = planned_max_seqs(r, est)
    L.add("--host", "0.0.0.0")
    L.add("--port", r.port, "/engine/port")
    L.add("--served-model-name", r.served_name, "/model/served_name")
    adp = max(r.attention_dp, 1)
    # data-parallel attention: vLLM runs attention_data engine ranks of tensor / attention_data GPUs each,
    # the MoE layers expert-parallel over all of them (EP size = TP x DP)
    L.add("--tensor-parallel-size", r.tp // adp, "/parallelism/tensor")
    L.add("--pipeline-parallel-size", r.pp, "/parallelism/pipeline")
    if adp > 1:
        L.add("--data-parallel-size", adp, "/parallelism/attention_data")
    if r.ep > 1 or adp > 1:
        L.add("--enable-expert-parallel", None, "/parallelism/expert" if r.ep > 1 else "/parallelism/attention_data")
        if r.ep != r.tp:
            L.notes.append(f"vLLM sets the expert-parallel size to TP x DP = {r.tp}, not {r.ep}")
    if deepep_on(r):
        L.add("--all2all-backend", "deepep_low_latency" if deepep_mode(r) == "low_latency" else "deepep_high_throughput",
              "/engine/moe_all_to_all")
    if r.two_batch_overlap:
        L.add("--enable-dbo", None, "/engine/two_batch_overlap")
    L.add("--max-model-len", r.max_model_len, "/engine/max_model_len")
    L.add("--max-num-seqs", seqs, "/engine/max_num_seqs")
    L.add("--max-num-batched-tokens", r.max_num_batched_tokens, "/engine/max_num_batched_tokens")
    L.add("--gpu-memory-utilization", float(r.gpu_memory_utilization), "/engine/gpu_memory_utilization")
    L.add("--kv-cache-dtype", VLLM_KV[r.kv_cache], "/precision/kv_cache")
    if r.weights == "fp16":
        L.add("--dtype", "float16", "/precision/weights")
    if r.checkpoint.online_quant:
        L.add("--quantization", r.checkpoint.online_quant, "/precision/weights")
    if r.revision:
        L.add("--revision", r.revision, "/model/revision")
    L.add("--enable-prefix-caching" if r.prefix_caching else "--no-enable-prefix-caching", None, "/engine/enable_prefix_caching")
    L.add("--enable-chunked-prefill" if r.chunked_prefill else "--no-enable-chunked-prefill", None, "/engine/enable_chunked_prefill")
    if r.block_size != r.engine["block_size_tokens"]:
        L.add("--block-size", r.block_size, "/engine/block_size")
    gib = _offload_gib(r)
    if gib:
        L.add("--kv-offloading-size", gib, "/workload/kv_offload")
    s = _spec(r, L, VLLM_SPEC)
    if s:
        cfg = {"method": s["method"], "num_speculative_tokens": s["k"]}
        if s["draft"]:
            cfg["model"] = s["draft"]
        if s["method"] == "ngram":
            cfg["prompt_lookup_max"] = 4
        L.add("--speculative-config", json.dumps(cfg, sort_keys=True, separators=(",", ":")), "/workload/speculative")
    nodes = multinode(r)
    if nodes > 1:
        L.add("--nnodes", nodes, "/hardware/gpus_per_replica")
        L.add("--node-rank", 0 if rank != "worker" else "$(LWS_WORKER_INDEX)", "/hardware/gpus_per_replica")
        L.add("--master-addr", "$(LWS_LEADER_ADDRESS)", "/hardware/gpus_per_replica")
        L.add("--master-port", MULTINODE_PORT, "/hardware/gpus_per_replica")
        L.env_refs |= {"$(LWS_WORKER_INDEX)", "$(LWS_LEADER_ADDRESS)"}
        if rank == "worker":
            L.add("--headless")
    _extra(L, r)
    # the equivalent --config YAML, from the same typed options: never `key: false` (dropped silently under
    # `vllm serve`), switches as `key: true` (negatives keep their no- spelling)
    cfg: dict = {}
    for flag, value in L.opts:
        key = flag[2:]
        if key in ("host", "nnodes", "node-rank", "master-addr", "master-port", "headless"):
            continue
        cfg[key] = True if value is None else value
    L.config_name, L.config = "vllm-config.yaml", cfg
    L.values = {"max_num_seqs": seqs, "max_model_len": r.max_model_len, "max_num_batched_tokens": r.max_num_batched_tokens,
                "gpu_memory_utilization": r.gpu_memory_utilization, "kv_cache_dtype": VLLM_KV[r.kv_cache]}
    return L


def sglang(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    L = Launch("sglang", r.engine_version, ["python3", "-m", "sglang.launch_server"], r.model_name, "--model-path",
               metrics_prefix="sglang")
    seqs = planned_max_seqs(r, est)
    L.add("--host", "0.0.0.0")
    L.add("--port", r.port, "/engine/port")
    L.add("--served-model-name", r.served_name, "/model/served_name")
    L.add("--tp-size", r.tp, "/parallelism/tensor")
    L.add("--pp-size", r.pp, "/parallelism/pipeline")
    if r.ep > 1:
        L.add("--ep-size", r.ep, "/parallelism/expert")
    if r.attention_dp > 1:
        # SGLang's DP attention: --tp-size stays the replica's GPU count, --dp-size attention groups of it
        L.add("--enable-dp-attention", None, "/parallelism/attention_data")
        L.add("--dp-size", r.attention_dp, "/parallelism/attention_data")
        if r.attention_dp == r.tp:
            # the dense layers' MLP data-parallel like attention (a whole copy per GPU), as the step model and the
            # memory plan compute it; SGLang's default splits it over every GPU of --tp-size, which a block-FP8
            # checkpoint cannot load past 16 GPUs (DeepSeek's 18,432-wide MLP in 576-wide shards, PF125)
            L.add("--moe-dense-tp-size", 1, "/parallelism/attention_data")
    if deepep_on(r):
        L.add("--moe-a2a-backend", "deepep", "/engine/moe_all_to_all")
        L.add("--deepep-mode", deepep_mode(r), "/engine/moe_all_to_all")
    if r.two_batch_overlap:
        L.add("--enable-two-batch-overlap", None, "/engine/two_batch_overlap")
    kv = SGLANG_KV.get(r.kv_cache)
    if kv is None:
        L.errors.append(("/precision/kv_cache", f"SGLang has no {r.kv_cache} KV cache (it accepts auto, fp8_e4m3, fp8_e5m2, "
                         "bf16, nvfp4): use kv_cache: fp8"))
        kv = "auto"
    L.add("--context-length", r.max_model_len, "/engine/max_model_len")
    L.add("--max-running-requests", seqs, "/engine/max_num_seqs")
    L.add("--chunked-prefill-size", r.max_num_batched_tokens if r.chunked_prefill else -1, "/engine/max_num_batched_tokens")
    L.add("--mem-fraction-static", float(r.gpu_memory_utilization), "/engine/gpu_memory_utilization")
    L.add("--kv-cache-dtype", kv, "/precision/kv_cache")
    if r.checkpoint.online_quant:
        L.add("--quantization", r.checkpoint.online_quant, "/precision/weights")
    if r.revision:
        L.add("--revision", r.revision, "/model/revision")
    if r.weights == "fp16":
        L.add("--dtype", "float16", "/precision/weights")
    if not r.prefix_caching:
        L.add("--disable-radix-cache", None, "/engine/enable_prefix_caching")
    if r.block_size != r.engine["block_size_tokens"]:
        L.add("--page-size", r.block_size, "/engine/block_size")
    gb = _offload_gb_per_rank(r)
    if gb:
        # --hicache-size is in GB (10^9 bytes) per scheduler process, i.e. per GPU of the replica
        # (sglang/srt/mem_cache/memory_pool_host.py: int(host_size * 1e9 // size_per_token))
        L.add("--enable-hierarchical-cache", None, "/workload/kv_offload")
        L.add("--hicache-size", gb, "/workload/kv_offload")
    s = _spec(r, L, SGLANG_SPEC)
    if s:
        L.add("--speculative-algorithm", s["method"], "/workload/speculative")
        L.add("--speculative-num-draft-tokens", s["k"] + 1, "/workload/speculative")
        if s["method"] in ("EAGLE", "EAGLE3", "NEXTN", "STANDALONE"):
            L.add("--speculative-num-steps", s["k"], "/workload/speculative")
            L.add("--speculative-eagle-topk", 1, "/workload/speculative")
        if s["draft"]:
            L.add("--speculative-draft-model-path", s["draft"], "/workload/speculative")
    L.add("--enable-metrics")
    nodes = multinode(r)
    if nodes > 1:
        L.add("--nnodes", nodes, "/hardware/gpus_per_replica")
        L.add("--node-rank", 0 if rank != "worker" else "$(LWS_WORKER_INDEX)", "/hardware/gpus_per_replica")
        L.add("--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{SGLANG_DIST_PORT}", "/hardware/gpus_per_replica")
        L.env_refs |= {"$(LWS_WORKER_INDEX)", f"$(LWS_LEADER_ADDRESS):{SGLANG_DIST_PORT}"}
    _extra(L, r)
    L.values = {"max_num_seqs": seqs, "max_model_len": r.max_model_len, "max_num_batched_tokens": r.max_num_batched_tokens,
                "gpu_memory_utilization": r.gpu_memory_utilization, "kv_cache_dtype": kv}
    return L


def trtllm(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    L = Launch("trtllm", r.engine_version, ["trtllm-serve"], r.model_name, None, metrics_prefix=None)
    seqs = planned_max_seqs(r, est)
    kv = TRTLLM_KV.get(r.kv_cache)
    if kv is None:
        L.errors.append(("/precision/kv_cache", f"TensorRT-LLM's PyTorch backend has no {r.kv_cache} KV cache: use kv_cache: fp8"))
        kv = "auto"
    if r.checkpoint.online_quant:  # checkpoints.resolve refuses this; kept as a guard
        L.errors.append(("/precision/weights", "trtllm-serve does not quantize at load time"))
    if multinode(r) > 1:
        L.errors.append(("/hardware/gpus_per_replica", f"a TensorRT-LLM replica of {r.gpus_per_replica} GPUs spans nodes "
                         "(it runs under mpirun/Slurm): planfile renders multi-node replicas for vLLM and SGLang only"))
    frac = r.gpu_memory_utilization
    cfg_path = f"{CONFIG_DIR}/extra-llm-api-options.yaml"
    L.add("--host", "0.0.0.0")
    L.add("--port", r.port, "/engine/port")
    L.add("--backend", "pytorch")
    L.add("--tp_size", r.tp, "/parallelism/tensor")
    L.add("--pp_size", r.pp, "/parallelism/pipeline")
    if r.ep > 1:
        L.add("--ep_size", r.ep, "/parallelism/expert")
    if r.revision:
        L.add("--revision", r.revision, "/model/revision")
    L.add("--max_batch_size", seqs, "/engine/max_num_seqs")
    L.add("--max_num_tokens", r.max_num_batched_tokens, "/engine/max_num_batched_tokens")
    L.add("--max_seq_len", r.max_model_len, "/engine/max_model_len")
    L.add("--kv_cache_free_gpu_memory_fraction", float(frac), "/engine/gpu_memory_utilization")
    L.add("--extra_llm_api_options", cfg_path)
    _extra(L, r)
    cfg: dict = {
        "kv_cache_config": {"dtype": kv, "free_gpu_memory_fraction": frac, "enable_block_reuse": r.prefix_caching,
                            "tokens_per_block": r.block_size},
        "enable_chunked_prefill": r.chunked_prefill,
        "cuda_graph_config": {"enable_padding": True, "max_batch_size": min(seqs, 512)},
        "enable_iter_perf_stats": True,
        # admission when KV runs short: planfile simulated this policy (engine.scheduler_policy)
        "scheduler_config": {"capacity_scheduler_policy": r.scheduler_policy.upper().replace("-", "_")},
    }
    if r.attention_dp > 1:
        if r.attention_dp != r.tp:
            L.errors.append(("/parallelism/attention_data", f"TensorRT-LLM's enable_attention_dp runs one attention rank per "
                             f"GPU: attention_data must equal tensor ({r.tp}), not {r.attention_dp}"))
        cfg["enable_attention_dp"] = True
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


def _extra(L: Launch, r: Resolved) -> None:
    """Append engine.extra_args, refusing what would silently change the plan or open the pods up.

    Each extra option is matched to the real parser's dest (aliases and `--x=v` included): one that sets an
    option planfile already plans is a collision (the engine takes the last, the plan the first); one the
    catalog refuses (it changes a planned quantity planfile does not model) is an error naming the spec
    field to use; one that runs code or exposes files is a PF604 finding unless waived."""
    from planner.render.flags import manifest

    m = manifest(r.engine["id"], r.engine_version)
    planned = {m.dest(flag): (flag, L.pointers.get(flag, "")) for flag, _ in L.opts if m.dest(flag)}
    policy = r.engine.get("extra_args_policy") or {"dangerous": {}, "refused": {}}
    i = 0
    for flag, value, dest, words in m.split(list(r.extra_args)):
        ptr = f"/engine/extra_args/{i}"
        i += words
        shown = flag + ("" if value is None else f" {value}")
        if dest in planned:
            pflag, pptr = planned[dest]
            pval = next((v for f, v in L.opts if f == pflag), None)
            L.errors.append((ptr, f"extra_args {shown} collides with the planned {pflag}"
                             + ("" if pval is None else f" {_word(pval)}")
                             + (f" (set by {pptr})" if pptr else " (planfile sets it)")
                             + ": the engine would take the last value, the plan assumes the other"
                             + (f"; set {pptr.lstrip('/').replace('/', '.')} instead" if pptr else "")))
            continue
        if dest in policy["refused"]:
            L.errors.append((ptr, f"extra_args {flag} is refused: {policy['refused'][dest]}"))
            continue
        if dest in policy["dangerous"]:
            L.dangerous.append((ptr, f"extra_args {flag}: {policy['dangerous'][dest]}"))
        L.opts.append((flag, value))


def conflicts(r: Resolved, L: Launch) -> list[tuple[str, str]]:
    """Cross-option rules the engine enforces at start-up (catalog engines.yaml `conflicts`), on the final options."""
    from planner.render.flags import manifest

    m = manifest(r.engine["id"], r.engine_version)
    dests = {m.dest(flag) for flag, _ in L.opts}
    out = []
    for rule in r.engine.get("conflicts") or []:
        # a rule holds when every `dests` option is set and none of its `unless` options is
        if all(d in dests for d in rule["dests"]) and not any(d in dests for d in rule.get("unless", ())):
            out.append(("/engine", f"{rule['message']}; fix: {rule['fix']}"))
    return out


BUILDERS = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}


def launch(r: Resolved, est: dict, rank: str | None = None) -> Launch:
    """The engine launch for a resolved spec; rank is None (single node), "leader" or "worker"."""
    L = BUILDERS[r.engine["id"]](r, est, rank)
    from planner.render.flags import manifest

    m = manifest(r.engine["id"], r.engine_version)
    for err in m.check_argv(L.options, L.env_refs):
        ptr = "/engine/extra_args" if any(a in err for a in r.extra_args) else "/engine"
        L.errors.append((ptr, f"{m.name} would reject the command: {err}"))
    L.errors += conflicts(r, L)
    if r.autoscale and L.metrics_prefix is None:
        L.errors.append(("/hardware/autoscale", f"{r.engine['name']} exposes no Prometheus metric planfile can scale on "
                         "(trtllm-serve's /metrics are JSON iteration stats, engines.md 3.3): use hardware.replicas, "
                         "or vLLM/SGLang for an autoscaled fleet"))
    if image(r) is None:
        L.errors.append(("/engine/image", f"planfile knows no {r.engine['name']} image for {r.gpu['vendor']} GPUs "
                         f"({r.gpu['id']}): set engine.image"))
    return L


def release(version: str) -> str:
    """The full release of an engine version as the catalog names it: "0.33" -> "0.33.0"."""
    return version if version.count(".") >= 2 else version + ".0"


def image(r: Resolved) -> str | None:
    """The container image for the engine on the GPU's vendor (catalog engines.yaml `images`), or the
    spec's engine.image; None when planfile knows no image for that vendor (check refuses it)."""
    if r.image:
        return r.image
    img = (r.engine.get("images") or {}).get(r.gpu["vendor"])
    if img is None:
        return None
    tag = (img.get("tag_by_generation") or {}).get(r.gpu["generation"], img["tag"])
    return f"{img['repository']}:{tag.format(version=release(r.engine_version))}"
