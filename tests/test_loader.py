"""Loader: positions, YAML traps and resource bounds."""

import time

from planner.loader import MAX_BYTES, load_text
from planner.validate import validate


def test_positions_are_kept():
    src = b"apiVersion: planfile/v1\nkind: Deployment\nhardware:\n  gpu: h100-sxm\n"
    loaded = load_text(src, "x.yaml")
    assert loaded.source.position("/hardware/gpu") == (4, 8)
    assert loaded.source.position("/hardware/gpu", prefer_key=True) == (4, 3)
    # a missing child resolves to its nearest existing parent
    assert loaded.source.position("/hardware/replicas") == (4, 3)


def test_duplicate_key_is_an_error():
    loaded = load_text(b"a: 1\na: 2\n", "x.yaml")
    assert [(f.id, f.line, f.column) for f in loaded.findings] == [("PF002", 2, 1)]


def test_alias_bomb_is_rejected_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    t = time.perf_counter()
    loaded = load_text("\n".join(lines).encode(), "bomb.yaml")
    assert time.perf_counter() - t < 1.0
    assert loaded.data is None and loaded.findings[0].id == "PF003"


def test_large_file_is_rejected_before_parsing():
    t = time.perf_counter()
    loaded = load_text(b"a: " + b"x" * (MAX_BYTES + 10), "big.yaml")
    assert time.perf_counter() - t < 1.0
    assert loaded.findings[0].id == "PF003" and "MB" in loaded.findings[0].message


def test_deep_nesting_is_rejected():
    loaded = load_text(b"a: " + b"[" * 5000 + b"]" * 5000, "deep.yaml")
    assert loaded.findings and loaded.findings[0].id in ("PF003", "PF001")


def test_yaml11_version_hint():
    src = (b"apiVersion: planfile/v1\nkind: Deployment\nmetadata: {name: x}\nmodel: {id: llama-3.1-8b}\n"
           b"hardware: {gpu: h100-sxm}\nengine: {name: vllm, version: 0.30}\n"
           b"workload: {archetype: chat, arrival_rate_rps: 1}\n")
    f = [f for f in validate(load_text(src, "x.yaml")) if f.id == "PF012"][0]
    assert f.pointer == "/engine/version" and 'quote it ("0.30")' in f.remediation


def test_all_errors_in_one_pass():
    src = (b"apiVersion: planfile/v1\nkind: Deployment\nmetadata: {name: Bad_Name}\nmodel: {id: llama-3.1-8b}\n"
           b"hardware: {gpu: h100-sxmm}\nengine: {name: vllm}\nworkload: {archetype: chat, arrival_rate_rps: -1}\n")
    ids = sorted(f.id for f in validate(load_text(src, "x.yaml")))
    assert ids == ["PF013", "PF013", "PF101"]


def test_number_as_text_hints_say_what_yaml_did():
    """`1e3` is text to YAML 1.1 (its float form needs a dot and a signed exponent), a quoted "12" is text,
    and `100ms` carries a unit: each hint names its own cause (the old one said "remove the quotes" where
    there were none)."""
    src = (b"apiVersion: planfile/v1\nkind: Deployment\nmetadata: {name: x}\nmodel: {id: llama-3.1-8b}\n"
           b"hardware: {gpu: h100-sxm}\nengine: {name: vllm}\n"
           b"workload: {archetype: chat, arrival_rate_rps: 1e3}\n"
           b"slo: {ttft_ms: {p95: 100ms}, itl_ms: {p95: \"50\"}}\n")
    hints = {f.pointer: f.remediation for f in validate(load_text(src, "x.yaml")) if f.id == "PF012"}
    assert "YAML 1.1 reads 1e3 as text" in hints["/workload/arrival_rate_rps"]
    assert hints["/slo/ttft_ms/p95"] == "remove the units; units are in the field name"
    assert hints["/slo/itl_ms/p95"] == "remove the quotes: a quoted number is text"


def test_archetype_lengths_are_capped_to_the_models_context(tmp_path):
    """Mixtral-8x7B (32,768-token context) with archetype rag and no lengths of its own: rag's generic prompt max
    (32,768) + output max (2,048) = 34,816 would not fit, so the archetype's input lengths are capped at
    32,768 - 2,048 = 30,720 (explain lists the capped default) — not a PF111 for a line the user never wrote.
    A stated length that does not fit is still refused."""
    from planner.loader import load_text
    from planner.resolve import resolve
    from planner.validate import validate

    base = """apiVersion: planfile/v1
kind: Deployment
metadata: {name: m}
model: {id: mixtral-8x7b}
hardware: {gpu: h100-sxm, gpus_per_replica: 1, replicas: 1}
engine: {name: vllm}
workload: {archetype: rag, arrival_rate_rps: 1%s}
slo: {}
"""
    ld = load_text((base % "").encode(), "m.yaml")
    assert not [f for f in validate(ld) if f.severity == "error"]
    r = resolve(ld)
    assert r.input.max == 30720 and r.input.max + r.output.max == 32768
    assert any(p == "/workload/input_tokens" and "capped at 30,720" in why for p, _, why in r.defaults)
    stated = load_text((base % ", input_tokens: {mean: 8000, p95: 24000, max: 32768}").encode(), "m.yaml")
    assert any(f.id == "PF111" for f in validate(stated))
