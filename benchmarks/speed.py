"""Physics speed: `python benchmarks/speed.py`.

Prints (1) the vectorized evaluator: memory fit + KV pool + decode/prefill step times for N configurations
in one numpy call (GPU x TP x batch x context x precision grid), configurations per second; (2) the
discrete-event simulator: simulated requests per second on the chat example. Targets (issue 12):
>= 5,000,000 configurations/s and >= 50,000 simulated requests/s on this 2-core machine.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner import catalog  # noqa: E402
from planner.evaluate import memory_plan, run_load, step_function, system  # noqa: E402
from planner.physics import arch, memory, serving, step  # noqa: E402
from planner.run import check_spec  # noqa: E402


def vectorized(n: int = 1_000_000) -> float:
    m = catalog.models().get("llama-3.1-70b").entry
    p, lay = arch.params(m), arch.kv_layout(m)
    shp = step.shape(p, lay, m["hidden_size"], arch.attention_flops_per_ctx_token(m), m)
    gpus = [g for g in catalog.raw("gpus")["gpus"] if not g.get("laptop_derating")]
    rng = np.random.default_rng(0)
    gi = rng.integers(0, len(gpus), n)
    bw = np.array([g["memory_bandwidth_tb_per_s"] * 1e12 for g in gpus])[gi]
    fl = np.array([g["dense_tflops"]["bf16"] * 1e12 for g in gpus])[gi]
    mem_total = np.array([g["memory_gib"] * 2**30 for g in gpus])[gi]
    tp = rng.choice([1, 2, 4, 8], n).astype(float)
    wbytes = rng.choice([2.0, 1.0, 0.5625], n)
    kvb = rng.choice([2.0, 1.0], n)
    batch = rng.integers(1, 512, n).astype(float)
    ctx = rng.integers(256, 32768, n).astype(float)
    base = system(check_spec(str(ROOT / "specs" / "chat-llama-3.1-70b.yaml"), breach=False).resolved)
    sysv = replace(base, tp=tp, mem_bw=bw, linear_flops=fl, attn_flops=fl, weight_bytes=wbytes, kv_bytes=kvb)
    t = time.perf_counter()
    w = memory.weight_bytes_per_gpu(p, wbytes, tp, 1)
    pool = memory.kv_pool_bytes_per_gpu("fraction_of_total", mem_total, 0.92, w, 1.5e9, 1.6e9)
    seqs = memory.max_concurrent_seqs(pool, memory.kv_bytes_per_seq_per_gpu(lay, ctx, kvb, tp, 1, 16))
    dec = step.step_time(sysv, shp, batch, ctx, 0.0, 0.0)
    pre = step.step_time(sysv, shp, 0.0, 0.0, 2048.0, 1024.0)
    dt = time.perf_counter() - t
    assert dec.shape == (n,) and pre.shape == (n,) and seqs.shape == (n,) and np.isfinite(dec).all()
    return n / dt


def simulator(n: int = 20_000) -> float:
    res = check_spec(str(ROOT / "specs" / "chat-llama-3.1-70b.yaml"), breach=False)
    r = res.resolved
    mem = memory_plan(r)
    _, _, fn = step_function(r)
    serving._MEMO.clear()  # each run simulates: an identical earlier call would be a memo hit, not a simulation
    t = time.perf_counter()
    run_load(r, mem, fn, rate_fleet=r.rate_rps * r.peak_factor, n_requests=n)
    return n / (time.perf_counter() - t)


if __name__ == "__main__":
    v = max(vectorized() for _ in range(3))
    s = max(simulator() for _ in range(3))
    print(f"vectorized evaluator: {v:,.0f} configurations/s (target >= 5,000,000)")
    print(f"simulator:            {s:,.0f} simulated requests/s (target >= 50,000)")
