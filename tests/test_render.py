"""planfile render: engine commands proven against the real parsers' option manifests, manifests against
the Kubernetes OpenAPI schemas (strict) and CRD schemas, PromQL parsed, snapshots of every text artifact,
hostile strings, determinism, drift, path safety and the template sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from planner.render import RenderError, engines, render
from planner.render.flags import Manifest
from planner.render.out import OutError, safe_path
from planner.run import check_spec

from conftest import ROOT, SHARED, run_cli
import k8s_schema

SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
FIXTURES = ROOT / "tests" / "fixtures" / "render"
EXTRA = [str(p.relative_to(ROOT)) for p in sorted(FIXTURES.glob("*.yaml"))]
NO_REPORT = ("engine", "k8s", "alerts", "bench")
FLAGS = ROOT / "catalog" / "engine-flags"


@pytest.fixture(scope="module")
def checked():
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return {s: check_spec(s) for s in SPECS + EXTRA}
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def rendered(checked):
    return {s: render(res, (ROOT / s).read_bytes(), NO_REPORT) for s, res in checked.items()}


def manifest_for(engine: str, version: str) -> Manifest:
    """The real parser's option dump from ../shared when present, else the vendored copy."""
    names = {("vllm", "0.31"): "vllm-0.31.0.json", ("vllm", "0.32"): "vllm-0.32.0.json", ("vllm", "0.33"): "vllm-0.33.0.json",
             ("sglang", "0.5.21"): "sglang-0.5.21.json", ("sglang", "0.5.23"): "sglang-0.5.23.json"}
    name = names.get((engine, version), "trtllm-1.2.json")
    src = SHARED / "reference" / "engine-flags" / name
    path = src if src.is_file() else FLAGS / name
    return Manifest(f"{engine} {version}", json.loads(path.read_text()))


def versions(engine: str) -> list[str]:
    return {"vllm": ["0.31", "0.32", "0.33"], "sglang": ["0.5.21", "0.5.23"], "trtllm": ["1.2"]}[engine]


@pytest.mark.parametrize("spec", SPECS + EXTRA)
def test_engine_command_accepted_by_every_supported_version(checked, spec):
    res = checked[spec]
    for v in versions(res.resolved.engine["id"]):
        r = replace(res.resolved, engine_version=v)
        m = manifest_for(r.engine["id"], v)
        roles = ["leader", "worker"] if engines.multinode(r) > 1 else [None]
        for role in roles:
            launch = engines.launch(r, res.estimate, role)
            assert launch.errors == []
            assert m.check_argv(launch.options, launch.env_refs) == [], (v, role)
            argv = launch.argv()
            assert "--swap-space" not in argv
            assert not any(a.startswith("--disable-") for a in argv if r.engine["id"] == "vllm")  # 0.32 rejects them
            if r.engine["id"] == "vllm":
                assert m.check_config(launch.config) == []
                assert False not in launch.config.values()  # `key: false` is dropped by `vllm serve --config`


def test_vendored_manifests_agree_with_the_shared_reference():
    """catalog/engine-flags/ is dumped by tools/dump_engine_flags.py from the real parsers; ../shared holds
    an earlier dump of the same releases. Every option agrees on flags, dest, type and choices, and on being
    a switch wherever the reference records it (its SGLang dump left store_true out for 16 switches, which
    tests/test_engine_parsers.py's real parser confirms are switches)."""
    if not (SHARED / "reference" / "engine-flags").is_dir():
        pytest.skip("../shared is not beside this checkout")
    for src in (SHARED / "reference" / "engine-flags").glob("*.json"):
        ours = {tuple(e["flags"]): e for e in json.loads((FLAGS / src.name).read_text()) if "flags" in e}
        ref = [e for e in json.loads(src.read_text()) if "flags" in e]
        assert len(ours) == len(ref), src.name
        for e in ref:
            o = ours[tuple(e["flags"])]
            choices = (lambda c: sorted(map(str, c)) if c else c)  # a registry's order may vary between dumps
            assert (o["dest"], o["type"], choices(o["choices"])) == (e["dest"], e["type"], choices(e["choices"])), (src.name, e["flags"])
            for k in ("store_true", "bool_optional"):
                if k in e:
                    assert o[k] == e[k], (src.name, e["flags"], k)


def test_manifest_rejects_what_the_real_parsers_reject():
    m32, m33 = manifest_for("vllm", "0.32"), manifest_for("vllm", "0.33")
    sgl = manifest_for("sglang", "0.5.23")
    assert m32.check_argv(["--swap-space", "4"]) == m33.check_argv(["--swap-space", "4"]) == ["no option --swap-space"]
    assert m32.check_argv(["--disable-prefix-caching"])  # 0.32 only knows --no-enable-prefix-caching
    assert m33.check_argv(["--disable-prefix-caching"]) == []
    assert m32.check_argv(["--no-enable-prefix-caching"]) == m33.check_argv(["--no-enable-prefix-caching"]) == []
    assert m33.check_argv(["--tensor-parallel-size", "four"]) == ["--tensor-parallel-size expects an integer, got 'four'"]
    assert m33.check_argv(["--max-model-len", "32k"])  # plain integers only: 32k means 32,000
    assert sgl.check_argv(["--kv-cache-dtype", "fp8"])  # SGLang rejects fp8, wants fp8_e4m3
    assert sgl.check_argv(["--kv-cache-dtype", "fp8_e4m3"]) == []
    assert m33.check_config({"enable-prefix-caching": False})  # silently dropped by vLLM: must be flagged


def test_sglang_spells_fp8_kv_as_e4m3_and_enables_metrics(checked):
    argv = engines.launch(checked["specs/deepseek-v3-h200.yaml"].resolved, checked["specs/deepseek-v3-h200.yaml"].estimate).argv()
    r = checked["specs/deepseek-v3-h200.yaml"].resolved
    fp8 = engines.launch(replace(r, kv_cache="fp8"), checked["specs/deepseek-v3-h200.yaml"].estimate).argv()
    assert fp8[fp8.index("--kv-cache-dtype") + 1] == "fp8_e4m3"
    assert "--enable-metrics" in argv and argv[:3] == ["python3", "-m", "sglang.launch_server"]


def test_max_num_seqs_comes_from_the_kv_pool_not_the_spec(checked):
    # chat-llama-70b: the pool holds est.memory.max_concurrent_sequences at the mean context, below vLLM's 1024
    res = checked["specs/chat-llama-3.1-70b.yaml"]
    held = res.estimate["memory"]["max_concurrent_sequences"]
    argv = engines.launch(res.resolved, res.estimate).argv()
    assert held < 1024 and argv[argv.index("--max-num-seqs") + 1] == str(held)


def test_trtllm_options_yaml_matches_the_strict_llm_api_schema(rendered):
    schema = json.loads((ROOT / "tests" / "data" / "trtllm-llm-api-options.schema.json").read_text())
    cfg = yaml.safe_load(rendered["tests/fixtures/render/trtllm-8b.yaml"]["engine/extra-llm-api-options.yaml"])
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(cfg)) == []
    assert cfg["kv_cache_config"]["dtype"] == "fp8" and cfg["kv_cache_config"]["host_cache_size"] == 200_000_000_000
    bad = dict(cfg, kv_cache_config=dict(cfg["kv_cache_config"], dtype="int4"), unknown_key=1)
    assert len(list(jsonschema.Draft202012Validator(schema).iter_errors(bad))) == 2


def test_engine_rejections_are_check_errors(checked):
    res = checked["specs/deepseek-v3-h200.yaml"]
    launch = engines.launch(replace(res.resolved, kv_cache="int4"), res.estimate)
    assert launch.errors and "SGLang has no int4 KV cache" in launch.errors[0][1]
    bad = engines.launch(replace(checked["specs/small-llama-3.1-8b-l4.yaml"].resolved, extra_args=("--swap-space", "4")),
                         checked["specs/small-llama-3.1-8b-l4.yaml"].estimate)
    assert bad.errors == [("/engine/extra_args", "vLLM 0.33 would reject the command: no option --swap-space")]


@pytest.mark.parametrize("spec", SPECS + EXTRA)
def test_every_manifest_validates_strictly(rendered, spec):
    n = 0
    for path, text in rendered[spec].items():
        if path.startswith(("k8s/", "alerts/")):
            for obj in yaml.safe_load_all(text):
                assert k8s_schema.errors(obj) == [], path
                n += 1
    # a Deployment or LeaderWorkerSet, its Service and the alert rules; a disaggregated graph is one
    # DynamoGraphDeployment (the operator creates the rest) and the alert rules
    assert n >= (2 if "disagg" in spec else 3)


def test_strict_validation_catches_typos_and_crd_errors(rendered):
    files = rendered["tests/fixtures/render/multinode-405b.yaml"]
    lws = yaml.safe_load(files["k8s/leaderworkerset.yaml"])
    lws["spec"]["leaderWorkerTemplate"]["size"] = "2"
    lws["spec"]["startupPolicy"] = "LeaderFirst"
    assert len(k8s_schema.errors(lws)) == 2
    dep = yaml.safe_load(rendered["specs/chat-llama-3.1-70b.yaml"]["k8s/deployment.yaml"])
    dep["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert any("'resource' was unexpected" in e for e in k8s_schema.errors(dep))


def test_multinode_replica_is_a_leaderworkerset(rendered):
    files = rendered["tests/fixtures/render/multinode-405b.yaml"]
    assert "k8s/deployment.yaml" not in files
    lws = yaml.safe_load(files["k8s/leaderworkerset.yaml"])
    t = lws["spec"]["leaderWorkerTemplate"]
    assert t["size"] == 2  # 16 GPUs / 8 per node
    leader, worker = (t[k]["spec"]["containers"][0] for k in ("leaderTemplate", "workerTemplate"))
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "8" and leader["resources"]["requests"]["nvidia.com/gpu"] == "8"
    assert "--headless" in worker["args"] and "startupProbe" in leader and "startupProbe" not in worker
    hpa = yaml.safe_load(files["k8s/hpa.yaml"])
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    svc = yaml.safe_load(files["k8s/service.yaml"])
    assert svc["spec"]["selector"]["role"] == "leader"


def test_kubernetes_conventions(rendered, checked):
    files = rendered["specs/chat-llama-3.1-70b.yaml"]
    dep = yaml.safe_load(files["k8s/deployment.yaml"])
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["vllm", "serve"] and c["args"][0] == "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert c["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"  # token by reference, never inline
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    # startup budget = 2 x cold start + 60 s: cold start = weights / 6 GB/s + 60 s engine start
    cold = checked["specs/chat-llama-3.1-70b.yaml"].estimate["cost"]["cold_start_s"]
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 2 * cold + 60
    assert yaml.safe_load(files["k8s/pdb.yaml"])["spec"]["maxUnavailable"] == 1


def test_keda_scaler_targets_follow_the_breach_point(rendered, checked):
    res = checked["specs/agent-qwen3-32b.yaml"]
    so = yaml.safe_load(rendered["specs/agent-qwen3-32b.yaml"]["k8s/scaledobject.yaml"])
    trig = so["spec"]["triggers"][0]["metadata"]
    assert 'model_name="support-agent"' in trig["query"] and "model=" not in trig["query"].replace("model_name", "")
    b = res.estimate["capacity"]["breach_rps"] / res.resolved.replicas
    e2e = res.estimate["performance"]["e2e_s"]["mean"]
    # per-replica threshold, Little's law at 80 % of the breach point: in flight = 0.8 x breach/replica x mean e2e
    assert float(trig["threshold"]) == pytest.approx(max(1.0, 0.8 * b * e2e), abs=0.05)
    assert "num_requests_running" in trig["query"] and "num_requests_waiting" in trig["query"]  # in flight = running + waiting
    assert so["spec"]["minReplicaCount"] == 2 and so["spec"]["maxReplicaCount"] == 6
    up = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert {"type": "Pods", "value": 4, "periodSeconds": 60} in up["policies"]  # the whole ramp (2 -> 6) in one period


@pytest.mark.parametrize("spec", SPECS + EXTRA)
def test_alert_promql_parses_and_uses_current_metric_names(rendered, spec):
    promql_parser = pytest.importorskip("promql_parser")
    files = rendered[spec]
    if "alerts/prometheusrule.yaml" not in files:
        assert checked_engine(spec) == "trtllm"
        return
    rule = yaml.safe_load(files["alerts/prometheusrule.yaml"])
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    for e in exprs:
        promql_parser.parse(e)
        for gone in ("vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds") + (() if "disagg" in spec else ("{model=",)):
            assert gone not in e


def checked_engine(spec):
    return yaml.safe_load((ROOT / spec).read_text())["engine"]["name"]


SNAPSHOT_SPECS = ["specs/small-llama-3.1-8b-l4.yaml", "specs/chat-llama-3.1-70b.yaml", "tests/fixtures/render/multinode-405b.yaml"]


@pytest.mark.parametrize("spec", SNAPSHOT_SPECS)
def test_rendered_artifacts_snapshot(rendered, spec, snapshot):
    assert rendered[spec] == snapshot


HOSTILE = 'evil"\n  injected: true\n# {{ 7*7 }} ${HOME} `id` </script><b>x</b> \u2028 \x85 \U0001F600'


def test_hostile_strings_cannot_change_structure(tmp_path):
    spec = (ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text()
    from planner.render import yaml_scalar

    q = yaml_scalar(HOSTILE)
    # names the engine and Kubernetes use are patterns: a hostile served name or model name is refused by check
    bad = spec.replace("  id: llama-3.1-8b", "  id: llama-3.1-8b\n  served_name: " + q + "\n  name: " + q)
    p = tmp_path / "bad.yaml"
    p.write_text(bad, encoding="utf-8")
    res = check_spec(str(p))
    assert res.status == "invalid"
    assert {f.pointer for f in res.findings if f.id == "PF013"} >= {"/model/served_name", "/model/name"}
    # free text reaches every artifact, escaped per output context
    spec = spec.replace("  name: internal-helper", "  name: internal-helper\n  description: " + q)
    spec = spec.replace("engine:\n  name: vllm", "engine:\n  name: vllm\n  extra_args: [\"--chat-template-content-format\", " + q + "]")
    p = tmp_path / "hostile.yaml"
    p.write_text(spec, encoding="utf-8")
    res = check_spec(str(p))
    assert res.status == "invalid"  # control characters in an engine argument are refused too
    spec = spec.replace("  extra_args: [\"--chat-template-content-format\", " + q + "]\n", "")
    p.write_text(spec, encoding="utf-8")
    res = check_spec(str(p))
    assert res.status == "pass", [f.message for f in res.findings]
    files = render(res, p.read_bytes())
    dep = yaml.safe_load(files["k8s/deployment.yaml"])
    assert set(dep) == {"apiVersion", "kind", "metadata", "spec"} and "injected" not in json.dumps(dep)
    rule = yaml.safe_load(files["alerts/prometheusrule.yaml"])
    assert all(set(r) == {"alert", "expr", "for", "labels", "annotations"} for r in rule["spec"]["groups"][0]["rules"])
    import promql_parser

    for r in rule["spec"]["groups"][0]["rules"]:
        promql_parser.parse(r["expr"])
    assert "<b>x</b>" not in files["report.html"] and "&lt;b&gt;x&lt;/b&gt;" in files["report.html"]
    assert "{{ 7*7 }}" in files["report.html"] or "{{ 7*7 }}" in files["report.md"]  # not evaluated


def test_secret_references_in_arguments_are_not_expanded_by_kubernetes(tmp_path, checked):
    """$(HF_TOKEN) in a value planfile did not write itself reaches the container as the literal text: Kubernetes
    only expands $(VAR), and $$(VAR) is its escape."""
    spec = (ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text().replace(
        "engine:\n  name: vllm", "engine:\n  name: vllm\n  extra_args: [\"--chat-template-content-format\", \"$(HF_TOKEN)\"]")
    p = tmp_path / "s.yaml"
    p.write_text(spec)
    res = check_spec(str(p))
    assert res.status == "fail" and any(f.id == "PF602" for f in res.findings)  # not a valid choice of that option
    spec = (ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text().replace(
        "engine:\n  name: vllm", "engine:\n  name: vllm\n  extra_args: [\"--generation-config\", \"$(HF_TOKEN)\"]")
    p.write_text(spec)
    res = check_spec(str(p))
    assert res.status == "pass", [f.message for f in res.findings if f.severity == "error"]
    dep = yaml.safe_load(render(res, p.read_bytes(), ("k8s",))["k8s/deployment.yaml"])
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "$$(HF_TOKEN)" in args and "$(HF_TOKEN)" not in args


def test_user_templates_are_sandboxed(tmp_path, checked):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.sh.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    with pytest.raises(RenderError, match="unsafe|access"):
        render(checked["specs/small-llama-3.1-8b-l4.yaml"], b"", ("bench",), str(tmp_path))
    (tmp_path / "bench" / "bench.sh.j2").write_text("{{ no_such_value }}\n")
    with pytest.raises(RenderError, match="no_such_value"):
        render(checked["specs/small-llama-3.1-8b-l4.yaml"], b"", ("bench",), str(tmp_path))
    (tmp_path / "bench" / "bench.sh.j2").write_text("# ours\n{{ bench_argv|shjoin }}\n")
    files = render(checked["specs/small-llama-3.1-8b-l4.yaml"], b"", ("bench",), str(tmp_path))
    assert files["bench.sh"].startswith("# ours\nvllm bench serve")


def test_paths_cannot_escape_the_output_folder(tmp_path):
    (tmp_path / "out").mkdir()
    for bad in ("../x", "/etc/passwd", "a/../../x", "", "./a"):
        with pytest.raises(OutError):
            safe_path(tmp_path / "out", bad)
    os.symlink(tmp_path, tmp_path / "out" / "link")
    with pytest.raises(OutError, match="outside"):
        safe_path(tmp_path / "out", "link/x")
    assert safe_path(tmp_path / "out", "k8s/a.yaml") == tmp_path / "out" / "k8s" / "a.yaml"


def test_render_cli_writes_checks_drift_and_refuses_foreign_files(tmp_path):
    out = tmp_path / "deploy"
    spec = "specs/small-llama-3.1-8b-l4.yaml"
    r = run_cli("render", spec, "--out", str(out), "--only", "engine,k8s,alerts,bench")
    assert r.returncode == 0, r.stderr
    assert (out / "k8s" / "deployment.yaml").is_file() and (out / ".planfile-render.json").is_file()
    assert os.access(out / "bench.sh", os.X_OK)
    r = run_cli("render", spec, "--out", str(out), "--only", "engine,k8s,alerts,bench", "--check")
    assert r.returncode == 0 and "up to date" in r.stdout
    dep = out / "k8s" / "deployment.yaml"
    dep.write_text(dep.read_text().replace("replicas: 2", "replicas: 3"))
    r = run_cli("render", spec, "--out", str(out), "--only", "engine,k8s,alerts,bench", "--check")
    assert r.returncode == 1 and "-  replicas: 3\n+  replicas: 2" in r.stdout
    # a file planfile did not write is never overwritten without --force, and nothing is written
    (out / "alerts" / "prometheusrule.yaml").unlink()
    (out / ".planfile-render.json").unlink()
    (out / "alerts" / "prometheusrule.yaml").write_text("mine\n")
    r = run_cli("render", spec, "--out", str(out), "--only", "engine,k8s,alerts,bench")
    assert r.returncode == 2 and "did not write" in r.stderr
    assert (out / "alerts" / "prometheusrule.yaml").read_text() == "mine\n" and "replicas: 3" in dep.read_text()
    r = run_cli("render", spec, "--out", str(out), "--only", "engine,k8s,alerts,bench", "--force")
    assert r.returncode == 0 and "replicas: 2" in dep.read_text()
    # switching targets removes the files planfile wrote for the old ones
    r = run_cli("render", spec, "--out", str(out), "--only", "engine")
    assert r.returncode == 0 and not dep.exists() and (out / "engine" / "serve.sh").exists()


def test_render_refuses_failing_and_invalid_specs(tmp_path):
    bad = tmp_path / "slow.yaml"
    bad.write_text((ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text().replace("itl_ms: {p95: 120}", "itl_ms: {p95: 1}"))
    r = run_cli("render", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "nothing written" in r.stderr and not (tmp_path / "o").exists()
    r = run_cli("render", str(ROOT / "tests/fixtures/invalid/09-unknown-gpu.yaml"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and not (tmp_path / "o").exists()
    r = run_cli("render", "specs/small-llama-3.1-8b-l4.yaml", "--out", str(tmp_path / "o"), "--only", "helm")
    assert r.returncode == 2 and "unknown target helm" in r.stderr


def test_render_is_deterministic_across_hash_seeds(tmp_path):
    outs = []
    for seed in ("1", "4242"):
        out = tmp_path / seed
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "planner", "render", "specs/chat-llama-3.1-70b.yaml", "--out", str(out)],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        outs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outs[0] == outs[1] and len(outs[0]) > 15


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        for d in os.environ.get("PATH", "").split(os.pathsep):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return None


def test_report_html_shows_its_charts_in_headless_chromium(tmp_path, checked):
    browser = _chromium()
    if browser is None:
        if os.environ.get("PLANFILE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required in CI (PLANFILE_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("chromium not installed (CI installs it from Debian's packages)")
    files = render(checked["specs/chat-llama-3.1-70b.yaml"], b"", ("report",))
    html = files["report.html"]
    import re

    # self-contained: nothing fetched from the network (XML namespace URIs are names, not fetches)
    assert not re.findall(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html) and "<script" not in html
    assert "<link" not in html and "@import" not in html
    assert html.count("<svg") == 6
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,3600",
                    f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=60)
    import matplotlib.image

    img = matplotlib.image.imread(str(png))[:, :, :3]
    # the charts' series colours (#4C72B0 blue, #55A868 green, #C44E52 red) cover real area of the page
    for rgb in ((0x4C, 0x72, 0xB0), (0x55, 0xA8, 0x68), (0xC4, 0x4E, 0x52)):
        close = (abs(img - [c / 255 for c in rgb]).max(axis=2) < 0.04).sum()
        assert close > 2000, rgb


def test_a_pipeline_replica_caps_its_batch_at_what_one_stage_holds(tmp_path):
    """Llama-3.1-405B, TP8 x PP2 on H100: each stage's GPU holds 63 of 126 layers of every sequence in flight,
    so the replica holds the sequences one GPU's pool does (the memory plan's figure), not twice that. SGLang's
    --max-running-requests counts every micro-batch's requests: it was rendered at 2 x the pool."""
    from conftest import run_cli

    p = tmp_path / "l405.yaml"
    p.write_text("""apiVersion: planfile/v1
kind: Deployment
metadata: {name: l405}
model: {id: llama-3.1-405b}
precision: {weights: bf16, kv_cache: fp8}
hardware: {gpu: h100-sxm, gpus_per_replica: 16, replicas: 1}
parallelism: {tensor: 8, pipeline: 2}
engine: {name: sglang}
workload: {archetype: chat, arrival_rate_rps: 0.5}
slo: {ttft_ms: {p95: 3000}, itl_ms: {p95: 100}}
""")
    held = json.loads(run_cli("check", str(p), "--format", "json", "--no-breach").stdout)["results"][0]["estimate"]["memory"][
        "max_concurrent_sequences"]
    out = tmp_path / "out"
    r = run_cli("render", str(p), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    lws = (out / "k8s" / "leaderworkerset.yaml").read_text()
    assert f'"--max-running-requests", "{held}"' in lws, (held, lws[:3000])
    # and PF304 does not propose the split the spec has (tensor 8 in a node, pipeline across)
    pf304 = [f for f in json.loads(run_cli("check", str(p), "--format", "json", "--no-breach").stdout)["results"][0]["findings"]
             if f["id"] == "PF304"]
    assert pf304 and "pipeline" not in pf304[0]["remediation"], pf304


def test_the_owner_is_on_the_report_and_every_alert(tmp_path):
    """metadata.owner promised "shown in reports and alerts" and was read by nothing."""
    from conftest import run_cli

    spec = (ROOT / "specs" / "chat-llama-3.1-70b.yaml").read_text()
    assert "owner:" not in spec
    p = tmp_path / "s.yaml"
    p.write_text(spec.replace("metadata:\n", "metadata:\n  owner: \"ml-platform <oncall@example.com>\"\n", 1))
    out = tmp_path / "out"
    r = run_cli("render", str(p), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    rules = yaml.safe_load((out / "alerts" / "prometheusrule.yaml").read_text())["spec"]["groups"][0]["rules"]
    assert rules and all(x["annotations"]["owner"] == "ml-platform <oncall@example.com>" for x in rules)
    assert "Owner: ml-platform" in (out / "report.md").read_text()
    assert "Owner: ml-platform &lt;oncall@example.com&gt;." in (out / "report.html").read_text()


def test_the_report_headline_says_max_only_for_an_autoscaled_fleet(checked):
    """The chat example is a fixed fleet of 4 x TP2 = 8 H100s: its headline reads "8 x NVIDIA H100 SXM", not
    "... max"; the autoscaled 405B fixture's count is its ceiling, and the headline says so."""
    fixed = render(checked["specs/chat-llama-3.1-70b.yaml"], (ROOT / "specs/chat-llama-3.1-70b.yaml").read_bytes(), ("report",))
    head = next(x for x in fixed["report.md"].splitlines() if x.startswith("**PASS**"))
    assert head.endswith("8 x NVIDIA H100 SXM") and "max" not in head, head
    spec = "tests/fixtures/render/multinode-405b.yaml"
    auto = render(checked[spec], (ROOT / spec).read_bytes(), ("report",))
    head = next(x for x in auto["report.md"].splitlines() if x.startswith("**"))
    assert head.endswith("at most (autoscaled)"), head
