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
]:
    describe(_id, _slug, "error", _summary, _summary)


@register("PF201", "does-not-fit", "error", "Weights, workspace and one max-length sequence do not fit in GPU memory.")
def memory_fit(r, est):
    """What: the engine's memory budget per GPU cannot hold the weights, the activation workspace, the
    runtime and the KV cache of even one sequence at max_model_len.

    Why: the engine refuses to start ("not enough KV cache"), or crashes with OOM under load.

    Fix (the seed's production debugger and decision tree): quantize weights (fp8 halves them), use an
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
    cap = est["memory"]["max_concurrent_sequences"] * r.replicas * r.pp
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
        if got is None or (isinstance(got, float) and math.isnan(got)):
            continue
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
    if h is None or h < 0:
        return []
    if h < r.settings["headroom_min_pct"]:
        return [finding("PF402", f"headroom {h:.0f} %: SLOs break at {cap['breach_rps']:.1f} req/s, peak is "
                        f"{cap['peak_rps']:.1f} req/s", "/workload/arrival_rate_rps",
                        f"replicas: {r.replicas + 1}")]
    return []


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
        return [finding("PF601", "one replica: any restart or node drain is an outage", "/hardware",
                        "replicas: 2")]
    return []


@register("PF901", "unused-waiver", "warning", "A waiver in checks.ignore matched no finding.")
def _unused(r, est):
    """A waiver that matches nothing hides the next real problem of that id: remove it."""
    return []


@register("PF902", "unknown-waiver-id", "error", "A waiver names an id that is not a planfile check.")
def _unknown(r, est):
    """Waivers must name real check ids (`planfile explain --list`)."""
    return []
