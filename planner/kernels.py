"""The kernel curves a configuration runs with: from catalog/kernels.yaml (fitted to measured kernel tables)
for the GPU and engine, or borrowed from the nearest measured GPU — and then said so.

Efficiencies are dimensionless (fractions of each GPU's own peak FLOP/s and bandwidth) and floors are
times, so a curve measured on an H200 transfers to an H200 NVL or a GH200 through their own peaks; it
transfers less well across vendors, which is why a borrowed curve is reported (`provenance`) and widens
the error band (planner.accuracy).
"""

from __future__ import annotations

import math
from functools import lru_cache

from planner import catalog
from planner.physics.step import Collective, Gemm
from planner.records import record

# GPUs without kernel tables use the measured GPU of the same architecture; vendors without any use the
# nearest NVIDIA part by generation and a vendor factor fitted end to end (catalog/efficiency.yaml).
BORROW = {
    "a100-sxm-40gb": "a100-sxm-80gb", "a100-pcie-80gb": "a100-sxm-80gb", "a10": "a100-sxm-80gb", "a10g": "a100-sxm-80gb",
    "l4": "l40s", "rtx-4090": "l40s", "rtx-4090-laptop": "l40s",
    "h100-pcie": "h100-sxm", "h100-nvl": "h100-sxm", "gh200": "h200-sxm", "gh200-144gb": "h200-sxm", "h200-nvl": "h200-sxm",
    "rtx-5090": "rtx-pro-6000", "rtx-5090-laptop": "rtx-pro-6000",
    "mi250x": "a100-sxm-80gb", "mi300x": "h200-sxm", "mi325x": "h200-sxm", "mi355x": "b200",
    "gaudi3": "h200-sxm", "tpu-v5e": "a100-sxm-80gb", "tpu-v6e": "h200-sxm",
}
FORMAT_KERNEL = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8-block": "fp8-block", "nvfp4": "nvfp4", "mxfp4": "bf16",
                 "awq": "int4", "gptq": "int4", "int8-w8a8": "int8-w8a8"}
MOE_KERNEL = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8-block": "fp8-block", "nvfp4": "nvfp4", "mxfp4": "mxfp4",
              "awq": "bf16", "gptq": "bf16", "int8-w8a8": "fp8"}
# weight bytes per parameter of each GEMM kernel's format: a curve borrowed from another format keeps its
# efficiencies, but its small-M term (2NK x m_half / peak: time proportional to the weight matrix, which at
# small M is the weight stream) scales with the bytes the borrowing format actually streams
KERNEL_WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8-block": 1.0, "int8-w8a8": 1.0, "nvfp4": 0.5625, "int4": 0.5}
NET_LATENCY_S, NET_BW = 30e-6, 50e9  # InfiniBand/RoCE, 400 Gb/s per GPU
PCIE_BW = {3: 12e9, 4: 25e9, 5: 50e9, 6: 100e9}


@lru_cache(maxsize=None)
def table() -> dict:
    return catalog.raw("kernels")["kernels"]


@record(frozen=True, eq=False)
class KernelSet:
    """Measured kernel efficiencies of one GPU for the step model: GEMMs, MoE, attention and collectives."""

    gemm: Gemm
    gemm16: Gemm
    moe: Gemm
    moe_imbalance: float
    decode_attn: tuple  # (t0 s, efficiency)
    prefill_attn: tuple  # (t0 s, e_max, s_half)
    allreduce: Collective | None
    alltoall: Collective | None
    p2p: Collective | None
    provenance: tuple  # ((what, where it came from), ...)
    measured_gpu: str
    borrowed: bool


def _gemm(d: dict) -> Gemm:
    return Gemm(d["t0_us"] * 1e-6, d["e_max"], d["m_half"], d["e_mem"])


def _frameworks(entry: dict, engine: str) -> list[str]:
    order = [engine] + [f for f in ("trtllm", "vllm", "sglang") if f != engine]
    return [f for f in order if f in entry]


def _find(entry: dict, engine: str, path: tuple):
    """(value, framework) of the first framework (the spec's engine first) that has `path`."""
    for fw in _frameworks(entry, engine):
        node = entry[fw]
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None:
            return node, fw
    return None, None


HOST_BOUND = 2.5  # small-M latency over bf16's above which a GEMM table measured host work (tools/fit_kernels.py)


def _usable_gemm(cand: dict) -> bool:
    """A GEMM fit of a format with at most bf16's weight bytes that planfile trusts: at <= 64 tokens (weight
    streaming) it takes at most HOST_BOUND x bf16's time in the same table. vLLM 0.24's block-FP8 tables take
    3.7-41x (a size-independent 60-280 us per call): CUDA-graph replay removes that in serving."""
    return cand.get("small_m_vs_bf16", 1.0) <= HOST_BOUND


def _usable_moe(cand: dict) -> bool:
    """A grouped-GEMM fit planfile trusts: a close fit and a physical one (the memory side far below any tuned
    kernel marks an untuned configuration in the tables)."""
    return cand.get("median_err_pct", 0) <= 25 and cand["e_max"] >= 0.15 and cand["e_mem"] >= 0.3


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


@lru_cache(maxsize=None)
def moe_transfer(engine: str, fmt: str, exclude: str) -> tuple | None:
    """How the measured grouped-GEMM curves relate to the dense GEMM curve of the same GPU, framework and
    format, over every other GPU where both were measured and the grouped-GEMM fit is usable (the engine's
    own framework when it has any such GPU, else every framework): medians of the compute-efficiency ratio
    e_max(MoE)/e_max(GEMM), the small-M ramp ratio m_half(MoE)/m_half(GEMM), the memory-efficiency ratio
    (at most 1: a grouped GEMM streams its experts' weights no faster than a dense GEMM streams its own), the
    floor t0 (absolute, us) and the load imbalance. None when no GPU has both."""
    rows: dict[str, list] = {}
    for gid, entry in table().items():
        if gid == exclude:
            continue
        for fw, v in entry.items():
            if not isinstance(v, dict):
                continue
            mo = (v.get("moe") or {}).get(fmt)
            gemms = v.get("gemm") or {}
            de = gemms.get(fmt) or gemms.get(FORMAT_KERNEL.get(fmt, "bf16"))
            if mo is None or de is None or not _usable_moe(mo) or de["e_max"] <= 0 or de["e_mem"] <= 0 or de["m_half"] <= 0:
                continue
            rows.setdefault(fw, []).append((mo["e_max"] / de["e_max"], mo["m_half"] / de["m_half"], mo["e_mem"] / de["e_mem"],
                                            mo["t0_us"], float(mo.get("imbalance", 1.0)), gid))
    use = rows.get(engine) or [x for fw in sorted(rows) for x in rows[fw]]
    if not use:
        return None
    cols = list(zip(*use))
    return (_median(list(cols[0])), _median(list(cols[1])), min(1.0, _median(list(cols[2]))), _median(list(cols[3])),
            _median(list(cols[4])), tuple(sorted(set(cols[5]))), engine if rows.get(engine) else "every framework")


def _collective(curves: dict | None, n: int) -> Collective | None:
    if not curves:
        return None
    sizes = sorted(int(k) for k in curves)
    pick = min(sizes, key=lambda s: (abs(s - n), -s))
    c = curves[pick] if pick in curves else curves[str(pick)]
    # beyond the measured group size the ring's per-GPU traffic grows by (n-1)/n: scale the latency term
    lat = c["latency_us"] * 1e-6 * (max(n, pick) / pick)
    return Collective(lat, c["small_gb_per_s"] * 1e9, c["large_gb_per_s"] * 1e9, c["knee_mb"] * 1e6)


def _link_collective(gpu: dict, n: int, gpus_per_node: int) -> Collective:
    """A collective from the link's nominal speed when no curve was measured (75 % of it; ~1 ms knee)."""
    ic = gpu["interconnect"]
    if n > gpus_per_node:
        return Collective(NET_LATENCY_S, NET_BW * 0.2, NET_BW, 4e6)
    if ic.get("nvlink_gb_per_s_bidirectional") and n <= ic.get("nvlink_domain_gpus", 1):
        bw = ic["nvlink_gb_per_s_bidirectional"] / 2 * 1e9 * 0.75
        return Collective(8e-6, bw * 0.1, bw, 2e6)
    bw = PCIE_BW.get(ic.get("pcie_gen") or 4, 25e9) * 0.75
    return Collective(25e-6, bw * 0.2, bw, 2e6)


def units_touched(experts: int, k: int, units: int) -> float:
    """Expected distinct units (GPUs, or nodes) that k distinct experts, drawn uniformly from `experts` spread
    evenly over `units`, land on: units x (1 - P(a unit gets none)), P = prod_i (E - E/U - i) / (E - i)."""
    per = experts / units
    p = 1.0
    for i in range(k):
        p *= max(experts - per - i, 0.0) / (experts - i)
    return units * (1.0 - p)


DEEPEP_FP8_BYTES = 1 + 4 / 128  # DeepEP dispatches FP8 with one FP32 scale per 128 channels (DeepEP README)


def deepep(gpu: dict, engine: str, mode: str, ep: int, gpus_per_node: int, hidden: int, experts: int, k: int,
           fp8_dispatch: bool) -> tuple:
    """(step.DeepEP, provenance) of one expert-parallel group: SGLang's measured DeepEP dispatch and combine
    tables (aiconfigurator-core, fitted by tools/fit_kernels.py) at the group's node count, for this GPU or
    the nearest GPU that has them. vLLM runs the same library, so it takes the same curves.

    The tables measured DeepSeek-V3's shape; another model's token moves a different number of bytes, so
    it is worth `scale` measured tokens: the normal kernels send a token once per node it reaches (once per
    GPU inside one node), the low-latency kernels once per expert it reaches; bytes scale with hidden, and a
    16-bit dispatch (no FP8 experts) moves 2 / (1 + 4/128) times the FP8 bytes."""
    from planner.physics.step import DeepEP

    nodes = max(1, math.ceil(ep / gpus_per_node))
    order = [gpu["id"], BORROW.get(gpu["id"]), "h200-sxm", "h100-sxm"]
    parts, where = {}, []
    for kind in ("normal", "low_latency"):
        for src in [g for g in dict.fromkeys(order) if g]:
            tab = ((table().get(src) or {}).get("sglang") or {}).get("deepep", {}).get(kind)
            if not tab:
                continue
            sizes = sorted(int(n) for n in tab["nodes"])
            if nodes > 1 and max(sizes) < 2:
                continue  # one node measured here: the network-bound curves come from a GPU measured over nodes
            pick = min(sizes, key=lambda n: (abs(n - nodes), -n))
            cur = tab["nodes"][pick] if pick in tab["nodes"] else tab["nodes"][str(pick)]
            ref = tab["shape"]

            def coll(x):
                return Collective(x["latency_us"] * 1e-6, x["small_tokens_per_us"] * 1e6, x["large_tokens_per_us"] * 1e6,
                                  x["knee_tokens"])

            if kind == "normal":
                u_ref = 8 if pick == 1 else pick
                u = min(ep, gpus_per_node) if nodes == 1 else nodes
                scale = hidden * units_touched(experts, k, u) / (ref["hidden"] * units_touched(ref["experts"], ref["topk"], u_ref))
            else:
                scale = hidden * k / (ref["hidden"] * ref["topk"])
            dscale = scale * (1.0 if fp8_dispatch else 2.0 / DEEPEP_FP8_BYTES)
            parts[kind] = (coll(cur["dispatch"]), coll(cur["combine"]), dscale, scale)
            where.append(f"{kind.replace('_', '-')} kernels from {src} sglang {tab['version'].split(' (')[0]} at {pick} node(s)"
                         + (f" ({nodes} here)" if pick != nodes else "") + f", x {scale:.2f} of the measured token")
            break
    if len(parts) < 2:
        return None, ()
    return DeepEP(mode, parts["normal"], parts["low_latency"]), (("DeepEP", "; ".join(where)),)


def kernel_set(gpu: dict, engine: str, runtime_format: str, expert_format: str, kv_cache: str, tp: int, ep: int, pp: int,
               gpus_per_node: int, ar_group: int | None = None) -> KernelSet:
    """The curves of one configuration; `ar_group` is the GPUs of one all-reduce (the attention group under
    attention data parallelism; default tp)."""
    gid = gpu["id"]
    src = gid if gid in table() else BORROW.get(gid, "h100-sxm")
    borrowed = src != gid
    entry = table()[src]
    prov = []
    where = f"{src}" + (f" (borrowed: no kernel tables for {gid})" if borrowed else "")

    def got(what, path, fallback_path=None):
        v, fw = _find(entry, engine, path)
        if v is None and fallback_path:
            v, fw = _find(entry, engine, fallback_path)
            if v is not None:
                prov.append((what, f"{where} {fw} {fallback_path[-1]} curve (no {path[-1]} table)"))
                return v
        if v is not None:
            prov.append((what, f"{where} {fw} {entry[fw].get('version', '')}".strip()))
        return v

    kfmt = FORMAT_KERNEL.get(runtime_format, "bf16")
    g = None
    if kfmt != "bf16":
        # the engine's curve of this format first, then another framework's on this GPU; a table whose small-M
        # latency is far above bf16's measured host work, not the GPU (HOST_BOUND), and is passed over
        for fw in _frameworks(entry, engine):
            cand = (entry[fw].get("gemm") or {}).get(kfmt)
            if cand is None:
                continue
            if not _usable_gemm(cand):
                prov.append((f"GEMM {kfmt}", f"{where} {fw} {kfmt} table not used: {cand['small_m_vs_bf16']}x bf16's "
                                             f"latency at <= 64 tokens (per-call host work, not GPU time)"))
                continue
            g = cand
            note = "" if fw == engine else f" ({fw}'s {kfmt} curve)"
            prov.append((f"GEMM {kfmt}", f"{where} {fw} {entry[fw].get('version', '')}{note}".strip()))
            break
    if g is None:
        g = got(f"GEMM {kfmt}", ("gemm", kfmt) if kfmt == "bf16" else ("gemm", "bf16"))
        if kfmt != "bf16" and g is not None:
            prov[-1] = (prov[-1][0], prov[-1][1] + f" bf16 curve (no usable {kfmt} table)")
    g16 = got("GEMM bf16 (LM head)", ("gemm", "bf16"))
    mfmt = MOE_KERNEL.get(expert_format, "bf16")
    mo = None
    # the engine's grouped-GEMM curve first, then the other frameworks' on this GPU (same format), then bf16;
    # a fit that is poor or unphysical (the memory side far below any tuned kernel: an untuned configuration
    # in the tables) is passed over and said so
    for fmt in dict.fromkeys((mfmt, "bf16")):
        for fw in _frameworks(entry, engine):
            cand = (entry[fw].get("moe") or {}).get(fmt)
            if cand is None:
                continue
            if not _usable_moe(cand):
                prov.append(("MoE", f"{where} {fw} {fmt} grouped-GEMM fit not used (median error {cand.get('median_err_pct')} %, "
                                    f"e_max {cand['e_max']}, e_mem {cand['e_mem']}: poor or untuned)"))
                continue
            mo = cand
            note = "" if (fw, fmt) == (engine, mfmt) else f" ({fw}'s {fmt} curve)"
            prov.append((f"MoE {mfmt}", f"{where} {fw} {entry[fw].get('version', '')}{note}".strip()))
            break
        if mo is not None:
            break
    kvk = "fp8" if kv_cache in ("fp8", "int8", "int4") else "bf16"
    dec = got(f"decode attention {kvk} KV", ("decode_attention", kvk), ("decode_attention", "bf16"))
    pre = got("prefill attention", ("prefill_attention",))
    gemm = _gemm(g)
    if kfmt != "bf16" and not any(_usable_gemm((v.get("gemm") or {}).get(kfmt) or {"small_m_vs_bf16": 99})
                                  for v in entry.values() if isinstance(v, dict)):
        ratio = KERNEL_WEIGHT_BYTES.get(kfmt, 2.0) / 2.0
        gemm = Gemm(gemm.t0_s, gemm.e_max, gemm.m_half * ratio, gemm.e_mem)
    tr = moe_transfer(engine, mfmt, src) if mo is None else None
    if mo is None and tr is not None:
        # no usable grouped-GEMM table on this GPU: its dense GEMM curve, scaled the way the grouped GEMM relates
        # to the dense GEMM where both were measured
        r_emax, r_mhalf, r_emem, t0_us, imb, gpus, basis = tr
        moe = Gemm(t0_us * 1e-6, gemm.e_max * r_emax, gemm.m_half * r_mhalf, gemm.e_mem * r_emem)
        prov.append(("MoE", f"{where}: no usable grouped-GEMM table: the dense GEMM curve x the measured grouped/dense "
                            f"ratios of {basis} on {', '.join(gpus)} (e_max x {r_emax:.2f}, m_half x {r_mhalf:.2f}, "
                            f"e_mem x {r_emem:.2f}, t0 {t0_us:.1f} us, imbalance {imb:.2f})"))
    elif mo is None:
        moe, imb = Gemm(gemm.t0_s * 3, gemm.e_max * 0.5, gemm.m_half, gemm.e_mem * 0.8), 1.1
        prov.append(("MoE", f"{where}: no grouped-GEMM table anywhere: dense GEMM curve at half the compute efficiency"))
    else:
        moe, imb = _gemm(mo), float(mo.get("imbalance", 1.0))
        if moe.e_mem > 1.0:
            # a memory efficiency above the HBM peak is unphysical: the table's sizes never made the grouped GEMM
            # memory-bound, so its fit leaves that side unidentified (at the fit's bound). The experts' weights
            # stream like a dense GEMM's: this GPU's dense GEMM memory efficiency.
            moe = Gemm(moe.t0_s, moe.e_max, moe.m_half, gemm.e_mem)
            prov.append(("MoE", f"memory side unidentified in the grouped-GEMM fit (e_mem {mo['e_mem']} > 1): "
                                f"the dense GEMM's e_mem {gemm.e_mem:.3f}"))
    ar = None
    group = tp if ar_group is None else ar_group
    if group > 1:
        if group > gpus_per_node:
            ar = _link_collective(gpu, group, gpus_per_node)
            prov.append(("all-reduce", f"network: {NET_BW / 1e9:g} GB/s per GPU, {NET_LATENCY_S * 1e6:g} us"))
        else:
            curves, fw = _find(entry, engine, ("allreduce",))
            pcie_only = not (gpu["interconnect"].get("nvlink_gb_per_s_bidirectional"))
            if curves and not borrowed and not pcie_only:
                ar = _collective(curves, group)
                prov.append(("all-reduce", f"{src} {fw} custom all-reduce / NCCL, {group} GPUs"))
            elif pcie_only:
                # the measured PCIe box (aiconfigurator's L40S) shows ~1 GB/s at 8 GPUs, i.e. no peer-to-peer; servers
                # with P2P reach a large fraction of the PCIe link: use the link's nominal speed
                ar = _link_collective(gpu, group, gpus_per_node)
                prov.append(("all-reduce", f"{gid} PCIe nominal speed x 0.75 (peer-to-peer assumed)"))
            else:
                ar = _link_collective(gpu, group, gpus_per_node)
                prov.append(("all-reduce", f"{gid} link nominal speed x 0.75 (no measured collective)"))
    a2a = None
    if ep > 1:
        curves, fw = _find(entry, engine, ("allreduce",))
        a2a = _collective(curves, ep) if curves and not borrowed and ep <= gpus_per_node else _link_collective(gpu, ep, gpus_per_node)
    p2p = _link_collective(gpu, 2, 1 if tp * pp > gpus_per_node else gpus_per_node) if pp > 1 else None
    return KernelSet(gemm, _gemm(g16), moe, imb, (dec["t0_us"] * 1e-6, dec["e"]),
                     (pre["t0_us"] * 1e-6, pre["e_max"], pre["s_half"]), ar, a2a, p2p, tuple(prov), src, borrowed)
