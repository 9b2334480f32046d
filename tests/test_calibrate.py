"""planfile calibrate / validate on measured results: vllm bench serve JSON and benchmarks.csv-style CSV.

tests/data/trtllm-h100-llama-3.1-8b.csv: 39 published TensorRT-LLM rows (H100 SXM, Llama-3.1-8B) copied from
shared/calibration/benchmarks.csv with their source columns."""

from __future__ import annotations

import json

import yaml

from conftest import ROOT, run_cli

SPEC = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: cal}
model: {id: llama-3.1-8b}
precision: {weights: bf16, kv_cache: bf16}
hardware: {gpu: h100-sxm, gpus_per_replica: 1, replicas: 1}
engine: {name: trtllm}
workload: {archetype: chat, arrival_rate_rps: 2}
cost: {usd_per_gpu_hour: 3}
"""
CSV = str(ROOT / "tests" / "data" / "trtllm-h100-llama-3.1-8b.csv")


def vllm_result(tmp_path, **over):
    doc = {"date": "20261101-120000", "backend": "vllm", "model_id": "meta-llama/Llama-3.1-8B", "num_prompts": 500,
           "request_rate": 4.0, "burstiness": 1.0, "max_concurrency": None, "duration": 125.0, "completed": 500,
           "failed": 0, "total_input_tokens": 512000, "total_output_tokens": 128000, "request_throughput": 4.0,
           "output_throughput": 1024.0, "mean_ttft_ms": 45.0, "median_ttft_ms": 41.0, "p99_ttft_ms": 90.0,
           "mean_tpot_ms": 9.5, "mean_itl_ms": 9.4, "median_itl_ms": 9.0, "p99_itl_ms": 20.0,
           "mean_e2el_ms": 2450.0, "median_e2el_ms": 2400.0, "p99_e2el_ms": 3100.0}
    doc.update(over)
    p = tmp_path / "vllm-4qps.json"
    p.write_text(json.dumps(doc))
    return p


def test_validate_reports_error_and_bias_and_honours_tolerance(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    res = vllm_result(tmp_path)
    r = run_cli("validate", str(res), "--spec", str(spec), "--format", "json", "--tolerance", "1000")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    metrics = {x["metric"]: x for x in doc["rows"]}
    # request_rate 4/s, 1024 in / 256 out tokens per request (512,000 / 500 and 128,000 / 500)
    assert set(metrics) >= {"output_tokens_per_s", "ttft_ms_mean", "ttft_ms_p99", "itl_ms_mean", "e2e_s_mean"}
    assert metrics["e2e_s_mean"]["measured"] == 2.45  # 2450 ms in the file, seconds in planfile
    # an open loop below saturation delivers what arrives: 4 req/s x 256 tokens = 1,024 tokens/s
    assert abs(metrics["output_tokens_per_s"]["error_pct"]) < 10
    assert all("bias_pct" in v for v in doc["summary"].values())
    strict = run_cli("validate", str(res), "--spec", str(spec), "--tolerance", "0.001")
    assert strict.returncode == 1 and "beyond tolerance" in strict.stdout


def test_calibrate_improves_the_fit_and_check_uses_the_file(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "calib.yaml"
    r = run_cli("calibrate", CSV, "--spec", str(spec), "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["engine"] == "trtllm" and doc["gpu"] == "h100-sxm"
    assert 0.3 <= doc["kernel_scale"] <= 3 and 0 < doc["floor_scale"] <= 2
    assert doc["step_overhead_ms"] >= 0 and doc["prefill_overhead_ms"] >= 0 and doc["request_overhead_ms"] >= 0
    # 15 rows carry both throughput and latency, so every factor is identified
    assert set(doc["fitted"]) == {"kernel_scale", "floor_scale", "step_overhead_ms", "prefill_overhead_ms", "request_overhead_ms"}
    # judged on runs the fit did not see: each row predicted by a fit on the other 14 is no worse than the catalog
    held = doc["held_out"]
    assert held["n"] >= 15 and held["median_abs_error_pct_fitted"] <= held["median_abs_error_pct_catalog"]
    # the per-request time is the TTFT residual; its rows must end up close (in sample)
    assert doc["error_after"]["ttft_ms_mean"]["median_abs_error_pct"] < doc["error_before"]["ttft_ms_mean"]["median_abs_error_pct"]
    spec.write_text(SPEC + "calibration: calib.yaml\n")
    c = run_cli("explain", str(spec), "--metric", "decode")
    assert c.returncode == 0 and "calibration file" in c.stdout and f"kernel scale {doc['kernel_scale']:g}" in c.stdout


def test_calibrate_with_too_few_runs_fits_only_what_they_identify(tmp_path):
    """One online run at one load identifies one speed number (the kernel scale, from its mean ITL) and the
    per-request TTFT time; it cannot separate per-step host time or the floor from the kernel scale."""
    from planner import calibration as C

    (m,) = C.read([str(vllm_result(tmp_path))])
    assert C.identifiable([m]) == ["kernel_scale", "request_overhead_ms"]

def test_concurrency_and_offline_results_are_recognised(tmp_path):
    from planner import calibration as C

    p = vllm_result(tmp_path, max_concurrency=32, request_rate="inf")
    (m,) = C.read([str(p)])
    assert (m.mode, m.concurrency, m.isl, m.osl) == ("concurrency", 32, 1024.0, 256.0)
    p = vllm_result(tmp_path, request_rate="inf")
    (m,) = C.read([str(p)])
    assert m.mode == "offline"
    ms = C.read([CSV])
    assert {m.mode for m in ms} == {"offline", "rate"}


def test_bad_results_files_exit_2_with_a_message(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    r = run_cli("validate", str(bad), "--spec", str(spec))
    assert r.returncode == 2 and "not a `vllm bench serve --save-result` file" in r.stderr
    r = run_cli("calibrate", str(tmp_path / "missing.json"), "--spec", str(spec))
    assert r.returncode == 2 and "no such file" in r.stderr
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    r = run_cli("validate", str(tmp_path / "x.csv"), "--spec", str(spec))
    assert r.returncode == 2 and "needs the columns" in r.stderr


def test_request_overhead_is_read_where_nothing_queues():
    """Per configuration only the lowest-load run's TTFT residual counts; the median over configurations.
    NIM's Llama-3.3-70B sweep (residuals 7, 145, 229, 126, 1,746 ms at concurrency 1, 5, 25, 50, 100): 7 ms,
    not the 145 ms median of every load, which is the queueing model's error. Two configurations: the median
    of their lowest-load residuals, (7 + 17) / 2 = 12 ms. A negative residual is no overhead: 0."""
    from planner.calibration import request_overhead_ms

    nim = [(("nim",), c, r) for c, r in ((5, 145.0), (1, 7.0), (25, 229.0), (50, 126.0), (100, 1746.0))]
    assert request_overhead_ms(nim) == 7.0
    triton = [(("triton",), 2.0, 17.0), (("triton",), 8.0, 19.0)]
    assert request_overhead_ms(nim + triton) == 12.0
    assert request_overhead_ms([(("x",), 1, -3.0)]) == 0.0
    assert request_overhead_ms([]) == 0.0
