"""Disaggregated fleets rendered for NVIDIA Dynamo, and the engines' own prefill/decode launches.

`k8s/dynamographdeployment.yaml` is a DynamoGraphDeployment (nvidia.com/v1beta1) in the shape of Dynamo
1.6.1's own templates (ai-dynamo 1.6.1 wheel, dynamo/profiler/templates/dgd/{vllm,sglang}/disagg.yaml): a
Frontend component and one component per pool, each a standard Kubernetes pod template running
`python3 -m dynamo.vllm|dynamo.sglang` with the pool's engine options and its disaggregation role.
`engine/prefill.sh` and `engine/decode.sh` are the same pools as plain engine launches (vLLM
`--kv-transfer-config` with the connector and role; SGLang `--disaggregation-mode` and
`--disaggregation-transfer-backend`), checked against the engines' real option manifests like every
aggregated launch.
"""

from __future__ import annotations

import json

from planner.render import engines

DYNAMO_VERSION = "1.6.1"  # catalog/engines.yaml `dynamo`: the engine version each runtime image runs
IMAGES = {"vllm": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:{v}", "sglang": "nvcr.io/nvidia/ai-dynamo/sglang-runtime:{v}"}
MODULES = {"vllm": "dynamo.vllm", "sglang": "dynamo.sglang"}
VLLM_CONNECTORS = {"nixl": "NixlConnector", "lmcache": "LMCacheConnectorV1"}
BOOTSTRAP_PORT = 12345  # SGLang's prefill bootstrap server (as Dynamo's templates set it)
# a pool whose replica spans nodes is one `multinode: {nodeCount: N}` component of N pods; the operator appends
# the node flags to the worker itself (SGLang --dist-init-addr <leader>:29500 --nnodes N --node-rank R,
# deploy/operator/internal/dynamo/backend_sglang.go@7caca06; vLLM its mp/Ray or data-parallel flags, chosen from
# the container's GPU limit, backend_vllm.go@18bda51), so the worker's own args carry none of them
NODE_FLAGS = {"--nnodes", "--node-rank", "--dist-init-addr", "--master-addr", "--master-port", "--headless"}


def pool_launch(r, est, role: str) -> engines.Launch:
    """The engine's own launch of one pool, with its disaggregation role and connector."""
    from planner.disagg import pool

    v = pool(r, role)
    # the pool's own memory plan: a prefill worker holds prompts only, a decode worker whole contexts
    L = engines.launch(v, {**est, "memory": est["disaggregation"]["pools"][role]["memory"]})
    conn = r.disagg["transfer"]["connector"]
    if r.engine["id"] == "vllm":
        cfg = {"kv_connector": VLLM_CONNECTORS[conn], "kv_role": "kv_producer" if role == "prefill" else "kv_consumer"}
        L.add("--kv-transfer-config", json.dumps(cfg, sort_keys=True, separators=(",", ":")), "/disaggregation/transfer/connector")
    else:
        L.add("--disaggregation-mode", role, f"/disaggregation/{role}")
        L.add("--disaggregation-transfer-backend", conn, "/disaggregation/transfer/connector")
        L.add("--disaggregation-bootstrap-port", BOOTSTRAP_PORT, "/disaggregation")
    from planner.render.flags import manifest

    m = manifest(r.engine["id"], r.engine_version)
    for err in m.check_argv(L.options, L.env_refs):
        L.errors.append((f"/disaggregation/{role}", f"{m.name} would reject the {role} launch: {err}"))
    return L


def worker_args(r, L: engines.Launch, role: str) -> list[str]:
    """dynamo.vllm / dynamo.sglang take the engine's own options plus the role (Dynamo 1.6.1)."""
    words = ([L.model_flag, L.model] if L.model_flag else ["--model", L.model])
    # Dynamo's worker serves its own endpoint and metrics; vLLM's role is Dynamo's --disaggregation-mode plus
    # the producer's connector (added below), SGLang's role flags are SGLang's own and pass through
    skip = ({"--host", "--port", "--enable-metrics"} | NODE_FLAGS
            | ({"--kv-transfer-config"} if r.engine["id"] == "vllm" else set()))
    opts = []
    it = iter(L.opts)
    for flag, value in it:
        if flag in skip:
            continue
        opts.append(flag)
        if value is not None:
            opts.append(engines._word(value))
    if r.engine["id"] == "vllm":
        opts += ["--disaggregation-mode", role]
        conn = r.disagg["transfer"]["connector"]
        if role == "prefill":
            opts += ["--kv-transfer-config", json.dumps({"kv_connector": VLLM_CONNECTORS[conn], "kv_role": "kv_producer"},
                                                        separators=(",", ":"))]
    # Kubernetes expands $(VAR) in args: escaped as every container's are, so a spec string cannot pull a secret
    # from the pod's environment
    return L.k8s_words(words + opts)


def _gib(gb: float) -> str:
    """Room for a download of `gb` GB (10^9 B) plus 10 % for the Hub cache's own files, in whole GiB."""
    import math

    return f"{math.ceil(gb * 1e9 * 1.1 / 2**30)}Gi"


def graph(r, est, ctx: dict) -> dict:
    """The DynamoGraphDeployment of a disaggregated spec."""
    from planner.disagg import pool

    image = IMAGES[r.engine["id"]].format(v=DYNAMO_VERSION)
    resource = ctx["gpu"]["resource"]
    env_from = [{"secretRef": {"name": ctx["hf_secret"]["name"]}}]
    labels = dict(ctx["labels"])
    components = [{
        "name": "Frontend", "type": "frontend", "replicas": 1,
        "podTemplate": {"metadata": {"labels": labels}, "spec": {"containers": [{
            "name": "main", "image": image, "command": ["python3"], "args": ["-m", "dynamo.frontend"], "envFrom": env_from,
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}}]}}}]
    for role in ("prefill", "decode"):
        v = pool(r, role)
        L = pool_launch(r, est, role)
        nodes = engines.multinode(v)
        gpus = str(v.gpus_per_replica // nodes)  # per pod: one pod per node of the replica
        spec = {"containers": [{
            "name": "main", "image": image, "command": ["python3", "-m", MODULES[r.engine["id"]]],
            "args": worker_args(r, L, role), "envFrom": env_from,
            "resources": {"requests": {resource: gpus, "cpu": ctx["resources"]["requests"].get("cpu", "8"),
                                       "memory": ctx["resources"]["requests"].get("memory", "64Gi"),
                                       # each worker downloads the checkpoint into its own filesystem
                                       "ephemeral-storage": _gib(est["checkpoint"]["download_gb"])},
                          "limits": {resource: gpus}}}]}
        if ctx["gpu"]["node_selector"]:
            spec["nodeSelector"] = dict(ctx["gpu"]["node_selector"])
        comp = {"name": role, "type": role, "replicas": v.replicas}
        if nodes > 1:
            comp["multinode"] = {"nodeCount": nodes}
        comp["podTemplate"] = {"metadata": {"labels": labels}, "spec": spec}
        components.append(comp)
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": r.name, "namespace": r.namespace, "labels": labels,
                         "annotations": {"planfile.dev/spec-sha256": ctx["spec"]["sha256"]}},
            "spec": {"backendFramework": r.engine["id"], "components": components}}


def files(r, est, ctx: dict, targets) -> dict[str, str]:
    import yaml

    out = {}
    head = (f"# Rendered by planfile {ctx['planfile_version']} from {ctx['spec']['path']} - edit the spec, not this file.\n")
    if "engine" in targets:
        from planner.disagg import pool

        for role in ("prefill", "decode"):
            L = pool_launch(r, est, role)
            nodes = engines.multinode(pool(r, role))
            spans = (f"# A replica spans {nodes} nodes: this is node 0's launch; node i runs it with --node-rank i, "
                     "LWS_LEADER_ADDRESS naming node 0.\n") if nodes > 1 else ""
            out[f"engine/{role}.sh"] = ("#!/bin/sh\n" + head.replace("\n", "").replace("\r", "") + "\n"
                                        f"# {role} pool: {r.disagg[role]['replicas']} replica(s) of {r.disagg[role]['gpus_per_replica']} GPU(s); "
                                        f"KV over {r.disagg['transfer']['link']} with {r.disagg['transfer']['connector']}.\n"
                                        + spans + "exec " + L.shell_command() + "\n")
    if "k8s" in targets:
        class NoAliases(yaml.SafeDumper):
            def ignore_aliases(self, data):
                return True

        out["k8s/dynamographdeployment.yaml"] = head + yaml.dump(graph(r, est, ctx), Dumper=NoAliases, sort_keys=False, width=1000)
    return out


def report_context(r, est) -> dict:
    """What the report shows of a disaggregated plan: the pools, the GPUs of both, each pool's launch."""
    from planner.output import disagg_text

    dz = est["disaggregation"]
    pools = []
    for role in ("prefill", "decode"):
        p = dz["pools"][role]
        pools.append({"role": role, "replicas": p["replicas"], "tp": p["tensor"], "pp": p["pipeline"],
                      "gpus_per_replica": p["gpus_per_replica"], "argv": pool_launch(r, est, role).argv()})
    return {"line": disagg_text(dz), "gpus": dz["gpus"], "pools": pools, "link": r.disagg["transfer"]["link"],
            "connector": r.disagg["transfer"]["connector"]}


def errors(r, est) -> list[str]:
    return [msg for role in ("prefill", "decode") for _, msg in pool_launch(r, est, role).errors]
