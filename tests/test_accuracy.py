"""planfile says how sure it is: held-out error bands per regime (catalog/accuracy.yaml), what a prediction
borrows (PF408), and slo.confidence evaluating at the pessimistic edge of the band."""

from __future__ import annotations

import json
import math

import pytest

from conftest import run_cli
from planner import accuracy, catalog

SPEC = """apiVersion: planfile/v1
kind: Deployment
metadata: {{name: conf}}
model: {{id: llama-3.1-8b}}
precision: {{weights: fp8, kv_cache: fp8}}
hardware: {{gpu: {gpu}, gpus_per_replica: 1, replicas: 1}}
engine: {{name: {engine}}}
workload: {{archetype: chat, arrival_rate_rps: 2, peak_factor: 1}}
slo: {{itl_ms: {{p95: {itl}}}{conf}}}
cost: {{usd_per_gpu_hour: 2}}
"""


def check(tmp_path, gpu="h100-sxm", itl=1000, conf="", engine="trtllm"):
    p = tmp_path / "s.yaml"
    p.write_text(SPEC.format(gpu=gpu, itl=itl, conf=conf, engine=engine))
    r = run_cli("check", str(p), "--format", "json", "--no-cache", "--no-breach")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return json.loads(r.stdout)["results"][0]


def resolved(tmp_path, **kw):
    from planner.loader import load_text
    from planner.resolve import resolve

    p = tmp_path / "r.yaml"
    kw.setdefault("gpu", "h100-sxm")
    kw.setdefault("itl", 1000)
    kw.setdefault("conf", "")
    kw.setdefault("engine", "trtllm")
    p.write_text(SPEC.format(**kw))
    return resolve(load_text(p.read_bytes(), str(p)))


def test_band_is_the_finest_matching_regime(tmp_path):
    r = resolved(tmp_path)
    b = accuracy.band(r)
    assert b.regime == {"generation": "hopper", "precision": "8bit", "moe": "dense", "engine": "trtllm"}
    # the first entry of catalog/accuracy.yaml that matches and has throughput
    want = next(e for e in catalog.raw("accuracy")["bands"]
                if all(b.regime[k] == v for k, v in e["match"].items()) and "throughput" in e["metrics"])
    assert b.metrics["throughput"].match == want["match"]
    assert b.metrics["throughput"].n >= 20 and "generation" not in b.borrowed


def test_ratio_interpolates_the_stored_quantiles(tmp_path):
    mb = accuracy.band(resolved(tmp_path)).metrics["throughput"]
    q = mb.quantiles
    # halfway between q75 and q90 in probability is halfway in log ratio
    assert mb.ratio(0.825) == pytest.approx(math.exp((q["q75"] + q["q90"]) / 2))
    assert mb.ratio(0.999) == pytest.approx(math.exp(q["q95"]))  # clamped to the last stored quantile


def test_time_scale_grows_with_confidence_and_is_never_below_one(tmp_path):
    scales = [accuracy.time_scale(resolved(tmp_path, conf=f", confidence: {c}")) for c in (0.5, 0.75, 0.9, 0.95)]
    assert all(s >= 1.0 for s in scales)
    assert scales == sorted(scales) and scales[-1] > 1.0
    assert accuracy.time_scale(resolved(tmp_path)) == 1.0


def test_confidence_makes_check_require_the_slo_at_the_pessimistic_edge(tmp_path):
    base = check(tmp_path)["estimate"]
    itl = base["performance"]["itl_ms"]["p95"]
    conf = check(tmp_path, conf=", confidence: 0.95")["estimate"]
    ts = conf["accuracy"]["time_scale"]
    assert ts > 1.0
    # every step takes ts times longer; at 2 req/s the batch barely changes, so p95 ITL grows about ts-fold
    assert conf["performance"]["itl_ms"]["p95"] == pytest.approx(itl * ts, rel=0.15)
    # an SLO between the two passes at the median prediction and fails at confidence 0.95
    slo = itl * (1 + ts) / 2
    assert check(tmp_path, itl=round(slo, 3))["status"] == "pass"
    assert check(tmp_path, itl=round(slo, 3), conf=", confidence: 0.95")["status"] == "fail"


def test_borrowed_kernels_and_generation_are_a_warning_an_other_engine_an_info(tmp_path):
    res = check(tmp_path, gpu="mi300x", engine="vllm")
    f = next(x for x in res["findings"] if x["id"] == "PF408")
    assert f["severity"] == "warning" and "h200-sxm" in f["message"] and "cdna3" in f["message"]
    res = check(tmp_path)
    assert not [x for x in res["findings"] if x["id"] == "PF408"]  # TensorRT-LLM on H100: measured kernels and runs
    assert res["estimate"]["accuracy"]["regime"]["generation"] == "hopper"
    res = check(tmp_path, engine="vllm")
    f = next(x for x in res["findings"] if x["id"] == "PF408")
    assert f["severity"] == "info" and "vLLM" in f["message"]
