"""`planfile explain SPEC`: the chain of formulas behind each number, values substituted, every constant
with the catalog entry it came from — how a reviewer checks an estimate by hand."""

from __future__ import annotations

from planner.evaluate import efficiency_for, link, link_name, math_precision, memory_plan
from planner.output import headroom_text, rps_text
from planner.physics import arch, memory

SECTIONS = ("defaults", "checkpoint", "kv", "weights", "memory", "decode", "prefill", "disaggregation", "latency", "breach",
            "cost", "cold_start", "accuracy")
METRIC_SECTION = {"kv_bytes_per_token": "kv", "weights": "weights", "memory": "memory", "max_concurrent_sequences": "memory",
                  "decode": "decode", "itl_p95": "latency", "ttft_p95": "latency", "e2e_p95": "latency", "prefill": "prefill",
                  "breach_rps": "breach", "cost": "cost", "usd_per_month": "cost", "repo": "checkpoint",
                  "download": "checkpoint", "cold_start_s": "cold_start", "startup": "cold_start", "confidence": "accuracy",
                  "error": "accuracy", "transfer": "disaggregation", "pools": "disaggregation"}


def _gb(x: float) -> str:
    return f"{x / 1e9:,.2f} GB"


def explain(res, metric: str | None = None) -> str:
    r, est = res.resolved, res.estimate
    m, gpu = r.model, r.gpu
    want = METRIC_SECTION.get(metric, metric) if metric else None
    out: list[str] = [f"{res.spec}: how planfile computed its numbers (GB = 10^9 bytes, GiB = 2^30)"]

    def section(name, title, lines):
        if want and want != name:
            return
        out.append("")
        out.append(f"[{name}] {title}")
        out.extend("  " + x for x in lines)

    section("defaults", "values the spec left out", [f"{p} = {v}  ({why})" for p, v, why in r.defaults] or ["(none)"])

    ck = r.checkpoint
    from planner.checkpoints import formats

    fmt = formats().get(ck.format, {})
    section("checkpoint", "what the engine loads", [
        f"{ck.repo} ({ck.variant or 'variant unknown'}): stored {ck.stored} as {ck.format} ({fmt.get('description', 'assumed')})",
        f"why: {ck.why}",
        (f"the engine quantizes it at load time: --quantization {ck.online_quant} -> {ck.runtime_format} in GPU memory"
         if ck.online_quant else "loaded as stored (no --quantization flag)"),
        f"download = routed experts x {fmt.get('expert_bytes_per_param', ck.expert_bytes_per_param):g} B + other body x "
        f"{fmt.get('body_bytes_per_param', ck.body_bytes_per_param):g} B + embeddings/LM head x 2 B = {ck.download_gb:,.1f} GB",
        f"resident = {ck.resident_gb:,.1f} GB over the replica before the TP x PP split",
        f"source: {ck.source}"])

    lay = arch.kv_layout(m)
    kvb = arch.KV_DTYPE_BYTES[r.kv_cache]
    att = m.get("attention", {}).get("type", "gqa")
    if att == "mla":
        mla = m["attention"]
        kv_lines = [f"MLA: layers x (kv_lora_rank + qk_rope_head_dim) x bytes = {m['num_layers']} x "
                    f"({mla['kv_lora_rank']} + {mla['qk_rope_head_dim']}) x {kvb:g} B = {arch.kv_bytes_per_token(m, r.kv_cache):,.0f} B/token"]
    else:
        kv_lines = [f"{att.upper()}: 2 (K,V) x layers x kv_heads x head_dim x bytes = 2 x {m['num_layers']} x {m['num_kv_heads']} x "
                    f"{m['head_dim']} x {kvb:g} B = {arch.kv_bytes_per_token(m, r.kv_cache):,.0f} B/token"]
    if lay.window_layers:
        from planner.resolve import kv_memory_layout

        kind = (m.get("sliding_window") or {}).get("kind", "sliding")
        held, why = kv_memory_layout(r)
        kv_lines.append(f"{kind} window: {lay.window_layers} of {lay.layers} layers attend to at most {lay.window_tokens:,} tokens; "
                        f"{why}" + ("" if held.window_layers else " (the KV pool below is sized so)"))
    per_gpu = float(memory.kv_bytes_per_token_per_gpu(lay, kvb, r.tp, r.pp))
    kv_lines.append(f"per GPU at TP {r.tp} x PP {r.pp}: {per_gpu:,.0f} B/token"
                    + (" (KV heads replicated: TP > kv heads)" if lay.heads_shardable and r.tp > lay.heads_shardable else ""))
    kv_lines.append(f"source: catalog model {m['id']}: {m['source']}")
    section("kv", "KV cache bytes per token", kv_lines)

    p = arch.params(m)
    mem = memory_plan(r)
    body = p.total - p.embed - p.lm_head - p.expert_total
    section("weights", "weights per GPU", [
        f"(body params {body:,.0f} x {ck.body_bytes_per_param:.4g} B + routed experts {p.expert_total:,.0f} x "
        f"{ck.expert_bytes_per_param:.4g} B) ({ck.runtime_format}) / (TP {r.tp} x PP {r.pp})"
        f" + embeddings/LM head {p.embed + p.lm_head:,.0f} x 2 B / TP {r.tp} = {_gb(mem.weights_gb * 1e9)}"
        if r.attention_dp <= 1 else
        f"(body params {body:,.0f} x {ck.body_bytes_per_param:.4g} B / (TP {r.tp} / attention_data {r.attention_dp}) + routed "
        f"experts {p.expert_total:,.0f} x {ck.expert_bytes_per_param:.4g} B / TP {r.tp}) ({ck.runtime_format}) / PP {r.pp} + "
        f"embeddings/LM head {p.embed + p.lm_head:,.0f} x 2 B / (TP {r.tp} / attention_data {r.attention_dp}) = "
        f"{_gb(mem.weights_gb * 1e9)} (each attention group holds a whole copy of everything but the routed experts)",
        f"source: catalog model {m['id']} ({p.total / 1e9:.1f} B params)"])

    mode = r.engine["memory_mode"]
    total = mem.total_gb * 1e9
    formula = {"fraction_of_total": f"{_gb(total)} x {r.gpu_memory_utilization:g} - weights {mem.weights_gb:.2f} - activations "
                                     f"{mem.activations_gb:.2f} - runtime {mem.runtime_gb:.2f}",
               "fraction_of_free_after_weights": f"{r.gpu_memory_utilization:g} x ({_gb(total)} - weights {mem.weights_gb:.2f} - "
                                                 f"activations {mem.activations_gb:.2f} - runtime {mem.runtime_gb:.2f})",
               "fraction_for_weights_and_kv": f"{_gb(total)} x {r.gpu_memory_utilization:g} - weights {mem.weights_gb:.2f}"}[mode]
    section("memory", "KV pool and how many sequences fit", [
        f"{r.engine['name']} ({mode.replace('_', ' ')}): pool = {formula} = {mem.kv_pool_gb:.2f} GB",
        f"GPU memory {gpu['memory_gib']:g} GiB = {_gb(total)} (catalog gpu {gpu['id']}: {gpu.get('memory_gib_source', gpu['source'])})",
        f"one sequence at the mean context {r.input.mean + r.output.mean:,.0f} tokens (block {r.block_size}): {mem.seq_bytes_mean / 1e6:,.1f} MB per GPU",
        f"max concurrent sequences = floor(pool / sequence) = {mem.max_seqs_mean:,}",
        f"one max-length sequence ({r.max_model_len:,} tokens): {mem.seq_bytes_max / 1e9:,.2f} GB -> fits: {mem.fits}"])

    eff = efficiency_for(r.engine["id"], gpu, r.calibration, r.weights)
    mp = math_precision(r.weights, gpu)
    rl = est["roofline"]
    d = rl["decode"]
    from planner.evaluate import provenance

    ks = provenance(r)
    g = ks.gemm
    section("decode", "one decode step (the ITL floor)", [
        f"batch {d['batch']:g} at context {r.input.mean + r.output.mean / 2:,.0f}: step = memory-bound kernels {d['memory_ms']:.2f} ms + "
        f"compute-bound kernels {d['compute_ms']:.2f} ms + communication {d['comm_ms']:.2f} ms + host {d['overhead_ms']:.2f} ms "
        f"= {d['step_ms']:.2f} ms",
        f"each GEMM (M tokens, per-GPU N x K): {g.t0_s * 1e6:.1f} us + max(2NK(M + {g.m_half:g}) / ({gpu['dense_tflops'][mp]:g} TFLOPS "
        f"{mp} x {g.e_max:g}), (NK x {r.checkpoint.body_bytes_per_param:.4g} B + activations) / ({gpu['memory_bandwidth_tb_per_s']:g} TB/s "
        f"x {min(g.e_mem, 1.0):g}))",
        f"decode attention: {ks.decode_attn[0] * 1e6:.1f} us + KV bytes / ({gpu['memory_bandwidth_tb_per_s']:g} TB/s x {ks.decode_attn[1]:g}) per layer",
        "communication: " + _communication(r, ks),
        f"host per step {eff['step_overhead_ms']:g} ms (+{eff['prefill_overhead_ms']:g} ms with prompt tokens); kernel scale "
        f"{eff['kernel_scale'] * eff.get('vendor_scale', 1.0):g}",
        f"arithmetic intensity {d['intensity_flops_per_byte']:g} FLOP/B vs ridge {rl['ridge_flops_per_byte']:g}: {d['bottleneck']}-bound"
        + (" (the measured kernels: small-batch GEMM tiles run far under peak)" if d["bottleneck"] == "compute"
           and d["intensity_flops_per_byte"] < rl["ridge_flops_per_byte"] else ""),
        "kernel curves: " + "; ".join(f"{w} from {src}" for w, src in ks.provenance),
        f"engine factors: {eff.get('key')}: {eff.get('source', '')}"])
    pf = rl["prefill"]
    section("prefill", "prefill of one mean prompt (the TTFT floor)", [
        f"{pf['tokens']:,} tokens: compute {pf['compute_ms']:.1f} ms + memory {pf['memory_ms']:.1f} ms + communication "
        f"{pf['comm_ms']:.1f} ms = {pf['time_ms']:.1f} ms ({pf['bottleneck']}-bound)",
        f"FLOPs = 2 x {p.active_matmul / 1e9:.1f} B active matmul params x tokens + causal attention over the prompt"])
    perf = est.get("performance")
    if perf:
        load = (f"{r.rate_rps:g} x peak factor {r.peak_factor:g} = {r.rate_rps * r.peak_factor:g} req/s Poisson over {r.replicas} replica(s)"
                if r.mode == "rate" else f"{r.concurrency} x peak factor {r.peak_factor:g} = {int(r.concurrency * r.peak_factor)} requests in "
                f"flight (closed loop: the peak factor multiplies the concurrency)" if r.mode == "concurrency" else
                "offline: every request queued at once, no peak")
        section("latency", "percentiles at peak load (discrete-event simulation of continuous batching)", [
            f"load: {load}; engine limits: max sequences {_cap(r, mem)}, token budget {r.max_num_batched_tokens}/step, "
            f"KV pool {mem.kv_tokens:,} tokens/GPU",
            f"token lengths: input mean {r.input.mean:g} p95 {r.input.p95:g} max {r.input.max:g}; output mean {r.output.mean:g} "
            f"p95 {r.output.p95:g} max {r.output.max:g} (lognormal fitted to mean and p95)",
            f"TTFT p50/p95/p99 = {perf['ttft_ms']['p50']:.0f} / {perf['ttft_ms']['p95']:.0f} / {perf['ttft_ms']['p99']:.0f} ms",
            f"ITL  p50/p95/p99 = {perf['itl_ms']['p50']:.1f} / {perf['itl_ms']['p95']:.1f} / {perf['itl_ms']['p99']:.1f} ms",
            f"e2e  p50/p95/p99 = {perf['e2e_s']['p50']:.1f} / {perf['e2e_s']['p95']:.1f} / {perf['e2e_s']['p99']:.1f} s",
            f"mean decode batch {perf.get('mean_batch', 0):.1f}; saturation {perf['saturation_requests_per_s']:.2f} req/s"])
    dz = est.get("disaggregation")
    if dz:
        from planner import disagg as D

        bw, setup_s, links = D.link(r)
        t = dz["transfer"]
        kvb = D.kv_bytes(r, r.input.mean)
        lines = []
        for role in ("prefill", "decode"):
            p = dz["pools"][role]
            lines.append(f"{role}: {p['replicas']} x TP {p['tensor']} x PP {p['pipeline']} = {p['gpus']} GPUs; "
                         f"{p['memory']['max_concurrent_sequences']} sequences fit per replica; capacity {p['capacity_rps']:.2f} req/s"
                         + (f", {p['utilisation_at_peak'] * 100:.0f} % busy at peak" if p.get("utilisation_at_peak") is not None else ""))
        lines += [
            "fleet capacity = min(prefill pool, decode pool) = " f"{dz['capacity_rps']:.2f} req/s",
            f"KV of a mean prompt = {r.input.mean:,.0f} tokens x {memory.kv_bytes_per_token_per_gpu(arch.kv_layout(m), arch.KV_DTYPE_BYTES[r.kv_cache], 1, 1):,.0f} B "
            f"= {kvb / 1e6:,.1f} MB (all layers and heads, {r.kv_cache} KV)",
            f"transfer = setup {setup_s * 1e3:g} ms + bytes / ({links} link(s) x {bw / 1e9:g} GB/s over {t['link']}, one per "
            f"tensor-parallel rank of the smaller split, per attention group with attention data parallelism) = {t['mean_prompt_ms']:.2f} ms (mean prompt), {t['p95_prompt_ms']:.2f} ms (p95)",
            f"connector {t['connector']}; router {dz['router']}",
        ]
        perf = est.get("performance") or {}
        if perf.get("prefill_ttft_ms"):
            lines.append(f"TTFT = prefill pool queue + compute (p95 {perf['prefill_ttft_ms']['p95']:.0f} ms) + transfer "
                         f"(p95 {perf['transfer_ms']['p95']:.1f} ms) + wait for the first decode step (p95 "
                         f"{perf['decode_wait_ms']['p95']:.1f} ms) + the engine's per-request time, per request; ITL from decode batches only")
        section("disaggregation", "prefill and decode pools and the KV transfer between them", lines)
    cap = est.get("capacity") or {}
    if cap.get("breach_rps") is not None:
        section("breach", "breach point", [
            "bisection on the simulated arrival rate until a latency SLO percentile fails",
            f"breach {rps_text(cap['breach_rps'], 2)} req/s vs peak {rps_text(cap['peak_rps'], 2)} req/s: headroom {headroom_text(cap['headroom_pct'])}"])
    c = est["cost"]
    if c.get("usd_per_month") is not None:
        section("cost", "cost", [
            f"${c['usd_per_gpu_hour']:g}/GPU-hour x {c['gpus_billed']:g} GPUs billed x 730 h = ${c['usd_per_month']:,.0f}/month",
            f"price: {c['price_source']}",
            f"$/1M output tokens = monthly cost / (output tokens/s at normal load x 3600 x 730 / 1e6) = "
            f"${(c.get('usd_per_million_output_tokens') or 0):,.2f}",
            ])
    acc = est.get("accuracy")
    if acc:
        from planner.output import accuracy_text

        lines = [accuracy_text(acc)]
        for m, b in acc["metrics"].items():
            where = ", ".join(f"{k} {v}" for k, v in b["from"].items()) or "every held-out row"
            lines.append(f"{m}: {b['n']} held-out rows ({where}); measured/predicted p10 {b['ratio_p10']:.2f}, "
                         f"p90 {b['ratio_p90']:.2f}; p90 |error| {b['p90_abs_error_pct']:g} %")
        lines.append("bands: catalog/accuracy.yaml, leave-one-GPU-generation-out residuals (benchmarks/accuracy.py)")
        section("accuracy", "how sure: the held-out error of this regime", lines)
    cs = est["cold_start"]
    section("cold_start", "from pod creation to serving (hardware.storage)", [
        f"weights from {cs['source']}: {cs['download_gb']:,.1f} GB ({ck.repo})",
        f"download {cs['download_s']:,.0f} s at {r.storage['download_gb_per_s']:g} GB/s (first pod; "
        + ("every new pod downloads" if cs["source"] in ("hub", "staged") else "later pods read the cache" if cs["source"] == "pvc"
           else "none: the node holds the weights") + ")",
        f"load {cs['load_s']:,.0f} s at {r.storage['read_gb_per_s']:g} GB/s + engine start {cs['engine_start_s']:.0f} s",
        f"first pod {cs['first_start_s']:,.0f} s; a scale-out pod {cs['scale_out_s']:,.0f} s"])
    return "\n".join(out) + "\n"


def _communication(r, ks) -> str:
    """What the step model's communication term is made of, read from the coefficients the step model itself
    runs on (planner.physics.step.coefficients): a collective is named only when the step pays for it."""
    from planner.evaluate import step_function
    from planner.physics import step

    sysm, shp, _ = step_function(r)
    c = step.coefficients(sysm, shp)
    parts = []
    if c.ar:
        group = r.tp // max(r.attention_dp, 1)
        kind = link_name(r.gpu, link(r.gpu, group, r.gpus_per_node)[2])
        parts.append(f"all-reduce over the {group} GPUs of " + ("an attention group" if r.attention_dp > 1 else "the TP group")
                     + f" ({kind}), {c.ar[0] / max(c.layers, 1.0):g} per layer, {c.ar[1] * 1e6:.1f} us + bytes / "
                     f"{1 / c.ar[2] / 1e9:.0f} GB/s (large messages)")
    if c.ep_pre or c.ep_dec:
        from planner.resolve import deepep_mode

        mode = {"normal": "normal (high-throughput) kernels", "low_latency": "low-latency kernels",
                "auto": "normal kernels on steps with prompt tokens, low-latency kernels on decode steps"}[deepep_mode(r)]
        parts.append(f"expert all-to-all over EP {r.ep} on DeepEP, {mode}: a dispatch (FP8) and a combine (BF16) per MoE "
                     "layer on the tokens per rank (measured DeepEP curves)")
    if r.ep > 1 and r.attention_dp <= 1 and not (c.a2a or c.ep_pre or c.ep_dec):
        parts.append(f"experts over EP {r.ep} without an all-to-all: tensor-parallel attention leaves every token on "
                     "every rank, which runs its own experts on them; the all-reduce above combines them")
    if c.a2a:
        kind = link_name(r.gpu, link(r.gpu, r.ep, r.gpus_per_node)[2])
        parts.append(f"expert all-to-all over EP {r.ep} ({kind}), dispatch and combine per MoE layer, "
                     f"{c.a2a[1] * 1e6:.1f} us + bytes / {1 / c.a2a[2] / 1e9:.0f} GB/s")
    if c.p2p:
        parts.append(f"pipeline hand-off between {r.pp} stages, {c.p2p[1] * 1e6:.1f} us + bytes / {1 / c.p2p[2] / 1e9:.0f} GB/s")
    if c.tbo:
        parts.append("two-batch overlap: two half batches per step, each one's communication under the other's kernels "
                     "(only the part the kernels do not hide counts)")
    return "; ".join(parts) if parts else "none (one GPU per replica)"


def _cap(r, mem) -> str:
    """The batch limit the simulation ran and render launches with, and why it is not max_num_seqs."""
    from planner.evaluate import batch_cap, limit_groups

    cap = batch_cap(r, mem.max_seqs_mean)
    per = " per DP rank" if limit_groups(r) > 1 else ""
    if cap == r.max_num_seqs:
        return f"{cap:,}{per}"
    if r.engine.get("max_seqs_within_token_budget") and cap == r.max_num_batched_tokens:
        return (f"{cap:,}{per} (max_num_seqs {r.max_num_seqs:,} capped at the token budget max_num_batched_tokens "
                f"{r.max_num_batched_tokens:,}: {r.engine['name']} refuses a budget below the batch limit; rendered so)")
    return f"{cap:,}{per} (max_num_seqs {r.max_num_seqs:,} capped at the {mem.max_seqs_mean:,} sequences the KV pool holds; rendered so)"

