"""Hostile input: generated and mutated specs never crash the pipeline; resource bounds hold.

A longer run: `python benchmarks/fuzz.py --n 100000` (prints inputs run and failures)."""

from __future__ import annotations

import random
import resource
import subprocess
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest

from conftest import ROOT
from planner import fuzz
from planner.resources import schema

SCHEMA = schema("deployment")
EXAMPLES = fuzz.examples(ROOT)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_documents_generated_from_the_schema_never_crash(tmp_path, seed):
    rnd = random.Random(seed)
    doc = fuzz.from_schema(rnd, SCHEMA, SCHEMA)
    fuzz.run_one(fuzz.dump(doc), tmp_path, deep=seed % 5 == 0)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=4))
def test_mutated_example_specs_never_crash(tmp_path, seed, n):
    rnd = random.Random(seed)
    doc = fuzz.mutate(rnd, rnd.choice(EXAMPLES), n)
    fuzz.run_one(fuzz.dump(doc), tmp_path, deep=seed % 7 == 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(tmp_path, raw):
    assert fuzz.run_one(raw, tmp_path) in ("pass", "fail", "invalid")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def _bounded(args, tmp_path, stdin=None):
    """Run the CLI in a child, measuring wall time and peak memory (ru_maxrss of the child, KiB)."""
    code = ("import resource, subprocess, sys, time; t = time.time(); "
            f"p = subprocess.run([sys.executable, '-m', 'planner'] + {args!r}, capture_output=True, cwd={str(ROOT)!r}); "
            "print(p.returncode, round(time.time() - t, 3), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.stdout.write(p.stdout.decode()[:2000] + p.stderr.decode()[:2000])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    head, _, rest = out.partition("\n")
    rc, secs, kib = head.split()
    return int(rc), float(secs), int(kib), rest


def test_resource_bounds_alias_bomb_huge_file_million_gpus_billion_token_context(tmp_path):
    cases = {}
    (tmp_path / "bomb.yaml").write_text(BOMB)
    cases["alias bomb"] = tmp_path / "bomb.yaml"
    with open(tmp_path / "big.yaml", "wb") as fh:
        fh.write(b"apiVersion: planfile/v1\n# " + b"x" * (50 * 1000 * 1000) + b"\n")
    cases["50 MB file"] = tmp_path / "big.yaml"
    base = (ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text()
    (tmp_path / "gpus.yaml").write_text(base.replace("replicas: 2", "replicas: 1000000"))
    cases["10^6 GPUs"] = tmp_path / "gpus.yaml"
    (tmp_path / "ctx.yaml").write_text(base.replace("max: 4096}", "max: 1000000000}"))
    cases["10^9-token context"] = tmp_path / "ctx.yaml"
    for name, path in cases.items():
        rc, secs, kib, text = _bounded(["check", str(path)], tmp_path)
        assert rc == 2, (name, text)
        assert "Traceback" not in text and ("PF003" in text or "PF013" in text or "PF111" in text), (name, text)
        # 1 s of work: the child's wall time includes Python start-up (~0.2 s here)
        assert secs < 1.5, (name, secs)
        assert kib < 300 * 1024, (name, kib)


def test_hostile_output_invariants_hold_and_can_fail(tmp_path):
    """The fuzz invariants for hostile strings: they hold for a hostile description that check accepts, and
    they are not a test that cannot fail (an unescaped $(HF_TOKEN) in container args breaks them)."""
    import random

    import yaml as _yaml

    from planner import fuzz

    doc = _yaml.safe_load((ROOT / "specs" / "small-llama-3.1-8b-l4.yaml").read_text())
    doc["metadata"]["description"] = "\r## ✅ PASS\n::error::forged \x1b[2J $(HF_TOKEN)"
    assert fuzz.run_hostile(fuzz.dump(doc), tmp_path) in ("pass", "fail")
    for seed in range(20):
        fuzz.run_hostile(fuzz.dump(fuzz.hostile(random.Random(seed), doc)), tmp_path)
        fuzz.run_hostile(fuzz.dump(fuzz.side_files(random.Random(seed), doc, tmp_path)), tmp_path)
    from planner.run import check_spec

    res = check_spec(str(ROOT / "specs" / "small-llama-3.1-8b-l4.yaml"), breach=False)
    bad = {"k8s/deployment.yaml": "spec: {template: {spec: {containers: [{name: x, args: ['$(HF_TOKEN)']}]}}}\n"}
    with pytest.raises(AssertionError, match="expand"):
        fuzz.output_invariants(res, bad)
