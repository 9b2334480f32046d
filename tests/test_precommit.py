"""Both pre-commit hooks through pre-commit itself (`pre-commit try-repo`), in a scratch repository that
holds specs beside their rendered output, as a user's repository does: `planfile-check` must check the
specs and skip the rendered manifests (it recognises specs by content), `planfile-render-check` must pass
on an up-to-date render and fail once the spec changes. pre-commit installs planfile from this checkout
into its own environment (from the package index: network to the registry is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def _run(cmd, cwd, **kw):
    env = dict(os.environ, PRE_COMMIT_HOME=str(kw.pop("home")), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.fail("git is required")
    d = tmp_path_factory.mktemp("userrepo")
    (d / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "chat-llama-3.1-70b.yaml", d / "specs" / "chat.yaml")
    r = subprocess.run([sys.executable, "-m", "planner", "render", "specs/chat.yaml", "--out", "deploy", "--only",
                        "engine,k8s,alerts,bench"], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (d / ".github").mkdir()
    (d / ".github" / "ci.yaml").write_text("on: push\njobs: {}\n")  # other YAML in the repository
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=d, check=True, capture_output=True)
    return d


def test_planfile_check_hook_checks_specs_and_skips_rendered_yaml(repo, tmp_path):
    pc = [sys.executable, "-m", "pre_commit"]
    r = _run(pc + ["try-repo", str(ROOT), "planfile-check", "--all-files", "--verbose"], repo, home=tmp_path / "pc")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "specs/chat.yaml: PASS" in r.stdout
    assert "deploy/k8s/deployment.yaml" not in r.stdout and "PF010" not in r.stdout


def test_render_check_hook_passes_up_to_date_and_fails_on_drift(repo, tmp_path):
    pc = [sys.executable, "-m", "pre_commit"]
    cfg = repo / ".pre-commit-config.yaml"
    # the manifest's hook with the user's arguments, as a user's config pins it (this checkout's HEAD: CI runs
    # on a clean clone, where HEAD is the code under test)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    cfg.write_text(f"""repos:
- repo: {ROOT}
  rev: {head}
  hooks:
  - id: planfile-render-check
    args: [--out, deploy, --only, "engine,k8s,alerts,bench", specs/chat.yaml]
    always_run: true
""")
    r = _run(pc + ["run", "planfile-render-check", "--all-files", "--config", str(cfg)], repo, home=tmp_path / "pc2")
    assert r.returncode == 0, r.stdout + r.stderr
    spec = repo / "specs" / "chat.yaml"
    spec.write_text(spec.read_text().replace("  description: Customer-facing chat assistant.\n",
                                             "  description: Customer-facing chat assistant.\n  labels: {team: chat}\n"))
    r = _run(pc + ["run", "planfile-render-check", "--all-files", "--config", str(cfg)], repo, home=tmp_path / "pc2")
    assert r.returncode == 1 and "k8s/deployment.yaml" in r.stdout and "deploy differs" in r.stdout
