"""The compiled schema test (planner/_fastvalidate.py) against the schema it was compiled from and against
jsonschema: `planfile check` trusts it to say a spec has nothing to report, so it must never pass a document
that jsonschema with planfile's semantics (planner/validate.py validator_for) rejects — and it should not
reject one jsonschema accepts (that would only cost time, but it would mean the two disagree on the schema)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
import yaml

from planner import fuzz
from planner._fastvalidate import valid
from planner.resources import schema
from planner.validate import validator_for

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("gen_fastvalidate", ROOT / "tools" / "gen_fastvalidate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_fastvalidate"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_generated_module_is_current():
    tool = _tool()
    text = tool.generate(schema("deployment"))
    assert (ROOT / "planner" / "_fastvalidate.py").read_text() == text, "run python tools/gen_fastvalidate.py"
    assert "import fastjsonschema" not in text and "from fastjsonschema" not in text  # no runtime dependency


def test_generator_refuses_keywords_it_does_not_vouch_for():
    tool = _tool()
    with pytest.raises(SystemExit, match="oneOf"):
        tool.generate({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"const": 1}]}}})


def _agree(doc) -> None:
    expected = not any(True for _ in validator_for("deployment").iter_errors(doc))
    assert valid(doc) == expected, yaml.safe_dump(doc)[:2000]


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_to_both(path):
    doc = yaml.safe_load(path.read_text())
    assert valid(doc)
    _agree(doc)


def test_planfile_semantics_kept():
    base = yaml.safe_load((ROOT / "specs" / "chat-llama-3.1-70b.yaml").read_text())
    cases = []
    doc = yaml.safe_load(yaml.safe_dump(base))
    doc["workload"]["input_tokens"]["mean"] = 1024.0  # a float token count is not an integer here
    cases.append(doc)
    doc = yaml.safe_load(yaml.safe_dump(base))
    doc["metadata"]["name"] = "chat\n"  # ECMA `$`: no match before a trailing newline
    cases.append(doc)
    doc = yaml.safe_load(yaml.safe_dump(base))
    doc["hardware"]["replicas"] = True  # a boolean is not an integer
    cases.append(doc)
    for doc in cases:
        assert not valid(doc)
        _agree(doc)


def test_fuzzed_documents_agree():
    """2,000 documents: half generated from the schema, half mutated examples (wrong types, NaN, unicode,
    deep nesting, missing fields); the two validators give the same verdict on every one."""
    rnd = random.Random(20261203)
    root = schema("deployment")
    bases = fuzz.examples(ROOT)
    seen_valid = 0
    for i in range(2000):
        doc = fuzz.from_schema(rnd, root, root) if i % 2 else fuzz.mutate(rnd, rnd.choice(bases))
        _agree(doc)
        seen_valid += valid(doc)
    assert 0 < seen_valid < 2000  # both verdicts were exercised
