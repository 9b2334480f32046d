"""The evaluation checks (PF2 memory, PF3 parallelism, PF4 latency/SLO, PF5 cost, PF6 operations, PF9
waivers) and the descriptions of the load/schema/semantic ids raised by the loader and validator."""

from __future__ import annotations

import math

from planner.checks import describe, finding, register

for _id, _slug, _summary in [
    ("PF001", "yaml-syntax", "The file is not valid YAML."),
    ("PF002", "duplicate-key", "A key appears twice in one mapping; YAML would silently keep the last."),
    ("PF003", "input-too-large", "The file is too large, too deeply nested or expands too far through aliases."),
    ("PF004", "not-a-spec", "The file is empty, not UTF-8, not a mapping, or holds several documents."),
    ("PF010", "unknown-field", "A field the spec format does not have (usually a typo)."),
    ("PF011", "missing-field", "A required field is missing."),
    ("PF015", "yaml11-number", "A number YAML 1.1 reads in a surprising base: 017 is octal 15, 1:30 is 90, 0x10 is 16, 1_0 is 10."),
    ("PF012", "wrong-type", "A value has the wrong type (YAML 1.1 turns no into false and 1.10 into 1.1)."),
    ("PF013", "invalid-value", "A value is out of range or not among the allowed choices."),
    ("PF014", "exactly-one-of", "Two mutually exclusive fields are both set, or neither is."),
    ("PF101", "unknown-gpu", "hardware.gpu is not a catalog GPU id or alias."),
    ("PF102", "unknown-model", "model.id is not a catalog model id or alias."),
    ("PF103", "unknown-provider", "cost.provider is not a catalog provider."),
    ("PF104", "no-price", "The provider has no catalog price for this GPU."),
    ("PF105", "parallelism-mismatch", "tensor x pipeline differs from gpus_per_replica."),
    ("PF107", "hf-config", "model.hf_config cannot be read as a Hugging Face config.json."),
    ("PF108", "unknown-engine-version", "engine.version is not a version planfile has flags and defaults for."),
    ("PF109", "engine-gpu-vendor", "The engine does not run on this GPU vendor."),
    ("PF110", "autoscale-range", "autoscale.min is above autoscale.max."),
    ("PF111", "context-beyond-model", "The workload's longest sequence exceeds the model's max_position_embeddings."),
    ("PF112", "expert-parallel-invalid", "parallelism.expert does not fit the model or the replica."),
    ("PF113", "token-distribution", "Token-length percentiles are not ordered (p50 <= p95 <= max)."),
    ("PF115", "custom-workload-incomplete", "archetype custom has no defaults; token lengths are required."),
    ("PF116", "calibration-file", "The calibration file does not exist."),
    ("PF117", "invalid-label", "A metadata label is not a valid Kubernetes label key or value."),
    ("PF118", "checkpoint-unavailable", "No checkpoint the engine loads on this GPU delivers precision.weights (the engine would load other weights than planned)."),
    ("PF120", "attention-data-invalid", "parallelism.attention_data does not divide tensor, or the model is not a mixture of experts."),
    ("PF121", "scheduler-policy-unsupported", "engine.scheduler_policy is not a policy this engine can be configured with."),
    ("PF122", "disaggregation-invalid", "A disaggregated spec also sizes an aggregated fleet, its pools do not add up, or it asks for what Dynamo cannot run (a concurrency load, TensorRT-LLM, a non-NVIDIA GPU, an engine version other than the one its runtime image runs)."),
    ("PF123", "connector-unsupported", "The engine has no such KV connector for disaggregated serving, or the connector cannot carry the pool's parallelism (vLLM's NIXL with pipeline parallelism)."),
    ("PF124", "expert-communication-invalid", "engine.moe_all_to_all: deepep or engine.two_batch_overlap needs a mixture-of-experts model split by expert parallelism, vLLM or SGLang, and (DeepEP) an NVIDIA GPU."),
    ("PF125", "block-quant-shard", "A block-scaled FP8 checkpoint (one scale per 128 x 128 weights: DeepSeek V3/R1, Qwen3 -FP8) split by tensor parallelism into shards that are not whole blocks: vLLM and SGLang refuse to load it at start-up (\"not divisible by weight quantization block_n = 128\"). Fix: expert parallelism for the experts, a smaller tensor split, or DeepEP on SGLang for the shared experts."),
    ("PF119", "model-name-required", "A model given by hf_config needs model.name: the repository or path the engine loads."),
]:
    describe(_id, _slug, "error", _summary, _summary)


@register("PF201", "does-not-fit", "error", "Weights, workspace and one max-length sequence do not fit in GPU memory.")
def memory_fit(r, est):
    """What: the engine's memory budget per GPU cannot hold the weights, the activation workspace, the
    runtime and the KV cache of even one sequence at max_model_len.

    Why: the engine refuses to start ("not enough KV cache"), or crashes with OOM under load.

    Fix: quantize weights (fp8 halves them), use an
    FP8 KV cache (halves KV), shorten max_model_len, or add tensor parallelism over NVLink."""
    mem = est["memory"]
    if mem["fits"]:
        return []
    short = mem["shortfall_gb_per_gpu"]
    rem = []
    if r.weights in ("bf16", "fp16"):
        rem.append("precision.weights: fp8 (-50 % weights)")
    if r.kv_cache in ("bf16", "fp16"):
        rem.append("precision.kv_cache: fp8 (-50 % KV)")
    rem.append(f"parallelism.tensor: {r.tp * 2} (with gpus_per_replica: {r.gpus_per_replica * 2})")
    return [finding("PF201", f"does not fit on {r.gpu['id']}: weights {mem['weights_gb_per_gpu']:.1f} GB/GPU leave "
                    f"{max(mem['kv_cache_gb_per_gpu'], 0):.1f} GB for KV, {short:.1f} GB short of one "
                    f"{r.max_model_len:,}-token sequence", "/hardware/gpu", "; or ".join(rem))]


@register("PF202", "concurrency-beyond-kv", "warning", "The planned concurrency needs more KV cache than the pool holds.")
def kv_concurrency(r, est):
    """What: the sequences in flight at peak (from the simulation or the closed-loop concurrency) need more
    KV cache than the engine's pool holds, so requests wait or are preempted and recomputed.

    Fix: FP8 KV cache, more replicas, or a GPU with more memory."""
    perf = est.get("performance")
    if not perf:
        return []
    # every sequence in flight holds its KV on every pipeline stage: a replica holds what one stage's GPU does
    cap = est["memory"]["max_concurrent_sequences"] * r.replicas
    want = r.concurrency * r.peak_factor if r.mode == "concurrency" else 0
    if perf.get("preemptions", 0) > 0 or (want and want > cap):
        return [finding("PF202", f"the KV pool holds {cap:,} sequences of {int(r.input.mean + r.output.mean):,} tokens "
                        f"over the fleet; peak load needs more ({perf.get('preemptions', 0)} preemptions simulated)",
                        "/workload", ("more replicas" if r.kv_cache in ("fp8", "int8", "int4") else "precision.kv_cache: fp8, or more replicas"))]
    return []


def _slo_findings(r, est, metric, unit, label):
    perf = est.get("performance")
    out = []
    if not perf:
        return out
    for q, target in (r.slo.get(metric) or {}).items():
        got = perf[metric].get(q)
        if got is None:
            continue
        if isinstance(got, float) and math.isnan(got):
            got = math.inf  # no request reached this point in the simulated horizon: unbounded
        if not got <= target:
            over = (got / target - 1) * 100 if math.isfinite(got) else math.inf
            got_s = f"{got:,.0f} {unit}" if math.isfinite(got) else "unbounded (queue never drains)"
            out.append(finding("PF401", f"{label} {q} at peak load is {got_s}, SLO {target:,g} {unit}"
                               + (f" (+{over:.0f} %)" if math.isfinite(over) else ""),
                               f"/slo/{metric}/{q}", _slo_remedy(r, est, metric)))
    return out


def _slo_remedy(r, est, metric):
    cap = est.get("capacity") or {}
    b = cap.get("breach_rps")
    parts = []
    if b and cap.get("peak_rps"):
        need = math.ceil(r.replicas * cap["peak_rps"] / max(b, 1e-9) * 1.1)
        parts.append(f"replicas: {need} (breach point {b:.1f} req/s vs peak {cap['peak_rps']:.1f})")
    if metric == "itl_ms":
        parts.append("fp8 weights or a higher-bandwidth GPU (decode is memory-bound)")
    if metric == "ttft_ms":
        parts.append("lower engine.max_num_batched_tokens contention or enable prefix caching")
    return "; or ".join(parts)


@register("PF401", "slo-breach", "error", "A latency percentile at peak load misses its SLO.")
def slo(r, est):
    """What: the simulated p50/p95/p99 TTFT, inter-token latency or end-to-end latency at peak load
    (arrival_rate_rps x peak_factor, Poisson) exceeds the SLO.

    Fix: more replicas (the remediation computes how many from the breach point), a faster GPU, FP8
    weights (decode is bound by memory bandwidth), or a smaller token budget per step for TTFT."""
    return (_slo_findings(r, est, "ttft_ms", "ms", "TTFT") + _slo_findings(r, est, "itl_ms", "ms", "ITL")
            + _slo_findings(r, est, "e2e_s", "s", "end-to-end latency"))


@register("PF402", "low-headroom", "warning", "The breach point is close to the peak load.")
def headroom(r, est):
    """What: the highest arrival rate at which every SLO still holds (the breach point) is less than
    `checks.settings.headroom_min_pct` (default 10 %) above peak load.

    Fix: add a replica, or accept it with a waiver that says why."""
    cap = est.get("capacity") or {}
    h = cap.get("headroom_pct")
    need = r.settings["headroom_min_pct"]
    if h is None:
        # without the breach-point search (--no-breach): the same verdict from one simulation at the peak
        # plus the required headroom
        if cap.get("holds_with_headroom") is False and not _peak_breached(r, est):
            return [finding("PF402", f"headroom under {need:g} %: an SLO breaks at {cap['peak_rps'] * (1 + need / 100):.1f} "
                            f"req/s (peak {cap['peak_rps']:.1f} req/s + {need:g} %)", "/workload/arrival_rate_rps",
                            f"replicas: {r.replicas + 1}")]
        return []
    if h < 0:
        return []
    if h < need:
        return [finding("PF402", f"headroom {h:.0f} %: SLOs break at {cap['breach_rps']:.1f} req/s, peak is "
                        f"{cap['peak_rps']:.1f} req/s", "/workload/arrival_rate_rps",
                        f"replicas: {r.replicas + 1}")]
    return []


def _peak_breached(r, est) -> bool:
    return bool(_slo_findings(r, est, "ttft_ms", "ms", "TTFT") + _slo_findings(r, est, "itl_ms", "ms", "ITL")
                + _slo_findings(r, est, "e2e_s", "s", "end-to-end latency"))


@register("PF403", "itl-slower-than-reading", "warning", "Chat tokens stream slower than people read.")
def reading(r, est):
    """What: for a chat workload, the p95 inter-token latency means fewer tokens per second than
    `reading_speed_tokens_per_s` (default 8): users wait on the stream.

    Fix: a higher-bandwidth GPU or FP8 weights."""
    perf = est.get("performance")
    if not perf or r.archetype != "chat":
        return []
    itl = perf["itl_ms"].get("p95")
    if itl and itl > 1000 / r.settings["reading_speed_tokens_per_s"]:
        return [finding("PF403", f"p95 ITL {itl:.0f} ms = {1000 / itl:.1f} tokens/s, below reading speed "
                        f"({r.settings['reading_speed_tokens_per_s']:g} tokens/s)", "/hardware/gpu",
                        "precision.weights: fp8, or a GPU with more memory bandwidth")]
    return []


@register("PF406", "no-native-precision", "warning", "FP8/FP4 weights on a GPU without native support run weight-only.")
def native(r, est):
    """What: FP8 or FP4 weights on a GPU without FP8/FP4 tensor cores (A100 has no FP8) are dequantized in
    the kernel: memory is saved but the math runs at 16-bit speed.

    Fix: int4 (AWQ/GPTQ Marlin kernels) on Ampere, or a Hopper/Blackwell GPU."""
    if r.weights in ("fp8", "fp4") and r.weights not in r.gpu["native_precisions"]:
        return [finding("PF406", f"{r.gpu['id']} has no native {r.weights.upper()} math: weights are stored in "
                        f"{r.weights} but matmuls run at 16-bit", "/precision/weights",
                        "accept it (memory savings stay), or use a GPU with native support")]
    return []


@register("PF501", "over-budget", "error", "The fleet costs more per month than the budget.")
def budget(r, est):
    """What: GPUs x $/GPU-hour x 730 h (plus the autoscaling warm pool) exceeds cost.budget_usd_per_month.

    Fix: fewer replicas (if the breach point allows), quantize to fit fewer GPUs, or a cheaper GPU."""
    c = est.get("cost") or {}
    b = r.budget_usd_per_month
    if b and c.get("usd_per_month") and c["usd_per_month"] > b:
        return [finding("PF501", f"${c['usd_per_month']:,.0f}/month is over the ${b:,.0f} budget "
                        f"(+{(c['usd_per_month'] / b - 1) * 100:.0f} %)", "/cost/budget_usd_per_month",
                        "fewer replicas, fp8 weights on fewer GPUs, or a cheaper GPU")]
    return []


@register("PF601", "single-replica", "warning", "A service with fewer than 2 replicas has no redundancy.")
def single(r, est):
    """What: an online service (arrival rate or concurrency) runs on one replica: a node drain, a crash or
    a rollout takes it down.

    Fix: replicas: 2 (or autoscale min 2)."""
    if r.mode != "offline" and (r.replicas_min if r.autoscale else r.replicas) < 2:
        if r.autoscale:
            return [finding("PF601", "autoscale.min is 1: at low load one replica serves, and any restart or node drain "
                            "is an outage", "/hardware/autoscale/min", "hardware.autoscale.min: 2")]
        return [finding("PF601", "one replica: any restart or node drain is an outage", "/hardware",
                        "hardware.replicas: 2")]
    return []


@register("PF203", "kv-replicated", "info", "Tensor parallelism beyond the KV heads replicates the KV cache.")
def kv_replicated(r, est):
    """What: with TP larger than the model's KV heads (GQA/MQA), each GPU must hold whole KV heads, so the
    KV cache is replicated TP / kv_heads times: more GPUs do not hold proportionally more sequences.

    Fix: TP <= kv heads, and scale out with replicas instead (data parallelism)."""
    kvh = r.model.get("num_kv_heads")
    group = r.tp // max(r.attention_dp, 1)  # the GPUs one attention group's heads are split over
    if r.model.get("attention", {}).get("type") == "mla" or not kvh or group <= kvh:
        return []
    if r.attention_dp > 1:
        return [finding("PF203", f"tensor: {r.tp} / attention_data: {r.attention_dp} = {group} GPUs per attention group > "
                        f"{kvh} KV heads: the KV cache is replicated {group // kvh}x", "/parallelism/attention_data",
                        f"attention_data: {r.tp // kvh} ({kvh} GPUs per attention group)")]
    expert = f" with expert: {kvh}" if r.ep > kvh else ""
    return [finding("PF203", f"tensor: {r.tp} > {kvh} KV heads: the KV cache is replicated {r.tp // kvh}x",
                    "/parallelism/tensor", f"tensor: {kvh}{expert} and more replicas")]


@register("PF301", "tp-over-pcie", "warning", "Tensor parallelism over PCIe (no NVLink-class link).")
def tp_pcie(r, est):
    """What: two all-reduces per layer per step cross PCIe (25-50 GB/s) instead of NVLink (450+ GB/s): the
    the price of tensor parallelism without NVLink. Decode steps slow down by the communication share shown in the message.

    Fix: a GPU with NVLink (SXM/NVL parts), or fewer GPUs per replica with quantized weights, and
    replicas for throughput."""
    from planner.evaluate import link

    if r.tp <= 1:
        return []
    _, _, kind = link(r.gpu, r.tp, r.gpus_per_node)
    if kind != "pcie":
        return []
    rl = est.get("roofline") or {}
    dec = rl.get("decode") or {}
    share = dec.get("comm_ms", 0) / dec["step_ms"] * 100 if dec.get("step_ms") else 0
    return [finding("PF301", f"tensor: {r.tp} on {r.gpu['id']} runs its all-reduces over PCIe "
                    f"({share:.0f} % of each decode step)", "/parallelism/tensor",
                    "tensor: 1 with fp8/int4 weights and more replicas, or an NVLink GPU")]


@register("PF302", "tp-when-one-gpu-fits", "warning", "The model would fit on one GPU, yet it is split.")
def tp_unneeded(r, est):
    """What: one GPU if the model fits on one. A split model pays communication on
    every layer; the same GPUs as independent replicas give more throughput with no all-reduce. Kept only
    when those one-GPU replicas, checked on a copy of the spec, hold every SLO and the headroom (a long-context
    load whose KV needs two GPUs' memory is what the split is for: no finding).

    Fix: tensor: 1 and multiply replicas (or the autoscale bounds) by the old TP (quantize before you split)."""
    if r.tp * r.pp <= 1:
        return []
    from planner import curves

    one = curves.on_gpu(r, r.gpu, 1)
    if one is None:
        return []
    from planner.evaluate import memory_plan

    m = memory_plan(one)
    perf = est.get("performance") or {}
    # a one-GPU replica must hold its share of the batch: the current per-GPU batch with 50 % margin
    need = max(8, math.ceil(1.5 * (perf.get("mean_batch") or 0) * r.pp / r.gpus_per_replica))
    if m.max_seqs_mean < need:
        return []
    return [finding("PF302", f"{r.model['id']} at {r.weights} fits one {r.gpu['id']} with room for "
                    f"{m.max_seqs_mean} sequences; the replica splits it over {r.gpus_per_replica} GPUs",
                    "/parallelism/tensor", f"tensor: 1, gpus_per_replica: 1, replicas: {r.replicas * r.gpus_per_replica}")]


@register("PF303", "tp-indivisible", "error", "Tensor/pipeline parallelism does not divide the heads or layers.")
def indivisible(r, est):
    """What: vLLM, SGLang and TensorRT-LLM shard attention heads over TP and layers over PP; a TP that does
    not divide the attention heads is rejected at start-up ("Total number of attention heads (64) must be
    divisible by tensor parallel size (3)"); PP with uneven layers leaves one stage slower.

    Fix: a TP that divides the head count (1, 2, 4, 8 for most models)."""
    out = []
    heads, layers = r.model["num_attention_heads"], r.model["num_layers"]
    if heads % r.tp:
        ok = [t for t in (1, 2, 4, 8, 16) if heads % t == 0 and t <= max(r.tp * 2, 8)]
        out.append(finding("PF303", f"tensor: {r.tp} does not divide {r.model['id']}'s {heads} attention heads: "
                           "the engine refuses to start", "/parallelism/tensor",
                           "tensor: " + " or ".join(map(str, ok[-2:]))))
    if r.pp > 1 and layers % r.pp:
        out.append(finding("PF303", f"pipeline: {r.pp} does not divide the {layers} layers: stages are uneven",
                           "/parallelism/pipeline", "a pipeline size that divides the layers", severity="warning"))
    return out


@register("PF304", "replica-spans-nodes", "warning", "One replica spans several nodes.")
def spans_nodes(r, est):
    """What: TP x PP is larger than the GPUs of one node, so the replica's collectives cross the network
    (InfiniBand/RoCE, ~50 GB/s per GPU) and it is rendered as a LeaderWorkerSet.

    Fix: keep TP inside a node and use PP across nodes, quantize to fit one node, or a bigger node
    (8x H200/B200). Not raised for wide expert parallelism (attention data-parallel groups within a node,
    the experts split over every GPU): there only the expert all-to-all crosses nodes, by design."""
    if r.gpus_per_replica <= r.gpus_per_node:
        return []
    group = r.tp // max(r.attention_dp, 1)  # the GPUs of one all-reduce
    if r.ep > 1 and r.attention_dp > 1 and group <= r.gpus_per_node:
        return []
    fixes = []
    if r.tp > r.gpus_per_node:  # the all-reduces cross nodes; a spec that keeps TP in a node is told nothing it has
        fixes.append(f"tensor: {r.gpus_per_node} within a node and pipeline: {math.ceil(r.gpus_per_replica / r.gpus_per_node)} across nodes")
    if r.weights in ("bf16", "fp16"):
        fixes.append("fp8 weights to fit fewer GPUs")
    elif r.weights == "fp8":
        fixes.append("fp4 weights on Blackwell to fit fewer GPUs" if r.gpu.get("generation") == "blackwell"
                     else "GPUs with more memory per node (8 x H200/B200)")
    if not fixes:
        fixes.append("GPUs with more memory to fit fewer of them; across nodes the pipeline hand-off needs RDMA")
    return [finding("PF304", f"a replica of {r.gpus_per_replica} GPUs spans {math.ceil(r.gpus_per_replica / r.gpus_per_node)} "
                    f"nodes of {r.gpus_per_node}", "/hardware/gpus_per_replica", ", or ".join(fixes))]


@register("PF305", "communication-share", "warning", "Communication takes a large share of the decode step.")
def comm_share(r, est):
    """What: the tensor-parallel all-reduces take more than `checks.settings.comm_share_max_pct` (default
    25 %) of a decode step.

    Fix: fewer GPUs per replica, a faster link, or pipeline instead of tensor parallelism across links."""
    dec = (est.get("roofline") or {}).get("decode") or {}
    if not dec.get("step_ms") or r.tp <= 1:
        return []
    share = dec["comm_ms"] / dec["step_ms"] * 100
    if share <= r.settings["comm_share_max_pct"]:
        return []
    what = "all-reduces" if r.ep <= 1 else ("the expert all-to-all" if r.tp // max(r.attention_dp, 1) <= 1
                                            else "all-reduces and the expert all-to-all")
    return [finding("PF305", f"{what} take {share:.0f} % of a {dec['step_ms']:.1f} ms decode step "
                    f"(threshold {r.settings['comm_share_max_pct']:g} %)", "/parallelism/tensor",
                    f"tensor: {max(r.tp // 2, 1)} with more replicas")]


@register("PF404", "batch-underused", "info", "The decode batch is too small to use the GPU.")
def low_batch(r, est):
    """What: low GPU utilization: at the planned load the mean decode batch is below
    `checks.settings.min_batch_utilization_pct` (default 10 %) of what the KV pool could hold, so the
    GPUs mostly stream weights for few tokens.

    Fix: fewer replicas or GPUs (check the breach point first), or a smaller GPU."""
    perf = est.get("performance")
    if not perf or r.mode == "offline":
        return []
    cap = est["memory"]["max_concurrent_sequences"]
    b = perf.get("mean_batch") or 0
    if not cap or b / cap * 100 >= r.settings["min_batch_utilization_pct"]:
        return []
    return [finding("PF404", f"mean decode batch {b:.1f} of {cap} sequences the KV pool holds "
                    f"({b / cap * 100:.0f} %)", "/hardware/replicas" if not r.autoscale else "/hardware/autoscale",
                    "fewer replicas, or a smaller/cheaper GPU")]


@register("PF405", "bottleneck", "info", "Where the step time goes: the prefill and decode bottlenecks.")
def bottleneck(r, est):
    """What: the roofline of the plan: decode is usually memory-bound (weights and KV streamed per token),
    prefill compute-bound. Shown so a reviewer knows which knob moves which number.

    Fix: memory-bound decode -> fp8 weights/KV or more bandwidth; compute-bound prefill -> fp8 math
    (Hopper+), more TP, or prefix caching."""
    rl = est.get("roofline") or {}
    if not rl or not est["memory"]["fits"]:  # nothing runs: a batch the KV pool cannot hold has no roofline
        return []
    d, p = rl["decode"], rl["prefill"]
    i, ridge = d["intensity_flops_per_byte"], rl["ridge_flops_per_byte"]
    if d["bottleneck"] == "compute" and i < ridge:
        # the measured kernels are compute-limited below the roofline ridge: small-batch GEMMs fill few tiles
        why = f"compute-bound below the ridge ({i:.0f} FLOP/B vs {ridge:.0f}: small-batch GEMM tiles run far under peak)"
    elif d["bottleneck"] == "memory" and i > ridge:
        why = f"memory-bound above the ridge ({i:.0f} FLOP/B vs {ridge:.0f}: the kernels stream at a fraction of peak bandwidth)"
    else:
        why = f"{d['bottleneck']}-bound ({i:.0f} FLOP/B vs ridge {ridge:.0f})"
    return [finding("PF405", f"decode {why}, prefill {p['bottleneck']}-bound", "/hardware/gpu")]


@register("PF407", "int4-kv-long-context", "warning", "INT4 KV cache at long context loses accuracy.")
def int4_kv(r, est):
    """What: 4-bit KV quantization error accumulates over long contexts; above 8K tokens accuracy drops
    measurably on retrieval tasks.

    Fix: kv_cache: fp8 (the rag and agent archetypes' default)."""
    if r.kv_cache != "int4" or r.max_model_len <= 8192:
        return []
    return [finding("PF407", f"int4 KV cache at {r.max_model_len:,}-token context", "/precision/kv_cache", "kv_cache: fp8")]


@register("PF409", "throughput-below-slo", "error", "The fleet cannot deliver slo.min_output_tokens_per_s.")
def throughput_slo(r, est):
    """What: `slo.min_output_tokens_per_s` is more than the fleet delivers: offline or at an arrival rate, its
    output with every request queued (the saturation throughput, the steady state of continuous batching);
    in a closed loop, its output at the peak in-flight requests. `plan` holds the same line.

    Fix: more replicas (verified on a copy), FP8 weights or KV cache, or a faster GPU."""
    from planner.evaluate import delivered_tokens_per_s, throughput_slo as need_of

    need = need_of(r)
    got = delivered_tokens_per_s(r, est.get("performance"))
    if not need or got is None or got >= need:
        return []
    how = "at the peak in-flight requests" if r.mode == "concurrency" else "with every request queued"
    return [finding("PF409", f"the fleet delivers {got:,.0f} output tokens/s {how}, SLO at least {need:,.0f} "
                    f"({(got / need - 1) * 100:+.0f} %)", "/slo/min_output_tokens_per_s",
                    "more replicas, FP8 weights or KV cache, or a faster GPU")]


@register("PF410", "queue-unbounded", "error", "At the peak arrival rate the queue never drains.")
def queue_unbounded(r, est):
    """What: at the peak arrival rate the fleet finishes fewer requests than arrive — the rate is at or above the
    saturation rate (the steady state of continuous batching with every request queued), or the simulated p95
    wait for a first token passes a minute — so the queue, TTFT and end-to-end latency grow without bound,
    whatever the latency SLOs the spec states. A spec whose only SLO is ITL would otherwise pass past saturation,
    since a full batch keeps its ITL. The breach point, `plan`, `sweep` and the fix search judge every load by the
    same bound (planner.evaluate.judged_slos).

    Fix: more replicas (verified on a copy), FP8 weights, or a faster GPU."""
    from planner.evaluate import queue_drains

    perf = est.get("performance")
    if r.mode != "rate" or not perf or queue_drains(perf):
        return []
    stated = (r.slo.get("ttft_ms") or {}).get("p95")
    if stated is not None and not perf["ttft_ms"].get("p95") <= stated:
        return []  # PF401 already reports the TTFT SLO the growing queue breaks
    sat = perf.get("saturation_requests_per_s")
    why = f" (the fleet completes at most {sat:.3g} req/s with every request queued)" if sat else ""
    return [finding("PF410", f"at the peak {r.rate_rps * r.peak_factor:.3g} req/s the queue never drains{why}: TTFT "
                    "and end-to-end latency grow without bound", "/workload/arrival_rate_rps",
                    "more replicas, FP8 weights, or a faster GPU")]


@register("PF408", "borrowed-calibration", "warning", "The prediction rests on kernel curves or measurements of other hardware.")
def borrowed(r, est):
    """What: no measured kernel tables exist for this GPU (its curves are borrowed from the nearest
    measured GPU, through this GPU's own peaks), the vendor's kernel speed is a prior, or no end-to-end
    measurement of this GPU generation was held out to size the error band. Warning: the band shown is
    another hardware's. Info: only the engine differs (the band is from another engine's runs on the same
    generation).

    Fix: measure this deployment (`vllm bench serve --save-result`) and reference the result of
    `planfile calibrate` as `calibration:`; until then treat the numbers with the margin of
    `slo.confidence`."""
    from planner.evaluate import provenance

    acc = est.get("accuracy") or {}
    if r.calibration:
        return []
    ks = provenance(r)
    what = []
    if ks.borrowed:
        what.append(f"kernel curves of {ks.measured_gpu} (no kernel tables for {r.gpu['id']})")
    eff = est.get("efficiency") or {}
    if eff.get("vendor_source"):
        what.append(f"the {r.gpu['vendor'].upper()} kernel-speed factor x{eff['vendor_scale']:g} ("
                    + ("fitted on MLPerf throughput ratios, not on kernels)" if eff.get("vendor_fitted") else "a prior, not fitted)"))
    if "generation" in acc.get("borrowed", []):
        what.append(f"an error band from other GPU generations (no measured {r.gpu['generation']} runs)")
    if what:
        return [finding("PF408", "prediction borrows " + "; ".join(what), "/hardware/gpu",
                        "calibrate on a measured run: planfile calibrate <results> --spec <this spec>")]
    other = [k for k in ("engine", "precision") if k in acc.get("borrowed", [])]
    if other:
        missing = " or ".join({"engine": f"{r.engine['name']} runs", "precision": f"{acc['regime']['precision']} weights"}[k]
                              for k in other)
        return [finding("PF408", f"error band from other measured runs on {r.gpu['generation']} GPUs: none of {missing}",
                        "/engine/name" if "engine" in other else "/precision/weights",
                        "calibrate on a measured run: planfile calibrate <results> --spec <this spec>", severity="info")]
    return []


@register("PF502", "cost-per-token-target", "error", "Cost per million output tokens is above the target.")
def per_token(r, est):
    """What: monthly cost / output tokens at the planned (normal) load exceeds
    cost.target_usd_per_million_output_tokens.

    Fix: fewer idle GPUs (autoscaling), a cheaper GPU with the same SLOs, or fp8."""
    c = est.get("cost") or {}
    t = r.target_usd_per_mtok
    got = c.get("usd_per_million_output_tokens")
    if not t or got is None or got <= t:
        return []
    return [finding("PF502", f"${got:.2f} per 1M output tokens, target ${t:.2f} (+{(got / t - 1) * 100:.0f} %)",
                    "/cost/target_usd_per_million_output_tokens", "autoscale to the load, or a cheaper GPU (see PF504)")]


@register("PF503", "idle-fleet", "warning", "Most of the fleet's capacity is idle at the planned load.")
def idle(r, est):
    """What: at normal load the fleet runs at less than (100 - idle_share_max_pct) % of the load it could
    carry within its SLOs (the breach point; saturation throughput when there is no arrival rate):
    money spent on idle GPUs. Some idle share is the price of latency headroom; the default threshold
    (75 %) only flags fleets sized far beyond both.

    Fix: fewer replicas, or autoscaling with a lower minimum."""
    perf = est.get("performance")
    c = est.get("cost") or {}
    if not perf or r.mode == "offline" or not perf.get("saturation_output_tokens_per_s"):
        return []
    from planner.evaluate import fleet_gpus

    # the share of the fleet's GPUs billed (both pools of a disaggregated fleet; an autoscaled one below its max)
    billed_share = (c.get("gpus_billed") or fleet_gpus(r)) / fleet_gpus(r)
    cap = est.get("capacity") or {}
    breach = cap.get("breach_rps")
    if r.mode == "rate" and breach is None and "holds_at_idle_limit" in cap:
        # without the breach-point search (--no-breach): the same verdict from one simulation at the load
        # where the idle share would reach the threshold
        if not cap["holds_at_idle_limit"]:
            return []
        limit = r.settings["idle_share_max_pct"]
        at = cap.get("idle_limit_rps") or r.rate_rps * 100 / (100 - limit)
        return [finding("PF503", f"more than {limit:g} % of the fleet's capacity is idle at normal load (every SLO still "
                        f"holds at {at / r.rate_rps:.3g}x the normal arrival rate"
                        + (f": {100 / (100 - limit):g}x on the GPUs billed)" if at / r.rate_rps > 100 / (100 - limit) + 1e-9 else ")"),
                        "/hardware",
                        "fewer replicas, or autoscale with a lower min")]
    if r.mode == "rate" and breach is not None:
        if breach <= 0:  # no load meets the SLOs (PF401 says which): no capacity within them sits idle
            return []
        used = r.rate_rps / (breach * billed_share) * 100
    else:
        normal = r.rate_rps * r.output.mean if r.mode == "rate" else perf["output_tokens_per_s"] / r.peak_factor
        used = normal / (perf["saturation_output_tokens_per_s"] * billed_share) * 100
    if 100 - used <= r.settings["idle_share_max_pct"]:
        return []
    return [finding("PF503", f"{100 - used:.0f} % of the fleet's capacity is idle at normal load "
                    f"(threshold {r.settings['idle_share_max_pct']:g} %)", "/hardware",
                    "fewer replicas, or autoscale with a lower min")]


@register("PF504", "cheaper-gpu", "info", "Another GPU of the same provider meets the same SLOs for less.")
def cheaper(r, est):
    """What: `plan`'s search, restricted to the spec's provider, found a GPU whose fewest replicas that meet
    every SLO at the same load (with the headroom setting) cost at least 25 % less per month than the fewest
    on the spec's GPU. Both sides are priced by the same provider (the price kind — on-demand, capacity
    block — is named) and compared at the operating point that meets the SLOs, never at saturation. A spec
    with its own `usd_per_gpu_hour` has no common basis with catalog prices: no comparison.

    Fix: `planfile plan` with --gpus naming both, and --write the option."""
    if est.get("trial") or not est.get("performance") or not cheaper_applies(r):
        return []
    pending = est.get("pending", {}).get("PF504")  # started on a second core (planner.run, planner.background)
    return pending.result() if pending is not None else cheaper_search(r)


def cheaper_applies(r) -> bool:
    """PF504 has something to compare: a catalog price from a provider that sells the spec's GPU and another."""
    if r.price_usd_per_gpu_hour is None or not r.price_provider:
        return False
    gpus = _provider_gpus(r.price_provider)
    return r.gpu["id"] in gpus and len(gpus) >= 2


def _provider_gpus(provider: str) -> tuple:
    from planner import catalog

    return tuple(sorted({p["gpu"] for p in catalog.raw("prices")["prices"] if p["provider"] == provider}))


def cheaper_search(r) -> list:
    """PF504's finding, if any: plan's search on the spec's provider (pure; what planner.background may run on
    another core)."""
    from planner import catalog
    from planner.plan import Constraints, candidates, split_key, verify

    provider = r.price_provider
    gpus = _provider_gpus(provider)
    # plan's candidates (analytic replica guesses, cheap), then plan's verification (the fewest replicas that
    # pass check's SLO verdict) of the spec's GPU and of only those GPUs whose guess could be 25 % cheaper
    cands, _ = candidates(r, Constraints(gpus=gpus, providers=(provider,), precisions=(r.weights,)))
    by_gpu: dict = {}
    for o in cands:
        if o.usd_per_month and (o.r.gpu["id"] not in by_gpu or o.usd_per_month < by_gpu[o.r.gpu["id"]].usd_per_month):
            by_gpu[o.r.gpu["id"]] = o
    here = by_gpu.get(r.gpu["id"])
    if here is None:
        return []
    short = [o for g, o in by_gpu.items() if g != r.gpu["id"] and o.usd_per_month <= 0.75 * 1.5 * here.usd_per_month]
    if not short:
        return []
    # the fewest on the spec's GPU: its cheapest guess and the spec's own split (the guess can be the worse of
    # the two once verified: 70B FP8 at TP1 on an H100 holds 8 sequences, so TP1 needs more GPUs than TP2)
    own = [o for o in cands if split_key(o.r) == split_key(r) and (o.r.weights, o.r.kv_cache) == (r.weights, r.kv_cache)]
    tried = [(o, verify(o, None)) for o in [here] + [o for o in own[:1] if o is not here]]
    passing = [(o, v) for o, v in tried if v.meets_slo and v.usd_per_month]
    if not passing:
        return []
    guessed, best_here = min(passing, key=lambda ov: ov[1].usd_per_month)
    # the other GPUs' guesses scaled as the spec's GPU's was by its verification (the utilisation guess misses the
    # latency SLOs alike on every GPU): fewer counts simulated, the same counts found
    scale = best_here.r.replicas / max(guessed.r.replicas, 1)
    others = [v for v in (verify(o, None, max(1, round(o.r.replicas * scale))) for o in short)
              if v.meets_slo and v.usd_per_month]
    if not others:
        return []
    best = min(others, key=lambda o: o.usd_per_month)
    if best.usd_per_month > 0.75 * best_here.usd_per_month:
        return []

    def kind(gpu_id):
        p = catalog.price(provider, gpu_id) or {}
        return p.get("kind", "on-demand")

    from planner.planout import expert_text

    o = best.r
    return [finding("PF504", f"{provider} {o.gpu['id']}: {o.replicas} x {o.gpus_per_replica} GPU(s) (TP{o.tp}{expert_text(o)}) meet every SLO at "
                    f"this load for ${best.usd_per_month:,.0f}/month ({kind(o.gpu['id'])} price) vs ${best_here.usd_per_month:,.0f} "
                    f"for the fewest {r.gpu['id']} replicas that do ({best_here.r.replicas} x {best_here.r.gpus_per_replica}, "
                    f"{kind(r.gpu['id'])} price)", "/hardware/gpu",
                    f"`planfile plan` with --gpus {o.gpu['id']},{r.gpu['id']} --write")]


@register("PF602", "engine-rejects", "error", "The engine would reject a value of the rendered launch.")
def engine_rejects(r, est):
    """What: a value the chosen engine does not accept: a KV dtype it has no kernel for (SGLang has no int4
    KV), online quantization it cannot do, an `extra_args` option that does not exist in that version
    (checked against the option manifests of the real parsers), a multi-node TensorRT-LLM replica.

    Fix: the remediation names the accepted values."""
    from planner.render.engines import launch

    if not est["memory"]["fits"]:
        return []
    return [finding("PF602", msg, ptr, "") for ptr, msg in launch(r, est).errors]


@register("PF604", "dangerous-engine-flag", "error", "An extra engine option runs code or exposes files chosen in the spec.")
def dangerous_flags(r, est):
    """What: `engine.extra_args` passes an option that executes code or opens the pod's files to the API:
    `--trust-remote-code` (Python from the model repository runs on the GPU nodes), `--middleware`,
    `--allowed-local-media-path`, `--chat-template` with a path, tool-parser plugins, worker extension
    classes (the list is catalog/engines.yaml `extra_args_policy.dangerous`, per engine).

    Why: the spec is edited in pull requests; a gate that lets a PR choose code to run on the GPU nodes is
    not a gate.

    Fix: remove the option, or waive PF604 for that path with a reason a reviewer approved
    (`checks.ignore: [{id: PF604, path: /engine/extra_args/0, reason: ...}]`)."""
    from planner.render.engines import launch

    if not est["memory"]["fits"]:
        return []
    return [finding("PF604", msg, ptr, "remove it, or waive PF604 at this path with a reviewed reason")
            for ptr, msg in launch(r, est).dangerous]


@register("PF603", "cold-start-vs-autoscaling", "warning", "Cold start is too slow for the autoscaler to absorb peaks.")
def cold_start(r, est):
    """What: a new replica needs weights / storage bandwidth + engine start before it serves. With
    autoscaling on a network volume (~1 GB/s) that can be minutes, while traffic peaks are already queueing.

    Fix: local NVMe or a node-local cache, a higher autoscale.min, or a warm pool (cost.autoscale_buffer_pct)."""
    if not r.autoscale:
        return []
    cold = (est.get("cost") or {}).get("cold_start_s") or 0
    if cold <= 300:
        return []
    return [finding("PF603", f"a new replica takes {cold:.0f} s to serve (weights from {r.storage_kind} at "
                    f"{r.storage_gb_per_s:g} GB/s): autoscaling reacts minutes late", "/hardware/storage",
                    "storage: {kind: local-nvme}, or a higher autoscale.min")]


@register("PF901", "unused-waiver", "warning", "A waiver in checks.ignore matched no finding.")
def _unused(r, est):
    """A waiver that matches nothing hides the next real problem of that id: remove it."""
    return []


@register("PF902", "unknown-waiver-id", "error", "A waiver names an id that is not a planfile check.")
def _unknown(r, est):
    """Waivers must name real check ids (`planfile explain --list`)."""
    return []


@register("PF701", "transfer-dominates-ttft", "warning", "The KV transfer between the pools is most of the time to first token.")
def transfer_share(r, est):
    """What: for a disaggregated plan, the transfer of a p95 prompt's KV cache from a prefill to a decode
    replica takes more than half the p95 TTFT: the link, not the GPUs, sets the first-token latency.

    Fix: RDMA (InfiniBand or RoCE) instead of TCP, more tensor parallelism in both pools (each rank sends its
    shard over its own NIC), an FP8 KV cache (half the bytes), or an aggregated plan for these prompt lengths."""
    dz, perf = est.get("disaggregation"), est.get("performance")
    if not dz or not perf:
        return []
    t, ttft = dz["transfer"]["p95_prompt_ms"], perf["ttft_ms"].get("p95")
    if not ttft or not math.isfinite(ttft) or t <= 0.5 * ttft:
        return []
    return [finding("PF701", f"the KV transfer of a p95 prompt takes {t:.0f} ms of the {ttft:.0f} ms p95 TTFT "
                    f"({dz['transfer']['link']} at {dz['transfer']['gb_per_s_effective']:.3g} GB/s)", "/disaggregation/transfer",
                    "disaggregation.transfer.link: rdma, or precision.kv_cache: fp8")]


@register("PF702", "pool-imbalance", "warning", "One pool is the bottleneck while the other idles.")
def pool_balance(r, est):
    """What: at the peak, one pool is more than twice as busy as the other (by their simulated capacities):
    the xPyD ratio is off, and the idle pool's GPUs are paid for nothing.

    Fix: move replicas from the idle pool to the busy one (`planfile plan` searches the ratio)."""
    dz = est.get("disaggregation")
    if not dz or r.mode != "rate":
        return []
    up, ud = (dz["pools"][k]["utilisation_at_peak"] for k in ("prefill", "decode"))
    if not up or not ud or max(up, ud) < 0.3:
        return []
    busy, idle = ("prefill", "decode") if up > ud else ("decode", "prefill")
    hi, lo = max(up, ud), min(up, ud)
    if hi < 2 * lo:
        return []
    return [finding("PF702", f"at the peak the {busy} pool is {hi * 100:.0f} % busy and the {idle} pool {lo * 100:.0f} %",
                    f"/disaggregation/{idle}/replicas", f"fewer {idle} replicas, more {busy} replicas: `planfile plan`")]


@register("PF703", "no-rdma-between-pools", "warning", "The pools exchange KV caches over TCP.")
def tcp_link(r, est):
    """What: the KV cache of every prompt crosses between nodes over TCP (~10 GB/s, milliseconds of setup)
    instead of RDMA; NIXL and Mooncake are built for RDMA.

    Fix: InfiniBand or RoCE NICs between the pools' nodes (transfer.link: rdma), or both pools in one
    node over NVLink."""
    if not r.disagg or r.disagg["transfer"]["link"] != "tcp":
        return []
    return [finding("PF703", "the pools exchange KV caches over TCP", "/disaggregation/transfer/link",
                    "disaggregation.transfer.link: rdma (InfiniBand or RoCE between the nodes)")]


@register("PF704", "prefill-pool-does-not-fit", "error", "A prefill replica cannot hold the weights and one longest prompt.")
def prefill_fit(r, est):
    """What: the prefill pool's GPUs cannot hold the weights, the activation workspace and the KV cache of
    one max-length prompt.

    Fix: more tensor parallelism in the prefill pool, FP8 weights, or a GPU with more memory."""
    dz = est.get("disaggregation")
    if not dz:
        return []
    m = dz["pools"]["prefill"]["memory"]
    if m["fits"]:
        return []
    return [finding("PF704", f"a prefill replica ({dz['pools']['prefill']['tensor']} GPU(s)) is "
                    f"{m['shortfall_gb_per_gpu']:.1f} GB/GPU short", "/disaggregation/prefill",
                    f"disaggregation.prefill.parallelism.tensor: {dz['pools']['prefill']['tensor'] * 2}")]


@register("PF705", "single-replica-pool", "warning", "A pool of one replica: any restart is an outage.")
def single_pool(r, est):
    """What: the prefill or the decode pool has one replica; when it restarts, no request is served.

    Fix: two replicas in each pool."""
    if not r.disagg:
        return []
    return [finding("PF705", f"the {role} pool has one replica: any restart or node drain is an outage",
                    f"/disaggregation/{role}/replicas", f"disaggregation.{role}.replicas: 2")
            for role in ("prefill", "decode") if r.disagg[role]["replicas"] == 1]
