"""Verified remediations: every `fix:` planfile prints is an edit of the spec that it applied to a copy
and checked with the same pipeline before offering it.

A fix is a list of edits (JSON pointer -> new value). For each error or warning with a fix generator,
candidate edits are tried in order of their cost (replicas found by bisection: the fewest that resolve
it; one precision step; one tensor-parallel doubling; ...); a candidate is offered only when the copy has
no finding of that id any more and no new error, and it is reported with what it does to the monthly
cost. When nothing tried resolves a finding, the finding says so instead of guessing.

Verification runs the whole check (without the breach-point search unless the finding is about
headroom), within a budget per spec (MAX_TRIALS), so `check` stays fast on a failing spec.
"""

from __future__ import annotations

import copy
import math
from dataclasses import field, replace

from planner.diagnostics import Finding, pointer_parts
from planner.records import record

MAX_TRIALS = 24  # checks of edited copies per spec
MAX_FIXES = 2  # verified fixes shown per finding
MAX_REPLICA_FACTOR = 16  # replicas are searched up to 16x the spec's


@record(frozen=True)
class Edit:
    """One change to a spec value at a JSON pointer: from the old value to the new."""

    pointer: str
    old: object
    new: object

    def to_json(self) -> dict:
        return {"path": self.pointer, "from": self.old, "to": self.new}

    def text(self) -> str:
        key = ".".join(pointer_parts(self.pointer))
        return f"{key}: {_scalar(self.old)} -> {_scalar(self.new)}" if self.old is not None else f"{key}: {_scalar(self.new)}"


@record(eq=False)
class Fix:
    """A verified fix: its edits, their effect on monthly cost, and why a smaller edit would not do."""

    edits: tuple[Edit, ...]
    usd_per_month_delta: float | None = None
    note: str = ""  # what the fix does to the numbers
    minimal: str = ""  # why a smaller edit would not do (replica bisection)

    def to_json(self) -> dict:
        return {"edits": [e.to_json() for e in self.edits], "usd_per_month_delta": self.usd_per_month_delta,
                "note": self.note, "minimal": self.minimal}

    def text(self) -> str:
        s = " + ".join(e.text() for e in self.edits)
        if self.usd_per_month_delta is not None and abs(self.usd_per_month_delta) >= 0.5:
            s += f" ({'+' if self.usd_per_month_delta > 0 else '-'}${abs(self.usd_per_month_delta):,.0f}/month)"
        if self.minimal:
            s += f" ({self.minimal})"
        if self.note:
            s += f"; {self.note}"
        return s


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def get(data, pointer: str):
    node = data
    for p in pointer_parts(pointer):
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def put(data, pointer: str, value) -> None:
    parts = pointer_parts(pointer)
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


@record(eq=False)
class Context:
    """What the generators need: the loaded spec, its result, and the trial budget."""

    loaded: object
    result: object
    trials: int = 0
    cache: dict = field(default_factory=dict)
    fits_alone: list = field(default_factory=list)  # PF201 candidates that fit but break an SLO at any fleet size tried
    # finding id -> (pointer, count, new error ids, result): the fewest replicas that clear it bring new errors
    blocked: dict = field(default_factory=dict)

    def edit(self, pointer: str, new) -> Edit:
        return Edit(pointer, get(self.loaded.data, pointer), new)

    def trial(self, edits: tuple[Edit, ...], breach: bool):
        key = (tuple((e.pointer, repr(e.new)) for e in edits), breach)
        if key in self.cache:
            return self.cache[key]
        if self.trials >= MAX_TRIALS:
            return None
        self.trials += 1
        from planner.loader import Loaded
        from planner.run import check_loaded

        data = copy.deepcopy(self.loaded.data)
        for e in edits:
            put(data, e.pointer, e.new)
        ld = Loaded(self.loaded.path, data, self.loaded.source, [], self.loaded.base_dir)
        res = check_loaded(ld, self.result.spec, breach=breach, fixes=False)
        self.cache[key] = res
        return res


GROWS_WITH_FLEET = frozenset({"PF501", "PF502"})  # errors more replicas can only bring: over budget, cost per token


def by_path(finding: Finding, before: list[Finding]) -> bool:
    """Whether the finding is that check at its spec path: where the original has the check at more than one path
    (a TTFT and an ITL breach are both PF401), a fix for one need not fix the other. Otherwise it is the check
    anywhere (an edit that moves an idle pool's finding to the other pool has not resolved it)."""
    return sum(1 for f in before if f.id == finding.id and not f.waived) > 1


def still_open(finding: Finding, before: list[Finding], after: list[Finding]) -> bool:
    """The finding (judged as `by_path` says) is among the edited spec's findings, not waived."""
    at_path = by_path(finding, before)
    return any(f.id == finding.id and (not at_path or f.pointer == finding.pointer) and not f.waived for f in after)


def resolves(res, finding: Finding, before, ignore: frozenset = frozenset()) -> bool:
    """The edited spec no longer has the finding (still_open) and has no error the original did not (but those in
    `ignore`)."""
    if res is None or res.status == "invalid":
        return False
    if still_open(finding, before.findings, res.findings):
        return False
    old_errors = {(f.id, f.pointer) for f in before.findings if f.severity == "error"}
    return not any(f.severity == "error" and not f.waived and (f.id, f.pointer) not in old_errors and f.id != finding.id
                   and f.id not in ignore for f in res.findings)


def _cost(res) -> float | None:
    c = (res.estimate or {}).get("cost") or {}
    return c.get("usd_per_month")


def _fix(ctx: Context, edits: tuple[Edit, ...], res, **kw) -> Fix:
    base, new = _cost(ctx.result), _cost(res)
    delta = new - base if base is not None and new is not None else None
    return Fix(edits, delta, **kw)


# candidate generators: each yields tuples of edits, cheapest first ---------------------------------------

def _precision_steps(ctx) -> list[tuple[Edit, ...]]:
    r = ctx.result.resolved
    out = []
    if r.weights in ("bf16", "fp16"):
        out.append((ctx.edit("/precision/weights", "fp8"),))
    if r.kv_cache in ("bf16", "fp16"):
        out.append((ctx.edit("/precision/kv_cache", "fp8"),))
    return out


def _expert_comm_steps(ctx) -> list[tuple[Edit, ...]]:
    """DeepEP for the expert all-to-all, then two-batch overlap on top: for a MoE model split by expert
    parallelism over every GPU of its tensor group, on vLLM or SGLang and NVIDIA GPUs (what PF124 admits)."""
    r = ctx.result.resolved
    if not r.model.get("moe") or r.engine["id"] not in ("vllm", "sglang") or r.gpu.get("vendor") != "nvidia":
        return []
    blocks = [r.disagg[role] for role in ("prefill", "decode")] if r.disagg else [{"ep": r.ep, "tp": r.tp}]
    if any(b.get("ep", 1) <= 1 for b in blocks):
        return []
    out = []
    overlap = ctx.edit("/engine/two_batch_overlap", True)
    if r.moe_all_to_all != "deepep" and all(b.get("ep", 1) == b["tp"] for b in blocks):
        deepep = ctx.edit("/engine/moe_all_to_all", "deepep")
        out.append((deepep,))
        if not r.two_batch_overlap:
            out.append((deepep, overlap))
    elif not r.two_batch_overlap:
        out.append((overlap,))
    return out


BUDGET_FLOOR = 512  # the smallest step token budget tried: below it a long prompt needs hundreds of steps to prefill


def _budget_fix(ctx, f: Finding) -> Fix | None:
    """The step's token budget (engine.max_num_batched_tokens: the prompt tokens chunked prefill puts beside
    the decodes in one step) moved the way the finding needs, verified like every fix: halved (down to 512)
    for an inter-token latency that long prefill chunks stretch, doubled (up to the engine's default for the
    GPU) for a TTFT a small budget stretches over many steps. The first that resolves it, at no cost."""
    r = ctx.result.resolved
    if r.disagg or not r.chunked_prefill or r.mode not in ("rate", "concurrency"):
        return None
    itl = f.id == "PF403" or (f.id == "PF401" and f.pointer.startswith("/slo/itl_ms"))
    ttft = f.id == "PF401" and f.pointer.startswith("/slo/ttft_ms")
    cur = int(r.max_num_batched_tokens)
    if itl:  # two halvings, not below the floor
        steps = [b for b in (cur // 2, cur // 4) if b >= BUDGET_FLOOR]
    elif ttft:  # two doublings, not above the engine's default
        from planner.resolve import batch_defaults

        top = int(batch_defaults(r.engine, r.gpu)["max_num_batched_tokens"])
        steps = [b for b in (cur * 2, cur * 4) if b <= top]
    else:
        return None
    had_headroom_warning = any(x.id == "PF402" and not x.waived for x in ctx.result.findings)
    for budget in steps:
        edits = (ctx.edit("/engine/max_num_batched_tokens", budget),)
        res = ctx.trial(edits, False)
        # resolved as the replica search resolves it: never by trading the error for a headroom warning (PF402)
        if (res is not None and resolves(res, f, ctx.result)
                and (had_headroom_warning or not any(x.id == "PF402" and not x.waived for x in res.findings))):
            perf = (res.estimate or {}).get("performance") or {}
            note = ""
            if perf:
                note = (f"{budget:,} prompt tokens per step, not {cur:,}: p95 ITL {perf['itl_ms']['p95']:.0f} ms, "
                        f"p95 TTFT {perf['ttft_ms']['p95']:,.0f} ms at the peak")
            return _fix(ctx, edits, res, note=note)
    return None


def _tp_double(ctx) -> list[tuple[Edit, ...]]:
    r = ctx.result.resolved
    tp = r.tp * 2
    if tp > r.gpus_per_node or r.pp > 1:
        return []
    return [(ctx.edit("/parallelism/tensor", tp), ctx.edit("/hardware/gpus_per_replica", tp * r.pp))]


def _tp_steps(ctx) -> list[tuple[Edit, ...]]:
    r = ctx.result.resolved
    out = []
    tp = r.tp * 2
    while tp <= r.gpus_per_node and r.pp == 1:
        out.append((ctx.edit("/parallelism/tensor", tp), ctx.edit("/hardware/gpus_per_replica", tp)))
        tp *= 2
    return out


def _pool_tp_double(ctx, role: str) -> tuple[Edit, ...] | None:
    """A disaggregated pool's tensor parallelism doubled, within a node (its gpus_per_replica too where the spec
    states it): the prefill pool's for a TTFT that one prompt's prefill alone breaks, the decode pool's for ITL."""
    r = ctx.result.resolved
    p = r.disagg[role]
    tp = p["tp"] * 2
    if tp > r.gpus_per_node or p["pp"] > 1:
        return None
    pool = (ctx.loaded.data.get("disaggregation") or {}).get(role) or {}
    e = (ctx.edit(f"/disaggregation/{role}/parallelism/tensor", tp),)
    if "gpus_per_replica" in pool:
        e += (ctx.edit(f"/disaggregation/{role}/gpus_per_replica", tp),)
    return e


def _replica_pointer(ctx) -> str | None:
    d = ctx.loaded.data
    hw = d.get("hardware") or {}
    if isinstance(hw.get("autoscale"), dict):
        return "/hardware/autoscale/max"
    return "/hardware/replicas"


def _replicas_search(ctx, finding, breach, up: bool, pointer: str | None = None, current: int | None = None,
                     base: tuple[Edit, ...] = ()) -> Fix | None:
    """The fewest replicas that resolve the finding (up) — or, for idle/over-budget findings, the fewest that
    keep every SLO and headroom while resolving it (down) — by bisection on the count, on top of the `base`
    edits (a split that fits, for PF201)."""
    r = ctx.result.resolved
    ptr = pointer or _replica_pointer(ctx)
    cur = current if current is not None else r.replicas
    # an SLO finding at an arrival rate is resolved as plan judges a fleet (plan.passes): at the peak and
    # still with the headroom setting above it (PF402), so a fix never trades an error for that warning
    headroom = up and r.mode == "rate" and finding.id in ("PF202", "PF401", "PF403", "PF409", "PF410")

    def clears(res) -> bool:
        """Resolved but for the errors more replicas only make worse (the budget, the cost per token): monotone in
        the count, so the search doubles and bisects on it, and checks those errors once, at the count it found."""
        return (resolves(res, finding, ctx.result, ignore=GROWS_WITH_FLEET)
                and not (headroom and any(x.id == "PF402" and not x.waived for x in res.findings)))

    def holds(res) -> bool:
        return clears(res) and resolves(res, finding, ctx.result)

    if up:
        lo, hi = cur, None  # the spec's count does not resolve it (on the base edits either: the caller tried them)
        n = cur
        while n < cur * MAX_REPLICA_FACTOR:
            n = max(n + 1, n * 2)
            res = ctx.trial(base + (ctx.edit(ptr, n),), breach)
            if res is None:
                return None
            if clears(res):
                hi = n
                break
            lo = n
        if hi is None:
            return None
    else:
        # an autoscaled fleet's peak count (autoscale.max) goes no lower than its floor (autoscale.min)
        floor = max(r.replicas_min, 1) if r.autoscale and ptr.endswith("/autoscale/max") else 1
        lo, hi = floor - 1, cur
        if cur <= floor or (not ptr.startswith("/disaggregation/") and _slo_misses(ctx.result)):
            # fewer replicas only deepen an SLO finding the spec has already (_no_fix says so); a disaggregated
            # fleet's idle pool is another pool than the one an SLO finding may be about: its trials judge it
            return None
        # one fewer first: a fleet sized to its SLOs breaks one there, and then every smaller count does too (more
        # load per replica never meets an SLO fewer met), so one trial settles it where a bisection took log2(count)
        below = ctx.trial(base + (ctx.edit(ptr, cur - 1),), breach)
        if below is None or not _keeps_slos(below, ctx.result):
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        res = ctx.trial(base + (ctx.edit(ptr, mid),), breach)
        if res is None:
            return None
        ok = clears(res) if up else _keeps_slos(res, ctx.result) and resolves(res, finding, ctx.result)
        if ok:
            hi = mid
        else:
            lo = mid
    if not up and hi == cur:
        return None
    res = ctx.trial(base + (ctx.edit(ptr, hi),), breach)
    if up and clears(res) and not holds(res):
        # the fewest replicas that clear it bring a new error (over budget, say): more only cost more — no fix,
        # and the finding's advice says what stood in the way
        new = sorted({x.id for x in res.findings if x.severity == "error" and not x.waived and x.id != finding.id}
                     - {x.id for x in ctx.result.findings if x.severity == "error"})
        ctx.blocked.setdefault(finding.id, (ptr, hi, new, res))
        return None
    if res is None or not (holds(res) if up else resolves(res, finding, ctx.result) and _keeps_slos(res, ctx.result)):
        return None
    why = f"{hi - 1} would not" + (" resolve it" if up else " keep every SLO")
    if headroom and hi - 1 > cur:
        short = ctx.trial(base + (ctx.edit(ptr, hi - 1),), breach)  # the bisection's last count: cached
        if short is not None and resolves(short, finding, ctx.result):
            why = f"{hi - 1} would leave under {r.settings['headroom_min_pct']:g} % headroom"
    # the count just short of the fix, when it is neither the spec's own (up) nor zero (down)
    told = hi - 1 > cur if up else hi - 1 >= 1
    return _fix(ctx, base + (ctx.edit(ptr, hi),), res, minimal=why if told else "")


def _pools_search(ctx, finding, breach) -> Fix | None:
    """Both pools of a disaggregated fleet grown together (doubling), then each pool's count bisected with
    the other held: the fewest prefill and decode replicas that resolve the finding together."""
    r = ctx.result.resolved
    ptr = {role: f"/disaggregation/{role}/replicas" for role in ("prefill", "decode")}
    cur = {role: r.disagg[role]["replicas"] for role in ("prefill", "decode")}

    def holds(n):
        res = ctx.trial(tuple(ctx.edit(ptr[k], n[k]) for k in ("prefill", "decode")), breach)
        return res if res is not None and resolves(res, finding, ctx.result) else None

    k, n = 2, None
    while k <= MAX_REPLICA_FACTOR:
        cand = {role: cur[role] * k for role in cur}
        if holds(cand):
            n = cand
            break
        k *= 2
    if n is None:
        return None
    for role in ("prefill", "decode"):
        lo, hi = 0, n[role]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if holds({**n, role: mid}):
                hi = mid
            else:
                lo = mid
        n[role] = hi
    res = holds(n)
    if res is None:
        return None
    return _fix(ctx, tuple(ctx.edit(ptr[k], n[k]) for k in ("prefill", "decode")), res,
                minimal="one fewer in either pool would not resolve it")


SLO_IDS = ("PF401", "PF402", "PF202", "PF403", "PF201", "PF409", "PF410")


def _slo_misses(result) -> list[Finding]:
    """The SLO and headroom findings a result has (not waived): a spec with one is short of replicas, so an
    idle-capacity or over-budget finding is never resolved by removing some (the trial would only compare
    finding ids, and a breach that grows keeps its id)."""
    return [f for f in result.findings if f.id in SLO_IDS and not f.waived]


def _keeps_slos(res, before) -> bool:
    had = {f.id for f in before.findings if not f.waived}
    return res.status != "invalid" and not any(f.id in SLO_IDS and f.id not in had and not f.waived for f in res.findings)


def generate(ctx: Context, f: Finding) -> list[Fix]:
    r = ctx.result.resolved
    breach = f.id == "PF402"
    fixed: list[Fix] = []

    def try_edits(cands):
        for edits in cands:
            if len(fixed) >= MAX_FIXES:
                return
            res = ctx.trial(edits, breach)
            if res is not None and resolves(res, f, ctx.result):
                fixed.append(_fix(ctx, edits, res))

    if f.id == "PF201":
        # cheapest first: one precision step, then more tensor parallelism (each doubling up to the node),
        # then both
        steps = _precision_steps(ctx)
        tps = _tp_steps(ctx)
        cands = steps + tps + [s + t for t in tps for s in steps[:1]]
        try_edits(cands)
        if r.mode in ("rate", "concurrency") and not r.disagg:
            # a split that fits but cannot carry the load on the spec's replicas (SLO errors a spec that does
            # not fit could not show): that split and the fewest replicas that carry it, cheapest kept below
            done = {x.edits for x in fixed}
            for edits in cands:
                if edits in done:
                    continue
                res = ctx.trial(edits, breach)
                if res is None or res.status == "invalid" or any(x.id == f.id for x in res.findings):
                    continue
                ctx.fits_alone.append(edits)
                fx = _replicas_search(ctx, f, breach, up=True, base=edits)
                if fx:
                    fixed.append(fx)
                if len(ctx.fits_alone) >= MAX_FIXES:
                    break
    elif f.id in ("PF202", "PF401", "PF402", "PF403", "PF410") and r.disagg:
        # a disaggregated fleet grows the pool the finding is about: prefill for TTFT, decode for the rest
        order = ("prefill", "decode") if "ttft" in f.pointer or f.id == "PF402" else ("decode", "prefill")
        for role in order:
            fx = _replicas_search(ctx, f, breach, up=True, pointer=f"/disaggregation/{role}/replicas",
                                  current=r.disagg[role]["replicas"])
            if fx:
                fixed.append(fx)
                break
        else:
            fx = _pools_search(ctx, f, breach)  # both pools short: grow them together
            if fx:
                fixed.append(fx)
        try_edits(_expert_comm_steps(ctx) + _precision_steps(ctx))
        # the pool's split doubled — a p95 prompt's prefill alone can outlast a TTFT SLO however many replicas
        # there are — on its own, else with the fewest replicas of that pool that then carry the load
        role = order[0]
        tp_e = _pool_tp_double(ctx, role) if f.id != "PF402" and len(fixed) < MAX_FIXES else None
        if tp_e:
            n = len(fixed)
            try_edits([tp_e])
            if len(fixed) == n:
                fx = _replicas_search(ctx, f, breach, up=True, pointer=f"/disaggregation/{role}/replicas",
                                      current=r.disagg[role]["replicas"], base=tp_e)
                if fx:
                    fixed.append(fx)
    elif f.id == "PF409" and not r.disagg:
        # the fewest replicas that deliver the throughput, then one precision step
        fx = _replicas_search(ctx, f, breach, up=True)
        if fx:
            fixed.append(fx)
        try_edits(_precision_steps(ctx))
    elif f.id in ("PF202", "PF401", "PF402", "PF403", "PF410"):
        fx = _budget_fix(ctx, f)
        if fx:
            fixed.append(fx)
        if r.mode in ("rate", "concurrency"):
            fx = _replicas_search(ctx, f, breach, up=True)
            if fx:
                fixed.append(fx)
        tp2 = _tp_double(ctx)
        n = len(fixed)
        try_edits(_expert_comm_steps(ctx) + _precision_steps(ctx) + tp2)
        if tp2 and len(fixed) == n and f.id != "PF402" and r.mode in ("rate", "concurrency") and not r.autoscale:
            # twice the split with the fewest replicas that then carry the load: a long prompt's prefill (TTFT)
            # or a step's weight reads (ITL) that no replica count shortens on the spec's split
            fx = _replicas_search(ctx, f, breach, up=True, base=tp2[0])
            if fx:
                fixed.append(fx)
    elif f.id == "PF305":
        try_edits(_expert_comm_steps(ctx))
    elif f.id == "PF704" and r.disagg:
        # the prefill pool's split, doubled up to the node (gpus_per_replica follows when the spec states it),
        # or one precision step
        pool = (ctx.loaded.data.get("disaggregation") or {}).get("prefill") or {}
        p = r.disagg["prefill"]
        tps, t = [], p["tp"] * 2
        while t <= r.gpus_per_node:
            e = (ctx.edit("/disaggregation/prefill/parallelism/tensor", t),)
            if "gpus_per_replica" in pool:
                e += (ctx.edit("/disaggregation/prefill/gpus_per_replica", t * p["pp"]),)
            tps.append(e)
            t *= 2
        try_edits(_precision_steps(ctx) + tps)
    elif f.id in ("PF701", "PF703") and r.disagg:
        # a faster link between the pools, or (for the transfer's share of TTFT) half the KV bytes
        from planner.disagg import LINK_DEFAULTS

        cands = []
        stated = ((ctx.loaded.data.get("disaggregation") or {}).get("transfer") or {})
        if r.disagg["transfer"]["link"] not in ("rdma", "roce", "nvlink"):
            e = (ctx.edit("/disaggregation/transfer/link", "rdma"),)
            if stated.get("gb_per_s") is not None:  # a stated TCP bandwidth would stay: state RDMA's
                e += (ctx.edit("/disaggregation/transfer/gb_per_s", int(LINK_DEFAULTS["rdma"][0])),)
            cands.append(e)
        if f.id == "PF701" and r.kv_cache not in ("fp8", "int8", "int4", "fp4"):
            cands.append((ctx.edit("/precision/kv_cache", "fp8"),))
        try_edits(cands)
    elif f.id == "PF702" and r.disagg:
        # fewer replicas in the idle pool, as long as every SLO and the headroom still hold
        idle = f.pointer.split("/")[2]
        fx = _replicas_search(ctx, f, breach, up=False, pointer=f"/disaggregation/{idle}/replicas",
                              current=r.disagg[idle]["replicas"])
        if fx:
            fixed.append(fx)
    elif f.id == "PF302" and not r.disagg:
        # the same GPUs as one-GPU replicas, verified: every SLO and the headroom must still hold
        n, hw = r.gpus_per_replica, ctx.loaded.data.get("hardware") or {}
        edits = (ctx.edit("/parallelism/tensor", 1),)
        if r.pp > 1:
            edits += (ctx.edit("/parallelism/pipeline", 1),)
        if "gpus_per_replica" in hw:
            edits += (ctx.edit("/hardware/gpus_per_replica", 1),)
        if isinstance(hw.get("autoscale"), dict):
            edits += (ctx.edit("/hardware/autoscale/min", r.replicas_min * n), ctx.edit("/hardware/autoscale/max", r.replicas * n))
        else:
            edits += (ctx.edit("/hardware/replicas", r.replicas * n),)
        res = ctx.trial(edits, True)
        if res is not None and resolves(res, f, ctx.result) and _keeps_slos(res, ctx.result):
            fixed.append(_fix(ctx, edits, res))
    elif f.id == "PF601" and not r.disagg:
        # a second replica (the autoscaler's floor), verified like any other edit
        hw = ctx.loaded.data.get("hardware") or {}
        if isinstance(hw.get("autoscale"), dict):
            edits = (ctx.edit("/hardware/autoscale/min", 2),)
            if r.replicas < 2:
                edits += (ctx.edit("/hardware/autoscale/max", 2),)
        else:
            edits = (ctx.edit("/hardware/replicas", 2),)
        try_edits([edits])
    elif f.id in ("PF503", "PF404", "PF501"):
        if r.mode in ("rate", "concurrency") and not r.disagg:  # autoscaled: its peak count, autoscale.max
            fx = _replicas_search(ctx, f, breach, up=False)
            if fx:
                fixed.append(fx)
    else:
        return []
    fixed.sort(key=lambda x: (x.usd_per_month_delta if x.usd_per_month_delta is not None else math.inf))
    return fixed[:MAX_FIXES]


GENERATED = ("PF201", "PF202", "PF302", "PF305", "PF401", "PF409", "PF410", "PF402", "PF403", "PF404", "PF501", "PF503", "PF601", "PF701", "PF702", "PF703", "PF704")


def verify(result) -> list[Finding]:
    """The result's findings with verified fixes in place of their static advice."""
    ctx = Context(result.loaded, result)
    out = []
    for f in result.findings:
        if f.id not in GENERATED or f.waived or (f.severity == "info" and f.id != "PF404") or result.resolved is None:
            out.append(f)
            continue
        fixes = generate(ctx, f)
        if f.id == "PF302" and not fixes and not result.resolved.disagg:
            continue  # one-GPU replicas on the same GPUs would break an SLO or the headroom: the split is justified
        if fixes:
            out.append(replace(f, remediation="; or ".join(x.text() for x in fixes),
                               data=dict(f.data, fixes=[x.to_json() for x in fixes])))
        else:
            out.append(replace(f, remediation=_no_fix(ctx, f), data=dict(f.data, fixes=[])))
    return out


def _no_fix(ctx: Context, f: Finding) -> str:
    r = ctx.result.resolved
    if f.id == "PF601":  # its one edit was not verified (the trial budget ran out): the rule's own advice
        return f.remediation
    if f.id in ("PF503", "PF404", "PF501"):
        if r.autoscale and r.replicas <= r.replicas_min:
            return (f"autoscale.max is at autoscale.min ({r.replicas_min}) already: a smaller GPU or another precision "
                    "fills each replica more; `planfile plan` searches them")
        if not r.autoscale and r.replicas <= 1:
            return "one replica already: fewer GPUs per replica, a smaller GPU or another precision; `planfile plan` searches them"
        misses = _slo_misses(ctx.result)
        if misses:
            names = ", ".join(dict.fromkeys(f"{m.id} {m.check}" for m in misses))
            return (f"the spec misses {names} already, which fewer replicas only deepen: resolve that first; "
                    "`planfile plan` searches the GPUs, splits and precisions that fill each replica more")
        if r.autoscale:
            low = ctx.trial((ctx.edit("/hardware/autoscale/max", r.replicas_min),), False)
            if low is not None and any(x.id == f.id for x in low.findings):
                return (f"a lower autoscale.max does not resolve it (even {r.replicas_min}, the autoscale.min, does not): "
                        "a smaller GPU or another precision fills each replica more; `planfile plan` searches them")
            return ("a lower autoscale.max would break an SLO or the headroom at the peak: keep it, or waive this finding "
                    "with the reason")
        one = ctx.trial((ctx.edit(_replica_pointer(ctx), 1),), False)
        if one is not None and any(x.id == f.id for x in one.findings):
            return "fewer replicas do not resolve it (even one replica does not): a smaller GPU or another precision does; `planfile plan`"
        return "fewer replicas would break an SLO or the headroom: keep them, or waive this finding with the reason"
    if f.id in ("PF701", "PF703"):
        return ("no edit planfile tried resolves it (RDMA between the pools, an FP8 KV cache): more tensor parallelism in "
                "both pools (one NIC per rank) or an aggregated plan; `planfile plan` compares them")
    if f.id == "PF704":
        return (f"no edit planfile tried fits the prefill pool on {r.gpu['id']} (one precision step, tensor parallelism "
                f"up to the {r.gpus_per_node}-GPU node): a GPU with more memory; `planfile plan` searches them")
    if f.id == "PF702":
        idle = f.pointer.split("/")[2]
        one = (ctx.trial((ctx.edit(f"/disaggregation/{idle}/replicas", 1),), False)
               if r.disagg[idle]["replicas"] > 1 else ctx.result)
        if one is not None and any(x.id == f.id for x in one.findings):
            return (f"fewer {idle} replicas do not resolve it (even one {idle} replica idles next to the other pool): "
                    f"one {idle} replica carries far more than one replica of the other pool; another split per pool "
                    f"(`planfile plan --disaggregated only`)")
        return f"fewer {idle} replicas would break an SLO or the headroom: keep them, or waive this finding with the reason"
    if f.id == "PF305":
        r = ctx.result.resolved
        return (f"tensor: {max(r.tp // 2, 1)} with more replicas, or a faster link"
                + ("" if not r.model.get("moe") or r.ep <= 1 else " (DeepEP and two-batch overlap, where they apply, did not resolve it)"))
    if f.id == "PF201" and ctx.fits_alone:
        how = " + ".join(e.text() for e in ctx.fits_alone[0])
        return (f"{how} fits it, but no fleet of up to {MAX_REPLICA_FACTOR}x the replicas then meets every SLO: "
                f"a faster GPU or a looser SLO; `planfile plan` searches them")
    if f.id == "PF201":
        return (f"no edit planfile tried fits it on {r.gpu['id']} (FP8 weights or KV, tensor parallelism up to the "
                f"{r.gpus_per_node}-GPU node): a GPU with more memory, or pipeline stages across nodes; `planfile plan` searches them")
    if f.id in ctx.blocked:
        ptr, n, new, res = ctx.blocked[f.id]
        what = "; ".join(f"{x.id} {x.message}" for x in res.findings if x.id in new and not x.waived)
        field_ = ptr.strip("/").replace("/", ".")
        return (f"{field_}: {n} resolves it but brings {what}: change both together, or a cheaper fleet; "
                "`planfile plan` searches them")
    return ("no edit planfile tried resolves it (more replicas, one precision step, tensor parallelism x2): "
            "a faster GPU or a looser SLO; `planfile plan` searches them")


def replacement(loaded, pointer: str):
    """(line, start column, end column) of the scalar value at pointer in the spec file (1-based, end
    exclusive), or None when the value is not a one-line scalar in the file (a key to add, a mapping)."""
    import re

    loc = loaded.source.locs.get(pointer) if loaded is not None and loaded.data is not None else None
    if loc is None or loc.raw is None:
        return None
    try:
        from pathlib import Path

        lines = Path(loaded.path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    line, col = loc.value
    if not (1 <= line <= len(lines)):
        return None
    text = lines[line - 1]
    m = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^\s,}\]#](?:[^,}\]#]*[^\s,}\]#])?').match(text, col - 1)
    if not m:
        return None
    return line, col, m.end() + 1


def sarif_fixes(loaded, uri: str, finding: Finding) -> list[dict]:
    """SARIF `fixes` for a finding's verified fixes whose every edit replaces a scalar in the file."""
    import json

    out = []
    for fx in finding.data.get("fixes") or []:
        reps = []
        for e in fx["edits"]:
            where = replacement(loaded, e["path"])
            if where is None or e["from"] is None:
                reps = None
                break
            line, c0, c1 = where
            reps.append({"deletedRegion": {"startLine": line, "startColumn": c0, "endLine": line, "endColumn": c1},
                         "insertedContent": {"text": json.dumps(e["to"]) if isinstance(e["to"], str) and not e["to"].replace("-", "").isalnum()
                                             else _scalar(e["to"])}})
        if reps:
            desc = " + ".join(f"{'.'.join(pointer_parts(e['path']))}: {_scalar(e['to'])}" for e in fx["edits"])
            out.append({"description": {"text": desc}, "artifactChanges": [{"artifactLocation": {"uri": uri}, "replacements": reps}]})
    return out


def suggestion(loaded, fix: dict) -> str | None:
    """A unified-diff snippet of the lines a fix changes (for a pull-request comment), or None."""
    from pathlib import Path

    try:
        lines = Path(loaded.path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return None
    changed: dict[int, str] = {}
    for e in fix["edits"]:
        where = replacement(loaded, e["path"])
        if where is None or e["from"] is None:
            return None
        line, c0, c1 = where
        text = changed.get(line, lines[line - 1])
        changed[line] = text[:c0 - 1] + _scalar(e["to"]) + text[c1 - 1:]
    out = []
    for line in sorted(changed):
        out += [f"-{lines[line - 1]}", f"+{changed[line]}"]
    return "\n".join(out)
