"""The catalog against the reference data it was built from, and its own schemas."""

import csv


def _read(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))

import pytest

from conftest import SHARED
from planner import catalog

REQUIRED_GPUS = ["a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-80gb", "a10g", "l4", "l40s", "h100-sxm", "h100-pcie",
                 "h100-nvl", "h200-sxm", "h200-nvl", "gh200", "b200", "b300", "gb200", "rtx-4090", "rtx-5090",
                 "rtx-pro-6000", "mi250x", "mi300x", "mi325x", "mi355x", "gaudi3", "rtx-4090-laptop", "rtx-5090-laptop"]
REQUIRED_MODELS = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
                   "llama-3.3-70b", "llama-4-scout", "llama-4-maverick", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b",
                   "qwen2.5-7b", "qwen2.5-72b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b",
                   "deepseek-v3", "deepseek-r1", "gpt-oss-20b", "gpt-oss-120b", "gemma-2-9b", "gemma-2-27b",
                   "gemma-3-12b", "gemma-3-27b", "phi-3-mini", "phi-4", "falcon-7b", "falcon-40b"]


def test_required_ids_present():
    assert set(REQUIRED_GPUS) <= set(catalog.gpus().ids())
    assert set(REQUIRED_MODELS) <= set(catalog.models().ids())
    assert len(catalog.gpus().ids()) >= 25 and len(catalog.models().ids()) >= 30


def test_every_entry_has_a_source():
    for kind in ("gpus", "models"):
        for e in catalog.raw(kind)[kind]:
            assert e["source"] and e["as_of"], e["id"]
    for p in catalog.raw("prices")["prices"]:
        assert p["source"] and p["as_of"], p


@pytest.mark.skipif(not (SHARED / "reference" / "models.csv").exists(), reason="shared/ reference data not mounted")
def test_models_match_reference():
    ref = {r["hf_id"]: r for r in _read(SHARED / "reference" / "models.csv")}
    for m in catalog.raw("models")["models"]:
        r = ref[m["hf_id"]]
        assert m["num_layers"] == int(r["num_layers"]), m["id"]
        assert m["num_kv_heads"] == int(r["num_kv_heads"]), m["id"]
        assert m["head_dim"] == int(r["head_dim"]), m["id"]
        assert m["kv_bytes_per_token_bf16"] == int(r["kv_bytes_per_token_bf16"]), m["id"]
        assert m["params_b"]["total"] == float(r["total_params_b"]), m["id"]


@pytest.mark.skipif(not (SHARED / "reference" / "gpus.csv").exists(), reason="shared/ reference data not mounted")
def test_gpus_match_reference():
    ref = {r["name"]: r for r in _read(SHARED / "reference" / "gpus.csv")}
    by_name = {"h100-sxm": "H100 SXM", "h200-sxm": "H200 SXM", "a100-sxm-80gb": "A100 80GB SXM", "l40s": "L40S",
               "b200": "B200 (HGX)", "mi300x": "MI300X", "l4": "L4", "rtx-4090": "RTX 4090"}
    for gid, name in by_name.items():
        g, r = catalog.gpus().get(gid).entry, ref[name]
        assert g["memory_bandwidth_tb_per_s"] == float(r["mem_bandwidth_tb_s"])
        assert g["dense_tflops"]["bf16"] == float(r["bf16_dense_tflops"])
        assert g["memory_gb"] == float(r["memory_gb"])
    assert "fp8" not in catalog.gpus().get("a100-sxm-80gb").entry["native_precisions"]


def test_alias_and_did_you_mean():
    assert catalog.gpus().get("NVIDIA-H100-80GB-HBM3").entry["id"] == "h100-sxm"
    assert catalog.models().get("meta-llama/Llama-3.1-70B-Instruct").entry["id"] == "llama-3.1-70b"
    assert "h100-sxm" in catalog.gpus().get("h100-sxmm").suggestions


@pytest.mark.parametrize("kind", ["gpus", "models", "prices", "archetypes", "engines", "efficiency"])
def test_catalog_file_matches_its_schema(kind):
    import jsonschema

    from planner import catalog
    from planner.resources import schema

    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft202012Validator(schema(f"catalog-{kind}")).iter_errors(catalog.raw(kind))]
    assert errors == []


def test_every_price_and_factor_names_its_source_and_date():
    from planner import catalog

    for p in catalog.raw("prices")["prices"]:
        assert p["source"] and p["as_of"] and catalog.gpus().get(p["gpu"]).entry, p
    eff = catalog.raw("efficiency")
    for section in ("engines", "vendors"):
        for k, f in eff[section].items():
            assert f["source"].strip(), (section, k)
    kernels = catalog.raw("kernels")
    assert "aiconfigurator" in kernels["source"] and "Apache-2.0" in kernels["source"]
    for gpu, frameworks in kernels["kernels"].items():
        for fw, entry in frameworks.items():
            assert entry["version"], (gpu, fw)  # the measured tables' engine version


def test_schema_check_ids_exist_and_each_setting_is_read_by_the_check_it_cites():
    """A description that cites PF404 for reading speed (it is PF403) sends a reviewer to the wrong check."""
    import inspect
    import json
    import re

    from planner.checks import REGISTRY, rules  # noqa: F401
    from conftest import ROOT

    schema = (ROOT / "schemas" / "deployment.schema.json").read_text()
    for cited in set(re.findall(r"\bPF\d{3}\b", schema)):
        assert cited in REGISTRY, cited
    settings = json.loads(schema)["properties"]["checks"]["properties"]["settings"]["properties"]
    for key, sub in settings.items():
        (cited,) = re.findall(r"\bPF\d{3}\b", sub["description"])
        src = inspect.getsource(REGISTRY[cited].fn)
        assert f'settings["{key}"]' in src or f"settings['{key}']" in src, (key, cited)
