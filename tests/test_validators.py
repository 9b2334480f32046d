"""Every artifact through the real tool of its ecosystem: promtool on the alert rules, shellcheck on the
rendered scripts and the GitHub action, the Nu Html Checker on report.html (the SARIF Multitool and the
official SARIF schema: tests/test_formats_and_checks.py; the Kubernetes OpenAPI schemas and the real CRDs:
tests/test_render.py).

.ci/run installs the tools (promtool and shellcheck from Debian, vnu.jar and the SARIF Multitool from npm)
and sets PLANFILE_REQUIRE_VALIDATORS=1: there a missing tool fails the test. On a machine without them
the tests say which tool is missing and skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli

SPECS = sorted((ROOT / "specs").glob("*.yaml")) + [ROOT / "tests" / "fixtures" / "render" / "multinode-405b.yaml"]


def tool(name: str, env: str | None = None) -> str:
    path = os.environ.get(env) if env else None
    path = path or shutil.which(name)
    if not path:
        if os.environ.get("PLANFILE_REQUIRE_VALIDATORS"):
            raise AssertionError(f"{name} is required (PLANFILE_REQUIRE_VALIDATORS) but not installed")
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for spec in SPECS:
        d = tmp_path_factory.mktemp(spec.stem)
        r = run_cli("render", str(spec.relative_to(ROOT)), "--out", str(d), "--force")
        assert r.returncode == 0, r.stderr
        out[spec.stem] = d
    return out


def test_promtool_accepts_every_rendered_rule_file(rendered, tmp_path):
    promtool = tool("promtool", "PLANFILE_PROMTOOL")
    files = []
    for name, d in rendered.items():
        p = d / "alerts" / "prometheusrule.yaml"
        if not p.exists():
            continue  # TensorRT-LLM: no Prometheus metrics, no rules (the render says so)
        rule = yaml.safe_load(p.read_text())
        assert rule["kind"] == "PrometheusRule"
        f = tmp_path / f"{name}.rules.yaml"
        f.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        files.append(str(f))
    assert files
    r = subprocess.run([promtool, "check", "rules", "--lint=all", "--lint-fatal", *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shellcheck_accepts_the_rendered_scripts_and_the_action(rendered, tmp_path):
    shellcheck = tool("shellcheck", "PLANFILE_SHELLCHECK")
    scripts = [str(p) for d in rendered.values() for p in (d / "engine" / "serve.sh", d / "bench.sh") if p.exists()]
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    for i, st in enumerate(action["runs"]["steps"]):
        if "run" in st:
            assert "${{" not in st["run"], "expressions go through env:, never into the script text"
            p = tmp_path / f"action-step-{i}.sh"
            p.write_text("#!/usr/bin/env bash\n" + st["run"])
            scripts.append(str(p))
    r = subprocess.run([shellcheck, "--severity=style", *scripts], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_nu_html_checker_accepts_every_report(rendered):
    vnu = os.environ.get("PLANFILE_VNU_JAR")
    java = shutil.which("java")
    if not (vnu and Path(vnu).exists() and java):
        if os.environ.get("PLANFILE_REQUIRE_VALIDATORS"):
            raise AssertionError("vnu.jar and java are required (PLANFILE_REQUIRE_VALIDATORS)")
        pytest.skip("the Nu Html Checker is not installed (.ci/run installs vnu-jar from npm)")
    reports = [str(d / "report.html") for d in rendered.values() if (d / "report.html").exists()]
    assert len(reports) == len(rendered)
    r = subprocess.run([java, "-jar", vnu, "--errors-only", *reports], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[:4000]


def test_inlined_charts_keep_ids_unique_and_carry_no_rdf(rendered):
    import re

    for name, d in rendered.items():
        html = (d / "report.html").read_text()
        ids = re.findall(r'\bid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), name
        assert "<rdf:" not in html and "<metadata>" not in html
        for ref in re.findall(r'url\(#([^)]+)\)', html) + re.findall(r'href="#([^"]+)"', html):
            assert ref in ids, (name, ref)


def test_prometheusrule_is_validated_against_the_published_crd():
    """The vendored prometheus-operator v0.82.2 CRD, strict: its duration pattern and unknown fields are errors."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import k8s_schema

    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "10m"}]}]}}
    assert k8s_schema.errors(rule) == []
    rule["spec"]["groups"][0]["rules"][0]["for"] = "10 minutes"
    rule["spec"]["groups"][0]["rules"][0]["severity"] = "critical"
    errs = k8s_schema.errors(rule)
    assert any("does not match" in e for e in errs) and any("severity" in e for e in errs)


def test_servicemonitor_is_validated_against_the_published_crd():
    """The vendored prometheus-operator v0.84.1 ServiceMonitor schema, strict: the interval pattern, the
    scheme enum, the required selector and unknown fields are errors."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import k8s_schema

    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
          "spec": {"selector": {"matchLabels": {"app": "x"}},
                   "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "scheme": "http",
                                  "tlsConfig": {"ca": {"secret": {"key": "ca.crt", "name": "ca"}}}}]}}
    assert k8s_schema.errors(sm) == []
    sm["spec"]["endpoints"][0].update(interval="15 seconds", scheme="ftp", scrapeEvery="15s")
    del sm["spec"]["selector"]
    errs = k8s_schema.errors(sm)
    assert any("does not match" in e for e in errs) and any("'ftp'" in e for e in errs)
    assert any("scrapeEvery" in e for e in errs) and any("'selector' is a required property" in e for e in errs)
