"""PF504's search on a second core (planner/background.py): the same output as inline, byte for byte, whatever
the spec; a child that fails is recomputed by the parent; a child whose result is not needed is reaped."""

import os
import time
from pathlib import Path

import pytest
import yaml

from planner import background, output, run
from planner.physics import serving

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def _checked(path, forked: bool, monkeypatch, **kw):
    """check's JSON and text output, every simulation computed afresh (an empty memo), with PF504 forked or inline;
    and how many children were started."""
    serving._MEMO.clear()
    monkeypatch.setattr(background, "usable", (lambda: not background._IN_CHILD) if forked else (lambda: False))
    started = []
    real = background.start

    def start(fn, *args):
        p = real(fn, *args)
        started.append(p.forked)
        return p

    monkeypatch.setattr(background, "start", start)
    res = run.check_spec(str(path), **kw)
    return output.FORMATS["json"]([res]) + output.FORMATS["text"]([res]), res.status, sum(started)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_forked_search_gives_the_inline_output(spec, monkeypatch):
    inline, status, n = _checked(spec, False, monkeypatch)
    assert n == 0
    forked, status2, n2 = _checked(spec, True, monkeypatch)
    assert (forked, status2) == (inline, status)
    if "PF504" in inline:  # the specs PF504 speaks about did run it in a child
        assert n2 == 1


def _variant(tmp_path, name, edit) -> Path:
    doc = yaml.safe_load((ROOT / "specs/chat-llama-3.1-70b.yaml").read_text())
    edit(doc)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_a_waived_search_and_an_info_verdict_are_the_same_forked(tmp_path, monkeypatch):
    # a waiver of PF504 (PF901 then depends on whether it fired) and --fail-on info (PF504 itself decides the status)
    waived = _variant(tmp_path, "waived.yaml", lambda d: d.setdefault("checks", {}).setdefault("ignore", []).append(
        {"id": "PF504", "reason": "capacity blocks are not bought here"}))
    plain = ROOT / "specs/chat-llama-3.1-70b.yaml"
    for spec, kw in ((waived, {}), (plain, {"fail_on": "info"})):
        inline, status, _ = _checked(spec, False, monkeypatch, **kw)
        forked, status2, n = _checked(spec, True, monkeypatch, **kw)
        assert n == 1 and (forked, status2) == (inline, status)
    assert "waived" in inline or status == "fail"


def test_the_real_entry_point_prints_the_same_with_one_job(cli):
    spec = "specs/chat-llama-3.1-70b.yaml"
    one, two = cli("check", spec, env_extra={"PLANFILE_JOBS": "1"}), cli("check", spec)
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout and "PF504" in one.stdout


def _pid_in_child():
    return os.getpid()


def _raises_in_child_only():
    if background._IN_CHILD:
        raise RuntimeError("child only")
    return "parent"


def _always_raises():
    raise ValueError("bad spec value")


def _sleeps():
    time.sleep(30)
    return "late"


@pytest.fixture
def forking(monkeypatch):
    monkeypatch.setattr(background, "usable", lambda: not background._IN_CHILD)


def test_a_child_computes_in_another_process(forking):
    p = background.start(_pid_in_child)
    assert p.forked and p.result() != os.getpid()


def test_a_failed_child_is_recomputed_by_the_parent(forking):
    p = background.start(_raises_in_child_only)
    assert p.forked and p.result() == "parent"
    p = background.start(_always_raises)
    with pytest.raises(ValueError, match="bad spec value"):  # the error the inline call raises, from the parent
        p.result()


def test_an_unneeded_child_is_stopped_and_reaped(forking):
    p = background.start(_sleeps)
    pid = p.pid
    t = time.perf_counter()
    p.cancel()
    assert time.perf_counter() - t < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # no zombie left: it was reaped


def test_no_fork_with_one_job_or_inside_a_child(monkeypatch):
    monkeypatch.setenv("PLANFILE_JOBS", "1")
    assert not background.usable()
    p = background.start(_pid_in_child)
    assert not p.forked and p.result() == os.getpid()
    monkeypatch.delenv("PLANFILE_JOBS")
    monkeypatch.setattr(background, "_IN_CHILD", True)
    assert not background.usable()


def test_no_fork_beside_other_threads(monkeypatch):
    import threading

    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("PLANFILE_JOBS", raising=False)
    assert background.usable()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not background.usable()
    finally:
        stop.set()
        t.join()
