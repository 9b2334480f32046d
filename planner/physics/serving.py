"""Serving model: continuous batching with chunked prefill, analytically and as a discrete-event simulation.

The simulator advances one virtual engine iteration by iteration, but jumps over runs of identical
pure-decode iterations in one go (between an arrival, a completion and a KV-pool event the batch does
not change, and the step time only drifts with the growing context), so it runs tens of thousands of
requests per second. Scheduling follows vLLM V1: FCFS admission while the batch limit, the token budget
and free KV blocks allow; decodes first, then prompt chunks up to the token budget; when the KV pool
is full the newest running request is preempted and later recomputed (`max-utilization`); or, as
TensorRT-LLM's default GUARANTEED_NO_EVICT, a request is admitted only when the blocks for its whole
sequence (prompt plus requested output) are free, and nothing is ever preempted (`no_evict`).

A run ends when its last request finishes: the horizon is bounded by events (iterations), never by a
simulated-time limit, so a light load or a long output is simulated to completion.

`step_fn(decode, decode_ctx, prefill, prefill_ctx) -> seconds` is the step-time model (physics.step).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

import numpy as np

from planner.records import record


class Draws:
    """The seeded random variates of one simulation: the bits from the interpreter's Mersenne Twister
    (random.Random(seed).getrandbits: the generator's raw words, the same on every platform; Python documents
    only random()'s sequence as fixed across versions, so tests/physics/test_draws.py pins the first value),
    turned into variates by numpy in whole arrays: 53-bit uniforms, exponentials by inversion, normals by
    Box-Muller. numpy.random would do the same, but importing it takes ~14 ms (with the OpenSSL it loads
    through `secrets`), about a twentieth of a cold check."""

    def __init__(self, seed: int):
        self._bits = random.Random(int(seed))

    def uniform(self, n: int) -> np.ndarray:
        """n draws in [0, 1): the top 53 bits of 64 random bits, scaled."""
        if not n:
            return np.zeros(0)
        words = np.frombuffer(self._bits.getrandbits(64 * n).to_bytes(8 * n, "little"), dtype="<u8")
        return (words >> np.uint64(11)) * (1.0 / 9007199254740992.0)  # 2**-53

    def exponential(self, scale: float, n: int) -> np.ndarray:
        return -scale * np.log1p(-self.uniform(n))  # 1 - u is in (0, 1]: a finite logarithm

    def lognormal(self, mu: float, sigma: float, n: int) -> np.ndarray:
        r = np.sqrt(-2.0 * np.log1p(-self.uniform(n)))
        return np.exp(mu + sigma * r * np.cos(2.0 * math.pi * self.uniform(n)))


@record(frozen=True)
class Lengths:
    """A token-length distribution: lognormal through p50 and p95, capped at max."""

    mean: float
    p50: float
    p95: float
    max: float

    @property
    def fixed(self) -> bool:
        return self.p50 == self.p95 == self.max

    def sample(self, rng: Draws, n: int) -> np.ndarray:
        if self.fixed or self.p95 <= self.p50:
            return np.full(n, int(round(self.mean)), dtype=np.int64)
        sigma = math.log(self.p95 / self.p50) / 1.6448536269514722
        x = rng.lognormal(math.log(self.p50), sigma, n)
        return np.clip(np.round(x), 1, self.max).astype(np.int64)


@record(frozen=True)
class Limits:
    """The engine's batch bounds for one virtual engine."""

    max_seqs: int
    token_budget: int  # tokens per iteration (max-num-batched-tokens)
    kv_tokens: int  # KV pool in tokens (per sequence token cost already folded in)
    block: int = 16
    no_evict: bool = False  # admit only whole sequences (prompt + output) that fit; never preempt


@record(eq=False)
class SimResult:
    """One simulated run of a virtual engine: per-request latencies, per-token gaps and the run's totals."""

    ttft_s: np.ndarray
    e2e_s: np.ndarray
    itl_s: np.ndarray  # per-token gaps (weighted sample: values)
    itl_w: np.ndarray  # weights (number of tokens with that gap)
    duration_s: float
    output_tokens: int
    completed: int
    preemptions: int
    mean_batch: float
    steps: int = 0
    truncated: bool = False  # stopped at max_steps with requests unfinished
    prompt_tokens: np.ndarray | None = None  # prompt length of each request in ttft_s/e2e_s, same order

    def pct(self, which: str, q: float) -> float:
        """The q-th percentile of TTFT, end-to-end latency or the token-weighted ITL. The sorted ITL and the
        usual percentiles (50, 90, 95, 99) of each metric are computed once per result: every consumer asks
        for the same few, several times (check, its fixes, the report)."""
        memo = self.__dict__.setdefault("_pct_memo", {})
        got = memo.get((which, q))
        if got is None:
            if q in _USUAL_Q and (which, _USUAL_Q[0]) not in memo:
                memo.update(zip(((which, x) for x in _USUAL_Q), self._quantiles(which, list(_USUAL_Q))))
                got = memo[which, q]
            else:
                got = memo[which, q] = self._quantiles(which, [q])[0]
        return got

    def _quantiles(self, which: str, qs: list[float]) -> list[float]:
        if which == "itl":
            if not len(self.itl_s):
                return [float("nan")] * len(qs)
            order = np.argsort(self.itl_s)
            vals = self.itl_s[order]
            cw = np.cumsum(self.itl_w[order])
            return [float(vals[np.searchsorted(cw, q / 100.0 * cw[-1])]) for q in qs]
        arr = self.ttft_s if which == "ttft" else self.e2e_s
        if not len(arr):
            return [float("nan")] * len(qs)
        if not np.isfinite(arr).all():  # unfinished requests: no interpolation between inf and inf
            return [float(x) for x in np.percentile(arr, qs, method="inverted_cdf")]
        return linear_percentiles(np.sort(arr).tolist(), qs)

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.duration_s if self.duration_s > 0 else 0.0


def linear_percentiles(ordered: list[float], qs) -> list[float]:
    """np.percentile(a, qs) (method "linear", Hyndman & Fan 7) of finite values, given sorted: the same
    floating-point operations in the same order, so bit for bit the same numbers, without numpy's per-call
    machinery or the numpy.ma import its first call costs a cold check."""
    n = len(ordered)
    out = []
    for q in qs:
        virtual = (n - 1) * (q / 100)
        if virtual >= n - 1:
            out.append(ordered[-1])
            continue
        lo = math.floor(virtual)
        a, b = ordered[lo], ordered[lo + 1]
        t = virtual - lo
        diff = b - a
        out.append(b - diff * (1 - t) if t >= 0.5 else a + diff * t)
    return out


_USUAL_Q = (50, 90, 95, 99)  # the percentiles check, sweep and the report read
_MEMO: dict = {}  # (step model, every argument) -> SimResult, within a process
# A persistent memo across processes, injected at the edge (planner.cache.SimStore, set by the CLI): an
# object with get(key) -> SimResult | None and put(key, SimResult). Physics itself does no I/O.
STORE = None


def simulate(step_fn, limits: Limits, inp: Lengths, out: Lengths, *, rate_rps: float | None = None,
             concurrency: int | None = None, n_requests: int = 2000, seed: int = 0,
             prefix_tokens: int = 0, prefix_hit: float = 0.0, tokens_per_step: float = 1.0,
             warmup_frac: float = 0.1, max_steps: int | None = None) -> SimResult:
    """Simulate one virtual engine, or return the result of an identical earlier call: check, its fixes
    and PF504's plan search probe the same configuration at the same load more than once. A step model
    with a `key` (planner.physics.step: its generated source, every constant) is memoised by that key and
    every argument; a result's arrays are shared, never written to."""
    key = getattr(step_fn, "key", None)
    if key is not None:
        memo_key = (key, limits, inp, out, rate_rps, concurrency, n_requests, seed, prefix_tokens, prefix_hit,
                    tokens_per_step, warmup_frac, max_steps)
        hit = _MEMO.get(memo_key)
        if hit is not None:
            return hit
        hit = STORE.get(memo_key) if STORE is not None else None  # arrays already read-only
        if hit is None:
            hit = _simulate(step_fn, limits, inp, out, rate_rps=rate_rps, concurrency=concurrency, n_requests=n_requests,
                            seed=seed, prefix_tokens=prefix_tokens, prefix_hit=prefix_hit, tokens_per_step=tokens_per_step,
                            warmup_frac=warmup_frac, max_steps=max_steps)
            if STORE is not None:
                STORE.put(memo_key, hit)
            for a in (hit.ttft_s, hit.e2e_s, hit.itl_s, hit.itl_w, hit.prompt_tokens):
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False
        if len(_MEMO) >= 256:
            _MEMO.clear()
        _MEMO[memo_key] = hit
        return hit
    return _simulate(step_fn, limits, inp, out, rate_rps=rate_rps, concurrency=concurrency, n_requests=n_requests,
                     seed=seed, prefix_tokens=prefix_tokens, prefix_hit=prefix_hit, tokens_per_step=tokens_per_step,
                     warmup_frac=warmup_frac, max_steps=max_steps)


def _simulate(step_fn, limits: Limits, inp: Lengths, out: Lengths, *, rate_rps: float | None = None,
              concurrency: int | None = None, n_requests: int = 2000, seed: int = 0,
              prefix_tokens: int = 0, prefix_hit: float = 0.0, tokens_per_step: float = 1.0,
              warmup_frac: float = 0.1, max_steps: int | None = None) -> SimResult:
    """Simulate one virtual engine. Exactly one of rate_rps (Poisson open loop), concurrency (closed
    loop: a new request the moment one finishes) or neither (offline: all queued at t=0).

    warmup_frac: the first requests left out of the percentiles (steady state); 0 for a finite run in
    which every request counts, as a benchmark reports it. max_steps bounds the iterations (default: far
    above what n requests need; a run cut there reports its unfinished requests as unbounded latency).

    prefix_tokens/prefix_hit: a cached shared prefix skips that much prefill for hits.
    tokens_per_step: mean tokens a decode step emits per sequence (speculative decoding > 1).
    """
    rng = Draws(seed)
    n = int(n_requests)
    step_decode = None  # step_fn(decode, decode_ctx, 0, 0.0) without the prompt terms, where generated
    if n >= 64 and hasattr(step_fn, "hot"):
        if hasattr(step_fn, "hot_decode"):
            step_decode = step_fn.hot_decode()  # bit for bit the same value, without the prompt terms
        step_fn = step_fn.hot()  # the generated function itself: stepped thousands of times, no wrapper per step
    prompts = inp.sample(rng, n)
    outs = np.maximum(out.sample(rng, n), 1)
    hits = rng.uniform(n) < prefix_hit
    cached = np.where(hits, np.minimum(prefix_tokens, prompts - 1), 0)
    if rate_rps:
        arrivals = np.cumsum(rng.exponential(1.0 / rate_rps, n))
    else:
        arrivals = np.zeros(n)
    closed = concurrency is not None and not rate_rps
    if max_steps is None:
        # every iteration either carries a prompt chunk or ends a pure-decode run at an event (an arrival,
        # a completion, a full pool): ~ 4 n events plus the chunks of every prompt (twice, for recomputes)
        chunks = int(prompts.sum() // max(limits.token_budget // 2, 1))
        max_steps = 8 * n + 4 * chunks + 10_000
    # per-request state as Python lists: element access in the event loop is ~5x faster than numpy's
    first = [math.nan] * n
    done_t = [math.nan] * n
    to_prefill = (prompts - cached).astype(np.int64).tolist()
    ctx = [0] * n  # tokens in KV
    generated = [0] * n
    next_arrival = 0  # index of the next request to arrive
    release = n
    if closed:
        release = min(concurrency, n)
        arrivals[:release] = 0.0
        arrivals[release:] = np.inf
    arrivals = arrivals.tolist()
    prompts, outs, cached = prompts.tolist(), outs.tolist(), cached.tolist()
    waiting: deque[int] = deque()
    prefilling: list[int] = []  # admitted, prompt not finished (FCFS)
    # decoding requests: finish when the global decode counter reaches their target
    heap: list[tuple[float, int]] = []
    decoding: set[int] = set()
    # decoding requests in the order they started decoding (lazily pruned): the newest is the preemption victim
    newest: list[int] = []
    target: dict[int, float] = {}  # the heap entry of each decoding request (older entries are stale)
    g = 0.0  # decode steps taken by every decoding sequence so far (scaled by tokens_per_step)
    start_g: dict[int, float] = {}
    sum_ctx0 = 0.0  # sum over decoding of (ctx at decode start - start_g)
    used_kv = 0  # KV tokens held by prefilling sequences (decoding ones: derived)
    reserved = 0  # no-evict: KV tokens reserved for the whole sequences of every admitted request
    no_evict = limits.no_evict
    preempted_now = False  # an iteration that preempted admits nothing (vLLM V1 scheduler)
    held = [0] * n  # KV tokens a prefilling request holds
    booked = [0] * n  # no-evict reservation of each admitted request
    t = 0.0
    itl_vals: list[float] = []
    itl_w: list[float] = []
    preempt = 0
    out_tokens = 0
    batch_acc = 0.0
    time_acc = 0.0
    finished = 0
    blk = limits.block
    max_seqs, kv_tokens, token_budget = limits.max_seqs, limits.kv_tokens, limits.token_budget
    # the KV tokens decoding sequences hold: sum_ctx0 + len(decoding) * g + len(decoding) * blk / 2, written
    # out where it is needed (the hot loop; a closure call per use costs more than the arithmetic)
    ceil, isnan, inf = math.ceil, math.isnan, math.inf
    itl_append, w_append = itl_vals.append, itl_w.append
    heappush, heappop = heapq.heappush, heapq.heappop
    whole_tokens = tokens_per_step == 1.0  # one token per step: the emitted count is an integer already

    steps = 0
    while finished < n:
        steps += 1
        if steps > max_steps:
            break
        while next_arrival < n and arrivals[next_arrival] <= t:
            waiting.append(next_arrival)
            next_arrival += 1
        L = len(decoding)  # unchanged while admitting: admitted requests start prefilling
        running = L + len(prefilling)
        # admission (FCFS, head-of-line): a batch slot and KV blocks for the prompt (plus what a preempted
        # request had generated, recomputed with it) — or, no-evict, for the whole sequence to completion
        while waiting and running < max_seqs and not preempted_now:
            r = waiting[0]
            if no_evict:
                whole = prompts[r] + outs[r] + blk
                if reserved + whole > kv_tokens and running > 0:
                    break
                reserved += whole
                booked[r] = whole
            else:
                need = prompts[r] + generated[r] + blk
                if sum_ctx0 + L * g + L * blk / 2 + used_kv + need > kv_tokens and running > 0:
                    break
            waiting.popleft()
            prefilling.append(r)
            ctx[r] = cached[r] if not generated[r] else 0
            held[r] = to_prefill[r] + (cached[r] if not generated[r] else 0)
            used_kv += held[r]
            running += 1
        preempted_now = False
        D = len(decoding)
        if D == 0 and not prefilling:
            if next_arrival >= n:
                break
            t = max(t, arrivals[next_arrival])
            continue
        # build this iteration's prefill chunk
        budget = token_budget - D if token_budget > D else 0
        chunk: list[tuple[int, int]] = []
        P = 0
        pctx = 0.0
        for r in prefilling:
            if budget <= 0:
                break
            take = to_prefill[r]
            if budget < take:
                take = budget
            chunk.append((r, take))
            pctx += take * (ctx[r] + take / 2.0)
            P += take
            budget -= take
        dkv = sum_ctx0 + D * g + D * blk / 2
        mean_dctx = (dkv / D) if D else 0.0
        if P:
            dt = float(step_fn(D, mean_dctx, P, pctx / P))
            k = 1
        else:
            # pure decode run: until a completion, an arrival that can be admitted, or the KV pool fills
            while heap and target.get(heap[0][1]) != heap[0][0]:
                heappop(heap)  # entries of preempted requests off the top: the next completion is heap[0]
            # (conditional expressions, not max()/min() calls: this runs on every pure-decode run)
            k_done = ceil((heap[0][0] - g) / tokens_per_step) if heap else 1
            if k_done < 1:
                k_done = 1
            k = k_done
            dt0 = None
            if next_arrival < n and arrivals[next_arrival] < inf and D < max_seqs:
                dt0 = float(step_decode(D, mean_dctx) if step_decode else step_fn(D, mean_dctx, 0, 0.0))
                k_arr = ceil((arrivals[next_arrival] - t) / (dt0 if dt0 > 1e-9 else 1e-9))
                if k_arr < 1:
                    k_arr = 1
                if k_arr < k:
                    k = k_arr
            free = kv_tokens - (dkv + used_kv)
            dtok = D * tokens_per_step
            k_kv = int(free // (dtok if dtok > 1 else 1)) if not no_evict else k
            if k_kv < 1:
                # KV pool full: preempt the newest decoding request (vLLM recompute policy)
                if D > 1:
                    # the request that started decoding last (vLLM preempts the tail of its running queue)
                    victim = newest.pop()
                    while victim not in decoding:
                        victim = newest.pop()
                    decoding.discard(victim)
                    del target[victim]  # its heap entry is stale from here on
                    sum_ctx0 -= ctx[victim] - start_g[victim]
                    gen = int(generated[victim] + (g - start_g[victim]) / tokens_per_step * tokens_per_step)
                    generated[victim] = min(gen, outs[victim])
                    to_prefill[victim] = int(prompts[victim] + generated[victim])
                    ctx[victim] = 0
                    waiting.appendleft(victim)
                    preempt += 1
                    preempted_now = True
                    continue
                k_kv = 1
            if k_kv < k:
                k = k_kv
            if k < 1:
                k = 1
            if k == 1 and dt0 is not None:
                dt = dt0  # a one-step run at the context just stepped: the same call
            else:
                ctx_mid = mean_dctx + (k - 1) / 2.0 * tokens_per_step
                dt = float(step_decode(D, ctx_mid) if step_decode else step_fn(D, ctx_mid, 0, 0.0))
        span = dt * k
        t += span
        batch_acc += (D + len(chunk)) * span
        time_acc += span
        if D:
            itl_append(dt / tokens_per_step)
            w_append(D * k * tokens_per_step)
            out_tokens += D * k if whole_tokens else int(round(D * k * tokens_per_step))
            g += k * tokens_per_step
        # finish prefill chunks: a finished prompt emits its first token at the end of this step
        for r, take in chunk:
            to_prefill[r] -= take
            ctx[r] += take
            if to_prefill[r] <= 0:
                prefilling.remove(r)
                used_kv -= held[r]
                if isnan(first[r]):
                    first[r] = t
                    generated[r] = 1
                    out_tokens += 1
                if generated[r] >= outs[r]:
                    done_t[r] = t
                    finished += 1
                    reserved -= booked[r]
                    if closed and release < n:
                        arrivals[release] = t
                        release += 1
                    continue
                decoding.add(r)
                newest.append(r)
                start_g[r] = g
                sum_ctx0 += ctx[r] - g
                x = target[r] = g + (outs[r] - generated[r])
                heappush(heap, (x, r))
        while heap and heap[0][0] <= g + 1e-9:
            x, r = heappop(heap)
            if target.get(r) != x:  # preempted since (or finished): a stale entry
                continue
            del target[r]
            decoding.discard(r)
            sum_ctx0 -= ctx[r] - start_g[r]
            done_t[r] = t
            finished += 1
            reserved -= booked[r]
            if closed and release < n:
                arrivals[release] = t
                release += 1
    arrivals = np.asarray(arrivals, dtype=float)
    first = np.asarray(first, dtype=float)
    done_t = np.asarray(done_t, dtype=float)
    ok = ~np.isnan(done_t)
    skip = int(n * warmup_frac) if n >= 50 else 0
    sel = ok.copy()
    sel[:skip] = False
    ttft = (first - arrivals)[sel]
    e2e = (done_t - arrivals)[sel]
    plen = np.asarray(prompts, dtype=float)
    lens = plen[sel]
    if not ok.all():
        # requests still queued when the simulation stopped: unbounded latency
        ttft = np.concatenate([ttft, np.full(int((~ok).sum()), np.inf)])
        e2e = np.concatenate([e2e, np.full(int((~ok).sum()), np.inf)])
        lens = np.concatenate([lens, plen[~ok]])
    return SimResult(ttft, e2e, np.asarray(itl_vals), np.asarray(itl_w), t, out_tokens, int(ok.sum()), preempt,
                     batch_acc / time_acc if time_acc else 0.0, steps, not ok.all(), lens)


def steady_offline(step_fn, limits: Limits, isl: float, osl: float, tokens_per_step: float = 1.0) -> dict:
    """Maximum throughput with every request queued (trtllm-bench / vllm bench throughput), analytic.

    In steady state completions equal admissions: D/OSL sequences finish per step while the token
    budget admits (budget - D)/ISL prompts, so D <= budget x OSL/(ISL + OSL); the KV pool bounds D by
    kv_tokens / (ISL + OSL/2) on average; the batch limit by max_seqs.
    """
    seq_tokens = isl + osl / 2.0 + limits.block / 2.0
    d_kv = limits.kv_tokens / seq_tokens
    d_budget = limits.token_budget * osl / tokens_per_step / (isl + osl / tokens_per_step)
    D = max(min(limits.max_seqs, d_kv, d_budget), 0.0)
    P = D * isl / (osl / tokens_per_step)
    dt = step_fn(D, isl + osl / 2.0, P, isl / 2.0) if D > 0 else float("inf")
    dt = float(dt) if np.ndim(dt) == 0 else dt  # a vectorized step_fn (calibration grids) keeps its array
    return {"batch": D, "step_s": dt, "output_tokens_per_s": D * tokens_per_step / dt if D > 0 else 0.0,
            "requests_per_s": D * tokens_per_step / osl / dt if D > 0 else 0.0,
            "bound": "kv_cache" if D == d_kv else ("token_budget" if D == d_budget else "max_seqs")}
