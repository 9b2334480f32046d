"""Derive compact kernel-efficiency curves from NVIDIA's aiconfigurator-core wheel (Apache-2.0): measured
per-kernel latency tables for GEMMs, attention, MoE and all-reduce per GPU and framework.

    python -m venv /tmp/kv && /tmp/kv/bin/pip install pyarrow pandas scipy pyyaml numpy
    /tmp/kv/bin/pip download --no-deps aiconfigurator-core==0.12.0 -d /tmp/aic
    /tmp/kv/bin/python tools/fit_kernels.py /tmp/aic/aiconfigurator_core-0.12.0-*.whl > catalog/kernels.yaml

Only the fitted parameters (a few per GPU x framework x precision x kernel) are written; the raw tables are
not copied into planfile. The wheel's `systems/silicon_sample.csv` (end-to-end measurements) is reserved as
an independent test of planfile: this script never opens it (it reads `systems/data/**.parquet` only).

Functional forms (times in seconds, sizes in bytes, efficiencies relative to the catalog's peaks):
- GEMM (M tokens, N x K weights of b bytes): t = t0 + max(2NK(M + m_half) / (P x e_max), (NKb + 2M(N+K)) / (B x e_mem))
  i.e. compute efficiency ramps as e_max x M / (M + m_half) on the token count M. `small_m_vs_bf16`: the
  format's latency over bf16's at M <= 64 in the same table (planner.kernels passes over a fit far above 1:
  host work, not GPU time)
- decode attention (paged): t = t0 + KV bytes read / (B x e)
- prefill attention (flash, causal): t = t0 + FLOPs / (P16 x e_max x S / (S + s_half)), FLOPs = 2 x 2 x heads x
  head_dim x S^2 / 2 per sequence of S tokens
- MoE grouped GEMM: as GEMM, with M = tokens x top-k / experts per expert, summed over the experts that get
  tokens; `imbalance` = latency ratio of the power-law(1.2) to the balanced token distribution
- all-reduce of S bytes over n GPUs: t = a + S/B_inf + S (1/B_0 - 1/B_inf) / (1 + S/S_c)
- DeepEP dispatch and combine (SGLang's wide-EP tables, per node count and kernel mode): the same form on
  the tokens per rank, t = a + n/R_inf + n (1/R_0 - 1/R_inf) / (1 + n/n_c), with the shape measured (hidden,
  top-k, experts) written beside it; a dispatch's time is its transmit plus its notify (the metadata
  exchange the normal kernels wait for), at the most SMs measured
"""

from __future__ import annotations

import glob
import io
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = {"a100_sxm": "a100-sxm-80gb", "l40s": "l40s", "h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm", "b200_sxm": "b200",
           "gb200": "gb200", "b300_sxm": "b300", "gb300": "gb300", "rtx_pro_6000_server": "rtx-pro-6000"}
FRAMEWORKS = ("trtllm", "vllm", "sglang")
GEMM_DTYPES = {"bfloat16": ("bf16", 2.0, "bf16"), "fp8": ("fp8", 1.0, "fp8"), "fp8_block": ("fp8-block", 1.0, "fp8"),
               "nvfp4": ("nvfp4", 0.5625, "fp4"), "int4_wo": ("int4", 0.5195, "bf16"), "int8_wo": ("int8-wo", 1.0, "bf16"),
               "sq": ("int8-w8a8", 1.0, "int8")}
MOE_DTYPES = {"bfloat16": ("bf16", 2.0, "bf16"), "fp8": ("fp8", 1.0, "fp8"), "fp8_block": ("fp8-block", 1.0, "fp8"),
              "nvfp4": ("nvfp4", 0.5625, "fp4"), "w4a16_mxfp4": ("mxfp4", 0.53125, "bf16")}


def version_key(v: str):
    parts = []
    for p in v.replace("rc", ".rc.").replace("post", ".post.").replace("dev", ".dev.").split("."):
        parts.append((0, int(p)) if p.isdigit() else (1, p))
    return parts


def latest(data: Path, system: str, op: str, fw: str, name: str) -> Path | None:
    files = glob.glob(str(data / system / op / fw / "*" / name))
    if not files:
        return None
    return Path(max(files, key=lambda f: version_key(Path(f).parent.name)))


class TooFew(Exception):
    pass


def fit(residual, x0, lo, hi):
    if residual(np.asarray(x0, float)).size < 30:
        raise TooFew
    r = least_squares(residual, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1)
    err = np.exp(np.abs(residual(r.x))) - 1
    return r.x, float(np.median(err)), float(np.percentile(err, 90))


def _gemm_rows(df: pd.DataFrame) -> pd.DataFrame:
    d = df[(df.n >= 1024) & (df.k >= 1024) & (df.n <= 32768) & (df.k <= 32768)]
    return d.groupby(["m", "n", "k"], as_index=False).latency.min()  # the fastest kernel the engine offers


def small_m_vs_bf16(df: pd.DataFrame, bf16: pd.DataFrame) -> float | None:
    """Median, over the shapes measured in both, of this format's latency over the same table's bf16 latency at
    M <= 64 tokens. There a GEMM streams its weights: a format with no more weight bytes than bf16 takes at
    most about as long. A ratio far above 1 is not GPU time but per-call host work the table measured
    (vLLM 0.24's block-FP8 tables: 3.7-41x, the same size-independent 60-280 us at M = 1 and M = 8192 on a
    2048 x 2048 GEMM), which CUDA-graph replay removes in serving."""
    a = _gemm_rows(df)
    b = _gemm_rows(bf16)
    j = a[a.m <= 64].merge(b, on=["m", "n", "k"], suffixes=("", "_bf16"))
    if len(j) < 30:
        return None
    return round(float((j.latency / j.latency_bf16).median()), 2)


def fit_gemm(df: pd.DataFrame, peak: float, bw: float, wbytes: float) -> dict:
    d = _gemm_rows(df)
    M, N, K = (d[c].to_numpy(float) for c in ("m", "n", "k"))
    t = d.latency.to_numpy(float) * 1e-3

    def model(p):
        t0, emax, mh, em = p
        return t0 * 1e-6 + np.maximum(2 * N * K * (M + mh) / (peak * emax), (N * K * wbytes + 2 * M * (N + K)) / (bw * em))

    x, med, p90 = fit(lambda p: np.log(model(p) / t), [5, 0.7, 64, 0.8], [0, 0.02, 0, 0.05], [200, 1.3, 20000, 1.3])
    return {"t0_us": round(x[0], 2), "e_max": round(x[1], 4), "m_half": round(x[2], 1), "e_mem": round(x[3], 4),
            "rows": int(len(t)), "median_err_pct": round(med * 100, 1), "p90_err_pct": round(p90 * 100, 1)}


def _full_attention(df: pd.DataFrame) -> pd.DataFrame:
    """Rows without a sliding window (older tables have no window_size column: all full attention)."""
    return df[df.window_size == 0] if "window_size" in df.columns else df


def fit_decode_attention(df: pd.DataFrame, bw: float, kvb: float) -> dict:
    d = _full_attention(df)
    d = d[d.head_dim == 128]
    d = d.groupby(["batch_size", "step", "num_key_value_heads", "num_heads"], as_index=False).latency.min()
    B_, S, H = (d[c].to_numpy(float) for c in ("batch_size", "step", "num_key_value_heads"))
    t = d.latency.to_numpy(float) * 1e-3
    byt = B_ * (S + 1) * H * 128 * 2 * kvb

    def model(p):
        return p[0] * 1e-6 + byt / (bw * p[1])

    x, med, p90 = fit(lambda p: np.log(model(p) / t), [5, 0.6], [0, 0.02], [200, 1.3])
    return {"t0_us": round(x[0], 2), "e": round(x[1], 4), "rows": int(len(t)), "median_err_pct": round(med * 100, 1),
            "p90_err_pct": round(p90 * 100, 1)}


def fit_prefill_attention(df: pd.DataFrame, peak16: float) -> dict:
    d = _full_attention(df)
    d = d[(d.head_dim == 128) & (d.attn_dtype == "bfloat16") & (d.isl >= 16)]
    d = d.groupby(["batch_size", "isl", "num_heads", "num_key_value_heads"], as_index=False).latency.min()
    B_, S, H = (d[c].to_numpy(float) for c in ("batch_size", "isl", "num_heads"))
    t = d.latency.to_numpy(float) * 1e-3
    flops = B_ * 4 * H * 128 * S * S / 2

    def model(p):
        return p[0] * 1e-6 + flops * (S + p[2]) / S / (peak16 * p[1])

    x, med, p90 = fit(lambda p: np.log(model(p) / t), [10, 0.5, 512], [0, 0.02, 0], [500, 1.3, 100000])
    return {"t0_us": round(x[0], 2), "e_max": round(x[1], 4), "s_half": round(x[2], 1), "rows": int(len(t)),
            "median_err_pct": round(med * 100, 1), "p90_err_pct": round(p90 * 100, 1)}


def fit_allreduce(df: pd.DataFrame) -> dict:
    out = {}
    for n, g in df.groupby("num_gpus"):
        g = g.groupby("message_size", as_index=False).latency.min()
        S = g.message_size.to_numpy(float) * 2  # elements of bf16
        t = g.latency.to_numpy(float) * 1e-3

        def model(p):
            a, b0, binf, sc = p[0] * 1e-6, p[1] * 1e9, p[2] * 1e9, p[3] * 1e6
            return a + S / binf + S * (1 / b0 - 1 / binf) / (1 + S / sc)

        try:
            x, med, p90 = fit(lambda p: np.log(model(p) / t), [5, 20, 300, 2], [0.1, 0.1, 1, 0.001], [500, 5000, 5000, 10000])
        except TooFew:
            if len(t) < 8:
                continue
            r = least_squares(lambda p: np.log(model(p) / t), [5, 20, 300, 2], bounds=([0.1, 0.1, 1, 0.001], [500, 5000, 5000, 10000]))
            x = r.x
            err = np.exp(np.abs(np.log(model(x) / t))) - 1
            med, p90 = float(np.median(err)), float(np.percentile(err, 90))
        out[int(n)] = {"latency_us": round(x[0], 2), "small_gb_per_s": round(x[1], 2), "large_gb_per_s": round(x[2], 1),
                       "knee_mb": round(x[3], 3), "median_err_pct": round(med * 100, 1), "p90_err_pct": round(p90 * 100, 1)}
    return out


def fit_moe(df: pd.DataFrame, peak: float, bw: float, wbytes: float) -> dict:
    d = df[(df.distribution == "balanced") & (df.moe_tp_size == 1)].copy()
    if len(d) < 20:
        return {}
    d = d.groupby(["num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_ep_size"], as_index=False).latency.min()
    T, Hd, I, k, E, ep = (d[c].to_numpy(float) for c in ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_ep_size"))
    t = d.latency.to_numpy(float) * 1e-3
    El = E / ep  # experts on this rank
    routed = T * k / ep  # token-expert pairs on this rank (balanced)
    active = El * (1 - (1 - 1 / El) ** np.maximum(routed, 0))  # experts that get at least one token
    per = np.maximum(routed / np.maximum(active, 1e-9), 1)
    w = 3 * Hd * I  # gate, up and down matrices of one expert

    def model(p):
        t0, emax, mh, em = p
        comp = 2 * w * routed * (per + mh) / per / (peak * emax)
        mem = (active * w * wbytes + 2 * routed * (2 * Hd + 2 * I)) / (bw * em)
        return t0 * 1e-6 + np.maximum(comp, mem)

    x, med, p90 = fit(lambda p: np.log(model(p) / t), [20, 0.5, 32, 0.6], [0, 0.02, 0, 0.05], [2000, 1.3, 20000, 1.3])
    imb = df[(df.moe_tp_size == 1) & df.distribution.isin(["balanced", "power_law_1.2"])]
    piv = imb.groupby(["num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_ep_size", "distribution"]).latency.min().unstack()
    ratio = (piv["power_law_1.2"] / piv["balanced"]).dropna() if "power_law_1.2" in piv else pd.Series(dtype=float)
    ratio = ratio[[i[0] >= 64 for i in ratio.index]] if len(ratio) else ratio
    return {"t0_us": round(x[0], 2), "e_max": round(x[1], 4), "m_half": round(x[2], 1), "e_mem": round(x[3], 4),
            "imbalance": round(float(ratio.median()), 3) if len(ratio) else 1.0,
            "rows": int(len(t)), "median_err_pct": round(med * 100, 1), "p90_err_pct": round(p90 * 100, 1)}


DEEPEP_SHAPE = (7168, 8, 256)  # DeepSeek-V3/R1 (hidden, top-k, experts): the one shape measured over 1-8 nodes


def deepep_table(data: Path, system: str, fw: str, mode: str) -> tuple[pd.DataFrame, str] | None:
    """Every version's rows of one DeepEP table at DEEPEP_SHAPE; per node count the newest version that measured it."""
    files = sorted(glob.glob(str(data / system / "comm" / fw / "*" / f"wideep_deepep_{mode}_perf.parquet")),
                   key=lambda f: version_key(Path(f).parent.name))
    parts, seen, versions = [], set(), []
    for f in reversed(files):  # newest first
        d = pd.read_parquet(f)
        d = d[(d.hidden_size == DEEPEP_SHAPE[0]) & (d.num_topk == DEEPEP_SHAPE[1]) & (d.num_experts == DEEPEP_SHAPE[2])]
        new = sorted(set(d.node_num.unique()) - seen)
        if new:
            parts.append(d[d.node_num.isin(new)])
            seen |= set(new)
            versions.append(f"{Path(f).parent.name} ({'/'.join(str(int(n)) for n in new)} nodes)")
    return (pd.concat(parts), ", ".join(versions)) if parts else None


def fit_deepep(df: pd.DataFrame, mode: str) -> dict:
    """{nodes: {dispatch: curve, combine: curve}} of one DeepEP table (tokens per rank -> microseconds)."""
    out = {}
    if mode == "normal":
        df = df.assign(dispatch=df.dispatch_transmit_us + df.dispatch_notify_us, combine=df.combine_transmit_us + df.combine_notify_us)
    else:
        df = df.assign(dispatch=df.dispatch_avg_t_us, combine=df.combine_avg_t_us)
    shape = None
    for n, g in df.groupby("node_num"):
        if "dispatch_sms" in g.columns:
            g = g[g.dispatch_sms == g.dispatch_sms.max()]
        g = g[g.num_experts == g.num_experts.min()]
        shape = {"hidden": int(g.hidden_size.iloc[0]), "topk": int(g.num_topk.iloc[0]), "experts": int(g.num_experts.iloc[0])}
        e = {}
        for op in ("dispatch", "combine"):
            h = g.groupby("num_token", as_index=False)[op].median()
            x = h.num_token.to_numpy(float)
            t = h[op].to_numpy(float) * 1e-6
            if len(t) < 8:
                continue

            def model(p):
                a, r0, rinf, nc = p[0] * 1e-6, p[1] * 1e6, p[2] * 1e6, p[3]
                return a + x / rinf + x * (1 / r0 - 1 / rinf) / (1 + x / nc)

            r = least_squares(lambda p: np.log(model(p) / t), [20, 0.5, 5, 64], bounds=([0.1, 0.001, 0.01, 0.1], [2000, 1000, 1000, 1e6]),
                              loss="soft_l1", f_scale=0.1)
            err = np.exp(np.abs(np.log(model(r.x) / t))) - 1
            e[op] = {"latency_us": round(r.x[0], 2), "small_tokens_per_us": round(r.x[1], 4), "large_tokens_per_us": round(r.x[2], 4),
                     "knee_tokens": round(r.x[3], 2), "rows": int(len(t)), "median_err_pct": round(float(np.median(err)) * 100, 1),
                     "p90_err_pct": round(float(np.percentile(err, 90)) * 100, 1)}
        if len(e) == 2:
            out[int(n)] = e
    return {"shape": shape, "nodes": out} if out else {}


def tried(fn, *a):
    try:
        return fn(*a)
    except TooFew:
        return None


def main(wheel: str) -> None:
    gpus = {g["id"]: g for g in yaml.safe_load((ROOT / "catalog" / "gpus.yaml").read_text())["gpus"]}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if "/systems/data/" in n and n.endswith(".parquet")]
            assert not any("silicon_sample" in n for n in names)
            for n in names:
                z.extract(n, tmp)
        data = Path(tmp) / "aiconfigurator_core" / "systems" / "data"
        for system, gid in SYSTEMS.items():
            g = gpus[gid]
            bw = g["memory_bandwidth_tb_per_s"] * 1e12
            tf = g["dense_tflops"]
            entry: dict = {}
            for fw in FRAMEWORKS:
                e: dict = {}
                f = latest(data, system, "gemm", fw, "gemm_perf.parquet")
                if f is not None:
                    df = pd.read_parquet(f)
                    e["version"] = f.parent.name
                    e["gemm"] = {}
                    for dt, (name, wb, math_p) in GEMM_DTYPES.items():
                        sub = df[df.gemm_dtype == dt]
                        if len(sub) > 100 and tf.get(math_p):
                            r = tried(fit_gemm, sub, tf[math_p] * 1e12, bw, wb)
                            ratio = small_m_vs_bf16(sub, df[df.gemm_dtype == "bfloat16"]) if dt != "bfloat16" else None
                            if r and ratio is not None:
                                r["small_m_vs_bf16"] = ratio
                            if r:
                                e["gemm"][name] = r
                f = latest(data, system, "attention", fw, "generation_attention_perf.parquet")
                if f is not None:
                    df = pd.read_parquet(f)
                    e["decode_attention"] = {}
                    for kvd, (name, kvb) in {"bfloat16": ("bf16", 2.0), "fp8": ("fp8", 1.0)}.items():
                        sub = df[df.kv_cache_dtype == kvd]
                        if len(sub) > 100:
                            r = tried(fit_decode_attention, sub, bw, kvb)
                            if r:
                                e["decode_attention"][name] = r
                f = latest(data, system, "attention", fw, "context_attention_perf.parquet")
                if f is not None:
                    r = tried(fit_prefill_attention, pd.read_parquet(f), tf["bf16"] * 1e12)
                    if r:
                        e["prefill_attention"] = r
                f = latest(data, system, "moe", fw, "moe_perf.parquet")
                if f is not None:
                    df = pd.read_parquet(f)
                    e["moe"] = {}
                    for dt, (name, wb, math_p) in MOE_DTYPES.items():
                        sub = df[df.moe_dtype == dt]
                        if len(sub) > 100 and tf.get(math_p):
                            m = tried(fit_moe, sub, tf[math_p] * 1e12, bw, wb)
                            if m:
                                e["moe"][name] = m
                f = latest(data, system, "comm", fw, "custom_allreduce_perf.parquet")
                nccl = sorted(glob.glob(str(data / system / "comm" / "nccl" / "*" / "nccl_perf.parquet")), key=lambda x: version_key(Path(x).parent.name))
                if f is not None or nccl:
                    parts = []
                    if f is not None:
                        df = pd.read_parquet(f)
                        if "backend" in df.columns and (df.backend == "vllm_graph").any():
                            df = df[df.backend == "vllm_graph"]  # CUDA-graph captured, as in serving
                        parts.append(df[["num_gpus", "message_size", "latency"]])
                    if nccl:
                        nd = pd.read_parquet(nccl[-1])
                        nd = nd[(nd.op_name == "all_reduce") & (nd.nccl_dtype == "half")]
                        parts.append(nd[["num_gpus", "message_size", "latency"]])
                    df = pd.concat(parts)
                    df["num_gpus"] = df.num_gpus.astype(int)
                    df["message_size"] = df.message_size.astype(int)
                    # engines switch between their custom all-reduce and NCCL by size: the faster one per size
                    e["allreduce"] = fit_allreduce(df)
                deepep = {}
                for mode, name in (("normal", "normal"), ("ll", "low_latency")):
                    got = deepep_table(data, system, fw, mode)
                    if got is not None:
                        d = fit_deepep(got[0], mode)
                        if d:
                            deepep[name] = dict(d, version=got[1])
                if deepep:
                    e["deepep"] = deepep
                if e:
                    entry[fw] = e
            out[gid] = entry
    doc = {"source": f"fitted by tools/fit_kernels.py from {Path(wheel).name} (NVIDIA aiconfigurator-core, Apache-2.0), "
                     "systems/data/<gpu>/<op>/<framework>/<latest version>/*.parquet; efficiencies relative to catalog/gpus.yaml peaks",
           "kernels": out}
    def plain(x):
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        return x

    doc = plain(doc)
    buf = io.StringIO()
    buf.write("# Kernel efficiency curves per GPU x framework, fitted by tools/fit_kernels.py (see its docstring for the\n"
              "# functional forms). Regenerate, do not edit. median/p90 errors are of the fit against the measured table.\n")
    yaml.safe_dump(doc, buf, sort_keys=False, width=120)
    sys.stdout.write(buf.getvalue())


if __name__ == "__main__":
    main(sys.argv[1])
