"""Regenerate catalog/gpus.yaml and catalog/models.yaml from ../shared/reference/*.csv.

The reference CSVs are the verified figures (each row names its sources); this script maps them onto
planfile ids, adds what the CSVs do not carry (ids, aliases, Kubernetes labels, node topology,
which precisions run natively) and writes YAML that `schemas/catalog-*.schema.json` validates.
Run it when the reference data changes, then review the diff:

    python tools/gen_catalog.py ../shared/reference
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import yaml

AS_OF = "2026-11-23"

# id, reference row name, extra fields. Kubernetes product labels are NVML device names with spaces
# replaced by "-" (NVIDIA/k8s-device-plugin internal/lm/resource.go); "verified" marks the ones seen in
# public manifests (shared/reference/engines.md section 5.2), the others follow the NVML naming rule.
GPUS = [
    ("a100-sxm-40gb", "A100 40GB SXM", dict(generation="ampere", form="sxm", node=8, nvlink_domain=8,
        label="NVIDIA-A100-SXM4-40GB", label_verified=True, aliases=["A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB", "a100-40gb"])),
    ("a100-sxm-80gb", "A100 80GB SXM", dict(generation="ampere", form="sxm", node=8, nvlink_domain=8,
        label="NVIDIA-A100-SXM4-80GB", aliases=["A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB", "a100", "a100-80gb", "A100"])),
    ("a100-pcie-80gb", "A100 80GB PCIe", dict(generation="ampere", form="pcie", node=8, nvlink_domain=1,
        label="NVIDIA-A100-80GB-PCIe", aliases=["A100-PCIe-80GB", "NVIDIA-A100-80GB-PCIe", "a100-pcie"])),
    ("a10g", "A10G", dict(generation="ampere", form="pcie", node=8, nvlink_domain=1,
        label="NVIDIA-A10G", aliases=["NVIDIA-A10G", "A10G"])),
    ("a10", "A10", dict(generation="ampere", form="pcie", node=4, nvlink_domain=1,
        label="NVIDIA-A10", aliases=["NVIDIA-A10", "A10"])),
    ("l4", "L4", dict(generation="ada", form="pcie", node=8, nvlink_domain=1,
        label="NVIDIA-L4", aliases=["NVIDIA-L4", "L4"])),
    ("l40s", "L40S", dict(generation="ada", form="pcie", node=8, nvlink_domain=1,
        label="NVIDIA-L40S", aliases=["NVIDIA-L40S", "L40S"])),
    ("h100-sxm", "H100 SXM", dict(generation="hopper", form="sxm", node=8, nvlink_domain=8,
        label="NVIDIA-H100-80GB-HBM3", label_verified=True,
        aliases=["H100-SXM-80GB", "NVIDIA-H100-80GB-HBM3", "h100", "H100", "H100-80GB", "h100-sxm5"])),
    ("h100-pcie", "H100 PCIe", dict(generation="hopper", form="pcie", node=8, nvlink_domain=1,
        label="NVIDIA-H100-PCIe", aliases=["H100-PCIe-80GB", "NVIDIA-H100-PCIe"])),
    ("h100-nvl", "H100 NVL", dict(generation="hopper", form="pcie", node=8, nvlink_domain=2,
        label="NVIDIA-H100-NVL", aliases=["H100-NVL-94GB", "NVIDIA-H100-NVL"],
        derived={"fp8": ("bf16x2", "FP8 dense = 2 x BF16 dense (Hopper FP8 tensor rate); no retrievable dense FP8 figure"),
                 "int8": ("bf16x2", "INT8 dense = 2 x BF16 dense (Hopper)")})),
    ("h200-sxm", "H200 SXM", dict(generation="hopper", form="sxm", node=8, nvlink_domain=8,
        label="NVIDIA-H200", label_verified=True, aliases=["H200-SXM-141GB", "NVIDIA-H200", "h200", "H200"])),
    ("h200-nvl", "H200 NVL", dict(generation="hopper", form="pcie", node=8, nvlink_domain=2,
        label="NVIDIA-H200-NVL", aliases=["H200-NVL-141GB", "NVIDIA-H200-NVL"],
        derived={"bf16": (836.0, "no dense spec published; ~836 TFLOPS dense BF16 measured at the 600 W cap (reference-notes.md, empirical)"),
                 "fp8": ("bf16x2", "FP8 dense = 2 x BF16 dense (Hopper)"),
                 "int8": ("bf16x2", "INT8 dense = 2 x BF16 dense (Hopper)"),
                 "nvlink": (900.0, "NVLink bridge, 900 GB/s bidirectional (NVIDIA H200 NVL product brief); not in the reference CSV")})),
    ("gh200", "GH200 (Hopper GPU, per superchip)", dict(generation="hopper", form="superchip", node=1, nvlink_domain=1,
        label="NVIDIA-GH200-480GB", aliases=["GH200-96GB", "GH200-480GB", "NVIDIA-GH200-480GB", "GH200"],
        variant=(0, "96 GB HBM3 / 4.0 TB/s variant (the one in TensorRT-LLM's published tables)"))),
    ("gh200-144gb", "GH200 (Hopper GPU, per superchip)", dict(generation="hopper", form="superchip", node=1, nvlink_domain=1,
        label="NVIDIA-GH200-144G-HBM3e", aliases=["GH200-144GB"],
        variant=(1, "144 GB HBM3e / 4.9 TB/s variant"))),
    ("b200", "B200 (HGX)", dict(generation="blackwell", form="sxm", node=8, nvlink_domain=8,
        label="NVIDIA-B200", label_verified=True, aliases=["B200-180GB", "NVIDIA-B200", "B200"])),
    ("b300", "B300 (HGX, Blackwell Ultra)", dict(generation="blackwell", form="sxm", node=8, nvlink_domain=8,
        label="NVIDIA-B300-SXM6-AC", aliases=["B300-288GB", "B300"])),
    ("gb200", "GB200 (per Blackwell GPU, NVL72)", dict(generation="blackwell", form="superchip", node=4, nvlink_domain=72,
        label="NVIDIA-GB200", aliases=["GB200-186GB", "NVIDIA-GB200", "GB200"])),
    ("gb300", "GB300 (per Blackwell Ultra GPU, NVL72)", dict(generation="blackwell", form="superchip", node=4, nvlink_domain=72,
        label="NVIDIA-GB300", aliases=["GB300-288GB", "GB300"])),
    ("rtx-4090", "RTX 4090", dict(generation="ada", form="consumer", node=4, nvlink_domain=1,
        label="NVIDIA-GeForce-RTX-4090", aliases=["NVIDIA-GeForce-RTX-4090", "RTX4090", "RTX-4090"])),
    ("rtx-5090", "RTX 5090", dict(generation="blackwell", form="consumer", node=4, nvlink_domain=1,
        label="NVIDIA-GeForce-RTX-5090", aliases=["NVIDIA-GeForce-RTX-5090", "RTX5090", "RTX-5090"])),
    ("rtx-pro-6000", "RTX PRO 6000 Blackwell", dict(generation="blackwell", form="pcie", node=8, nvlink_domain=1,
        label="NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", aliases=["RTX-PRO-6000", "rtx-pro-6000-blackwell"])),
    ("mi250x", "MI250X", dict(generation="cdna2", form="oam", node=8, nvlink_domain=8, per_gcd=True,
        label="AMD_Instinct_MI250X", aliases=["MI250X", "AMD-MI250X"])),
    ("mi300x", "MI300X", dict(generation="cdna3", form="oam", node=8, nvlink_domain=8,
        label="AMD_Instinct_MI300X_OAM", aliases=["MI300X", "AMD-MI300X"])),
    ("mi325x", "MI325X", dict(generation="cdna3", form="oam", node=8, nvlink_domain=8,
        label="AMD_Instinct_MI325X_OAM", aliases=["MI325X", "AMD-MI325X"])),
    ("mi355x", "MI355X", dict(generation="cdna4", form="oam", node=8, nvlink_domain=8,
        label="AMD_Instinct_MI355X_OAM", aliases=["MI355X", "AMD-MI355X"])),
    ("gaudi3", "Gaudi 3", dict(generation="gaudi3", form="oam", node=8, nvlink_domain=8,
        label="Gaudi3", aliases=["Gaudi3", "gaudi-3", "HL-325L"])),
    ("tpu-v5e", "TPU v5e", dict(generation="tpu-v5e", form="tpu", node=8, nvlink_domain=256,
        label="tpu-v5-lite-podslice", aliases=["v5e", "tpu-v5-lite"])),
    ("tpu-v6e", "TPU v6e (Trillium)", dict(generation="tpu-v6e", form="tpu", node=8, nvlink_domain=256,
        label="tpu-v6e-slice", aliases=["v6e", "trillium"])),
]

# Laptop parts are not in the reference CSV. Figures from TechPowerUp-derived spec pages (hmc-tech.com
# "NVIDIA GeForce RTX 4090 Laptop 140W" and "RTX 5090 Laptop 150W", pages corpus, read 2026-11-23):
# tensor rates with FP32 accumulate (the rate BF16 inference uses on GeForce), dense.
LAPTOPS = [
    dict(id="rtx-4090-laptop", name="NVIDIA GeForce RTX 4090 Laptop GPU (AD103, 140 W)", generation="ada",
         memory_gb=16, bw=0.576, bf16=75.88, fp8=151.76, fp4=None, int8=303.51, tdp=140, pcie=4,
         label="NVIDIA-GeForce-RTX-4090-Laptop-GPU", aliases=["RTX-4090-Laptop", "rtx4090-laptop"],
         source="hmc-tech.com/gpu/nvidia-geforce-rtx-4090-laptop-140w (TechPowerUp-derived: 76 SMs, 1950 MHz boost, 16 GB GDDR6 256-bit 18 GT/s = 576 GB/s, BF16 tensor 75.88 dense FP32-acc, FP8 151.76 FP32-acc)"),
    dict(id="rtx-5090-laptop", name="NVIDIA GeForce RTX 5090 Laptop GPU (GB203, 150 W)", generation="blackwell",
         memory_gb=24, bw=0.896, bf16=113.99, fp8=227.97, fp4=911.89, int8=455.95, tdp=150, pcie=5,
         label="NVIDIA-GeForce-RTX-5090-Laptop-GPU", aliases=["RTX-5090-Laptop", "rtx5090-laptop"],
         source="hmc-tech.com/gpu/nvidia-geforce-rtx-5090-laptop-150w-vs-nvidia-rtx-5000-max-q (TechPowerUp-derived: 10496 shaders, 2160 MHz, 24 GB GDDR7 = 896 GB/s, BF16 tensor 113.99 dense FP32-acc, FP8 227.97, FP4 911.89 dense)"),
]
# The seed planner's laptop derating ("Balanced" gaming-laptop profile): thermal 0.6 x power 0.7 x
# sustained 0.8 = 0.336 of the desktop-class peak under a sustained serving load (seeds/002, kv-planner README).
LAPTOP_DERATING = {"profile": "balanced", "thermal": 0.6, "power": 0.7, "sustained": 0.8,
                   "source": "kv-planner README (shared/seeds/002), 'Laptop GPU Adjustments' table, Balanced profile"}

# Capacity the driver reports, in GiB. HBM and GDDR capacities are binary: an "80 GB" H100 has 80 GiB
# (aiconfigurator systems/*.yaml mem_capacity: h100/h800 85899345920 B = 80 GiB; a100 80 GiB; h200 141 GiB;
# b200 180 GiB; b300 275040 MiB; gb200 189471 MiB; gb300 284208 MiB; l40s 46068 MiB, per the reference notes).
# Parts without such a figure take the nominal number as GiB.
MEMORY_GIB = {"a100-sxm-80gb": 80, "h100-sxm": 80, "h200-sxm": 141, "b200": 180, "b300": round(275040 / 1024, 2),
              "gb200": round(189471 / 1024, 2), "gb300": round(284208 / 1024, 2), "l40s": round(46068 / 1024, 2)}
MEMORY_GIB_SOURCE = "ai-dynamo/aiconfigurator systems/*.yaml mem_capacity (nvidia-smi capacity)"

VENDOR_RESOURCE = {"NVIDIA": "nvidia.com/gpu", "AMD": "amd.com/gpu", "Intel": "habana.ai/gaudi", "Google": "google.com/tpu"}
VENDOR_LABEL_KEY = {"NVIDIA": "nvidia.com/gpu.product", "AMD": "amd.com/gpu.product-name",
                    "Intel": "habana.ai/gaudi.product", "Google": "cloud.google.com/gke-tpu-accelerator"}


def _num(s: str) -> float | None:
    s = (s or "").strip()
    return float(s) if s else None


def _pick(s: str, idx: int) -> str:
    parts = [p.strip() for p in (s or "").split("|")]
    return parts[min(idx, len(parts) - 1)]


def native(generation: str, tflops: dict) -> list[str]:
    """Precisions with native tensor-core math. Ampere has no FP8/FP4; FP4 math needs Blackwell/CDNA4."""
    out = ["bf16", "fp16"]
    if tflops.get("int8"):
        out.append("int8")
    if tflops.get("fp8") and generation not in ("ampere", "cdna2"):
        out.append("fp8")
    if tflops.get("fp4"):
        out.append("fp4")
    return out


def gpus(ref: Path) -> list[dict]:
    rows = {r["name"]: r for r in csv.DictReader(open(ref / "gpus.csv", encoding="utf-8"))}
    out = []
    for gid, name, x in GPUS:
        r = rows[name]
        idx = x.get("variant", (0, ""))[0]
        mem, bw = float(_pick(r["memory_gb"], idx)), float(_pick(r["mem_bandwidth_tb_s"], idx))
        tf = {"bf16": _num(r["bf16_dense_tflops"]), "fp8": _num(r["fp8_dense_tflops"]),
              "fp4": _num(r["fp4_dense_tflops"]), "int8": _num(r["int8_dense_tops"])}
        notes = []
        for k, (val, why) in x.get("derived", {}).items():
            if k == "nvlink":
                continue
            tf[k] = tf["bf16"] * 2 if val == "bf16x2" else val
            notes.append(f"{k}: {why}")
        link = _num(r["nvlink_or_fabric_gb_s_per_gpu"]) or x.get("derived", {}).get("nvlink", (None,))[0]
        scale = 1.0
        if x.get("per_gcd"):
            # Each MI250X GCD is its own device to the driver, to Kubernetes and to vLLM.
            scale = 0.5
            notes.append("per GCD: the reference row is the 2-GCD package; memory, bandwidth and TFLOPS halved")
        gen = x["generation"]
        tflops = {"bf16": tf["bf16"] * scale, "fp16": tf["bf16"] * scale}
        for k in ("fp8", "fp4", "int8"):
            if tf[k]:
                tflops[k] = round(tf[k] * scale, 2)
        tdp = _pick(r["tdp_w"], 1) if r["tdp_w"] else ""
        tdp = tdp.split("-")[-1] if tdp else ""
        entry = {
            "id": gid,
            "name": f'{r["vendor"]} {name}' + (f' ({x["variant"][1]})' if "variant" in x else ""),
            "vendor": r["vendor"].lower(),
            "generation": gen,
            "form_factor": x["form"],
            "memory_gb": round(mem * scale, 3),
            "memory_gib": MEMORY_GIB.get(gid, round(mem * scale, 3)),
            "memory_gib_source": MEMORY_GIB_SOURCE if gid in MEMORY_GIB else "nominal capacity, binary (GiB)",
            "memory_bandwidth_tb_per_s": round(bw * scale, 4),
            "dense_tflops": tflops,
            "native_precisions": native(gen, tflops),
            "interconnect": {
                "nvlink_gb_per_s_bidirectional": link if x["nvlink_domain"] > 1 else None,
                "nvlink_domain_gpus": x["nvlink_domain"],
                "pcie_gen": int(r["pcie_gen"]) if r["pcie_gen"] else None,
            },
            "gpus_per_node": x["node"],
            "tdp_w": int(float(tdp)) if tdp else None,
            "kubernetes": {"resource": VENDOR_RESOURCE[r["vendor"]], "node_label": VENDOR_LABEL_KEY[r["vendor"]],
                           "product": x["label"], "product_verified": bool(x.get("label_verified"))},
            "aliases": x["aliases"],
            "source": r["source"],
            "notes": "; ".join(notes + [r["notes"]]) if (notes or r["notes"]) else None,
            "as_of": AS_OF,
        }
        out.append(entry)
    for lp in LAPTOPS:
        tflops = {"bf16": lp["bf16"], "fp16": lp["bf16"], "fp8": lp["fp8"], "int8": lp["int8"]}
        if lp["fp4"]:
            tflops["fp4"] = lp["fp4"]
        out.append({
            "id": lp["id"], "name": lp["name"], "vendor": "nvidia", "generation": lp["generation"],
            "form_factor": "laptop", "memory_gb": lp["memory_gb"], "memory_gib": lp["memory_gb"],
            "memory_gib_source": "nominal capacity, binary (GiB)", "memory_bandwidth_tb_per_s": lp["bw"],
            "dense_tflops": tflops, "native_precisions": native(lp["generation"], tflops),
            "interconnect": {"nvlink_gb_per_s_bidirectional": None, "nvlink_domain_gpus": 1, "pcie_gen": lp["pcie"]},
            "gpus_per_node": 1, "tdp_w": lp["tdp"],
            "kubernetes": {"resource": "nvidia.com/gpu", "node_label": "nvidia.com/gpu.product",
                           "product": lp["label"], "product_verified": False},
            "laptop_derating": LAPTOP_DERATING,
            "aliases": lp["aliases"], "source": lp["source"], "notes": None, "as_of": AS_OF,
        })
    return out


# id, reference name, aliases (HF repo ids users paste), extra architecture fields not in the CSV.
MODELS = [
    ("llama-2-7b", "Llama 2 7B", ["meta-llama/Llama-2-7b-chat-hf"], {}),
    ("llama-2-13b", "Llama 2 13B", ["meta-llama/Llama-2-13b-chat-hf"], {}),
    ("llama-2-70b", "Llama 2 70B", ["meta-llama/Llama-2-70b-chat-hf"], {}),
    ("llama-3.1-8b", "Llama 3.1 8B", ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama-3.1-8B"], {}),
    ("llama-3.1-70b", "Llama 3.1 70B", ["meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B-Instruct", "Llama-3.1-70B"], {}),
    ("llama-3.1-405b", "Llama 3.1 405B", ["meta-llama/Llama-3.1-405B-Instruct", "meta-llama/Meta-Llama-3.1-405B-Instruct", "Llama-3.1-405B"], {}),
    ("llama-3.3-70b", "Llama 3.3 70B Instruct", ["Llama-3.3-70B"], {}),
    ("llama-4-scout", "Llama 4 Scout 17B-16E", ["meta-llama/Llama-4-Scout-17B-16E"], {"layer_pattern": ["sliding", "sliding", "sliding", "full"], "moe_layer_step": 1, "dense_intermediate_size": 16384}),
    ("llama-4-maverick", "Llama 4 Maverick 17B-128E", ["meta-llama/Llama-4-Maverick-17B-128E"], {"layer_pattern": ["sliding", "sliding", "sliding", "full"], "moe_layer_step": 2, "dense_intermediate_size": 16384}),
    ("mistral-7b", "Mistral 7B v0.1", ["mistralai/Mistral-7B-Instruct-v0.1", "Mistral-7B"], {"layer_pattern": ["sliding"]}),
    ("mistral-7b-v0.3", "Mistral 7B v0.3", ["mistralai/Mistral-7B-Instruct-v0.3"], {}),
    ("mistral-large-2", "Mistral Large 2 (Instruct-2407)", ["mistral-large-2407"], {}),
    ("mixtral-8x7b", "Mixtral 8x7B v0.1", ["mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B"], {}),
    ("mixtral-8x22b", "Mixtral 8x22B v0.1", ["mistralai/Mixtral-8x22B-Instruct-v0.1", "Mixtral-8x22B"], {}),
    ("qwen2.5-7b", "Qwen2.5 7B", ["Qwen/Qwen2.5-7B-Instruct"], {}),
    ("qwen2.5-14b", "Qwen2.5 14B", ["Qwen/Qwen2.5-14B-Instruct"], {}),
    ("qwen2.5-32b", "Qwen2.5 32B", ["Qwen/Qwen2.5-32B-Instruct"], {}),
    ("qwen2.5-72b", "Qwen2.5 72B", ["Qwen/Qwen2.5-72B-Instruct"], {}),
    ("qwen3-8b", "Qwen3 8B", [], {}),
    ("qwen3-32b", "Qwen3 32B", [], {}),
    ("qwen3-30b-a3b", "Qwen3 30B-A3B", [], {}),
    ("qwen3-235b-a22b", "Qwen3 235B-A22B", [], {}),
    ("deepseek-v3", "DeepSeek-V3", ["deepseek-ai/DeepSeek-V3-0324"], {"q_lora_rank": 1536, "qk_nope_head_dim": 128, "v_head_dim": 128}),
    ("deepseek-r1", "DeepSeek-R1", ["deepseek-ai/DeepSeek-R1-0528"], {"q_lora_rank": 1536, "qk_nope_head_dim": 128, "v_head_dim": 128}),
    ("deepseek-v2-lite", "DeepSeek-V2-Lite", ["deepseek-ai/DeepSeek-V2-Lite-Chat"], {"q_lora_rank": None, "qk_nope_head_dim": 128, "v_head_dim": 128}),
    ("gpt-oss-20b", "gpt-oss-20b", [], {"layer_pattern": ["sliding", "full"]}),
    ("gpt-oss-120b", "gpt-oss-120b", [], {"layer_pattern": ["sliding", "full"]}),
    ("gemma-2-9b", "Gemma 2 9B", ["google/gemma-2-9b-it"], {"layer_pattern": ["sliding", "full"]}),
    ("gemma-2-27b", "Gemma 2 27B", ["google/gemma-2-27b-it"], {"layer_pattern": ["sliding", "full"]}),
    ("gemma-3-4b", "Gemma 3 4B", [], {"layer_pattern": ["sliding"] * 5 + ["full"]}),
    ("gemma-3-12b", "Gemma 3 12B", [], {"layer_pattern": ["sliding"] * 5 + ["full"]}),
    ("gemma-3-27b", "Gemma 3 27B", [], {"layer_pattern": ["sliding"] * 5 + ["full"]}),
    ("phi-3-mini", "Phi-3 mini (4k instruct)", ["Phi-3-mini-4k-instruct"], {"ignore_sliding_window": True}),
    ("phi-3-medium", "Phi-3 medium (4k instruct)", [], {"ignore_sliding_window": True}),
    ("phi-4", "Phi-4", [], {}),
    ("falcon-7b", "Falcon 7B", ["tiiuae/falcon-7b-instruct"], {"mlp": "gelu"}),
    ("falcon-40b", "Falcon 40B", ["tiiuae/falcon-40b-instruct"], {"mlp": "gelu"}),
    ("falcon-180b", "Falcon 180B", ["tiiuae/falcon-180B-chat"], {"mlp": "gelu"}),
    ("command-r-plus", "Command R+ (04-2024)", ["CohereForAI/c4ai-command-r-plus-08-2024"], {}),
]


def _i(s):
    s = (s or "").strip()
    return int(float(s)) if s else None


def models(ref: Path) -> list[dict]:
    rows = {r["name"]: r for r in csv.DictReader(open(ref / "models.csv", encoding="utf-8"))}
    out = []
    for mid, name, aliases, extra in MODELS:
        r = rows[name]
        att = r["attention_type"].lower()
        attention = {"type": att}
        if att == "mla":
            attention.update(kv_lora_rank=_i(r["kv_lora_rank"]), qk_rope_head_dim=_i(r["qk_rope_head_dim"]),
                             q_lora_rank=extra.get("q_lora_rank"), qk_nope_head_dim=extra.get("qk_nope_head_dim"),
                             v_head_dim=extra.get("v_head_dim"))
        sliding = None
        if r["sliding_window"] and not extra.get("ignore_sliding_window") and "layer_pattern" in extra:
            sliding = {"window_tokens": _i(r["sliding_window"]), "layer_pattern": extra["layer_pattern"],
                       "description": r["sliding_window_pattern"]}
        moe = None
        if r["num_experts"]:
            moe = {"num_experts": _i(r["num_experts"]), "experts_per_token": _i(r["experts_per_token"]),
                   "shared_experts": _i(r["shared_experts"]) or 0,
                   "expert_intermediate_size": _i(r["moe_intermediate_size"]),
                   "first_k_dense_layers": _i(r["first_k_dense_layers"]) or 0,
                   "moe_layer_step": extra.get("moe_layer_step", 1)}
        tie = r["tie_word_embeddings"].strip().lower() == "true"
        entry = {
            "id": mid,
            "name": name,
            "hf_id": r["hf_id"],
            "aliases": [r["hf_id"]] + aliases,
            "architecture": r["architecture"],
            "num_layers": _i(r["num_layers"]),
            "hidden_size": _i(r["hidden_size"]),
            "intermediate_size": extra.get("dense_intermediate_size") or _i(r["intermediate_size"]),
            "num_attention_heads": _i(r["num_attention_heads"]),
            "num_kv_heads": _i(r["num_kv_heads"]),
            "head_dim": _i(r["head_dim"]),
            "vocab_size": _i(r["vocab_size"]),
            "max_position_embeddings": _i(r["max_position_embeddings"]),
            "tie_word_embeddings": tie,
            "mlp": extra.get("mlp", "gated"),
            "attention": attention,
            "sliding_window": sliding,
            "moe": moe,
            "params_b": {"total": float(r["total_params_b"]), "active": float(r["active_params_b"])},
            "kv_bytes_per_token_bf16": _i(r["kv_bytes_per_token_bf16"]),
            "source": r["source"],
            "notes": r["notes"] or None,
            "as_of": AS_OF,
        }
        out.append(entry)
    return out


class _Dumper(yaml.SafeDumper):
    pass


def main(ref: str) -> None:
    ref_p = Path(ref)
    root = Path(__file__).resolve().parent.parent / "catalog"
    header = ("# Generated by tools/gen_catalog.py from shared/reference/{name}.csv (verified figures, each row "
              "with its sources);\n# edit the generator, not this file. Units: GB = 1e9 bytes, TB/s = 1e12 bytes/s, "
              "TFLOPS dense (no 2:4 sparsity).\n")
    for name, data in (("gpus", gpus(ref_p)), ("models", models(ref_p))):
        text = yaml.dump({name: data}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
        (root / f"{name}.yaml").write_text(header.format(name=name) + text, encoding="utf-8")
        print(f"wrote {len(data)} {name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference")
