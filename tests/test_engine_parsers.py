"""Every rendered vLLM and SGLang launch through the engine's own argument parser (issue 15).

planfile checks launches against option manifests dumped from the engines (planner/render/flags.py); this
test asks the engines themselves. tests/engine_parsers.py runs under the engine venv's Python, which
.ci/engine-venv.sh builds (vLLM 0.33.0 and SGLang 0.5.23 with a CPU build of torch) and names in
PLANFILE_ENGINE_PYTHON. Under PLANFILE_REQUIRE_VALIDATORS a missing venv fails; elsewhere the test skips
and says how to build it.

Launches: serve.sh of every bundled spec and of the multi-node fixture (leader and worker), prefill.sh and
decode.sh of the disaggregated example, vLLM's `--config vllm-config.yaml` form, the container args of the
Kubernetes manifests, and a matrix of engine x GPU x weight precision x feature (KV offload, prefix caching
off, speculative decoding, disaggregated roles).

The rendered DynamoGraphDeployment is also compared with the disaggregated graphs Dynamo 1.6.1 ships.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from planner.render import render
from planner.run import check_spec

SPECS = sorted((ROOT / "specs").glob("*.yaml")) + [ROOT / "tests" / "fixtures" / "render" / "multinode-405b.yaml"]
SCRIPT = ROOT / "tests" / "engine_parsers.py"
ENGINE_ARGV0 = {"vllm": ("vllm", "serve"), "sglang": ("python3", "-m", "sglang.launch_server"),
                "dynamo.vllm": ("python3", "-m", "dynamo.vllm"), "dynamo.sglang": ("python3", "-m", "dynamo.sglang"),
                "dynamo.frontend": ("python3", "-m", "dynamo.frontend")}


def engine_python() -> str:
    py = os.environ.get("PLANFILE_ENGINE_PYTHON")
    if not py or not Path(py).exists():
        if os.environ.get("PLANFILE_REQUIRE_VALIDATORS"):
            raise AssertionError("PLANFILE_ENGINE_PYTHON (the engine venv of .ci/engine-venv.sh) is required "
                                 "under PLANFILE_REQUIRE_VALIDATORS")
        pytest.skip("no engine venv: `bash .ci/engine-venv.sh DIR` and set PLANFILE_ENGINE_PYTHON=DIR/bin/python")
    return py


# where each engine version's parser is in the engine venv (.ci/engine-venv.sh): its site-packages (None),
# or a folder put first on PYTHONPATH
PARSERS = {("vllm", "0.33"): None, ("sglang", "0.5.23"): None,
           ("vllm", "0.31"): "dynamo-engines", ("sglang", "0.5.21"): "dynamo-engines",  # what Dynamo 1.6.1 runs
           ("vllm", "0.32"): "vllm-0.32"}
DYNAMO_VERSIONS = {"vllm": "0.31", "sglang": "0.5.21"}


def parse(launches: list[dict]) -> dict[str, dict]:
    """Each launch through the parser of the engine version it was rendered for (one process per set of
    versions: a process imports one vLLM)."""
    py = engine_python()
    groups: dict[str, list[dict]] = {}
    for x in launches:
        if x["engine"] == "dynamo.frontend":  # Dynamo's own frontend, whatever backend the graph runs
            groups.setdefault("dynamo-engines", []).append(x)
            continue
        engine = "vllm" if x["engine"] == "dynamo.vllm" else x["engine"]
        v = x["version"]
        if x["engine"] == "dynamo.vllm" and v != DYNAMO_VERSIONS[engine]:
            raise AssertionError(f"{x['id']}: Dynamo 1.6.1 runs vLLM {DYNAMO_VERSIONS[engine]}, the graph was rendered for {v}")
        if (engine, v) not in PARSERS:
            raise AssertionError(f"{x['id']}: no parser of {engine} {v} in the engine venv")
        groups.setdefault(PARSERS[engine, v] or "", []).append(x)
    out = {}
    for group, items in groups.items():
        env = dict(os.environ)
        if group:
            env["PYTHONPATH"] = str(Path(py).parent.parent / group)
        # run from / : a `dynamo` file or folder in the working directory would shadow Dynamo's package
        items = [dict(x, cwd=x.get("cwd") or str(ROOT)) for x in items]
        r = subprocess.run([py, str(SCRIPT)], input=json.dumps(items), capture_output=True, text=True,
                           timeout=600, cwd="/", env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        out.update({x["id"]: x for x in json.loads(r.stdout)})
    return out


def engine_argv(words: list[str]) -> tuple[str, list[str]] | None:
    """(engine, argv after the program) of a launch, or None for a command that is no engine launch."""
    for engine, prefix in ENGINE_ARGV0.items():
        if tuple(words[:len(prefix)]) == prefix:
            rest = words[len(prefix):]
            if engine == "dynamo.sglang":  # SGLang's own options (see tests/engine_parsers.py)
                return "sglang", rest
            return engine, (["serve", *rest] if engine == "vllm" else rest)
    return None


def script_launch(text: str) -> list[str]:
    return shlex.split(text.split("exec ", 1)[1].split("\n", 1)[0])


def launches_of(name: str, rendered: tuple[dict[str, str], str], workdir: Path) -> list[dict]:
    """Every engine launch in one render: the scripts, vLLM's config-file form and the manifests' containers,
    each with the engine version it was rendered for."""
    files, version = rendered
    return [dict(x, version=version) for x in _launches(name, files, workdir)]


def _launches(name: str, files: dict[str, str], workdir: Path) -> list[dict]:
    out = []
    for path, text in sorted(files.items()):
        if path.startswith("engine/") and path.endswith(".sh") and "exec " in text:
            got = engine_argv(script_launch(text))
            if got:
                out.append({"id": f"{name}:{path}", "engine": got[0], "argv": got[1]})
        if path.endswith(".yaml") and path.startswith(("k8s/", "dynamo/")):
            for doc in yaml.safe_load_all(text):
                for i, words in enumerate(_container_words(doc)):
                    got = engine_argv(words)
                    if got:
                        out.append({"id": f"{name}:{path}#{i}", "engine": got[0], "argv": got[1]})
    if "engine/vllm-config.yaml" in files:
        cfg = workdir / "engine"
        cfg.mkdir(parents=True, exist_ok=True)
        (cfg / "vllm-config.yaml").write_text(files["engine/vllm-config.yaml"])
        model = script_launch(files["engine/serve.sh"])[2]
        out.append({"id": f"{name}:engine/vllm-config.yaml", "engine": "vllm", "cwd": str(cfg),
                    "argv": ["serve", model, "--config", "vllm-config.yaml"]})
    return out


# Kubernetes expands $(VAR) in command/args from the container's environment before the engine sees them;
# LeaderWorkerSet injects these into every pod of a group (lws docs, "Environment variables").
LWS_ENV = {"LWS_LEADER_ADDRESS": "g-0.g.default", "LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}


def _expand(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), word)


def _container_words(doc) -> list[list[str]]:
    """command + args of every container under a manifest (Deployment, LeaderWorkerSet, DynamoGraphDeployment)."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "image" in x and ("command" in x or "args" in x):
                env = {**LWS_ENV, **{e["name"]: str(e["value"]) for e in x.get("env") or [] if "value" in e}}
                words = [_expand(str(w), env) for w in [*(x.get("command") or []), *(x.get("args") or [])]]
                if words[:2] == ["/bin/sh", "-c"] or words[:2] == ["sh", "-c"]:
                    words = shlex.split(words[2].split("exec ", 1)[-1]) if len(words) > 2 else []
                found.append([str(w) for w in words])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)
    return found


def _rendered(spec: Path) -> tuple[dict[str, str], str] | None:
    res = check_spec(str(spec), breach=False)
    if res.status == "invalid" or any(f.severity == "error" for f in res.findings):
        return None
    return render(res, spec.read_bytes(), ("engine", "k8s")), res.resolved.engine_version


def _variant(engine: str, gpu: str, weights: str, feature: str) -> dict:
    tp = 4 if gpu == "tpu-v6e" else 1
    spec = {"apiVersion": "planfile/v1", "kind": "Deployment", "metadata": {"name": "p"},
            "model": {"id": "llama-3.1-8b"}, "precision": {"weights": weights, "kv_cache": "bf16" if gpu == "tpu-v6e" else "fp8"},
            "hardware": {"gpu": gpu, "gpus_per_replica": tp, "replicas": 2}, "parallelism": {"tensor": tp},
            "engine": {"name": engine},
            "workload": {"archetype": "chat", "input_tokens": 1024, "output_tokens": 256, "arrival_rate_rps": 2},
            "slo": {"ttft_ms": {"p95": 5000}, "itl_ms": {"p95": 200}}, "cost": {"usd_per_gpu_hour": 2.0}}
    if feature == "offload":
        spec["workload"]["kv_offload"] = {"tier": "cpu", "capacity_gb": 100}
    elif feature == "no-prefix-cache":
        spec["engine"]["enable_prefix_caching"] = False
    elif feature == "speculative":
        spec["workload"]["speculative"] = {"method": "ngram", "draft_tokens": 3, "acceptance_rate": 0.6}
    return spec


VARIANTS = [v for v in itertools.product(("vllm", "sglang"), ("h100-sxm", "mi300x", "l40s"), ("bf16", "fp8", "int4"),
                                         ("plain", "offload", "no-prefix-cache", "speculative"))]


@pytest.fixture(scope="module")
def all_launches(tmp_path_factory) -> list[dict]:
    cwd = os.getcwd()
    os.chdir(ROOT)  # specs name side files relative to the repository
    try:
        out = []
        for spec in SPECS:
            files = _rendered(spec.relative_to(ROOT))
            assert files is not None, spec
            out += launches_of(spec.stem, files, tmp_path_factory.mktemp(spec.stem))
        # the disaggregated example on SGLang too (Dynamo's SGLang workers, SGLang's own role flags)
        sg = tmp_path_factory.mktemp("disagg-sglang") / "p.yaml"
        sg.write_text((ROOT / "specs" / "disagg-llama-3.1-70b-h200.yaml").read_text().replace("  name: vllm", "  name: sglang"))
        out += launches_of("disagg-sglang", _rendered(sg), sg.parent)
        # wide expert parallelism on vLLM too (its DeepEP backends by role, --enable-dbo), and aggregated
        # replicas with DeepEP (SGLang --deepep-mode auto, vLLM's high-throughput backend)
        wide = (ROOT / "specs" / "disagg-deepseek-v3-wide-ep-h100.yaml").read_text()
        vw = tmp_path_factory.mktemp("wide-ep-vllm") / "p.yaml"
        vw.write_text(wide.replace("  name: sglang", "  name: vllm"))  # as tests/test_expert_parallel.py vllm_wide
        out += launches_of("wide-ep-vllm", _rendered(vw), vw.parent)
        for eng in ("sglang", "vllm"):
            p = tmp_path_factory.mktemp(f"deepep-{eng}") / "p.yaml"
            p.write_text((ROOT / "specs" / "deepseek-v3-h200.yaml").read_text()
                         .replace("  name: sglang", f"  name: {eng}\n  moe_all_to_all: deepep\n  two_batch_overlap: true")
                         .replace("itl_ms: {p95: 100}", "itl_ms: {p95: 1000}"))
            out += launches_of(f"deepep-{eng}", _rendered(p), p.parent)
            # aggregated attention data parallelism (vLLM --data-parallel-size with the per-rank batch limit, SGLang
            # --enable-dp-attention --dp-size with the server's)
            q = tmp_path_factory.mktemp(f"dp-attention-{eng}") / "p.yaml"
            q.write_text((ROOT / "specs" / "deepseek-v3-h200.yaml").read_text()
                         .replace("  name: sglang", f"  name: {eng}").replace("  expert: 8\n", "  expert: 8\n  attention_data: 8\n")
                         .replace("itl_ms: {p95: 100}", "itl_ms: {p95: 1000}"))
            files = _rendered(q)
            assert files is not None and "attention" in q.read_text(), q.read_text()
            out += launches_of(f"dp-attention-{eng}", files, q.parent)
        # a token budget below the engine's batch limit (vLLM refuses max_num_batched_tokens < max_num_seqs)
        small = _variant("vllm", "h100-sxm", "fp8", "plain")
        small["engine"]["max_num_batched_tokens"] = 128
        p = tmp_path_factory.mktemp("small-budget") / "p.yaml"
        p.write_text(yaml.safe_dump(small))
        out += launches_of("vllm-small-budget", _rendered(p), p.parent)
        for v in VARIANTS:
            p = tmp_path_factory.mktemp("-".join(v)) / "p.yaml"
            p.write_text(yaml.safe_dump(_variant(*v)))
            files = _rendered(p)
            if files is not None:  # a pair check refuses is not rendered (tests/test_coherence.py)
                out += launches_of("-".join(v), files, p.parent)
        return out
    finally:
        os.chdir(cwd)


def test_the_launch_collection_is_not_vacuous(all_launches):
    ids = [x["id"] for x in all_launches]
    assert any(i.endswith("engine/prefill.sh") for i in ids) and any(i.endswith("engine/decode.sh") for i in ids)
    assert any("multinode-405b" in i for i in ids) and any(i.endswith("vllm-config.yaml") for i in ids)
    assert any(x["engine"] == "sglang" for x in all_launches) and len(all_launches) > 100
    assert any(x["engine"] == "dynamo.vllm" and x["version"] == "0.31" for x in all_launches)  # the graph's workers
    assert sum(x["engine"] == "dynamo.frontend" for x in all_launches) >= 2  # the graph's frontend, vLLM and SGLang
    assert any(x["engine"] == "sglang" and x["version"] == "0.5.21" for x in all_launches)
    assert any(i.startswith("vllm-small-budget:") for i in ids)
    for flag in ("--moe-a2a-backend", "--all2all-backend", "--enable-dbo", "--enable-two-batch-overlap"):
        assert any(flag in " ".join(map(str, x.get("argv") or [])) for x in all_launches), flag
    for feature in ("offload", "no-prefix-cache", "speculative"):
        assert any(f"vllm-h100-sxm-fp8-{feature}" in i for i in ids), feature
        assert any(f"sglang-h100-sxm-fp8-{feature}" in i for i in ids), feature


def test_the_engines_own_parsers_accept_every_rendered_launch(all_launches):
    results = parse(all_launches)
    bad = {k: v["error"] for k, v in results.items() if not v["ok"]}
    assert not bad, json.dumps(bad, indent=1)[:4000]
    assert len(results) == len(all_launches)


def test_the_engines_parsers_refuse_what_they_should():
    """The validator can fail: an unknown flag, a wrong choice and a non-integer are refused by each engine."""
    launches = [
        {"id": "vllm-unknown", "engine": "vllm", "version": "0.33", "argv": ["serve", "m", "--tensor-parallel", "2x"]},
        {"id": "vllm-choice", "engine": "vllm", "version": "0.33", "argv": ["serve", "m", "--dtype", "fp9"]},
        {"id": "vllm-json", "engine": "vllm", "version": "0.33", "argv": ["serve", "m", "--kv-transfer-config", "{bad"]},
        {"id": "vllm-int", "engine": "vllm", "version": "0.33", "argv": ["serve", "m", "--max-num-seqs", "many"]},
        {"id": "vllm-ok", "engine": "vllm", "version": "0.33", "argv": ["serve", "m", "--max-num-seqs", "8"]},
        # vLLM's SchedulerConfig: a step's token budget below the batch limit
        {"id": "vllm-budget", "engine": "vllm", "version": "0.33",
         "argv": ["serve", "m", "--max-num-seqs", "389", "--max-num-batched-tokens", "256", "--max-model-len", "5120"]},
        {"id": "sglang-unknown", "engine": "sglang", "version": "0.5.23", "argv": ["--model-path", "m", "--tp", "2x"]},
        {"id": "sglang-choice", "engine": "sglang", "version": "0.5.23", "argv": ["--model-path", "m", "--kv-cache-dtype", "fp9"]},
        {"id": "sglang-ok", "engine": "sglang", "version": "0.5.23", "argv": ["--model-path", "m", "--tp-size", "2"]},
        {"id": "frontend-unknown", "engine": "dynamo.frontend", "version": "", "argv": ["--no-such-flag", "1"]},
        {"id": "frontend-ok", "engine": "dynamo.frontend", "version": "", "argv": ["--http-port", "8000"]},
    ]
    results = parse(launches)
    assert results["vllm-ok"]["ok"] and results["sglang-ok"]["ok"] and results["frontend-ok"]["ok"], results
    assert "must be greater than or equal to max_num_seqs" in results["vllm-budget"]["error"], results["vllm-budget"]
    for k in ("vllm-unknown", "vllm-choice", "vllm-int", "vllm-json", "vllm-budget", "sglang-unknown", "sglang-choice", "frontend-unknown"):
        assert not results[k]["ok"] and results[k]["error"], (k, results[k])


def _options(args: list[str]) -> dict[str, str | None]:
    """`--flag value` / `--switch` pairs of an argv (a value never starts with `--`)."""
    out: dict[str, str | None] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[a] = None if nxt is None or nxt.startswith("--") else nxt
    return out


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_the_rendered_graph_agrees_with_the_graph_dynamo_ships(backend, tmp_path):
    """NVIDIA Dynamo 1.6.1 ships its own disaggregated DynamoGraphDeployment for each backend (the profiler's
    templates, dynamo/profiler/templates/dgd/<backend>/disagg.yaml in the ai-dynamo wheel). The graph planfile
    renders for the same backend has the same API version, component types and component fields, the same
    image, the same commands, the same frontend, and every option that makes a worker a prefill or a decode
    worker (`--disaggregation-*`, `--kv-transfer-config`) with the same value."""
    shipped_path = (Path(engine_python()).parent.parent / "dynamo-engines" / "dynamo" / "profiler" / "templates"
                    / "dgd" / backend / "disagg.yaml")
    assert shipped_path.exists(), shipped_path
    shipped = yaml.safe_load(shipped_path.read_text())
    spec = tmp_path / "p.yaml"
    spec.write_text((ROOT / "specs" / "disagg-llama-3.1-70b-h200.yaml").read_text().replace("  name: vllm", f"  name: {backend}"))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        files, _ = _rendered(spec)
    finally:
        os.chdir(cwd)
    ours = yaml.safe_load(files["k8s/dynamographdeployment.yaml"])
    assert (ours["apiVersion"], ours["kind"]) == (shipped["apiVersion"], shipped["kind"])

    def by_type(doc):
        return {c["type"]: c for c in doc["spec"]["components"]}

    theirs_c, ours_c = by_type(shipped), by_type(ours)
    assert set(ours_c) == set(theirs_c) == {"frontend", "prefill", "decode"}
    for kind, theirs in theirs_c.items():
        mine = ours_c[kind]
        assert set(mine) <= set(theirs), (kind, set(mine) - set(theirs))  # no component field Dynamo does not write
        (t_main,) = theirs["podTemplate"]["spec"]["containers"]
        (o_main,) = mine["podTemplate"]["spec"]["containers"]
        assert (o_main["name"], o_main["image"], o_main["command"]) == (t_main["name"], t_main["image"], t_main["command"]), kind
        if kind == "frontend":
            assert o_main["args"] == t_main["args"]
            continue
        role = {k: v for k, v in _options(t_main["args"]).items() if k.startswith(("--disaggregation", "--kv-transfer-config"))}
        assert role, kind  # the shipped graph names the worker's role: the comparison is not vacuous
        mine_opts = _options(o_main["args"])
        for flag, value in role.items():
            assert flag in mine_opts, (kind, flag)
            if flag == "--kv-transfer-config":
                assert json.loads(mine_opts[flag]) == json.loads(value), kind
            else:
                assert mine_opts[flag] == value, (kind, flag, mine_opts[flag], value)
