"""Untrusted specs (issue 14): every reproducer of the adversarial run, as a test. A pull request controls
the spec, the files it names, template overrides, results files and the file name itself."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli
from planner.render import RenderError, render
from planner.run import check_spec

FAILING = ROOT / "tests" / "fixtures" / "checks" / "pf401-slo-breach.yaml"
SMALL = (ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text()


def spec_file(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def ids(res):
    return {f.id for f in res.findings if f.severity == "error" and not f.waived}


# 1. gate bypass through side files ----------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "engine: vllm\ngpu: h100-sxm\nmfu: 1.0e18\nmbu: 1.0e18\nmbu_kv: 1.0e18\noverhead_ms: -1000\n",
    "engine: vllm\ngpu: h100-sxm\nmfu: 50\n",
    "engine: vllm\ngpu: h100-sxm\nmfu: 0\n",
    "engine: vllm\ngpu: h100-sxm\nmfu: .nan\n",
    "engine: vllm\ngpu: h100-sxm\nmfu: '0.5'\n",
    "just text\n",
])
def test_calibration_values_outside_physics_are_refused(tmp_path, body):
    text = FAILING.read_text()
    (tmp_path / "calv.yaml").write_text(body)
    res = check_spec(str(spec_file(tmp_path, text + "calibration: calv.yaml\n")))
    assert res.status == "invalid" and "PF116" in ids(res)
    f = next(f for f in res.findings if f.id == "PF116")
    assert "calv.yaml:" in f.message  # file:line of the bad value


def test_calibration_cannot_be_a_system_file(tmp_path):
    res = check_spec(str(spec_file(tmp_path, FAILING.read_text() + "calibration: /etc/passwd\n")))
    assert res.status == "invalid" and "PF116" in ids(res)


def test_calibration_for_another_engine_or_gpu_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("engine: trtllm\ngpu: h200-sxm\nkernel_scale: 1.1\n")
    res = check_spec(str(spec_file(tmp_path, FAILING.read_text() + "calibration: c.yaml\n")))
    assert "PF116" in ids(res) and "do not transfer" in next(f.message for f in res.findings if f.id == "PF116")


HF = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
      "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
      "max_position_embeddings": 131072}
HF_SPEC = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: hf}
model: {hf_config: cfg/config.json, name: my-org/my-model}
hardware: {gpu: h100-sxm, replicas: 2}
engine: {name: vllm}
workload: {archetype: chat, arrival_rate_rps: 1}
"""


@pytest.mark.parametrize("patch", [{"hidden_size": -4096}, {"num_key_value_heads": 0}, {"hidden_size": True},
                                   {"num_hidden_layers": 1.5}, {"num_attention_heads": 32, "num_key_value_heads": 7},
                                   {"vocab_size": "lots"}])
def test_hf_config_values_outside_physics_are_refused(tmp_path, patch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(dict(HF, **patch)))
    res = check_spec(str(spec_file(tmp_path, HF_SPEC)))
    assert res.status == "invalid" and "PF107" in ids(res), [f.message for f in res.findings]


def test_a_valid_hf_config_passes(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(HF))
    res = check_spec(str(spec_file(tmp_path, HF_SPEC)), breach=False)
    assert res.status != "invalid", [f.message for f in res.findings]
    assert res.resolved.checkpoint.repo == "my-org/my-model"


# 2. command execution in bench.sh -------------------------------------------------------------------------

@pytest.mark.parametrize("edit", [("  name: internal-helper", '  name: "inj\\n"'),
                                  ("  name: internal-helper", '  name: internal-helper\n  namespace: "default\\n"'),
                                  ("  name: internal-helper", '  name: internal-helper\n  labels: {"team\\n": x}')])
def test_names_with_a_trailing_newline_are_refused(tmp_path, edit):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace(*edit))))
    assert res.status == "invalid"


def test_a_hostile_spec_file_name_cannot_run_commands_from_bench_sh(tmp_path):
    p = spec_file(tmp_path, SMALL, name="x;touch PWNED;.yaml")
    res = check_spec(str(p))
    assert res.status == "pass"
    files = render(res, p.read_bytes(), ("bench",))
    work = tmp_path / "run"
    work.mkdir()
    (work / "bench.sh").write_text(files["bench.sh"])
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "vllm").write_text("#!/bin/sh\nexit 0\n")
    (stub / "vllm").chmod(0o755)
    subprocess.run(["sh", "bench.sh"], cwd=work, env=dict(os.environ, PATH=f"{stub}:{os.environ['PATH']}"), check=True,
                   capture_output=True)
    assert not (work / "PWNED").exists() and not (tmp_path / "PWNED").exists()


# 3. secret expansion ----------------------------------------------------------------------------------------

def test_served_name_cannot_reference_a_secret(tmp_path):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  id: llama-3.1-8b", '  id: llama-3.1-8b\n  served_name: "$(HF_TOKEN)"'))))
    assert res.status == "invalid" and any(f.pointer == "/model/served_name" for f in res.findings)


def test_a_dynamo_worker_cannot_expand_a_secret_from_extra_args(tmp_path):
    """Kubernetes expands $(VAR) in a container's args: the Dynamo graph's worker args are escaped like every
    other container's (`$$(`), so `extra_args: [--chat-template, "`id`$(HF_TOKEN)"]` reaches SGLang as text
    and not as the Hub token (the fuzzer found the graph unescaped)."""
    text = (ROOT / "specs" / "disagg-llama-3.1-70b-h200.yaml").read_text().replace(
        "  name: vllm", '  name: sglang\n  extra_args: ["--chat-template", "`id`$(HF_TOKEN)"]') + (
        "checks:\n  ignore: [{id: PF604, path: /engine/extra_args/0, reason: 'a template the image ships'}]\n")
    out = tmp_path / "out"
    r = run_cli("render", str(spec_file(tmp_path, text)), "--out", str(out), "--only", "k8s")
    assert r.returncode == 0, r.stderr
    (doc,) = yaml.safe_load_all((out / "k8s" / "dynamographdeployment.yaml").read_text())
    workers = [c["podTemplate"]["spec"]["containers"][0]["args"] for c in doc["spec"]["components"][1:]]
    assert all("`id`$$(HF_TOKEN)" in args for args in workers), workers
    assert not any("`id`$(HF_TOKEN)" in args for args in workers)


def test_an_api_key_in_extra_args_is_refused(tmp_path):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  name: vllm", '  name: vllm\n  extra_args: ["--api-key", "$(HF_TOKEN)"]'))),
                     breach=False)
    assert "PF602" in ids(res) and "Secret" in next(f.message for f in res.findings if f.id == "PF602")


# 4. dangerous engine flags -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--trust-remote-code"], ["--middleware", "os.system"],
                                  ["--allowed-local-media-path", "/"], ["--chat-template", "/etc/passwd"],
                                  ["--chat-template=/etc/passwd"]])
def test_flags_that_run_code_or_expose_files_are_errors(tmp_path, args):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  name: vllm", "  name: vllm\n  extra_args: " + json.dumps(args)))),
                     breach=False)
    assert res.status == "fail" and "PF604" in ids(res)


def test_a_waiver_with_a_reason_accepts_a_dangerous_flag(tmp_path):
    text = SMALL.replace("  name: vllm", '  name: vllm\n  extra_args: ["--trust-remote-code"]') + (
        "checks:\n  ignore: [{id: PF604, path: /engine/extra_args/0, reason: 'reviewed by security, repo pinned'}]\n")
    res = check_spec(str(spec_file(tmp_path, text)), breach=False)
    assert "PF604" not in ids(res) and any(f.id == "PF604" and f.waived for f in res.findings)


@pytest.mark.parametrize("name", ["--trust-remote-code", "١٢٣", "²", "a b"])
def test_served_names_that_are_not_names_are_refused(tmp_path, name):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  id: llama-3.1-8b", "  id: llama-3.1-8b\n  served_name: " + json.dumps(name)))))
    assert res.status == "invalid"


@pytest.mark.parametrize("name", ["1e5", "nan", "0x10", "true"])
def test_served_names_keep_their_text_in_the_engine_config(tmp_path, name):
    p = spec_file(tmp_path, SMALL.replace("  id: llama-3.1-8b", "  id: llama-3.1-8b\n  served_name: " + json.dumps(name)))
    res = check_spec(str(p))
    assert res.status == "pass", [f.message for f in res.findings]
    cfg = yaml.safe_load(render(res, p.read_bytes(), ("engine",))["engine/vllm-config.yaml"])
    assert cfg["served-model-name"] == name and "trust-remote-code" not in cfg


# 5. unbounded side-file reads ---------------------------------------------------------------------------------

def _hf_spec_with(tmp_path, make):
    (tmp_path / "cfg").mkdir()
    make(tmp_path / "cfg" / "config.json")
    return spec_file(tmp_path, HF_SPEC)


def test_hf_config_symlink_to_dev_zero_is_refused(tmp_path):
    p = _hf_spec_with(tmp_path, lambda c: c.symlink_to("/dev/zero"))
    res = check_spec(str(p))
    assert "PF107" in ids(res) and "device" in next(f.message for f in res.findings if f.id == "PF107")


def test_hf_config_fifo_does_not_hang(tmp_path):
    p = _hf_spec_with(tmp_path, lambda c: os.mkfifo(c))
    r = subprocess.run([sys.executable, "-m", "planner", "check", str(p)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PLANFILE_NO_CACHE="1"))
    assert r.returncode == 2 and "FIFO" in r.stdout


@pytest.mark.parametrize("old, new", [("  tensor: 8", "  tensor: 1000000000000"), ("  expert: 8", "  expert: 1000000000000"),
                                      ("  expert: 8\n", "  expert: 8\n  attention_data: 1000000000000\n")])
def test_a_huge_parallel_degree_is_refused_not_searched(tmp_path, old, new):
    """The schema caps every parallelism degree at 1,024, but the semantic checks run on a refused spec too: PF125
    (block-FP8 shards) once listed every divisor below `tensor` — tensor: 10**12 stalled check for good (found
    by benchmarks/fuzz.py, seed 20261203). A PR could have hung every CI run that checks the spec."""
    from planner.validate import SPLIT_MAX
    from planner.resources import schema

    par = schema("deployment")["properties"]["parallelism"]["properties"]
    assert all(v["maximum"] == SPLIT_MAX for v in par.values())  # the bound the checks trust is the schema's
    p = tmp_path / "s.yaml"
    text = (ROOT / "specs" / "deepseek-v3-h200.yaml").read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))
    r = run_cli("check", str(p), "--no-breach")  # run_cli's 120 s timeout: a stall fails the test
    assert r.returncode == 2 and "expected at most 1024" in r.stdout, r.stdout + r.stderr


def test_a_huge_hf_config_is_refused_before_reading(tmp_path):
    def big(c):
        with open(c, "wb") as fh:
            fh.truncate(2 * 1024 ** 3)  # sparse: 2 GB apparent size, no disk used
    p = _hf_spec_with(tmp_path, big)
    res = check_spec(str(p))
    assert "PF107" in ids(res) and "at most" in next(f.message for f in res.findings if f.id == "PF107")


def test_import_hf_of_a_device_exits_2():
    r = run_cli("catalog", "import-hf", "/dev/zero")
    assert r.returncode == 2 and "Traceback" not in r.stderr


# 6. template overrides ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_res():
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return check_spec("specs/small-llama-3.1-8b-l4.yaml")
    finally:
        os.chdir(cwd)


def test_template_overrides_do_not_follow_symlinks(tmp_path, small_res):
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "env.txt").symlink_to("/proc/self/environ")
    (tmp_path / "engine" / "serve.sh.j2").write_text("{% include 'engine/env.txt' %}\n")
    with pytest.raises(RenderError, match="symbolic link"):
        render(small_res, b"", ("engine",), str(tmp_path))


@pytest.mark.parametrize("body", ["{{ 'a' * 10**9 }}", "{{ 'a' * 1000000000 }}", "{{ [1] * 10**8 }}", "{{ lipsum(10**6) }}"])
def test_templates_cannot_build_huge_outputs(tmp_path, small_res, body):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.sh.j2").write_text(body + "\n")
    with pytest.raises(RenderError):
        render(small_res, b"", ("bench",), str(tmp_path))


def test_templates_have_a_time_budget(tmp_path, small_res, monkeypatch):
    import planner.render as R

    monkeypatch.setattr(R, "MAX_RENDER_S", 0.5)
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.sh.j2").write_text("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n")
    with pytest.raises(RenderError, match="longer than"):
        render(small_res, b"", ("bench",), str(tmp_path))


# 7. spoofable CI output --------------------------------------------------------------------------------------

def test_carriage_return_cannot_forge_a_markdown_heading(tmp_path):
    text = FAILING.read_text().replace("kind: Deployment", 'kind: Deployment\n"x\\r### ✅ all good: PASS": 1')
    p = spec_file(tmp_path, text)
    r = run_cli("check", str(p), "--format", "markdown")
    assert "\r" not in r.stdout
    assert not any(line.startswith("### ✅") for line in r.stdout.splitlines())


def test_waiver_reasons_cannot_emit_workflow_commands_or_escapes(tmp_path):
    text = FAILING.read_text() + ('checks:\n  ignore: [{id: PF401, reason: "ok\\n::error::forged\\n::stop-commands::x\\u001b[31m"}]\n')
    r = run_cli("check", str(spec_file(tmp_path, text)), "--no-breach")
    assert "\x1b" not in r.stdout
    assert not any(line.startswith("::") for line in r.stdout.splitlines())


def test_a_spec_path_cannot_start_a_workflow_command(tmp_path):
    p = spec_file(tmp_path, SMALL, name="::error::x.yaml")
    r = run_cli("check", "--no-breach", "::error::x.yaml", env_extra={}) if False else subprocess.run(
        [sys.executable, "-m", "planner", "check", "--no-breach", p.name], cwd=tmp_path, capture_output=True, text=True,
        env=dict(os.environ, PLANFILE_NO_CACHE="1", PYTHONPATH=str(ROOT)))
    assert r.returncode in (0, 1) and not any(line.startswith("::") for line in r.stdout.splitlines())


def test_report_md_code_fence_cannot_be_closed_by_a_value(tmp_path):
    from planner.escape import markdown_fence

    block = markdown_fence("a\n```\n# injected", "sh")
    assert block.startswith("````sh") and block.endswith("\n````")


def test_diff_markdown_renders_no_links_from_spec_values(tmp_path):
    a = spec_file(tmp_path, SMALL, "a.yaml")
    b = spec_file(tmp_path, SMALL.replace("  name: internal-helper", '  name: internal-helper\n  description: "[click](http://evil.example)"'),
                  "b.yaml")
    r = run_cli("diff", str(a), str(b), "--format", "markdown")
    import re

    outside_code = re.sub(r"(`+)(.*?)\1", "", r.stdout)  # code spans render verbatim: no link inside one
    assert r.returncode == 0 and "[click](http://evil.example)" in r.stdout and "](http" not in outside_code


# 8. render transactions ---------------------------------------------------------------------------------------

def _render_to(res, spec_path, out):
    from planner.render.out import write

    files = render(res, Path(spec_path).read_bytes(), ("engine", "k8s", "bench"))
    return files, write(out, files, str(spec_path))


def test_an_interrupted_render_is_seen_by_check_and_repaired(tmp_path, small_res, monkeypatch):
    from planner.render import out as O

    old_spec = ROOT / "specs" / "small-llama-3.1-8b-l4.yaml"
    _render_to(small_res, old_spec, tmp_path)
    p = spec_file(tmp_path, SMALL.replace("replicas: 2", "replicas: 3"), "new.yaml")
    res2 = check_spec(str(p))
    files = render(res2, p.read_bytes(), ("engine", "k8s", "bench"))
    calls = {"n": 0}
    real = os.replace

    def dying(a, b):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed between two renames
        return real(a, b)

    monkeypatch.setattr(O.os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        O.write(tmp_path, files, str(p))
    monkeypatch.setattr(O.os, "replace", real)
    assert O.drift(tmp_path, files) != ""  # the mixed folder is not "up to date"
    O.write(tmp_path, files, str(p))
    assert O.drift(tmp_path, files) == ""
    assert not list(tmp_path.rglob(".planfile-*.tmp"))


def test_temp_files_are_reported_by_check(tmp_path, small_res):
    from planner.render import out as O

    files, _ = _render_to(small_res, ROOT / "specs" / "small-llama-3.1-8b-l4.yaml", tmp_path)
    (tmp_path / "k8s" / ".planfile-abc.tmp").write_text("half")
    assert "stray temporary file" in O.drift(tmp_path, files)


def test_a_full_disk_changes_nothing(tmp_path, small_res, monkeypatch):
    import errno

    from planner.render import out as O

    files, _ = _render_to(small_res, ROOT / "specs" / "small-llama-3.1-8b-l4.yaml", tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    new = {k: v + "# changed\n" for k, v in files.items()}
    real = O._write_temp
    n = {"i": 0}

    def full(target, data, mode):
        n["i"] += 1
        if n["i"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(target, data, mode)

    monkeypatch.setattr(O, "_write_temp", full)
    with pytest.raises(O.OutError, match="No space"):
        O.write(tmp_path, new, "x.yaml")
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_two_renders_into_one_folder_exclude_each_other(tmp_path, small_res):
    import fcntl

    from planner.render import out as O

    fd = os.open(tmp_path / O.LOCK, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(O.OutError, match="another planfile render"):
            _render_to(small_res, ROOT / "specs" / "small-llama-3.1-8b-l4.yaml", tmp_path)
    finally:
        os.close(fd)


def test_an_edited_manifest_cannot_make_render_delete_other_files(tmp_path, small_res):
    import hashlib

    from planner.render import out as O

    files, _ = _render_to(small_res, ROOT / "specs" / "small-llama-3.1-8b-l4.yaml", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("mine")
    m = json.loads((tmp_path / O.MANIFEST).read_text())
    m["files"]["README.md"] = hashlib.sha256(b"mine").hexdigest()
    m["files"]["k8s/hand-edited.yaml"] = "0" * 64
    (tmp_path / "k8s" / "hand-edited.yaml").write_text("mine too")
    (tmp_path / O.MANIFEST).write_text(json.dumps(m))
    O.write(tmp_path, files, "x.yaml")
    assert readme.read_text() == "mine" and (tmp_path / "k8s" / "hand-edited.yaml").exists()


# 9-12. validate, broken deployments, budgets, crashes -------------------------------------------------------

def test_validate_with_no_measurements_is_an_error(tmp_path):
    spec = spec_file(tmp_path, SMALL)
    (tmp_path / "empty.json").write_text("")
    r = run_cli("validate", str(tmp_path / "empty.json"), "--spec", str(spec))
    assert r.returncode == 2 and "no measurement" in r.stderr


@pytest.mark.parametrize("extra", [["--port", "9999"], ["--served-model-name", "other"], ["--max-num-seqs", "64"],
                                   ["--kv-cache-dtype", "auto"], ["--max-num-seqs=64"], ["-tp", "2"]])
def test_extra_args_that_collide_with_the_plan_are_errors(tmp_path, extra):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  name: vllm", "  name: vllm\n  extra_args: " + json.dumps(extra)))),
                     breach=False)
    assert "PF602" in ids(res) and "collides" in next(f.message for f in res.findings if f.id == "PF602")


def test_a_label_cannot_override_the_selector(tmp_path):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  name: internal-helper",
                                                           '  name: internal-helper\n  labels: {"app.kubernetes.io/name": other}'))))
    assert "PF117" in ids(res)


def test_absurd_storage_speed_is_refused(tmp_path):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  replicas: 2", "  replicas: 2\n  storage: {read_gb_per_s: 1.0e-300}"))))
    assert res.status == "invalid"


def test_a_huge_autoscale_range_renders(tmp_path):
    p = spec_file(tmp_path, SMALL.replace("  replicas: 2", "  autoscale: {min: 2, max: 100000}"))
    res = check_spec(str(p))
    assert res.status != "invalid"
    render(res, p.read_bytes(), ("k8s",))  # no internal error


@pytest.mark.parametrize("vary", ["arrival_rate_rps=1:inf:1", "arrival_rate_rps=1:1000:1", "replicas=0.5,1", "concurrency=1e300"])
def test_sweep_refuses_unbounded_ranges(vary):
    r = run_cli("sweep", "specs/small-llama-3.1-8b-l4.yaml", "--vary", vary)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("doc", [{"completed": "500", "total_output_tokens": 128000},
                                 {"completed": 500, "total_output_tokens": 128000, "request_rate": -4},
                                 {"completed": 500, "total_output_tokens": -1}])
def test_malformed_results_exit_2(tmp_path, doc):
    spec = spec_file(tmp_path, SMALL)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    r = run_cli("validate", str(tmp_path / "r.json"), "--spec", str(spec))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_deep_json_and_latin1_csv_exit_2(tmp_path):
    spec = spec_file(tmp_path, SMALL)
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    assert run_cli("validate", str(tmp_path / "deep.json"), "--spec", str(spec)).returncode == 2
    (tmp_path / "l1.csv").write_bytes("isl,osl,scenario,metric,value,notes\n1,1,max_throughput,ttft_ms,1,caf\xe9\n".encode("latin-1"))
    r = run_cli("validate", str(tmp_path / "l1.csv"), "--spec", str(spec))
    assert r.returncode == 2 and "UTF-8" in r.stderr


def test_many_measurements_are_refused_quickly(tmp_path):
    spec = spec_file(tmp_path, SMALL)
    line = json.dumps({"completed": 100, "total_input_tokens": 51200, "total_output_tokens": 20000, "request_rate": 1.0,
                       "output_throughput": 200.0, "mean_itl_ms": 10.0})
    (tmp_path / "many.jsonl").write_text("\n".join([line] * 2000))
    r = run_cli("validate", str(tmp_path / "many.jsonl"), "--spec", str(spec))
    assert r.returncode == 2 and "more than" in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_output_folder_is_a_message(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    r = run_cli("render", "specs/small-llama-3.1-8b-l4.yaml", "--out", str(out), "--only", "engine")
    assert r.returncode == 2 and "internal error" not in r.stderr


def test_an_unwritable_output_folder_is_a_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("render", "specs/small-llama-3.1-8b-l4.yaml", "--out", str(blocker / "sub"), "--only", "engine")
    assert r.returncode == 2 and "internal error" not in r.stderr and "cannot write" in r.stderr


# 13. careless-user traps ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, read", [("017", "15"), ("0x10", "16"), ("1:30", "90"), ("1_0", "10")])
def test_yaml11_numbers_are_errors(tmp_path, value, read):
    res = check_spec(str(spec_file(tmp_path, SMALL.replace("  replicas: 2", f"  replicas: {value}"))))
    f = next(f for f in res.findings if f.id == "PF015")
    assert res.status == "invalid" and read in f.message and f.pointer == "/hardware/replicas"


def test_plan_write_refuses_to_overwrite_without_force(tmp_path):
    target = spec_file(tmp_path, "precious\n", "deployment.yaml")
    r = run_cli("plan", "specs/small-llama-3.1-8b-l4.yaml", "--write", str(target))
    assert r.returncode == 2 and target.read_text() == "precious\n"
    r = run_cli("plan", str(target), "--write", str(target))
    assert r.returncode == 2 and "input spec" in r.stderr or r.returncode == 2


def test_render_from_stdin_stamps_the_hash_of_what_it_read(tmp_path):
    import hashlib

    text = SMALL.encode()
    r = subprocess.run([sys.executable, "-m", "planner", "render", "-", "--out", str(tmp_path / "o"), "--only", "k8s"],
                       cwd=ROOT, input=text, capture_output=True, env=dict(os.environ, PLANFILE_NO_CACHE="1"))
    assert r.returncode == 0, r.stderr
    dep = yaml.safe_load((tmp_path / "o" / "k8s" / "deployment.yaml").read_text())
    sha = dep["spec"]["template"]["metadata"]["annotations"]["planfile.dev/spec-sha256"]
    assert sha == hashlib.sha256(text).hexdigest()[:16] != hashlib.sha256(b"").hexdigest()[:16]


def test_dot_slash_spec_path_is_not_drift(tmp_path):
    out = tmp_path / "o"
    assert run_cli("render", "specs/small-llama-3.1-8b-l4.yaml", "--out", str(out), "--only", "engine,k8s").returncode == 0
    r = run_cli("render", "./specs/small-llama-3.1-8b-l4.yaml", "--out", str(out), "--only", "engine,k8s", "--check")
    assert r.returncode == 0, r.stdout


def test_diff_rev_is_never_a_git_option(tmp_path):
    r = run_cli("diff", "specs/small-llama-3.1-8b-l4.yaml", "--rev", "--output=/tmp/planfile-pwned")
    assert r.returncode == 2 and not Path("/tmp/planfile-pwned").exists()
