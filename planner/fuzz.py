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

