"""Every check id has a fixture that triggers it; every output format is tested; docs are current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT, run_cli

CHECK_FIXTURES = sorted((ROOT / "tests" / "fixtures" / "checks").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))


def _ids(path) -> set[str]:
    args = ["check", str(path.relative_to(ROOT)), "--fail-on", "never", "--format", "json"]
    if "pf402" not in path.name:
        args.append("--no-breach")  # only the headroom check needs the breach-point search
    r = run_cli(*args)
    return {f["id"] for res in json.loads(r.stdout)["results"] for f in res["findings"]}


@pytest.mark.parametrize("path", CHECK_FIXTURES, ids=lambda p: p.stem)
def test_fixture_triggers_its_check(path):
    want = path.name[:5].upper()
    assert want in _ids(path)


def test_every_check_id_is_triggered_by_some_fixture():
    from planner.checks import REGISTRY, rules  # noqa: F401

    fixture_ids = {p.name[:5].upper() for p in CHECK_FIXTURES}
    snap = (ROOT / "tests" / "__snapshots__" / "test_invalid_fixtures.ambr").read_text()
    import re

    invalid_ids = set(re.findall(r"\b(PF0\d\d|PF1\d\d)\b", snap))
    missing = sorted(set(REGISTRY) - fixture_ids - invalid_ids)
    assert missing == [], f"no fixture triggers {missing}"


def test_a_clean_spec_passes_with_no_errors_or_warnings():
    r = run_cli("check", "specs/chat-llama-3.1-70b.yaml", "--format", "json")
    assert r.returncode == 0
    res = json.loads(r.stdout)["results"][0]
    assert {f["severity"] for f in res["findings"]} <= {"info"}


FAILING = "tests/fixtures/checks/pf401-slo-breach.yaml"


def test_markdown_format_snapshot(snapshot):
    r = run_cli("check", FAILING, "specs/small-llama-3.1-8b-l4.yaml", "--format", "markdown")
    assert r.returncode == 1
    assert r.stdout == snapshot


def test_github_annotations_name_file_and_line():
    r = run_cli("check", FAILING, "--format", "github")
    line = next(x for x in r.stdout.splitlines() if "title=PF401" in x)
    assert line.startswith("::error file=tests/fixtures/checks/pf401-slo-breach.yaml,line=")
    assert ",col=" in line and "title=PF401 slo-breach::" in line


SARIF_SCHEMA = ROOT / "tests" / "data" / "sarif-2.1.0.schema.json"  # the official schema, as the SARIF Multitool 5.7.0 ships it


def sarif_errors(doc) -> list[str]:
    import rfc3986_validator  # noqa: F401  (without it jsonschema skips the uri-reference format)

    schema = json.loads(SARIF_SCHEMA.read_text())
    v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [e.message for e in v.iter_errors(doc)]


def multitool_errors(path) -> list[str] | None:
    """SARIF Multitool `validate` (npm @microsoft/sarif-multitool, installed by .ci/run): its error lines;
    None when it is not installed (CI sets PLANFILE_REQUIRE_VALIDATORS, so there it must be)."""
    import os
    import shutil
    import subprocess

    tool = os.environ.get("PLANFILE_SARIF_MULTITOOL") or shutil.which("sarif-multitool")
    if not tool:
        if os.environ.get("PLANFILE_REQUIRE_VALIDATORS"):
            raise AssertionError("the SARIF Multitool is required (PLANFILE_REQUIRE_VALIDATORS) but not installed")
        return None
    out = subprocess.run([tool, "validate", str(path)], capture_output=True, text=True, timeout=300)
    return [line for line in out.stdout.splitlines() if ": error " in line or ": warning SARIF" in line]


def test_sarif_validates_against_the_official_sarif_2_1_0_schema(tmp_path):
    r = run_cli("check", FAILING, "tests/fixtures/checks/pf901-unused-waiver.yaml", "tests/fixtures/invalid/09-unknown-gpu.yaml",
                "--format", "sarif")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert sarif_errors(doc) == []
    (tmp_path / "out.sarif").write_text(r.stdout)
    assert multitool_errors(tmp_path / "out.sarif") in (None, [])
    run = doc["runs"][0]
    ids = [x["id"] for x in run["tool"]["driver"]["rules"]]
    assert ids == sorted(set(ids))
    res = {x["ruleId"]: x for x in run["results"]}
    loc = res["PF401"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == FAILING and loc["region"]["startLine"] > 0
    assert all(x["ruleIndex"] == ids.index(x["ruleId"]) for x in run["results"])
    assert all(len(x["partialFingerprints"]["planfile/v1"]) == 32 for x in run["results"])


def test_sarif_marks_waived_findings_as_suppressed():
    r = run_cli("check", "tests/fixtures/checks/pf305-communication-share.yaml", "--format", "sarif", "--fail-on", "never")
    results = json.loads(r.stdout)["runs"][0]["results"]
    waived = [x for x in results if x["ruleId"] == "PF301"]
    assert waived and waived[0]["suppressions"][0]["justification"] == "testing PF305 alone"


def test_exit_codes_through_the_real_entry_point():
    assert run_cli("check", "specs/chat-llama-3.1-70b.yaml", "--no-breach").returncode == 0
    assert run_cli("check", FAILING, "--no-breach").returncode == 1
    assert run_cli("check", FAILING, "--no-breach", "--fail-on", "never").returncode == 0
    assert run_cli("check", "tests/fixtures/checks/pf601-single-replica.yaml", "--no-breach", "--fail-on", "warning").returncode == 1
    assert run_cli("check", "tests/fixtures/invalid/09-unknown-gpu.yaml").returncode == 2
    assert run_cli("check", "--format", "xml", FAILING).returncode == 2


def test_checks_reference_doc_is_current():
    from planner.checks import reference_markdown

    assert (ROOT / "docs" / "checks.md").read_text() == reference_markdown(), "run python tools/gen_docs.py"


def test_every_check_has_an_explanation():
    from planner.checks import REGISTRY, rules  # noqa: F401

    for c in REGISTRY.values():
        r = run_cli("explain", c.id) if c.id in ("PF201", "PF301") else None
        if r is not None:
            assert r.returncode == 0 and c.slug in r.stdout and "Fix" in r.stdout
        if c.fn is not None:
            assert "What" in c.doc and "Fix" in c.doc or c.id in ("PF901", "PF902"), c.id


def test_pre_commit_manifest_and_action_are_well_formed():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    for h in hooks:
        assert {"id", "name", "entry", "language"} <= set(h) and h["entry"].startswith("planfile ")
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    script = "\n".join(s["run"] for s in action["runs"]["steps"])
    assert "--format github" in script and "GITHUB_STEP_SUMMARY" in script


def test_explain_spec_shows_formulas_with_sources():
    r = run_cli("explain", "specs/chat-llama-3.1-70b.yaml", "--metric", "kv")
    # Llama-3.1-70B fp8 KV: 2 x 80 layers x 8 heads x 128 x 1 B = 163,840 B/token
    assert r.returncode == 0 and "2 x 80 x 8 x 128 x 1 B = 163,840 B/token" in r.stdout and "source:" in r.stdout
    r = run_cli("explain", "specs/chat-llama-3.1-70b.yaml")
    for section in ("[memory]", "[decode]", "[latency]", "[breach]", "[cost]"):
        assert section in r.stdout
    assert run_cli("explain", "specs/chat-llama-3.1-70b.yaml", "--metric", "nope").returncode == 2


def test_sweep_formats_and_monotone_latency():
    r = run_cli("sweep", "specs/chat-llama-3.1-70b.yaml", "--vary", "arrival_rate_rps=2:14:4", "--format", "json")
    rows = json.loads(r.stdout)
    assert [x["arrival_rate_rps"] for x in rows] == [2, 6, 10, 14]
    itl = [x["itl_p95_ms"] for x in rows]
    assert itl == sorted(itl)  # more load, never faster tokens
    r = run_cli("sweep", "specs/chat-llama-3.1-70b.yaml", "--vary", "replicas=2,4", "--format", "csv")
    assert r.stdout.splitlines()[0].startswith("replicas,gpus,fits")
    assert run_cli("sweep", "specs/chat-llama-3.1-70b.yaml", "--vary", "gpus=1:2:1").returncode == 2


def test_diff_reads_like_a_plan(tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text((ROOT / "specs/chat-llama-3.1-70b.yaml").read_text().replace("replicas: 4", "replicas: 2")
                   .replace("arrival_rate_rps: 6 ", "arrival_rate_rps: 7 "))
    r = run_cli("diff", "specs/chat-llama-3.1-70b.yaml", str(new), "--fail-on-regression")
    assert r.returncode == 1
    assert "~ hardware.replicas: 4 -> 2" in r.stdout and "GPUs" in r.stdout and "8 -> 4" in r.stdout
    assert "+ error PF401" in r.stdout and "regressions: slo ITL p95 margin" in r.stdout
    r = run_cli("diff", "specs/chat-llama-3.1-70b.yaml", str(new), "--format", "markdown")
    assert r.returncode == 0 and "| `hardware.replicas` | `4` | `2` |" in r.stdout
    same = run_cli("diff", "specs/chat-llama-3.1-70b.yaml", "specs/chat-llama-3.1-70b.yaml", "--fail-on-regression")
    assert same.returncode == 0 and "regressions: none" in same.stdout


def test_diff_against_a_git_revision(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    spec = repo / "deployment.yaml"
    spec.write_text((ROOT / "specs/small-llama-3.1-8b-l4.yaml").read_text())
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "."], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=repo, check=True)
    spec.write_text(spec.read_text().replace("replicas: 2", "replicas: 3"))
    r = run_cli("diff", "--rev", "HEAD", str(spec))
    assert r.returncode == 0, r.stderr
    assert "deployment.yaml@HEAD" in r.stdout and "~ hardware.replicas: 2 -> 3" in r.stdout
    bad = run_cli("diff", "--rev", "nope", str(spec))
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def test_sarif_uris_of_odd_paths_are_percent_encoded_and_point_at_the_file(tmp_path):
    """A space, a non-ASCII letter, `#` and `%` in a spec path: the SARIF URI must be a valid RFC 3986 reference
    (the official schema and the Multitool's SARIF1002 reject the raw path) that decodes back to the file."""
    import shutil
    import subprocess
    import sys
    from urllib.parse import unquote

    d = tmp_path / "odd dir" / "é#%"
    d.mkdir(parents=True)
    shutil.copy(ROOT / FAILING, d / "a b.yaml")
    rel = "odd dir/é#%/a b.yaml"
    r = subprocess.run([sys.executable, "-m", "planner", "check", rel, "--format", "sarif"], cwd=tmp_path,
                       capture_output=True, text=True)
    doc = json.loads(r.stdout)
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for x in doc["runs"][0]["results"] for loc in x["locations"]}
    assert uris == {"odd%20dir/%C3%A9%23%25/a%20b.yaml"}
    assert (tmp_path / unquote(uris.pop())).is_file()
    assert sarif_errors(doc) == []
    (tmp_path / "odd.sarif").write_text(r.stdout)
    assert multitool_errors(tmp_path / "odd.sarif") in (None, [])
