"""The plan as template values: everything a template needs, computed here, none of it in Jinja.

Templates only place values; the numbers (probe budgets, autoscaling targets, alert thresholds) are
derived from the evaluated plan in this module so they can be tested and explained.
"""

from __future__ import annotations

import hashlib
import math

from planner import __version__
from planner.render import engines
from planner.render.engines import Launch

STARTUP_PERIOD_S = 10
STARTUP_SAFETY = 2.0  # startup probe budget = 2 x the cold-start estimate (+ one minute)
SHM_GIB_BASE, SHM_GIB_PER_GPU = 2, 4  # NCCL needs /dev/shm with TP; vLLM docs 2Gi, production-stack 20Gi
PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"  # kube-prometheus-stack's operated service
METRICS = {
    "vllm": {"ttft": "vllm:time_to_first_token_seconds", "itl": "vllm:inter_token_latency_seconds",
             "e2e": "vllm:e2e_request_latency_seconds", "kv_usage": "vllm:kv_cache_usage_perc",
             "waiting": "vllm:num_requests_waiting", "running": "vllm:num_requests_running"},
    "sglang": {"ttft": "sglang:time_to_first_token_seconds", "itl": "sglang:inter_token_latency_seconds",
               "e2e": "sglang:e2e_request_latency_seconds", "kv_usage": "sglang:token_usage",
               "waiting": "sglang:num_queue_reqs", "running": "sglang:num_running_reqs"},
}
SLO_METRIC = {"ttft_ms": ("ttft", 1e-3, "time to first token"), "itl_ms": ("itl", 1e-3, "inter-token latency"),
              "e2e_s": ("e2e", 1.0, "end-to-end latency")}


def promql_string(s: str) -> str:
    """A PromQL double-quoted string literal with Go escapes (\\uXXXX / \\UXXXXXXXX, never surrogate pairs)."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif o < 0x20 or 0x7F <= o < 0xA0 or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        elif o > 0xFFFF:
            out.append("\\U%08x" % o)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _ceil_gib(gb: float) -> int:
    return max(1, math.ceil(gb * 1e9 / 2**30))


def alerts(r, est: dict, launch: Launch, per_replica_breach_rps: float | None) -> list[dict]:
    m = METRICS.get(launch.engine)
    if m is None:
        return []
    sel = "{model_name=" + promql_string(r.served_name) + "}"
    out = []
    for key, targets in sorted((r.slo or {}).items()):
        if key not in SLO_METRIC or not targets:
            continue
        metric, scale, words = SLO_METRIC[key]
        for q, target in sorted(targets.items()):
            if not q.startswith("p"):
                continue
            qv = float(q[1:]) / 100
            thr = target * scale
            out.append({
                "alert": f"LLM{metric.upper()}{q.upper()}AboveSLO",
                "expr": (f"histogram_quantile({qv:g}, sum by (le, model_name) "
                         f"(rate({m[metric]}_bucket{sel}[5m]))) > {thr:g}"),
                "for": "10m", "severity": "critical",
                "summary": f"{r.served_name}: {q} {words} above the SLO of {target:g} {key.split('_')[-1]}",
                "description": (f"planfile planned {q} {words} of "
                                f"{_planned(est, key, q)} at peak load; the SLO is {target:g} {key.split('_')[-1]}."),
            })
    out.append({"alert": "LLMKVCacheNearlyFull", "expr": f"max by (model_name) ({m['kv_usage']}{sel}) > 0.95",
                "for": "15m", "severity": "warning",
                "summary": f"{r.served_name}: KV cache above 95 % for 15 minutes",
                "description": (f"Requests will queue or be preempted. The plan holds "
                                f"{est['memory']['max_concurrent_sequences']} sequences per GPU group at the mean context.")})
    seqs = launch.values.get("max_num_seqs", 1)
    out.append({"alert": "LLMRequestsQueueing", "expr": f"max by (model_name) ({m['waiting']}{sel}) > {max(1, seqs // 4)}",
                "for": "5m", "severity": "warning",
                "summary": f"{r.served_name}: more than {max(1, seqs // 4)} requests waiting in one replica",
                "description": "A standing queue means the replica is saturated: TTFT grows with every queued request."})
    if per_replica_breach_rps:
        thr = 0.9 * per_replica_breach_rps
        out.append({"alert": "LLMLoadNearBreachPoint",
                    "expr": (f"sum by (model_name) (rate({m['e2e']}_count{sel}[5m])) / "
                             f"count by (model_name) ({m['running']}{sel}) > {thr:.4g}"),
                    "for": "10m", "severity": "warning",
                    "summary": f"{r.served_name}: load per replica above 90 % of the planned breach point",
                    "description": (f"planfile's breach point is {per_replica_breach_rps:.3g} req/s per replica; "
                                    "beyond it a latency SLO fails. Add replicas.")})
    return out


def _planned(est: dict, key: str, q: str) -> str:
    perf = est.get("performance") or {}
    v = (perf.get(key) or {}).get(q)
    if v is None:
        return "n/a"
    return f"{v:.0f} ms" if key.endswith("_ms") else f"{v:.1f} s"


def autoscaling(r, est: dict, launch: Launch, per_replica_breach_rps: float | None) -> dict | None:
    if not r.autoscale:
        return None
    m = METRICS.get(launch.engine)
    perf = est.get("performance") or {}
    e2e_mean = (perf.get("e2e_s") or {}).get("mean") or 1.0
    ttft_slo_s = ((r.slo or {}).get("ttft_ms") or {}).get("p95", 1000.0) / 1e3
    # Little's law at 80 % of the breach point: requests in flight per replica when it should scale out
    if per_replica_breach_rps:
        running = max(1, round(0.8 * per_replica_breach_rps * e2e_mean))
        queue = max(1, round(0.5 * per_replica_breach_rps * ttft_slo_s))
        why = (f"0.8 x breach {per_replica_breach_rps:.3g} req/s/replica x mean e2e {e2e_mean:.2f} s (Little's law); "
               f"queue: 0.5 x breach x p95 TTFT SLO {ttft_slo_s:g} s")
    else:
        running = max(1, round(0.8 * launch.values.get("max_num_seqs", 1)))
        queue = max(1, running // 8)
        why = "0.8 x the planned max sequences per replica (no arrival rate in the spec)"
    metric = r.autoscale.get("metric", "running")
    scaler = r.autoscale.get("scaler", "keda")
    if m is None:
        return {"scaler": None, "why": f"{launch.engine} exposes no Prometheus metrics to scale on"}
    series = m["running"] if metric == "running" else m["waiting"]
    target = running if metric == "running" else queue
    sel = "{model_name=" + promql_string(r.served_name) + "}"
    return {"scaler": scaler, "metric": metric, "series": series, "target": target, "why": why,
            "min": r.autoscale["min"], "max": r.autoscale["max"],
            "hpa_min": max(1, r.autoscale["min"]), "hpa_metric_name": series.replace(":", "_"),
            "query": f"sum({series}{sel})", "prometheus": PROMETHEUS_URL}


def bench(r, est: dict, base_url: str) -> list[str]:
    """`vllm bench serve` reproducing the spec's workload (works against any OpenAI-compatible server)."""
    inp, out = r.input, r.output
    # random dataset: lengths uniform in [mean(1-ratio), mean(1+ratio)]; pick the ratio from the p95 spread
    ratio = min(0.9, max(0.0, (inp.p95 - inp.mean) / inp.mean / 1.65)) if inp.mean else 0.0
    argv = ["vllm", "bench", "serve", "--backend", "vllm", "--base-url", base_url, "--endpoint", "/v1/completions",
            "--model", r.model_name, "--served-model-name", r.served_name, "--dataset-name", "random",
            "--random-input-len", str(int(inp.mean)), "--random-output-len", str(int(out.mean)),
            "--random-range-ratio", f"{ratio:.2f}", "--ignore-eos"]
    if r.mode == "rate":
        rate = r.rate_rps * r.peak_factor
        n = max(200, int(rate * 300))  # about five minutes of peak traffic
        argv += ["--request-rate", f"{rate:g}", "--num-prompts", str(n)]
    elif r.mode == "concurrency":
        c = int(r.concurrency * r.peak_factor)
        argv += ["--request-rate", "inf", "--max-concurrency", str(c), "--num-prompts", str(max(200, 10 * c))]
    else:
        argv += ["--request-rate", "inf", "--num-prompts", str(max(1000, 4 * est["memory"]["max_concurrent_sequences"] * r.replicas))]
    argv += ["--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,95,99",
             "--save-result", "--result-dir", "results", "--result-filename", f"{r.name}.json",
             "--metadata", f"planfile_spec={r.name}"]
    return argv


def build(res, spec_text: bytes) -> dict:
    """Template context for one checked spec (run.Result with an estimate)."""
    r, est = res.resolved, res.estimate
    nodes = engines.multinode(r)
    single = engines.launch(r, est, None if nodes == 1 else "leader")
    worker = engines.launch(r, est, "worker") if nodes > 1 else None
    cap = est.get("capacity") or {}
    breach = cap.get("breach_rps")
    per_replica_breach = breach / r.replicas if breach else None
    gpu = r.gpu
    k8s = gpu.get("kubernetes", {})
    gpus_per_pod = r.gpus_per_replica // nodes if nodes > 1 else r.gpus_per_replica
    labels = {"app.kubernetes.io/name": r.name, "app.kubernetes.io/instance": r.name,
              "app.kubernetes.io/component": "inference-server", "app.kubernetes.io/managed-by": "planfile",
              "planfile.dev/engine": r.engine["id"], "planfile.dev/gpu": gpu["id"]}
    for k, v in r.labels:
        labels[k] = v
    selector = {"app.kubernetes.io/name": r.name, "app.kubernetes.io/instance": r.name}
    cold = float(est["cost"]["cold_start_s"])
    startup_failures = math.ceil((cold * STARTUP_SAFETY + 60) / STARTUP_PERIOD_S)
    weights_total_gb = est["memory"]["weights_gb_per_gpu"] * r.gpus_per_replica
    cmd, args = single.container_command()
    wcmd, wargs = worker.container_command() if worker else (None, None)
    svc_host = f"{r.name}.{r.namespace}.svc.cluster.local"
    asc = autoscaling(r, est, single, per_replica_breach)
    return {
        "planfile_version": __version__,
        "spec": {"name": r.name, "namespace": r.namespace, "description": r.description, "path": res.spec,
                 "sha256": hashlib.sha256(spec_text).hexdigest()[:16], "archetype": r.archetype, "mode": r.mode},
        "labels": labels, "selector": selector,
        "engine": {"id": r.engine["id"], "name": r.engine["name"], "version": r.engine_version, "image": engines.image(r),
                   "command": cmd, "args": args, "worker_command": wcmd, "worker_args": wargs, "port": r.port,
                   "argv": single.argv(), "config_name": single.config_name, "config": single.config,
                   "config_mounted": single.config_mounted, "config_dir": engines.CONFIG_DIR,
                   "metrics": single.metrics_prefix is not None, "notes": single.notes, "planned": single.values,
                   "served_name": r.served_name, "model": r.model_name},
        "gpu": {"id": gpu["id"], "name": gpu["name"], "resource": k8s.get("resource", "nvidia.com/gpu"),
                "node_label": k8s.get("node_label"), "product": k8s.get("product"),
                "product_verified": k8s.get("product_verified", False), "per_pod": gpus_per_pod},
        "topology": {"nodes_per_replica": nodes, "multinode": nodes > 1, "tp": r.tp, "pp": r.pp, "ep": r.ep,
                     "gpus_per_replica": r.gpus_per_replica},
        "replicas": r.replicas_min if r.autoscale else r.replicas,
        "autoscaling": asc,
        "probes": {"startup_period_s": STARTUP_PERIOD_S, "startup_failure_threshold": startup_failures,
                   "startup_budget_s": startup_failures * STARTUP_PERIOD_S, "cold_start_s": round(cold)},
        "volumes": {"shm_size": f"{SHM_GIB_BASE + SHM_GIB_PER_GPU * (gpus_per_pod - 1) if gpus_per_pod > 1 else SHM_GIB_BASE}Gi",
                    "cache_kind": "pvc" if r.storage_kind == "network-volume" else "emptyDir",
                    "cache_size": f"{_ceil_gib(weights_total_gb * 1.2 + 5)}Gi", "cache_claim": f"{r.name}-model-cache"},
        "hf_secret": {"name": "hf-token", "key": "token"},
        "alerts": alerts(r, est, single, per_replica_breach),
        "service_host": svc_host,
        "bench_argv": bench(r, est, f"http://{svc_host}:{r.port}"),
        "launch_errors": [msg for _, msg in single.errors + (worker.errors if worker else [])],
        "plan": {"breach_rps": breach, "per_replica_breach_rps": per_replica_breach,
                 "max_num_seqs": single.values.get("max_num_seqs")},
    }
