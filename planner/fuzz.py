"""Hostile-input generators shared by the hypothesis test and benchmarks/fuzz.py.

Two sources: documents generated from the JSON Schema itself (types, enums, ranges, required fields,
with catalog ids where the schema names them), and valid example specs mutated (wrong types, missing
fields, huge and negative numbers, NaN/inf, unicode, deep nesting). `run_one` pushes a document through
check (and render/plan when it checks clean) in-process and returns what a CLI user would see.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import yaml

WEIRD = [None, True, False, 0, -1, 1, 2**63, -(2**63), 1e308, -1e308, float("nan"), float("inf"), 0.5, "",
         "h100-sxm", "0.33", "💥", "a\nb: c", "{{ 7*7 }}", "x" * 5000, [], {}, [1, [2, [3]]], {"a": {"b": {"c": 1}}},
         "yes", "no", "1.10", "null", "~", "\u202e", "\x00"]
CATALOG_STRINGS = {"gpu": ["h100-sxm", "l4", "mi300x", "b200", "rtx-4090-laptop", "a100-sxm-80gb"],
                   "id": ["llama-3.1-8b", "llama-3.1-70b", "deepseek-v3", "gemma-2-9b", "qwen3-30b-a3b", "gpt-oss-20b"],
                   "provider": ["aws", "gcp", "lambda", "tensorwave"], "name": ["x", "chat-1"]}


def from_schema(rnd: random.Random, schema: dict, root: dict, key: str = "", depth: int = 0):
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = root.get("$defs", {}).get(ref) or root.get("definitions", {}).get(ref, {})
    if "enum" in schema:
        return rnd.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    for combo in ("oneOf", "anyOf"):
        if combo in schema and rnd.random() < 0.7:
            return from_schema(rnd, rnd.choice(schema[combo]), root, key, depth + 1)
    t = schema.get("type", "object")
    if isinstance(t, list):
        t = rnd.choice(t)
    if depth > 6:
        return copy.deepcopy(rnd.choice(WEIRD))
    if t == "object":
        props = schema.get("properties", {})
        out = {}
        for k, sub in props.items():
            if k in schema.get("required", []) or rnd.random() < 0.35:
                out[k] = from_schema(rnd, sub, root, k, depth + 1)
        return out
    if t == "array":
        return [from_schema(rnd, schema.get("items", {}), root, key, depth + 1) for _ in range(rnd.randint(0, 2))]
    if t == "string":
        if key in CATALOG_STRINGS and rnd.random() < 0.8:
            return rnd.choice(CATALOG_STRINGS[key])
        return rnd.choice(["x", "chat", "a" * rnd.randint(1, 70), "ü", "0.33"])
    if t in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        hi = schema.get("maximum", lo + 10_000)
        v = rnd.uniform(lo, min(hi, lo + 10 ** rnd.randint(0, 7)))
        return int(v) + (1 if "exclusiveMinimum" in schema else 0) if t == "integer" else v
    if t == "boolean":
        return rnd.random() < 0.5
    return None


def mutate(rnd: random.Random, doc: dict, n: int = 3) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(n):
        paths = []

        def walk(x, path):
            if len(path) > 40:
                return
            if isinstance(x, dict):
                for k, v in x.items():
                    paths.append(path + [k])
                    walk(v, path + [k])
            elif isinstance(x, list):
                for i, v in enumerate(x):
                    paths.append(path + [i])
                    walk(v, path + [i])
        walk(doc, [])
        if not paths:
            break
        p = rnd.choice(paths)
        parent = doc
        for k in p[:-1]:
            parent = parent[k]
        op = rnd.random()
        if op < 0.2 and isinstance(parent, dict):
            parent.pop(p[-1], None)
        elif op < 0.3:
            nest = "deep"
            for _ in range(rnd.randint(10, 80)):
                nest = {"n": nest}
            parent[p[-1]] = nest
        elif op < 0.45 and isinstance(parent[p[-1]], (int, float)) and not isinstance(parent[p[-1]], bool):
            parent[p[-1]] = rnd.choice([parent[p[-1]] * 10 ** rnd.randint(1, 12), -parent[p[-1]], 0, parent[p[-1]] + 1])
        else:
            parent[p[-1]] = copy.deepcopy(rnd.choice(WEIRD))  # never share a mutable value between documents
    return doc


def dump(doc) -> bytes:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, RecursionError, ValueError):
        return repr(doc).encode("utf-8", "replace")


def examples(root: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((root / "specs").glob("*.yaml"))]


def run_one(text: bytes, tmp: Path, deep: bool = False) -> str:
    """Check one document in-process like the CLI does; returns the status. Raises on a crash (a bug)."""
    from planner.loader import load_text
    from planner.run import check_loaded

    res = check_loaded(load_text(text, "fuzz.yaml", tmp), "fuzz.yaml", breach=False)
    assert res.status in ("pass", "fail", "invalid"), res.status
    for f in res.findings:
        assert f.message and f.id.startswith("PF"), f
        for v in (f.line, f.column):
            assert v is None or v >= 1
    if deep and res.status != "invalid" and res.estimate and res.estimate.get("performance"):
        from planner.output import to_json, to_text
        from planner.render import RenderError, render

        to_text([res])
        to_json([res])
        try:
            render(res, text, ("engine", "k8s", "alerts", "bench"))
        except RenderError:
            pass  # a clear message for a spec the engine cannot run (PF602 reports the same)
    return res.status



# hostile inputs per output context (issue 14): each class of attack the adversarial run found, generated
HOSTILE = ["inj\n", "x\ny: 1", "$(HF_TOKEN)", "${HOME}", "`id`", "a;touch PWNED;", "\r## ✅ PASS", "::error::forged",
           "::stop-commands::x", "\x1b[2J\x1b[31mred", "\n```\n# broken fence", "</script><b>x</b>", "{{ 7*7 }}",
           "--trust-remote-code", "-- --served-model-name", "\u2028\u0085", "²", "١٢٣", "1e5", "nan", "'\"", "\\", "\x00"]
HOSTILE_PATHS = [("metadata", "name"), ("metadata", "description"), ("metadata", "namespace"), ("model", "name"),
                 ("engine", "served_name"), ("engine", "extra_args"), ("metadata", "labels"), ("checks", "ignore")]


def hostile(rnd: random.Random, doc: dict) -> dict:
    """A valid example with one to three string fields replaced by hostile strings."""
    doc = copy.deepcopy(doc)
    for _ in range(rnd.randint(1, 3)):
        s = rnd.choice(HOSTILE) + rnd.choice(["", rnd.choice(HOSTILE)])
        where = rnd.choice(HOSTILE_PATHS)
        parent = doc.setdefault(where[0], {}) if isinstance(doc.get(where[0], {}), dict) else None
        if parent is None:
            continue
        if where[1] == "extra_args":
            parent["extra_args"] = [rnd.choice(["--served-model-name", "--api-key", "--chat-template", "--port"]), s]
        elif where[1] == "labels":
            parent["labels"] = {rnd.choice(["app.kubernetes.io/name", "team", s]): s}
        elif where[1] == "ignore":
            parent["ignore"] = [{"id": "PF404", "reason": s}]
        else:
            parent[where[1]] = s
    return doc


CALIBRATION_KEYS = {"step_overhead_ms": 1.0, "request_overhead_ms": 40.0, "prefill_overhead_ms": 5.0,
                    "kernel_scale": 1.0, "floor_scale": 1.0}
WEIRD_NUMBERS = [0, -1, -1000, 1e18, 1e-300, float("inf"), float("nan"), True, "1", None, [], {}]


def side_files(rnd: random.Random, doc: dict, tmp: Path) -> dict:
    """A valid example naming a calibration file and/or an HF config.json with hostile values: the gate-bypass
    class (negative times, efficiencies of 10^18, hidden_size -4096, zero KV heads, booleans for sizes)."""
    import json

    doc = copy.deepcopy(doc)
    if rnd.random() < 0.5:
        cal = {"engine": (doc.get("engine") or {}).get("name", "vllm"), "gpu": (doc.get("hardware") or {}).get("gpu", "h100-sxm")}
        for k, v in CALIBRATION_KEYS.items():
            if rnd.random() < 0.6:
                cal[k] = rnd.choice(WEIRD_NUMBERS + [v, v * 50])
        text = yaml.safe_dump(cal) if rnd.random() < 0.9 else rnd.choice(["", "[1, 2", "a: *b", "\x00" * 10])
        (tmp / "cal.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        doc["calibration"] = "cal.yaml"
    else:
        cfg = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
               "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072}
        for k in rnd.sample(sorted(cfg), rnd.randint(1, 3)):
            cfg[k] = rnd.choice(WEIRD_NUMBERS + [cfg[k] * 1000, 3])
        try:
            text = json.dumps(cfg, allow_nan=True)
        except (TypeError, ValueError):
            text = "{}"
        (tmp / "config.json").write_text(text)
        model = doc.setdefault("model", {})
        if isinstance(model, dict):
            model.pop("id", None)
            model["hf_config"] = "config.json"
    return doc


def output_invariants(res, files: dict[str, str] | None) -> None:
    """What a hostile string must never do to planfile's outputs: forge lines in CI logs or the terminal,
    break a rendered file's structure, or smuggle a Kubernetes $(VAR) expansion into a container."""
    import math
    import re
    import shlex

    from planner.output import to_markdown, to_text

    text = to_text([res])
    assert "\x1b" not in text and "\r" not in text, "control characters reach the terminal"
    assert not re.search(r"^\s*::", text, re.M), "a workflow command reaches the CI log"
    md = to_markdown([res])
    assert "\r" not in md
    perf = (res.estimate or {}).get("performance") or {}
    for metric in ("ttft_ms", "itl_ms"):
        for v in (perf.get(metric) or {}).values():
            assert not (isinstance(v, float) and math.isfinite(v) and v < 0), f"negative {metric}"
    mem = (res.estimate or {}).get("memory") or {}
    assert (mem.get("weights_gb_per_gpu") or 0) >= 0, "negative weights"
    for path, body in (files or {}).items():
        if path.endswith((".yaml", ".yml")):
            for obj in yaml.safe_load_all(body):
                for c in _containers(obj):
                    for a in c.get("args") or []:
                        # the only references planfile writes on purpose: a multi-node LeaderWorkerSet's
                        # leader address and worker index (planner.render.engines, Launch.env_refs)
                        bare = a.replace("$(LWS_LEADER_ADDRESS)", "").replace("$(LWS_WORKER_INDEX)", "")
                        assert not re.search(r"(?<!\$)\$\(", bare), f"{path}: Kubernetes would expand {a!r}"
        if path.endswith(".sh"):
            shlex.split(body, comments=True)


def _containers(obj):
    if isinstance(obj, dict):
        if "containers" in obj and isinstance(obj["containers"], list):
            yield from (c for c in obj["containers"] if isinstance(c, dict))
        for v in obj.values():
            yield from _containers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _containers(v)


def run_hostile(text: bytes, tmp: Path) -> str:
    """Check (and, when it evaluates, render) a hostile document, then assert the output invariants."""
    from planner.loader import load_text
    from planner.render import RenderError, render
    from planner.run import check_loaded

    res = check_loaded(load_text(text, "fuzz.yaml", tmp), "fuzz.yaml", breach=False)
    files = None
    if res.status != "invalid" and res.estimate and res.estimate.get("performance"):
        try:
            files = render(res, text, ("engine", "k8s", "alerts", "bench"))
        except RenderError:
            files = None
    output_invariants(res, files)
    return res.status
