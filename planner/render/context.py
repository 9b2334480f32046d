"""The plan as template values: everything a template needs, computed here, none of it in Jinja.

Templates only place values; the numbers (probe budgets, autoscaling targets, alert thresholds) are
derived from the evaluated plan in this module so they can be tested and explained.
"""

from __future__ import annotations

import hashlib
import math
import os

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
# NVIDIA Dynamo's frontend (the HTTP entry of a disaggregated graph) measures what clients see, label `model`;
# the workers publish KV usage as dynamo_component_kvstats_gpu_cache_usage_percent (0-1). Names as in Dynamo's
# metrics reference (docs/observability/metrics.md, lib/runtime/src/metrics/prometheus_names.rs).
DYNAMO_METRICS = {"ttft": "dynamo_frontend_time_to_first_token_seconds", "itl": "dynamo_frontend_inter_token_latency_seconds",
                  "e2e": "dynamo_frontend_request_duration_seconds", "kv_usage": "dynamo_component_kvstats_gpu_cache_usage_percent",
                  "waiting": "dynamo_frontend_queued_requests", "running": "dynamo_frontend_inflight_requests"}
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


def alerts(r, est: dict, launch: Launch | None, per_replica_breach_rps: float | None) -> list[dict]:
    """Alert rules from the SLOs and the plan's limits. A disaggregated graph (launch None) is watched at its
    Dynamo frontend, which sees the TTFT clients see (prefill + KV transfer + first decode step)."""
    label = "model_name"
    if r.disagg:
        m, label = DYNAMO_METRICS, "model"
    else:
        m = METRICS.get(launch.engine)
    if m is None:
        return []
    sel = "{" + label + "=" + promql_string(r.served_name) + "}"
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
                "expr": (f"histogram_quantile({qv:g}, sum by (le, {label}) "
                         f"(rate({m[metric]}_bucket{sel}[5m]))) > {thr:g}"),
                "for": "10m", "severity": "critical",
                "summary": f"{r.served_name}: {q} {words} above the SLO of {target:g} {key.split('_')[-1]}",
                "description": (f"planfile planned {q} {words} of "
                                f"{_planned(est, key, q)} at peak load; the SLO is {target:g} {key.split('_')[-1]}."),
            })
    if r.disagg:
        # the frontend's queue: requests waiting for their first token over the whole graph. At the peak the
        # plan has rate x mean TTFT of them (Little's law); four times that is a standing queue.
        perf = est.get("performance") or {}
        ttft_s = ((perf.get("ttft_ms") or {}).get("mean") or 0) / 1000
        d = r.disagg["decode"]
        if math.isfinite(ttft_s):
            lim = max(1, math.ceil(4 * r.rate_rps * r.peak_factor * ttft_s))
            waiting = (f"At the planned peak about {r.rate_rps * r.peak_factor * ttft_s:.1f} requests wait for a first token "
                       "(rate x mean TTFT); a standing queue beyond that means the prefill pool is saturated. Add prefill replicas.")
        else:
            # the plan's TTFT is unbounded (the pools do not carry the peak: check fails; render --force): no
            # planned queue to scale, so the alert fires past what the decode pool holds in flight
            lim = max(1, int(est["memory"]["max_concurrent_sequences"] or 0) * d["replicas"])
            waiting = (f"The plan does not carry its peak (TTFT unbounded: see planfile check); more requests waiting than "
                       f"the decode pool holds ({lim}) means a growing queue. Add prefill replicas.")
        return out + [
            {"alert": "LLMDecodeKVCacheNearlyFull",
             # the PodMonitor target labels (namespace, pod) name the decode pool's pods: <graph>-decode-...
             "expr": (f"max({m['kv_usage']}{{namespace={promql_string(r.namespace)}, "
                      f"pod=~{promql_string(r.name.replace('.', chr(92) + '.') + '-decode-.*')}}}) > 0.95"), "for": "15m", "severity": "warning",
             "summary": f"{r.served_name}: a decode worker's KV cache above 95 % for 15 minutes",
             "description": (f"The decode pool holds every sequence in flight; the plan holds {est['memory']['max_concurrent_sequences']} "
                             f"per decode replica ({d['replicas']} replica(s)). Add decode replicas.")},
            {"alert": "LLMRequestsQueueing", "expr": f"sum by ({label}) ({m['waiting']}{sel}) > {lim}", "for": "5m",
             "severity": "warning", "summary": f"{r.served_name}: more than {lim} requests waiting for their first token",
             "description": waiting}]
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
    if not math.isfinite(v):
        return "an unbounded value (the fleet does not carry its peak: planfile check fails)"
    return f"{v:.0f} ms" if key.endswith("_ms") else f"{v:.1f} s"


def autoscaling(r, est: dict, launch: Launch, per_replica_breach_rps: float | None, cold_start_s: float) -> dict | None:
    """Autoscaler values with per-replica semantics.

    The trigger queries the fleet-wide sum of a signal and the threshold is the value *one replica*
    should carry, so desired replicas = ceil(sum / threshold) (KEDA's prometheus scaler and an HPA
    AverageValue target both divide this way). The default signal is requests in flight (running +
    waiting): it grows in proportion to load, where the queue alone stays 0 below saturation and then
    jumps. Its per-replica target is Little's law at 80 % of the breach point: L = 0.8 x breach
    (req/s per replica) x mean end-to-end latency. Scale-up adds the whole ramp (min to max) in one
    period, because a new replica needs the cold start to serve; scale-down waits two cold starts.
    """
    if not r.autoscale:
        return None
    m = METRICS.get(launch.engine)
    if m is None:
        return None  # check refuses autoscaling without an engine metric (PF602)
    perf = est.get("performance") or {}
    e2e_mean = (perf.get("e2e_s") or {}).get("mean") or 1.0
    ttft_slo_s = ((r.slo or {}).get("ttft_ms") or {}).get("p95", 1000.0) / 1e3
    metric = r.autoscale.get("metric", "in_flight")
    if r.mode == "concurrency":
        per_replica = r.concurrency * r.peak_factor / max(r.replicas, 1)
        in_flight = max(1.0, per_replica)
        why = (f"closed loop: {r.concurrency * r.peak_factor:g} requests in flight at peak over {r.replicas} replicas, "
               f"the load check verified the SLOs at")
    elif per_replica_breach_rps and math.isfinite(per_replica_breach_rps * e2e_mean):
        in_flight = max(1.0, 0.8 * per_replica_breach_rps * e2e_mean)
        why = (f"Little's law at 80 % of the breach point: 0.8 x {per_replica_breach_rps:.3g} req/s per replica x mean "
               f"end-to-end {e2e_mean:.2f} s")
    else:
        in_flight = max(1.0, 0.8 * launch.values.get("max_num_seqs", 1))
        why = "80 % of the planned max sequences per replica (no breach point: the spec has no latency SLO)"
    if metric == "queue":
        # a replica may hold this many waiting requests and still start them within the TTFT SLO
        target = max(1.0, 0.5 * (per_replica_breach_rps or in_flight / max(e2e_mean, 1e-3)) * ttft_slo_s)
        query = f"sum({m['waiting']}{{model_name={promql_string(r.served_name)}}})"
        why = f"queue a replica drains within half the p95 TTFT SLO ({ttft_slo_s:g} s)"
    elif metric == "running":
        target = in_flight
        query = f"sum({m['running']}{{model_name={promql_string(r.served_name)}}})"
    else:
        target = in_flight
        sel = "{model_name=" + promql_string(r.served_name) + "}"
        query = f"sum({m['running']}{sel}) + sum({m['waiting']}{sel})"
    target = round(target, 1)
    lo, hi = r.autoscale["min"], r.autoscale["max"]
    period = 60
    scale_down_window = int(max(300, math.ceil(2 * cold_start_s / 60) * 60))
    return {"scaler": r.autoscale.get("scaler", "keda"), "metric": metric, "target": target, "why": why,
            "threshold": f"{target:g}", "min": lo, "max": hi, "hpa_min": max(1, lo),
            "series": m["running"] if metric != "queue" else m["waiting"],
            "hpa_metric_name": (m["running"] if metric != "queue" else m["waiting"]).replace(":", "_"),
            "query": query, "prometheus": r.autoscale.get("prometheus_url") or PROMETHEUS_URL,
            "activation": "0" if lo == 0 else None,
            "scale_up": {"stabilization_s": 0, "period_s": period, "pods": max(1, hi - lo), "percent": 100},
            "scale_down": {"stabilization_s": scale_down_window, "period_s": 120, "pods": max(1, math.ceil(hi / 10))},
            "cooldown_s": scale_down_window}


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


RESERVED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                   "app.kubernetes.io/managed-by", "role")
RESERVED_PREFIXES = ("planfile.dev/", "leaderworkerset.sigs.k8s.io/")
TPU_TOPOLOGY = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4"}  # GKE single-host TPU v5e/v6e slices (cloud.google.com/gke-tpu-topology)
CPU_BASE, CPU_PER_GPU = 4, 2  # API server, tokenizer and scheduler processes + one worker process per GPU
MEM_GIB_BASE, MEM_GIB_PER_GPU = 8, 4  # host memory of the engine processes (pinned buffers, CUDA graphs' host side)
MODEL_DIR = "/models"


def _gib(gb: float) -> int:
    return max(1, math.ceil(gb * 1e9 / 2**30))


def delivery(r, est: dict, gpus_per_pod: int, nodes: int) -> dict:
    """Volumes, init container, environment, resources and probe budget from where the weights come from."""
    ck = r.checkpoint
    cs = est["cold_start"]
    st = r.storage
    source = st["source"]
    cache_gib = _gib(ck.download_gb * 1.05 + 2)  # the Hub cache holds the files once (blobs + symlinks) plus metadata
    # what the engine container itself waits for before /health answers (init containers run before probes)
    own = cs["load_s"] + cs["engine_start_s"] + (cs["download_s"] if source in ("hub", "pvc") else 0.0)
    failures = math.ceil((own * STARTUP_SAFETY + 60) / STARTUP_PERIOD_S)
    off = r.kv_offload or {}
    offload_gib = _gib(off["capacity_gb"] / nodes) if off.get("tier") == "cpu" and off.get("capacity_gb") else 0
    shm = r.engine.get("shm_gib") or {"base": SHM_GIB_BASE, "per_extra_gpu": SHM_GIB_PER_GPU}
    shm_gib = round(shm["base"] + shm["per_extra_gpu"] * max(gpus_per_pod - 1, 0))
    # /dev/shm is a memory-backed emptyDir: it counts against the container's memory limit
    mem_gib = MEM_GIB_BASE + MEM_GIB_PER_GPU * gpus_per_pod + offload_gib + shm_gib
    env = [{"name": "HF_HOME", "value": MODEL_DIR}]
    if source in ("node-local", "staged"):
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})  # the weights are already on the node: never fetch
    init = None
    if source == "staged":
        argv = ["hf", "download", ck.repo] + (["--revision", r.revision] if r.revision else [])
        init = {"name": "stage-weights", "command": argv, "env": [{"name": "HF_HOME", "value": MODEL_DIR}],
                "budget_s": round(cs["download_s"])}
    requests = {"cpu": str(CPU_BASE + CPU_PER_GPU * gpus_per_pod), "memory": f"{mem_gib}Gi"}
    if source in ("hub", "staged"):
        requests["ephemeral-storage"] = f"{cache_gib}Gi"
    volume = {"hub": "emptyDir", "staged": "emptyDir", "pvc": "pvc", "node-local": "hostPath"}[source]
    return {"source": source, "kind": volume, "size": f"{cache_gib}Gi", "size_gib": cache_gib,
            "claim": st.get("claim") or f"{r.name}-model-cache", "render_pvc": source == "pvc" and not st.get("claim"),
            "storage_class": st.get("storage_class"), "host_path": st.get("path") or "/mnt/models/huggingface",
            "read_only": source == "node-local", "mount": MODEL_DIR, "env": env, "init": init,
            "requests": requests, "memory_limit": f"{mem_gib}Gi", "offload_gib": offload_gib,
            "shm_size": f"{shm_gib}Gi",
            "startup_failure_threshold": failures, "startup_budget_s": failures * STARTUP_PERIOD_S,
            "engine_wait_s": round(own)}


def build(res, spec_text: bytes) -> dict:
    """Template context for one checked spec (run.Result with an estimate)."""
    from planner.output import accuracy_text

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
        if k not in RESERVED_LABELS and not k.startswith(RESERVED_PREFIXES):
            labels[k] = v  # validation refuses reserved keys; never let one change a selector
    selector = {"app.kubernetes.io/name": r.name, "app.kubernetes.io/instance": r.name}
    dv = delivery(r, est, gpus_per_pod, nodes)
    cold = float(est["cost"]["cold_start_s"])
    cmd, args = single.container_command()
    wcmd, wargs = worker.container_command() if worker else (None, None)
    svc_host = f"{r.name}.{r.namespace}.svc.cluster.local"
    if r.disagg:  # the Dynamo operator's Service for the graph's Frontend component (<graph>-frontend)
        svc_host = f"{r.name}-frontend.{r.namespace}.svc.cluster.local"
    asc = autoscaling(r, est, single, per_replica_breach, cold)
    node_selector = {}
    if k8s.get("node_label") and k8s.get("product"):
        node_selector[k8s["node_label"]] = k8s["product"]
    if gpu["vendor"] == "google":
        node_selector["cloud.google.com/gke-tpu-topology"] = TPU_TOPOLOGY.get(gpus_per_pod, f"{gpus_per_pod}")
    resource = k8s.get("resource", "nvidia.com/gpu")
    return {
        "planfile_version": __version__,
        "spec": {"name": r.name, "namespace": r.namespace, "description": r.description, "owner": r.owner,
                 "path": res.spec if res.spec == "-" else os.path.normpath(res.spec),
                 "sha256": hashlib.sha256(spec_text).hexdigest()[:16], "archetype": r.archetype, "mode": r.mode},
        "labels": labels, "selector": selector,
        "engine": {"id": r.engine["id"], "name": r.engine["name"], "version": r.engine_version, "image": engines.image(r),
                   "command": cmd, "args": args, "worker_command": wcmd, "worker_args": wargs, "port": r.port,
                   "argv": single.argv(), "shell": single.shell_command(), "config_name": single.config_name, "config": single.config,
                   "config_mounted": single.config_mounted, "config_dir": engines.CONFIG_DIR,
                   "metrics": single.metrics_prefix is not None, "notes": single.notes, "planned": single.values,
                   "served_name": r.served_name, "model": r.model_name},
        "checkpoint": r.checkpoint.to_json(),
        "accuracy": dict(est.get("accuracy") or {}, line=accuracy_text(est.get("accuracy"))),
        "gpu": {"id": gpu["id"], "name": gpu["name"], "resource": resource, "vendor": gpu["vendor"],
                "node_selector": node_selector, "product_verified": k8s.get("product_verified", False), "per_pod": gpus_per_pod},
        "resources": {"requests": dict(dv["requests"], **{resource: str(gpus_per_pod)}),
                      "limits": {resource: str(gpus_per_pod), "memory": dv["memory_limit"]}},
        "topology": {"nodes_per_replica": nodes, "multinode": nodes > 1, "tp": r.tp, "pp": r.pp, "ep": r.ep,
                     "gpus_per_replica": r.gpus_per_replica},
        "replicas": None if r.autoscale else r.replicas,
        "fleet": {"min": r.replicas_min, "max": r.replicas, "autoscaled": bool(r.autoscale)},
        "autoscaling": asc,
        "probes": {"startup_period_s": STARTUP_PERIOD_S, "startup_failure_threshold": dv["startup_failure_threshold"],
                   "startup_budget_s": dv["startup_budget_s"], "cold_start_s": round(cold),
                   "engine_wait_s": dv["engine_wait_s"]},
        "volumes": dv,
        "hf_secret": {"name": "hf-token", "key": "token"},
        "alerts": alerts(r, est, single, per_replica_breach),
        "alerts_source": ("NVIDIA Dynamo frontend and worker metrics, label model; the Dynamo operator's PodMonitors scrape them"
                          if r.disagg else f"{r.engine['name']} metrics, label model_name"),
        "service_host": svc_host,
        "bench_argv": bench(r, est, f"http://{svc_host}:{r.port}"),
        "launch_errors": [msg for _, msg in single.errors + (worker.errors if worker else [])],
        "plan": {"breach_rps": breach, "per_replica_breach_rps": per_replica_breach,
                 "max_num_seqs": single.values.get("max_num_seqs")},
    }
