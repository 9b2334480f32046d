"""Report charts as SVG text, drawn with matplotlib (the `report` extra), deterministic byte for byte.

matplotlib is imported here only, when a report is rendered: `planfile check` never pays for it.
"""

from __future__ import annotations

import io

COLORS = {"weights": "#4C72B0", "activations": "#DD8452", "runtime": "#937860", "kv": "#55A868", "free": "#E5E5E5",
          "ttft": "#4C72B0", "itl": "#C44E52", "slo": "#222222", "breach": "#C44E52", "peak": "#8172B3",
          "planned": "#C44E52", "other": "#4C72B0", "tier": "#DA8BC3"}


class ChartsUnavailable(RuntimeError):
    pass


def _plt():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ChartsUnavailable("the report needs matplotlib: pip install 'planfile[report]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "planfile", "svg.fonttype": "none", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100})
    return plt


def _svg(fig, prefix: str) -> str:
    """The figure as SVG text to inline in HTML: no XML prolog or DOCTYPE, no RDF metadata (not HTML), and
    every id prefixed (`prefix-`) with its references, so several charts in one page keep unique ids."""
    import re

    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "planfile"})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.find("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', text)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)


def latency(curve: dict) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.2))
    for ax, key, slo_key, label, color in ((axes[0], "ttft_p95_ms", "slo_ttft_p95_ms", "p95 TTFT (ms)", COLORS["ttft"]),
                                           (axes[1], "itl_p95_ms", "slo_itl_p95_ms", "p95 ITL (ms)", COLORS["itl"])):
        ax.plot(curve["x"], curve[key], marker="o", color=color, label=label)
        if curve.get(slo_key):
            ax.axhline(curve[slo_key], color=COLORS["slo"], linestyle="--", linewidth=1, label=f"SLO {curve[slo_key]:g} ms")
        for name, x in curve["marks"].items():
            if x:
                ax.axvline(x, color=COLORS["breach"] if name == "breach point" else COLORS["peak"], linestyle=":",
                           linewidth=1.2, label=f"{name} {x:.3g}")
        ax.set_xlabel(curve["axis"])
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle("Latency vs load (simulated continuous batching)")
    return _svg(fig, "latency")


def memory(mem: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 1.9))
    parts = [("weights", mem["weights_gb_per_gpu"]), ("activations", mem["activations_gb_per_gpu"]),
             ("runtime", mem["runtime_gb_per_gpu"]), ("kv", mem["kv_cache_gb_per_gpu"])]
    left = 0.0
    for name, gb in parts:
        gb = max(gb, 0.0)
        ax.barh([0], [gb], left=left, color=COLORS[name], label=f"{name if name != 'kv' else 'KV cache'} {gb:.1f} GB")
        left += gb
    free = max(mem["total_gb_per_gpu"] - left, 0.0)
    ax.barh([0], [free], left=left, color=COLORS["free"], label=f"reserve {free:.1f} GB")
    ax.axvline(mem["usable_gb_per_gpu"], color=COLORS["slo"], linestyle="--", linewidth=1,
               label=f"usable {mem['usable_gb_per_gpu']:.1f} GB")
    ax.set_yticks([])
    ax.set_xlabel("GB per GPU (10^9 bytes)")
    ax.set_xlim(0, mem["total_gb_per_gpu"] * 1.01)
    ax.legend(ncol=3, fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    ax.set_title("Memory per GPU")
    return _svg(fig, "memory")


def roofline(rl: dict) -> str:
    plt = _plt()
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    peak, bw = rl["peak_tflops"], rl["memory_tb_per_s"]
    xs = np.logspace(-1, 4, 200)
    ax.loglog(xs, np.minimum(peak, bw * xs), color=COLORS["slo"], linewidth=1.5, label=f"roofline ({peak:g} TFLOPS, {bw:g} TB/s)")
    ax.axvline(rl["ridge_flops_per_byte"], color="#999999", linestyle=":", linewidth=1,
               label=f"ridge {rl['ridge_flops_per_byte']:.0f} FLOP/B")
    for phase, color in (("prefill", COLORS["ttft"]), ("decode", COLORS["itl"])):
        p = rl[phase]
        ax.scatter([max(p["intensity_flops_per_byte"], 0.11)], [max(p["attained_tflops"], 1e-3)], color=color, s=40, zorder=3,
                   label=f"{phase}: {p['attained_tflops']:.0f} TFLOPS, {p['bottleneck']}-bound")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("TFLOPS per GPU")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_title("Roofline")
    return _svg(fig, "roofline")


def gpu_comparison(rows: list[dict]) -> str:
    plt = _plt()
    rows = sorted(rows, key=lambda x: x["output_tokens_per_s_per_gpu"])
    fig, axes = plt.subplots(1, 2, figsize=(8.5, max(2.5, 0.22 * len(rows) + 0.8)), sharey=True)
    names = [f"{x['gpu']} (TP{x['tp']})" for x in rows]
    colors = [COLORS["planned"] if x.get("planned") else COLORS["other"] for x in rows]
    axes[0].barh(names, [x["output_tokens_per_s_per_gpu"] for x in rows], color=colors)
    axes[0].set_xlabel("output tokens/s per GPU at saturation")
    cost = [x["usd_per_million_output_tokens"] or 0.0 for x in rows]
    axes[1].barh(names, cost, color=colors)
    for i, x in enumerate(rows):
        if x["usd_per_million_output_tokens"] is None:
            axes[1].text(0, i, " no catalog price", va="center", fontsize=6, color="#777777")
    axes[1].set_xlabel("$ per 1M output tokens at saturation")
    axes[0].tick_params(axis="y", labelsize=7)
    fig.suptitle("The same workload on other GPUs (red: this spec)")
    return _svg(fig, "gpu-comparison")


def gpus_vs_load(g: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ys = [y if y is not None else float("nan") for y in g["gpus"]]
    ax.step(g["x"], ys, where="post", color=COLORS["other"], label=f"GPUs needed ({g['basis']})")
    if g["planned_rps"]:
        ax.scatter([g["planned_rps"]], [g["planned_gpus"]], color=COLORS["planned"], zorder=3,
                   label=f"this spec: {g['planned_gpus']} GPUs at {g['planned_rps']:.3g} req/s")
    ax.set_xlabel("arrival rate (req/s)")
    ax.set_ylabel("GPUs")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("GPUs needed vs load")
    return _svg(fig, "gpus-vs-load")


def offload(o: dict, replicas: int) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 2.4))
    hbm = o["hbm_sessions_per_replica"] * replicas
    names, vals, colors = ["HBM"], [hbm], [COLORS["kv"]]
    if o.get("tier"):
        names.append(f"{o['tier']} tier")
        vals.append(o["tier_sessions_per_replica"] * replicas)
        colors.append(COLORS["tier"])
    ax.barh(names, vals, color=colors)
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    if o.get("tier"):
        ax.set_title(f"Sessions held (fleet); restore from {o['tier']}: {o['restore_ms']:.1f} ms per session")
    else:
        ax.set_title("Sessions held in HBM (fleet); no KV offload tier in the spec")
    ax.set_xlabel(f"sessions at the mean context ({o['session_mb_per_gpu']:.1f} MB per GPU each)")
    ax.set_xlim(0, max(vals) * 1.25 if max(vals) else 1)
    return _svg(fig, "offload")
