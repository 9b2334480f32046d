"""`planfile plan`: the cheapest fleet that meets the SLOs, searched over the catalog with the physics.

Search: GPU type x tensor parallel (1, 2, 4, 8 inside a node; pipeline across nodes only when nothing fits
one node) x weight precision x KV precision, with the engine's defaults for each GPU. Every candidate gets
memory fit and saturation throughput analytically (cheap); replicas come from the peak load at a target
utilisation; the cheapest candidates are then verified with the same continuous-batching simulator that
`planfile check` runs, adding replicas until every SLO percentile holds.

A decision tree is applied, and said out loud in each option's "why": one GPU if the model fits;
quantize before splitting; tensor parallelism only over NVLink-class links.
"""

from __future__ import annotations

import math
from dataclasses import field, replace

from planner import catalog
from planner.evaluate import HOURS_PER_MONTH, fleet_gpus, judged_slos, limits, link, link_name, memory_plan, run_load, step_function, tokens_per_step
from planner.physics import serving
from planner.records import record
from planner.resolve import Resolved, batch_defaults, evolve

WEIGHTS_RISK = {"bf16": 0.0, "fp16": 0.0, "fp8": 1.0, "int8": 1.0, "fp4": 2.0, "int4": 2.0}
KV_RISK = {"bf16": 0.0, "fp16": 0.0, "fp8": 0.5, "int8": 0.5, "int4": 2.0}
TARGET_UTILISATION = 0.7  # first guess of replicas: peak load at 70 % of saturation, then verified
VERIFY_TOP = 8
VERIFY_REQUESTS = 800


@record(eq=False)
class Option:
    """One fleet plan considered: the resolved spec, its GPUs, cost and performance at the planned load."""

    r: Resolved
    gpus: int
    usd_per_month: float | None
    saturation_tps: float
    ttft_p95_ms: float | None = None
    itl_p95_ms: float | None = None
    verified: bool = False
    meets_slo: bool = False
    miss: float = math.inf  # worst ratio predicted / SLO (1.0 = on the line)
    risk: float = 0.0
    why: list[str] = field(default_factory=list)
    frontier: bool = False
    one_fewer: int | None = None  # the replica count just below the chosen one (it fails check's SLO verdict)

    def key(self) -> tuple:
        return split_key(self.r) + (self.r.weights, self.r.kv_cache)

    def to_json(self) -> dict:
        r = self.r
        return {"gpu": r.gpu["id"], "gpus_per_replica": r.gpus_per_replica, "replicas": r.replicas,
                "disaggregated": ({k: r.disagg[k] for k in ("prefill", "decode")} if r.disagg else None),
                "tensor": r.tp, "pipeline": r.pp, "expert": r.ep, "attention_data": r.attention_dp,
                "moe_all_to_all": r.moe_all_to_all, "two_batch_overlap": r.two_batch_overlap, "weights": r.weights, "kv_cache": r.kv_cache, "engine": r.engine["id"],
                "gpus": self.gpus, "usd_per_month": _round(self.usd_per_month), "usd_per_gpu_hour": r.price_usd_per_gpu_hour,
                "provider": r.price_provider, "price_kind": _kind(r), "ttft_p95_ms": _round(self.ttft_p95_ms), "itl_p95_ms": _round(self.itl_p95_ms),
                "saturation_output_tokens_per_s": _round(self.saturation_tps), "precision_risk": self.risk,
                "meets_slo": self.meets_slo, "verified": self.verified, "pareto": self.frontier, "why": self.why}


def _round(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(x, 2)


@record(eq=False)
class Constraints:
    """What plan may choose from: GPUs, providers, precisions, a GPU limit and the ranking objective."""

    gpus: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    max_gpus: int | None = None
    precisions: tuple[str, ...] = ()
    no_quantize: bool = False
    objective: str = "cost"
    disaggregated: str = "auto"  # auto | never | only
    kv_caches: tuple[str, ...] = ()  # the spec's own precision.kv_cache, when it states one


@record(eq=False)
class PlanResult:
    """plan's answer: the options that meet every SLO ranked, or the closest miss, and why others were rejected."""

    options: list[Option]  # meeting every SLO, ranked
    closest: Option | None  # when nothing meets the SLOs: the smallest miss
    considered: int
    rejected: dict
    disaggregation: str | None = None  # why a disaggregated fleet was or was not chosen


def variant(base: Resolved, gpu: dict, tp: int, pp: int, weights: str, kv: str, price: dict | None) -> Resolved | None:
    """The base spec on another GPU/split/precision with that engine's defaults and the checkpoint that
    delivers the precision there; None when no checkpoint does (check would refuse it)."""
    from planner.checkpoints import CheckpointError
    from planner.resolve import with_checkpoint

    eng = base.engine
    bd = batch_defaults(eng, gpu)
    mml = base.max_model_len
    # the search splits replicas by tensor and pipeline parallelism only: no expert parallelism, so none of the
    # expert all-to-all settings either (PF124 would refuse them on the written spec)
    v = evolve(base, gpu=gpu, tp=tp, pp=pp, ep=1, attention_dp=1, moe_all_to_all="default", two_batch_overlap=False,
                disagg=None, role="aggregated",  # an aggregated candidate (disaggregated() builds its own pools)
                gpus_per_replica=tp * pp, gpus_per_node=gpu["gpus_per_node"],
                   weights=weights, kv_cache=kv,
                   gpu_memory_utilization=eng["gpu_memory_utilization"], max_num_seqs=bd["max_num_seqs"],
                   max_num_batched_tokens=max(bd["max_num_batched_tokens"], 0 if base.chunked_prefill else mml),
                   price_usd_per_gpu_hour=price["usd_per_gpu_hour"] if price else (
                       base.price_usd_per_gpu_hour if base.price_source.startswith("spec") else None),
                   price_source=price["provider"] if price else (base.price_source if base.price_source.startswith("spec") else ""),
                   price_provider=price["provider"] if price else None, replicas=1, replicas_min=1,
                   autoscale=None if not base.autoscale else base.autoscale)
    try:
        return with_checkpoint(v)
    except CheckpointError:
        return None


def _precisions(base: Resolved, c: Constraints) -> list[tuple[str, str]]:
    if c.no_quantize:
        ws, kvs = ["bf16"], ["bf16"]
    elif c.precisions:
        ws = [p for p in c.precisions if p in WEIGHTS_RISK]
        kvs = ["fp8", "bf16"]
    else:
        ws = ["bf16", "fp8"] + (["int4"] if base.quantized_checkpoint and base.weights == "int4" else [])
        # and what the model's own releases store (gpt-oss ships only MXFP4: without fp4 no checkpoint exists)
        from planner import checkpoints

        released = {checkpoints.formats()[e["format"]]["precision"] for e in checkpoints.entries(base.model["id"])}
        ws += sorted(p for p in released if p not in ws and p in WEIGHTS_RISK and p != "int4")
        kvs = ["fp8", "bf16"]
    if c.kv_caches and not c.no_quantize:
        kvs = [k for k in c.kv_caches]
    return [(w, k) for w in ws for k in kvs]


def _price(gpu_id: str, providers: tuple[str, ...]) -> dict | None:
    ps = catalog.prices_for_gpu(gpu_id)
    if providers:
        ps = [p for p in ps if p["provider"] in providers]
    return ps[0] if ps else None


def candidates(base: Resolved, c: Constraints) -> tuple[list[Option], dict]:
    rejected = {"no_price": 0, "does_not_fit": 0, "engine_vendor": 0, "tp_over_pcie": 0, "heads_indivisible": 0,
                "over_max_gpus": 0, "no_checkpoint": 0}
    out: list[Option] = []
    gpus = [g for g in catalog.raw("gpus")["gpus"] if not g.get("laptop_derating")]
    if c.gpus:
        wanted = {catalog.gpus().get(g).entry["id"] for g in c.gpus if catalog.gpus().get(g).entry}
        gpus = [g for g in gpus if g["id"] in wanted]
    heads = base.model["num_attention_heads"]
    for gpu in gpus:
        if gpu["vendor"] not in base.engine["vendors"]:
            rejected["engine_vendor"] += 1
            continue
        price = None if base.price_source.startswith("spec") else _price(gpu["id"], c.providers)
        if price is None and not base.price_source.startswith("spec"):
            rejected["no_price"] += 1
            continue
        for w, kv in _precisions(base, c):
            fitted = False
            for pp, tp in [(1, 1), (1, 2), (1, 4), (1, 8), (2, 8), (4, 8)]:
                if tp > gpu["gpus_per_node"] or heads % tp:
                    if heads % tp:
                        rejected["heads_indivisible"] += 1
                    continue
                if tp > 1 and link(gpu, tp, gpu["gpus_per_node"])[2] != "nvlink":
                    rejected["tp_over_pcie"] += 1  # TP only over NVLink-class links
                    continue
                if pp > 1 and fitted:
                    break
                v = variant(base, gpu, tp, pp, w, kv, price)
                if v is None:
                    rejected["no_checkpoint"] += 1
                    break
                o = _candidate(v, c, rejected)
                if o is not None:
                    fitted = True
                    out.append(o)
                for ev in _expert_variants(v):  # MoE: the experts split over the replica instead
                    o = _candidate(ev, c, rejected)
                    if o is not None:
                        fitted = True
                        out.append(o)
            if base.model.get("moe"):
                # wide expert parallelism: replicas over several nodes, attention data-parallel in each GPU (no
                # all-reduce crosses a node), the experts split over all of them
                for tp in WIDE_EP_GPUS:
                    if tp <= gpu["gpus_per_node"] or base.model["moe"]["num_experts"] % tp:
                        continue
                    v = variant(base, gpu, tp, 1, w, kv, price)
                    if v is None:
                        rejected["no_checkpoint"] += 1
                        break
                    for ev in _expert_variants(v, wide=True):
                        o = _candidate(ev, c, rejected)
                        if o is not None:
                            out.append(o)
    return out, rejected


WIDE_EP_GPUS = (16, 32, 64)  # replica sizes of wide expert parallelism (2, 4, 8 nodes of 8)


def _expert_variants(v: Resolved, wide: bool = False) -> list[Resolved]:
    """A MoE variant's expert-parallel alternatives: the experts split over every GPU of the replica (EP = TP),
    with tensor-parallel attention (not for a replica over several nodes: its all-reduce would cross them) or
    data-parallel attention, and — where the engine and GPU run it (PF124) — the all-to-all on DeepEP, with
    and without two-batch overlap."""
    moe = v.model.get("moe")
    if not moe or v.tp < 2 or v.pp != 1 or moe["num_experts"] % v.tp:
        return []
    out = [] if wide else [evolve(v, ep=v.tp)]
    dpa = evolve(v, ep=v.tp, attention_dp=v.tp)
    out.append(dpa)
    if v.engine["id"] in ("vllm", "sglang") and v.gpu.get("vendor") == "nvidia":
        out += [evolve(dpa, moe_all_to_all="deepep"), evolve(dpa, moe_all_to_all="deepep", two_batch_overlap=True)]
    return out


def _candidate(v: Resolved, c: Constraints, rejected: dict) -> Option | None:
    """One configuration's option at the replicas its analytic saturation needs, or None (counted in rejected)."""
    from planner import checkpoints

    if checkpoints.shard_misfit(v) is not None:
        rejected["block_shard"] = rejected.get("block_shard", 0) + 1  # PF125: the engine would not load it
        return None
    mem = memory_plan(v)
    if not mem.fits or mem.max_seqs_mean < 1:
        rejected["does_not_fit"] += 1
        return None
    _, _, fn = step_function(v)
    off = serving.steady_offline(fn, limits(v, mem), v.input.mean, v.output.mean, tokens_per_step(v))
    sat_rps = off["requests_per_s"] * v.pp
    if sat_rps <= 0:
        return None
    replicas = _replicas_guess(v, sat_rps)
    if c.max_gpus and replicas * v.gpus_per_replica > c.max_gpus:
        rejected["over_max_gpus"] += 1
        return None
    v = evolve(v, replicas=replicas, replicas_min=replicas)
    return _option(v, off["output_tokens_per_s"] * v.pp)


def split_key(r: Resolved) -> tuple:
    """What tells two configurations of one GPU apart besides precision: the split and how the experts talk."""
    return (r.gpu["id"], r.tp, r.pp, r.ep, r.attention_dp, r.moe_all_to_all, r.two_batch_overlap)


def _replicas_guess(v: Resolved, sat_rps: float) -> int:
    if v.mode == "rate":
        return max(1, math.ceil(v.rate_rps * v.peak_factor / (sat_rps * TARGET_UTILISATION)))
    if v.mode == "concurrency":
        per_replica = limits(v, memory_plan(v)).max_seqs * v.pp  # the batch limit the replica runs (evaluate.batch_cap)
        return max(1, math.ceil(v.concurrency * v.peak_factor / max(per_replica, 1)))
    return max(1, v.replicas)


def _option(v: Resolved, sat_tps: float) -> Option:
    """sat_tps: the whole fleet's saturation throughput when disaggregated, one replica's otherwise."""
    gpus = fleet_gpus(v)
    usd = v.price_usd_per_gpu_hour * gpus * HOURS_PER_MONTH if v.price_usd_per_gpu_hour else None
    return Option(v, gpus, usd, sat_tps if v.disagg else sat_tps * v.replicas,
                  risk=WEIGHTS_RISK[v.weights] + KV_RISK[v.kv_cache])


DISAGG_MIN_INPUT = 1000  # auto: disaggregated candidates for prompts of at least this many tokens on average


def disaggregated(v: Resolved, c: Constraints, beat_usd: float = math.inf, pruned: list | None = None,
                  shapes: tuple | None = None) -> list[Option]:
    """Disaggregated candidates of one GPU/precision variant: the prefill pool at every split from the
    smallest that fits, the decode pool at the smallest and the next; the fewest prefill replicas that hold
    the TTFT SLO (with the decode pool sized generously), then the fewest decode replicas that hold every
    SLO — both with check's own verdict (`passes`). A pair whose pools would cost `beat_usd` or more even
    at saturation (each pool's replicas = peak load / one replica's capacity, rounded up: no fleet can
    carry the load with fewer) is not simulated: it cannot be the cheaper answer. `shapes` = (prefill split,
    decode split), each {tp, ep, adp}: that pair only (a disaggregated spec's own pools, at the fewest
    replicas that hold)."""
    from planner import disagg as D

    if v.mode != "rate":
        return []
    if _disagg_excluded(v) or D.gpu_excluded(v.gpu):  # PF122's rule: check would refuse the written spec
        return []
    # the candidates are planned (and --write pins) the engine release Dynamo's runtime image runs
    v = evolve(v, engine_version=v.engine["dynamo"]["engine_version"])
    slo = judged_slos(v)
    out = []
    from planner import checkpoints

    block = checkpoints.weight_block(v.checkpoint.format, v.engine["id"]) if v.checkpoint is not None else None
    splits = [tp for tp in (1, 2, 4, 8) if tp <= v.gpus_per_node and v.model["num_attention_heads"] % tp == 0
              and (tp == 1 or link(v.gpu, tp, v.gpus_per_node)[2] == "nvlink")
              and not (block and checkpoints.misfit_shard(v.model, tp, 1, 1, block[0], v.engine["id"]))]  # PF125
    peak = v.rate_rps * v.peak_factor * (1 + v.settings["headroom_min_pct"] / 100)

    def pool_of(sp: dict, n: int) -> dict:
        out = {"replicas": n, "tp": sp["tp"], "pp": 1, "gpus_per_replica": sp["tp"], "max_num_seqs": sp.get("max_num_seqs", v.max_num_seqs),
               "max_num_batched_tokens": sp.get("max_num_batched_tokens")}
        for k in ("ep", "adp"):
            if sp.get(k, 1) > 1:
                out[k] = sp[k]
        return out

    def make(sp_p, sp_d, n_p, n_d):
        pools = {"prefill": pool_of(sp_p, n_p), "decode": pool_of(sp_d, n_d),
                 "transfer": {"link": "rdma", "gb_per_s": None, "setup_ms": None, "connector": "nixl"}, "router": "dynamo"}
        return evolve(v, disagg=pools, tp=sp_d["tp"], pp=1, ep=sp_d.get("ep", 1), attention_dp=sp_d.get("adp", 1),
                       gpus_per_replica=sp_d["tp"], replicas=n_d, replicas_min=n_d, autoscale=None)

    fitting = {}
    if shapes is not None:
        fitting = {"prefill": [shapes[0]], "decode": [shapes[1]]}
    else:
        for role in ("prefill", "decode"):
            for tp in splits:
                probe = make({"tp": tp}, {"tp": tp}, 1, 1)
                if D._pool_model(probe, role)[1].fits:
                    # prefill: every larger split too (TTFT falls with TP); decode: the smallest and the next
                    tps = [t for t in splits if t >= tp] if role == "prefill" else [tp] + [t for t in splits if t == 2 * tp]
                    fitting[role] = [{"tp": t} for t in tps]
                    break
    if len(fitting) < 2:
        return []
    for sp_p in fitting["prefill"]:
        for sp_d in fitting["decode"]:
            cap = D.capacity(make(sp_p, sp_d, 1, 1))
            if cap["prefill"] <= 0 or cap["decode"] <= 0:
                continue
            g_p, g_d = sp_p["tp"], sp_d["tp"]
            if v.price_usd_per_gpu_hour:
                floor_gpus = (math.ceil(peak / cap["prefill"] - 1e-9) * g_p + math.ceil(peak / cap["decode"] - 1e-9) * g_d)
                if floor_gpus * v.price_usd_per_gpu_hour * HOURS_PER_MONTH >= beat_usd:
                    if pruned is not None:
                        pruned.append(floor_gpus)
                    continue
            n_p = max(1, math.ceil(peak / cap["prefill"] / TARGET_UTILISATION))
            n_d = max(1, math.ceil(peak / cap["decode"] / TARGET_UTILISATION))

            def ok(np_, nd_, only_ttft=False):
                w = make(sp_p, sp_d, np_, nd_)
                want = {"ttft_ms": slo["ttft_ms"]} if only_ttft and "ttft_ms" in slo else slo
                return passes(w, None, None, want)[0]

            n_p = _fewest(lambda k: ok(k, 2 * n_d + 2, True), n_p)
            if n_p is None:
                continue
            n_d = _fewest(lambda k: ok(n_p, k), n_d)
            if n_d is None:
                continue
            w = make(sp_p, sp_d, n_p, n_d)
            if c.max_gpus and n_p * g_p + n_d * g_d > c.max_gpus:
                continue
            good, perf = passes(w, None, None, slo)
            if not good:
                continue
            o = _option(w, D.capacity(w)["fleet"] * w.output.mean)
            o.verified, o.meets_slo = True, True
            o.ttft_p95_ms, o.itl_p95_ms = perf["ttft_ms"]["p95"], perf["itl_ms"]["p95"]
            o.one_fewer = None
            out.append(o)
    return out


def _own_pools(base: Resolved, c: Constraints) -> tuple | None:
    """(variant, (prefill split, decode split)) of a disaggregated spec on its own GPU and precision, with its
    engine's expert settings, or None (not disaggregated, or its GPU/precision is outside the search)."""
    if not base.disagg or (c.gpus and base.gpu["id"] not in {catalog.gpus().get(g).entry["id"] for g in c.gpus
                                                              if catalog.gpus().get(g).entry}):
        return None
    price = None if base.price_source.startswith("spec") else _price(base.gpu["id"], c.providers)
    if price is None and not base.price_source.startswith("spec"):
        return None
    v = variant(base, base.gpu, 1, 1, base.weights, base.kv_cache, price)
    if v is None:
        return None
    v = evolve(v, moe_all_to_all=base.moe_all_to_all, two_batch_overlap=base.two_batch_overlap)

    def split(role):
        p = base.disagg[role]
        if p["pp"] > 1:
            return None
        return {"tp": p["tp"], "ep": p.get("ep", 1), "adp": p.get("adp", 1), "max_num_seqs": p["max_num_seqs"],
                "max_num_batched_tokens": p.get("max_num_batched_tokens")}

    shapes = (split("prefill"), split("decode"))
    return (v, shapes) if all(shapes) else None


def _fewest(holds, guess: int, limit: int = 512) -> int | None:
    """The smallest count >= 1 for which holds(count) is true: double from the guess, then bisect. A guess that
    holds is tried one lower first: a guess taken from a verified count (PF504 scales its guesses by the spec's
    GPU's) is the answer more often than not, and that settles it in two probes where bisection took log2(guess)."""
    hi = max(guess, 1)
    lo = 0
    if hi > 1 and holds(hi):
        if not holds(hi - 1):
            return hi
        hi -= 1
    while not holds(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _slo_miss(perf: dict, slo: dict) -> float:
    worst = 0.0
    for metric in ("ttft_ms", "itl_ms", "e2e_s"):
        for q, target in (slo.get(metric) or {}).items():
            got = perf[metric].get(q)
            if got is None or not math.isfinite(got):
                return math.inf
            worst = max(worst, got / target)
    return worst


def passes(r: Resolved, mem, fn, slo: dict) -> tuple[bool, dict]:  # mem/fn: None for a disaggregated fleet
    """check's own verdict on the SLOs, through check's own calls: every SLO at the planned peak load
    (evaluate.perf_at, as PF401 runs it) and, for an arrival rate, still at the peak plus the headroom
    setting (as PF402 judges it). (holds, performance at the peak)."""
    from planner.evaluate import check_load, delivered_tokens_per_s, perf_at, saturation_tps, slo_ok, throughput_slo

    need = throughput_slo(r)  # PF409's line, by PF409's rule
    sat = saturation_tps(r, mem, fn) if need and r.mode != "concurrency" else None

    def delivers(perf: dict) -> bool:
        return not need or (delivered_tokens_per_s(r, perf, sat) or 0) >= need

    if sat is not None and not delivers({}):
        return False, {}  # short of the throughput SLO with every request queued: nothing to simulate
    if not slo:
        perf = perf_at(r, mem, fn, check_load(r, mem, fn))
        return delivers(perf), perf
    if r.mode == "rate":
        at = r.rate_rps * r.peak_factor * (1 + r.settings["headroom_min_pct"] / 100)
        if not slo_ok(run_load(r, mem, fn, rate_fleet=at, n_requests=600), slo):
            return False, {}
    perf = perf_at(r, mem, fn, check_load(r, mem, fn))
    return slo_ok(perf, slo) and delivers(perf), perf


def verify(o: Option, max_gpus: int | None, guess: int | None = None) -> Option:
    """The fewest replicas with which the option passes check's SLO verdict: from the utilisation guess (or
    `guess`), double up until it passes, then bisect down to the smallest count that still does (a count one
    lower fails at the peak or breaks the headroom; the option says so). The guess changes how many counts are
    simulated, never the count found."""
    r = o.r
    slo = judged_slos(r)
    mem = memory_plan(r)
    _, _, fn = step_function(r)
    from planner.evaluate import throughput_slo

    if r.mode == "offline" and not throughput_slo(r):
        ok, perf = passes(r, mem, fn, slo)
        return _verified(o, r, perf, ok, None)
    cap = max_gpus // r.gpus_per_replica if max_gpus else None
    cache: dict[int, tuple[bool, dict]] = {}

    def probe(n: int) -> bool:
        if n not in cache:
            cache[n] = passes(evolve(r, replicas=n, replicas_min=n), mem, fn, slo)
        return cache[n][0]

    hi = _fewest(probe, max(guess or r.replicas, 1), min(cap, 4096) if cap else 4096)
    if hi is None:  # no count within the GPU limit passes: the largest tried, as the closest miss
        worst = max(cache)
        return _verified(o, evolve(r, replicas=worst, replicas_min=worst), cache[worst][1], False, None)
    best = evolve(r, replicas=hi, replicas_min=hi)
    return _verified(o, best, cache[hi][1], True, hi - 1 if hi > 1 else None)


def _verified(o: Option, r: Resolved, perf: dict, ok: bool, one_fewer: int | None) -> Option:
    slo = judged_slos(r)
    v = replace(_option(r, o.saturation_tps / max(o.r.replicas, 1)), why=o.why)
    v.verified, v.meets_slo = True, ok
    if perf:
        v.ttft_p95_ms, v.itl_p95_ms = perf["ttft_ms"]["p95"], perf["itl_ms"]["p95"]
        v.miss = _slo_miss(perf, slo) if slo else 0.0
    v.one_fewer = one_fewer
    return v


def _rank_key(objective: str, lo: dict):
    def key(o: Option):
        cost = o.usd_per_month if o.usd_per_month is not None else math.inf
        ttft = o.ttft_p95_ms if o.ttft_p95_ms is not None else math.inf
        if objective == "latency":
            return (ttft, cost)
        if objective == "throughput":
            return (-(o.saturation_tps / cost) if cost else 0.0, cost)
        if objective == "balanced":
            return (cost / lo["cost"] + ttft / lo["ttft"] + 0.25 * o.risk, cost)
        # at equal cost and risk, a fleet that survives a restart (check's PF601 flags a lone replica) before one that
        # does not: 2 x TP1 before 1 x TP2 where one GPU holds the model (PF302 too), then the lower TTFT
        return (cost, o.risk, _single_replica(o.r), ttft)
    return key


def _single_replica(r: Resolved) -> bool:
    return not r.disagg and not r.autoscale and r.replicas <= 1


def pareto(opts: list[Option]) -> None:
    """Mark the options no other option beats on cost, p95 TTFT, precision risk and redundancy (more than one
    replica) at once."""
    def point(o: Option) -> tuple:
        return (o.usd_per_month or math.inf, o.ttft_p95_ms or math.inf, o.risk, _single_replica(o.r))

    for o in opts:
        a = point(o)
        o.frontier = not any(all(x <= y for x, y in zip(point(p), a)) and point(p) != a for p in opts if p is not o)


def explain_choice(o: Option, all_opts: list[Option], base: Resolved, allowed: tuple[str, ...] = ()) -> list[str]:
    r = o.r
    why = []
    same_gpu = [x for x in all_opts if x.r.gpu["id"] == r.gpu["id"]]
    if r.disagg:
        return _explain_disagg(o, all_opts)
    if r.gpus_per_replica == 1:
        why.append(f"{base.model['id']} fits one {r.gpu['id']} at {r.weights} weights: no tensor parallelism (one GPU if the model fits on one)")
    else:
        smaller = sorted((x for x in same_gpu if x.r.gpus_per_replica < r.gpus_per_replica
                          and x.r.weights == r.weights and x.r.kv_cache == r.kv_cache), key=lambda x: x.r.gpus_per_replica)
        group = r.tp // max(r.attention_dp, 1)
        split = (f"TP {r.tp}{f' x PP {r.pp}' if r.pp > 1 else ''} over {link_name(r.gpu, link(r.gpu, r.tp, r.gpus_per_node)[2])}" if r.ep <= 1 else
                 f"experts split over {r.ep} GPUs (EP {r.ep}"
                 + (f", attention data-parallel in {r.attention_dp} groups" if r.attention_dp > 1 else f", attention TP {group}")
                 + (", DeepEP" if r.moe_all_to_all == "deepep" else "") + (" with two-batch overlap" if r.two_batch_overlap else "")
                 + f") over {link_name(r.gpu, link(r.gpu, r.ep, r.gpus_per_node)[2])}")
        if smaller:
            # what the search verified of the smaller splits, not a guess about them
            s0 = smaller[0].r
            held = [x for x in smaller if x.verified and x.meets_slo]
            if held:
                x = min(held, key=lambda x: (x.usd_per_month if x.usd_per_month is not None else math.inf, x.gpus))
                xr, mine, theirs = x.r, o.usd_per_month, x.usd_per_month
                if mine is not None and theirs is not None and theirs > mine:
                    why.append(f"{split}: TP {xr.tp} holds the SLOs only with {xr.replicas} x {xr.gpus_per_replica} GPUs "
                               f"(${theirs:,.0f}/month)")
                elif mine is not None and theirs == mine:
                    why.append(f"{split}: TP {xr.tp} ({xr.replicas} x {xr.gpus_per_replica}) costs the same, at p95 TTFT "
                               f"{x.ttft_p95_ms:.0f} ms vs {o.ttft_p95_ms:.0f} ms here")
                else:
                    why.append(f"{split}: TP {xr.tp} ({xr.replicas} x {xr.gpus_per_replica}, "
                               + (f"${theirs:,.0f}/month" if theirs is not None else "unpriced") + ") ranks lower by the objective")
            elif any(x.verified for x in smaller):
                why.append(f"{split}: TP {s0.tp} also fits but misses an SLO at every replica count tried")
            else:
                why.append(f"{split}: TP {s0.tp} also fits (its KV pool holds {memory_plan(s0).max_seqs_mean} sequences per "
                           "replica), but its estimate cost more, so the search did not simulate it")
        else:
            why.append(f"{split}: the smallest split whose memory holds the model at {r.weights}")
    if r.weights != "bf16" and allowed and "bf16" not in allowed:
        why.append(f"{r.weights} weights: as --precision or the spec's precision.weights states (bf16 not considered)")
    elif r.weights != "bf16":
        bf = [x for x in same_gpu if x.r.weights == "bf16"]
        if not bf or min(x.r.gpus_per_replica for x in bf) > r.gpus_per_replica:
            why.append(f"{r.weights} weights before splitting: bf16 would need "
                       + (f"{min(x.r.gpus_per_replica for x in bf)} GPUs per replica" if bf else "more GPUs than one node"))
        else:
            why.append(f"{r.weights} weights: cheaper than bf16 at the same SLOs (precision risk {o.risk:g})")
    if r.mode == "rate" and o.ttft_p95_ms is not None:
        verb = "hold" if o.meets_slo else "miss the SLOs"
        why.append(f"{r.replicas} replica(s): the simulated p95 TTFT {o.ttft_p95_ms:.0f} ms and ITL {o.itl_p95_ms:.1f} ms "
                   f"{verb} at the peak {r.rate_rps * r.peak_factor:g} req/s plus {r.settings['headroom_min_pct']:g} % headroom"
                   + (f"; {o.one_fewer} would not" if o.meets_slo and o.one_fewer else ""))
    elif r.mode == "concurrency" and o.meets_slo and o.one_fewer:
        why.append(f"{r.replicas} replica(s) hold every SLO at {int(r.concurrency * r.peak_factor)} in flight; {o.one_fewer} would not")
    if o.usd_per_month is not None:
        why.append(f"${o.usd_per_month:,.0f}/month at ${r.price_usd_per_gpu_hour:g}/GPU-hour ({r.price_source or 'spec price'})")
    return why


def _explain_disagg(o: Option, others: list[Option]) -> list[str]:
    from planner import disagg as D

    r = o.r
    p, d = r.disagg["prefill"], r.disagg["decode"]
    why = [f"disaggregated: {p['replicas']} prefill x TP {p['tp']} + {d['replicas']} decode x TP {d['tp']} "
           f"({p['replicas']}P{d['replicas']}D): prompts run only on the prefill pool, so decode batches never "
           f"wait for a prompt and TTFT no longer queues behind decode steps"]
    t = float(D.transfer_s(r, r.input.p95)) * 1000
    why.append(f"each prompt's KV cache crosses {r.disagg['transfer']['link']} ({r.disagg['transfer']['connector']}): "
               f"{t:.1f} ms at the p95 prompt of {int(r.input.p95):,} tokens, inside the p95 TTFT {o.ttft_p95_ms:.0f} ms")
    agg = [x for x in others if not x.r.disagg and x.meets_slo and x.usd_per_month]
    if agg and o.gpus:
        a = min(agg, key=lambda x: x.usd_per_month)
        ratio = (o.saturation_tps / o.gpus) / (a.saturation_tps / a.gpus) if a.gpus and a.saturation_tps else None
        why.append(f"${o.usd_per_month:,.0f}/month vs ${a.usd_per_month:,.0f} for the cheapest aggregated fleet that holds "
                   f"the SLOs ({a.r.replicas} x {a.r.gpus_per_replica} {a.r.gpu['id']})"
                   + (f"; {ratio:.2f}x the output tokens/s per GPU at saturation" if ratio else ""))
    elif o.usd_per_month is not None:
        why.append(f"${o.usd_per_month:,.0f}/month at ${r.price_usd_per_gpu_hour:g}/GPU-hour ({r.price_source or 'spec price'})")
    return why


def _disagg_excluded(v: Resolved) -> str | None:
    """Why this spec's engine cannot be planned as a disaggregated fleet (None: it can). The pools run in
    NVIDIA Dynamo's runtime image, which runs its own engine release: a spec that states another version
    gets no disaggregated candidate."""
    dyn = v.engine.get("dynamo")
    if dyn is None:
        return f"planfile renders them for vLLM and SGLang on NVIDIA Dynamo, not {v.engine['name']}"
    stated = not any(ptr == "/engine/version" for ptr, _, _ in v.defaults)
    if stated and v.engine_version != dyn["engine_version"]:
        return (f"the spec states engine.version {v.engine_version}, and NVIDIA Dynamo {dyn['runtime']}'s runtime image "
                f"runs {v.engine['name']} {dyn['engine_version']} (remove engine.version to compare)")
    return None


def _disagg_verdict(base: Resolved, c: Constraints, ok: list[Option], tried: bool, pruned: list | None = None) -> str | None:
    """One sentence: why the answer is (or is not) a disaggregated fleet."""
    if c.disaggregated == "never":
        return None
    if base.mode != "rate":
        return "disaggregated fleets not considered: planned for an arrival rate only (this spec gives a concurrency or is offline)"
    if not tried:
        return (f"disaggregated fleets not considered: the mean prompt is {base.input.mean:,} tokens (below "
                f"{DISAGG_MIN_INPUT:,}, prefill is too small a share of the work to repay a second pool and the "
                f"KV transfer; --disaggregated only to try)")
    excluded = _disagg_excluded(base)
    if excluded:
        return f"disaggregated fleets not considered: {excluded}"
    dis = [o for o in ok if o.r.disagg]
    agg = [o for o in ok if not o.r.disagg]
    if not dis and pruned and agg:
        ba = min(agg, key=lambda o: o.usd_per_month or math.inf)
        return (f"disaggregated does not pay here: even at saturation the two pools need at least {min(pruned)} GPUs, "
                f"which cost as much as the aggregated answer ({ba.gpus} GPUs, ${ba.usd_per_month:,.0f}/month) or more")
    if not dis:
        return ("no disaggregated fleet holds every SLO (one pool per phase, vLLM or SGLang, RDMA between pools)"
                if c.disaggregated == "only" or not agg else
                "no disaggregated fleet holds every SLO on the GPUs tried (NVIDIA only: Dynamo's runtime images are "
                "CUDA builds); aggregated replicas are the answer")
    if not agg:
        return "only disaggregated fleets hold every SLO"
    bd = min(dis, key=lambda o: o.usd_per_month or math.inf)
    ba = min(agg, key=lambda o: o.usd_per_month or math.inf)
    if (bd.usd_per_month or math.inf) < (ba.usd_per_month or math.inf):
        return (f"disaggregated pays here: ${bd.usd_per_month:,.0f}/month vs ${ba.usd_per_month:,.0f} aggregated "
                f"({bd.gpus} vs {ba.gpus} GPUs)")
    return (f"disaggregated does not pay here: the cheapest such fleet costs ${bd.usd_per_month:,.0f}/month "
            f"({bd.gpus} GPUs) vs ${ba.usd_per_month:,.0f} aggregated ({ba.gpus} GPUs): a second pool and the KV "
            f"transfer cost more than the decode steps the prompts would have stalled")


def search(base: Resolved, c: Constraints, top: int = 5) -> PlanResult:
    cands, rejected = candidates(base, c)
    considered = len(cands) + sum(rejected.values())
    budget = base.budget_usd_per_month
    pre = sorted(cands, key=lambda o: (o.usd_per_month if o.usd_per_month is not None else math.inf, o.risk))
    verified: list[Option] = []
    seen_gpu: dict[str, int] = {}
    seen_split: set = set()
    # verify the cheapest few by their analytic guess: on each GPU type one per tensor-parallel split first
    # (a larger split can need fewer GPUs in all when one GPU's prefill or KV pool is the limit: long
    # contexts), then the remaining precision variants; at most four per GPU so the answer spans the catalog
    order = [o for o in pre if split_key(o.r) not in seen_split and not seen_split.add(split_key(o.r))]
    order += [o for o in pre if o not in order]
    for o in order:
        if seen_gpu.get(o.r.gpu["id"], 0) >= 4:
            continue
        v = verify(o, c.max_gpus)
        seen_gpu[o.r.gpu["id"]] = seen_gpu.get(o.r.gpu["id"], 0) + 1
        verified.append(v)
        if len([x for x in verified if x.meets_slo]) >= 2 * VERIFY_TOP or len(verified) >= 3 * VERIFY_TOP:
            break
    tried = c.disaggregated != "never" and base.mode == "rate" and (c.disaggregated == "only" or base.input.mean >= DISAGG_MIN_INPUT)
    pruned: list = []
    if tried:
        # disaggregated fleets on the GPU types the aggregated search found cheapest (and the spec's own)
        gpus = [o.r for o in sorted((x for x in verified if x.meets_slo), key=lambda x: x.usd_per_month or math.inf)]
        seen, picks = set(), []
        for v in gpus + [o.r for o in pre]:
            key = (v.gpu["id"], v.weights, v.kv_cache)
            if key not in seen and v.engine["id"] in ("vllm", "sglang"):
                seen.add(key)
                picks.append(v)
            if len(picks) >= 2:
                break
        # only a disaggregated fleet cheaper than the cheapest aggregated one can change the answer
        # (unless asked for disaggregated fleets only); with a budget, anything within it is worth showing
        best = min((o.usd_per_month for o in verified if o.meets_slo and o.usd_per_month), default=math.inf)
        beat = math.inf if c.disaggregated == "only" else best
        for v in picks:
            verified += disaggregated(v, c, beat, pruned)
        own = _own_pools(base, c)
        if own is not None:  # a disaggregated spec's own pool splits, at the fewest replicas that hold
            verified += disaggregated(own[0], c, beat, pruned, shapes=own[1])
        if c.disaggregated == "only":
            verified = [o for o in verified if o.r.disagg]
    ok = [o for o in verified if o.meets_slo and (not budget or (o.usd_per_month or 0) <= budget)]
    if budget:
        rejected["over_budget"] = len([o for o in verified if o.meets_slo and (o.usd_per_month or 0) > budget])
    lo = {"cost": min((o.usd_per_month for o in ok if o.usd_per_month), default=1.0),
          "ttft": min((o.ttft_p95_ms for o in ok if o.ttft_p95_ms), default=1.0)}
    ok.sort(key=_rank_key(c.objective, lo))
    pareto(ok)
    for o in ok[:top]:
        o.why = explain_choice(o, cands + ok, base, c.precisions)
    closest = None
    if not ok and verified:
        closest = min(verified, key=lambda o: (o.miss if not (o.meets_slo and budget) else (o.usd_per_month or 0) / budget))
        closest.why = explain_choice(closest, cands, base, c.precisions)
    return PlanResult(ok[:top], closest, considered, rejected, _disagg_verdict(base, c, ok, tried, pruned))


def _kind(r: Resolved) -> str | None:
    if not r.price_provider:
        return None
    return (catalog.price(r.price_provider, r.gpu["id"]) or {}).get("kind", "on-demand")
