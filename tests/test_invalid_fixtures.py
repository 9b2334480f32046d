"""Every malformed spec in fixtures/invalid gives its exact message (snapshot), with line and column, exit 2."""

from pathlib import Path

import pytest

from planner.run import check_spec

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "invalid").glob("*.yaml"))


def test_at_least_30_fixtures():
    assert len(FIXTURES) >= 30


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_invalid_fixture(path, snapshot):
    rel = str(path.relative_to(Path(__file__).parent.parent))
    res = check_spec(rel, breach=False)
    assert res.status == "invalid"
    errors = [f for f in res.findings if f.severity == "error"]
    assert errors
    for f in errors:
        assert f.line is not None and f.column is not None, f
        assert f.id.startswith(("PF0", "PF1"))
    assert [f"{rel}:{f.line}:{f.column}: {f.id} {f.check}: {f.message} | {f.remediation}" for f in res.findings] == snapshot


def test_invalid_cli_exit_code(cli):
    r = cli("check", "tests/fixtures/invalid/09-unknown-gpu.yaml")
    assert r.returncode == 2
    assert "tests/fixtures/invalid/09-unknown-gpu.yaml:8:8" in r.stdout
    assert "did you mean h100-sxm" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
