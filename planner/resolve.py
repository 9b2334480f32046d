"""Resolve a valid spec into one frozen record: archetype defaults applied, catalog entries attached,
engine defaults for the version and GPU filled in. Every default taken is recorded (pointer, value,
where it came from) so `planfile explain` can show it.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path

from planner import catalog
from planner.loader import Loaded
from planner.physics.serving import Lengths
from planner.records import record

# Weights delivery defaults (planfile's judgement; measure yours and set hardware.storage): a pod pulls
# from the Hub at ~0.5 GB/s (4 Gb/s; hf_transfer on a 10-25 Gb/s node NIC reaches more); data-centre
# NVMe reads ~6 GB/s sequentially (PCIe 4 x4 drives: ~7 GB/s rated); a network volume ~1 GB/s.
STORAGE_READ_GB_PER_S = {"hub": 6.0, "staged": 6.0, "node-local": 6.0, "pvc": 1.0}
DOWNLOAD_GB_PER_S = 0.5
LEGACY_STORAGE_KIND = {"local-nvme": "node-local", "network-volume": "pvc", "object-store": "staged"}
OFFLOAD_GB_PER_S = {"cpu": 25.0, "nvme": 6.0}
SETTINGS_DEFAULTS = {"comm_share_max_pct": 25.0, "headroom_min_pct": 10.0, "reading_speed_tokens_per_s": 8.0,
                     "min_batch_utilization_pct": 10.0, "idle_share_max_pct": 75.0}


@record(frozen=True, eq=False)
class Resolved:
    """A spec with every default and catalog entry filled in: everything the physics and the renderers read."""

    name: str
    namespace: str
    model: dict
    model_name: str  # what the engine loads
    served_name: str
    quantized_checkpoint: bool
    gpu: dict
    engine: dict
    engine_version: str
    weights: str
    kv_cache: str
    quant_group_size: int
    tp: int
    pp: int
    ep: int
    gpus_per_replica: int
    replicas: int  # fixed count, or autoscale max (capacity is checked with every replica up)
    replicas_min: int
    autoscale: dict | None
    gpus_per_node: int
    input: Lengths
    output: Lengths
    mode: str  # "rate" | "concurrency" | "offline"
    rate_rps: float
    concurrency: int
    peak_factor: float
    prefix_tokens: int
    prefix_hit: float
    speculative: dict | None
    kv_offload: dict | None
    slo: dict
    price_usd_per_gpu_hour: float | None
    price_source: str
    budget_usd_per_month: float | None
    target_usd_per_mtok: float | None
    buffer_pct: float
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    block_size: int
    prefix_caching: bool
    chunked_prefill: bool
    port: int
    storage_gb_per_s: float
    settings: dict
    ignores: tuple
    archetype: str
    calibration: dict | None = None
    extra_args: tuple = ()
    image: str | None = None
    labels: tuple = ()  # ((key, value), ...) from metadata.labels
    description: str = ""
    owner: str = ""  # metadata.owner: shown in the report and on every alert
    storage_kind: str = "hub"  # weights source: hub | staged | pvc | node-local
    storage: dict = field(default_factory=dict)  # source, read_gb_per_s, download_gb_per_s, claim, storage_class, path
    defaults: tuple = field(default_factory=tuple)  # ((pointer, value, source), ...)
    checkpoint: object = None  # planner.checkpoints.Checkpoint: what the engine loads
    revision: str | None = None
    checkpoint_inputs: dict = field(default_factory=dict)  # spec fields the checkpoint was resolved from
    attention_dp: int = 1  # attention data-parallel groups inside a replica (parallelism.attention_data)
    scheduler_policy: str = "max-utilization"  # max-utilization | guaranteed-no-evict
    requests: int | None = None  # a finite run of this many requests (workload.requests); None: steady state
    slo_confidence: float | None = None  # slo.confidence: SLOs required at this quantile of the error band
    price_provider: str | None = None  # catalog provider id of the price (None: the spec's own usd_per_gpu_hour)
    disagg: dict | None = None  # disaggregated pools (planner.disagg); tp/pp/replicas above are then the decode pool's
    moe_all_to_all: str = "default"  # engine.moe_all_to_all: default (the engine's own collective) | deepep
    two_batch_overlap: bool = False  # engine.two_batch_overlap
    role: str = "aggregated"  # aggregated | prefill | decode (a disaggregated pool, planner.disagg.pool)
    # the engine runs with the batch limit planfile renders (planner.evaluate.batch_cap: what the KV pool holds at
    # the mean context); False for a published benchmark, whose engine ran with its own limit (max_num_seqs)
    kv_batch_cap: bool = True


_FIELDS = frozenset(Resolved.__dataclass_fields__)  # what evolve() may change


def deepep_mode(r: "Resolved") -> str:
    """The DeepEP kernels a replica runs: a prefill pool the normal (high-throughput) kernels, a decode pool the
    low-latency ones; an aggregated SGLang replica `auto` (normal for steps with prompt tokens, low-latency for
    pure decode steps), an aggregated vLLM replica its high-throughput backend on every step. The one choice
    the step model (planner.evaluate.system) and the rendered flags (planner.render.engines) both read."""
    if r.role == "prefill":
        return "normal"
    if r.role == "decode":
        return "low_latency"
    return "auto" if r.engine["id"] == "sglang" else "normal"


def deepep_on(r: "Resolved") -> bool:
    """The replica's expert all-to-all runs on DeepEP: asked for, on a MoE model split by expert parallelism."""
    return r.moe_all_to_all == "deepep" and r.ep > 1 and bool(r.model.get("moe"))


def mlp_groups(r: "Resolved") -> tuple[int, int]:
    """(dense-MLP copies, shared-expert copies) of a replica as its engine holds them (physics.arch.mlp_groups):
    read by the memory plan and the step model (planner.evaluate) and by PF125's shard check."""
    from planner.physics import arch

    return arch.mlp_groups(r.engine["id"], r.tp, r.attention_dp, deepep_on(r))


def kv_memory_layout(r: "Resolved"):
    """(layout, why): the KV layout the engine's pool allocates (catalog engines.yaml `windowed_kv`), read by
    the memory plan (sequences that fit, the simulator's KV tokens) and the KV a prefill pool sends. Sliding-
    window and chunked-local layers hold at most their window only where the engine caps them; elsewhere they
    hold every token, as full layers do (the kernels still read only the window: the step model keeps the
    architectural layout). `why` says which, for explain; empty for a model with no windowed layers."""
    from dataclasses import replace

    from planner.physics import arch

    lay = arch.kv_layout(r.model)
    if not lay.window_layers:
        return lay, ""
    rule = r.engine.get("windowed_kv") or {}
    sw = r.model.get("sliding_window") or {}
    kind = sw.get("kind", "sliding")
    name = r.engine.get("name", r.engine["id"])
    if "architectures" in rule:
        model_arch = str(r.model.get("architecture") or "").split(" ")[0]
        if model_arch not in rule["architectures"]:
            return lay.held_in_full(), (f"{name} holds every token of the {kind}-window layers too: its hybrid "
                                        f"window pool is only for {', '.join(rule['architectures'])}, not {model_arch or 'this model'}")
        if lay.full_layers and not r.prefix_caching:
            # radix cache off and --max-running-requests given (planfile renders it): SGLang sizes the window pool
            # for that many windows (SWARequestCapPoolConfigurator), the rest is the full pool: capped by need
            return lay, f"{name} caps them at the window (radix cache off: its window pool is sized from --max-running-requests)"
        ratio = float(rule.get("swa_full_tokens_ratio") or 0.0) if lay.full_layers else 0.0
        return replace(lay, pool_ratio=ratio), (
            f"{name} caps them in a window pool sized at {ratio:g} of the full pool's tokens" if ratio
            else f"{name} caps them at the window")
    connector = ((r.disagg or {}).get("transfer") or {}).get("connector") if r.disagg else None
    why_not = ""
    if kind not in rule.get("kinds", []):
        why_not = f"{name} does not cap {kind}-window layers when the model also has full layers"
    elif r.gpu.get("vendor") not in rule.get("vendors", [r.gpu.get("vendor")]):
        why_not = f"{name}'s window-capping KV manager does not run on {r.gpu.get('vendor')} GPUs"
    elif connector in rule.get("connectors_without", []):
        why_not = f"the {connector} connector turns {name}'s window-capping KV manager off"
    if why_not and lay.full_layers:
        return lay.held_in_full(), why_not + ": every token of every layer is held"
    return lay, f"{name} caps them at the window"


def evolve(r: Resolved, **changes) -> Resolved:
    """dataclasses.replace for a Resolved: the same record with `changes`, ~20x faster (1.3 us, not 30: replace
    passes all 70 fields through the frozen __init__, and plan and PF504 build hundreds of variants). Resolved
    has no __post_init__ and every field is an __init__ argument, so the copy is what replace would build; an
    unknown field name is a TypeError, as there."""
    unknown = changes.keys() - _FIELDS
    if unknown:
        raise TypeError(f"Resolved has no field {sorted(unknown)[0]!r}")
    new = object.__new__(Resolved)
    d = new.__dict__
    d.update(r.__dict__)
    d.update(changes)
    return new


def with_checkpoint(r: "Resolved") -> "Resolved":
    """The record with its checkpoint re-resolved for its (possibly changed) weights, engine and GPU, as
    plan and the GPU comparison vary them; raises planner.checkpoints.CheckpointError when none exists."""
    from planner import checkpoints

    ck = checkpoints.resolve(r.model, r.weights, r.engine, r.gpu, **r.checkpoint_inputs)
    return evolve(r, checkpoint=ck, model_name=ck.repo,
                  quantized_checkpoint=ck.online_quant is None and ck.stored in checkpoints.QUANTIZED)


def _lengths(v, arch_default: dict | None) -> Lengths:
    if v is None:
        v = arch_default
    if isinstance(v, int):
        return Lengths(v, v, v, v)
    mean = v["mean"]
    p50 = v.get("p50", mean)
    p95 = v.get("p95", max(mean, p50))
    mx = v.get("max", max(p95, mean))
    return Lengths(float(mean), float(p50), float(p95), float(mx))


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def length_top(v) -> float:
    """The longest a length spec (a number, or mean/p50/p95/max) allows; non-numbers count as 0 (validate calls
    this on specs not yet known to be well-formed)."""
    return v if _num(v) else max([x for x in v.values() if _num(x)] or [0]) if isinstance(v, dict) else 0


def workload_lengths(wl: dict, arch: dict, limit: int | None) -> tuple:
    """(input, output, note) length specs of a workload: the spec's own, else its archetype's — an archetype's
    generic lengths capped so prompt + output fit the model's context (`limit`, max_position_embeddings); a stated
    length is never changed (PF111 refuses one that does not fit). `note` says what was capped, else None."""
    inp, out = wl.get("input_tokens") or arch.get("input_tokens"), wl.get("output_tokens") or arch.get("output_tokens")

    def cap(v, c):
        return min(v, c) if _num(v) else {k: min(x, c) if _num(x) else x for k, x in v.items()}

    top = length_top
    if not limit or not _num(limit) or inp is None or out is None or top(inp) + top(out) <= limit:
        return inp, out, None
    for key in ("input_tokens", "output_tokens"):
        mine, other = (inp, out) if key == "input_tokens" else (out, inp)
        room = int(limit - top(other))
        if key not in wl and room >= 1:
            capped = cap(mine, room)
            note = (f"archetype {arch['id']}'s {key} capped at {room:,} so prompt + output fit the model's "
                    f"{limit:,}-token context")
            return (capped, out, note) if key == "input_tokens" else (inp, capped, note)
    return inp, out, None


def batch_defaults(engine: dict, gpu: dict) -> dict:
    gib = gpu["memory_gib"]
    for row in engine["batch_defaults"]:
        if gib >= row["min_memory_gib"] and gpu["generation"] not in row.get("exclude_generations", []):
            return row
    return engine["batch_defaults"][-1]


def resolve(loaded: Loaded) -> Resolved:
    """Resolve a spec that passed validation (PF0/PF1 clean)."""
    d = loaded.data
    defaults: list[tuple[str, object, str]] = []

    def default(ptr, value, why):
        defaults.append((ptr, value, why))
        return value

    wl = d["workload"]
    arch = catalog.archetypes().get(wl["archetype"]).entry
    if "model" in d and "id" in d["model"]:
        model = catalog.models().get(d["model"]["id"]).entry
    else:
        from planner import hfconfig

        model = hfconfig.load((loaded.base_dir or Path.cwd()) / d["model"]["hf_config"], d["model"].get("params_b"),
                              repo=d["model"].get("name"))
    gpu = catalog.gpus().get(d["hardware"]["gpu"]).entry
    eng = catalog.engines().get(d["engine"]["name"]).entry
    e = d["engine"]
    if d.get("disaggregation") and eng.get("dynamo"):
        dyn = eng["dynamo"]
        version = e.get("version") or default("/engine/version", dyn["engine_version"],
                                              f"what NVIDIA Dynamo {dyn['runtime']}'s {eng['name']} runtime image runs")
    else:
        version = e.get("version") or default("/engine/version", eng["default_version"], "newest version planfile knows")
    version = catalog.engine_version(eng, version)  # the release "0.33.0" is the catalog's 0.33
    prec = d.get("precision", {})
    from planner import checkpoints
    from planner.validate import checkpoint_inputs

    ck_in = checkpoint_inputs(d)
    if prec.get("weights"):
        weights = prec["weights"]
    else:
        w, why = checkpoints.default_weights(model, eng, gpu, name=ck_in["name"], variant=ck_in["variant"], alias=ck_in["alias"])
        weights = default("/precision/weights", w, why)
    kv = prec.get("kv_cache") or default("/precision/kv_cache", arch.get("kv_cache", "bf16"), f"archetype {arch['id']}")
    par = d.get("parallelism", {})
    tp, pp, ep = par.get("tensor", 1), par.get("pipeline", 1), par.get("expert", 1)
    adp = par.get("attention_data", 1)
    hw = d["hardware"]
    gpr = hw.get("gpus_per_replica", tp * pp)
    disagg = None
    if d.get("disaggregation"):
        from planner.disagg import resolve_pools

        disagg = resolve_pools(d["disaggregation"], default)
        dec = disagg["decode"]
        # the record's own parallelism is the decode pool's, all of it (the engine flags, the explain sections)
        tp, pp, gpr = dec["tp"], dec["pp"], dec["gpus_per_replica"]
        ep, adp = dec.get("ep", 1), dec.get("adp", 1)
        hw = dict(hw, replicas=dec["replicas"])
    auto = hw.get("autoscale")
    if auto:
        replicas, rmin = auto["max"], auto["min"]
    else:
        replicas = hw.get("replicas") or default("/hardware/replicas", 1, "one replica when neither replicas nor autoscale is given")
        rmin = replicas
    ispec, ospec, capped = workload_lengths(wl, arch, model.get("max_position_embeddings"))
    if capped:
        key = "input_tokens" if ispec != arch.get("input_tokens") and "input_tokens" not in wl else "output_tokens"
        default(f"/workload/{key}", ispec if key == "input_tokens" else ospec, capped)
    inp = _lengths(ispec, None)
    out = _lengths(ospec, None)
    if "arrival_rate_rps" in wl:
        mode, rate, conc = "rate", float(wl["arrival_rate_rps"]), 0
    elif "concurrency" in wl:
        mode, rate, conc = "concurrency", 0.0, int(wl["concurrency"])
    else:
        mode, rate, conc = "offline", 0.0, 0
    stated = wl.get("peak") or {}
    if stated and mode == "rate" and "arrival_rate_rps" in stated:
        peak = float(stated["arrival_rate_rps"]) / rate
    elif stated and mode == "concurrency" and "concurrency" in stated:
        peak = float(stated["concurrency"]) / conc
    else:
        peak = wl.get("peak_factor") or default("/workload/peak_factor", arch.get("peak_factor", 1.0), f"archetype {arch['id']}")
    pre = wl.get("prefix") or arch.get("prefix") or {}
    slo = d.get("slo")
    if slo is None:
        slo = default("/slo", arch.get("slo", {}), f"archetype {arch['id']}")
    cost = d.get("cost", {})
    price, price_src, price_provider = None, "", None
    if "usd_per_gpu_hour" in cost:
        price, price_src = float(cost["usd_per_gpu_hour"]), "spec cost.usd_per_gpu_hour"
    elif "provider" in cost:
        pid = catalog.providers().get(cost["provider"]).entry["id"]
        p = catalog.price(pid, gpu["id"])
        price, price_src = p["usd_per_gpu_hour"], f"catalog prices: {pid} {p['sku']} (as of {p['as_of']}; {p['source']})"
        price_provider = pid
    else:
        cheapest = catalog.prices_for_gpu(gpu["id"])
        if cheapest:
            p = cheapest[0]
            price, price_src = p["usd_per_gpu_hour"], f"cheapest catalog price: {p['provider']} {p['sku']} (as of {p['as_of']})"
            price_provider = p["provider"]
            default("/cost/provider", p["provider"], "cheapest provider in the catalog for this GPU")
    bd = batch_defaults(eng, gpu)
    gmu = e.get("gpu_memory_utilization") or default("/engine/gpu_memory_utilization", eng["gpu_memory_utilization"], f"{eng['name']} default")
    mns = e.get("max_num_seqs") or default("/engine/max_num_seqs", bd["max_num_seqs"], f"{eng['name']} default for {gpu['id']}")
    if disagg:
        for role in ("prefill", "decode"):
            disagg[role].setdefault("max_num_seqs", int(mns))
            disagg[role].setdefault("max_num_batched_tokens", None)
        mns = disagg["decode"]["max_num_seqs"]
    mbt = e.get("max_num_batched_tokens") or default("/engine/max_num_batched_tokens", bd["max_num_batched_tokens"], f"{eng['name']} default for {gpu['id']}")
    mml = e.get("max_model_len") or default("/engine/max_model_len", int(inp.max + out.max), "workload input max + output max")
    chunked = e.get("enable_chunked_prefill", eng["chunked_prefill_default"])
    if not chunked:
        mbt = max(mbt, int(mml))  # without chunking a whole prompt must fit one step
    storage = hw.get("storage", {})
    source = storage.get("source") or LEGACY_STORAGE_KIND.get(storage.get("kind", "")) or default(
        "/hardware/storage/source", "hub", "every new pod downloads the checkpoint from the Hub")
    read = storage.get("read_gb_per_s") or STORAGE_READ_GB_PER_S[source]
    dl = storage.get("download_gb_per_s") or DOWNLOAD_GB_PER_S
    storage_plan = {"source": source, "read_gb_per_s": float(read), "download_gb_per_s": float(dl),
                    "claim": storage.get("claim"), "storage_class": storage.get("storage_class"), "path": storage.get("path")}
    settings = dict(SETTINGS_DEFAULTS)
    settings.update(d.get("checks", {}).get("settings", {}))
    off = wl.get("kv_offload")
    if off:
        off = dict(off)
        off.setdefault("bandwidth_gb_per_s", OFFLOAD_GB_PER_S[off["tier"]])
    calib = None
    if d.get("calibration"):
        from planner.sideload import load_calibration

        calib = load_calibration((loaded.base_dir or Path.cwd()) / d["calibration"], eng["id"], gpu["id"])
    ck = checkpoints.resolve(model, weights, eng, gpu, **ck_in)
    if not d["model"].get("name"):
        default("/model/name", ck.repo, ck.why)
    policy = e.get("scheduler_policy") or default("/engine/scheduler_policy", eng["scheduler_policy_default"],
                                                  f"{eng['name']} default")
    slo_conf = slo.get("confidence") if isinstance(slo, dict) else None
    slo = {k: v for k, v in slo.items() if k != "confidence"}
    return Resolved(
        moe_all_to_all=e.get("moe_all_to_all", "default"), two_batch_overlap=bool(e.get("two_batch_overlap", False)),
        price_provider=price_provider, disagg=disagg, attention_dp=int(adp), scheduler_policy=policy, requests=wl.get("requests"), slo_confidence=slo_conf,
        name=d["metadata"]["name"], namespace=d["metadata"].get("namespace", "default"), model=model,
        model_name=ck.repo, checkpoint=ck, checkpoint_inputs=ck_in, revision=d["model"].get("revision"),
        served_name=d["model"].get("served_name") or d["metadata"]["name"],
        quantized_checkpoint=ck.online_quant is None and ck.stored in checkpoints.QUANTIZED,
        gpu=gpu, engine=eng, engine_version=version, weights=weights, kv_cache=kv,
        quant_group_size=prec.get("quant_group_size", 128), tp=tp, pp=pp, ep=ep, gpus_per_replica=gpr,
        replicas=int(replicas), replicas_min=int(rmin), autoscale=auto,
        gpus_per_node=hw.get("gpus_per_node") or gpu["gpus_per_node"], input=inp, output=out, mode=mode,
        rate_rps=rate, concurrency=conc, peak_factor=float(peak), prefix_tokens=int(pre.get("shared_tokens", 0)),
        prefix_hit=float(pre.get("hit_rate", 0.0)) if e.get("enable_prefix_caching", eng["prefix_caching_default"]) else 0.0,
        speculative=wl.get("speculative"), kv_offload=off, slo=slo, price_usd_per_gpu_hour=price,
        price_source=price_src, budget_usd_per_month=cost.get("budget_usd_per_month"),
        target_usd_per_mtok=cost.get("target_usd_per_million_output_tokens"),
        buffer_pct=float(cost.get("autoscale_buffer_pct", 20.0 if auto else 0.0)), gpu_memory_utilization=float(gmu),
        max_num_seqs=int(mns), max_num_batched_tokens=int(mbt), max_model_len=int(mml),
        block_size=int(e.get("block_size") or eng["block_size_tokens"]),
        prefix_caching=bool(e.get("enable_prefix_caching", eng["prefix_caching_default"])), chunked_prefill=bool(chunked),
        port=int(e.get("port") or eng["port"]), storage_gb_per_s=float(read), settings=settings,
        ignores=tuple((i["id"], i["reason"], i.get("path")) for i in d.get("checks", {}).get("ignore", [])),
        archetype=arch["id"], calibration=calib, extra_args=tuple(str(a) for a in e.get("extra_args", [])),
        image=e.get("image"), labels=tuple(sorted(d["metadata"].get("labels", {}).items())),
        description=d["metadata"].get("description", ""), owner=d["metadata"].get("owner", ""), storage_kind=source, storage=storage_plan,
        defaults=tuple(defaults))
