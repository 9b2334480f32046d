"""The result cache and the simulation store (planner/cache.py), through the real entry point.

The result cache replays a check's exact output when no input byte changed; the simulation store keeps
simulation results across runs, so an edit that changes no simulated configuration re-simulates nothing.
Neither may ever change a number: every test compares with a run that has both off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import ROOT

SPEC = ROOT / "specs" / "chat-llama-3.1-70b.yaml"


def _run(args, cache_dir: Path, *, cache: bool = True, cwd: Path = ROOT):
    env = {k: v for k, v in os.environ.items() if k != "PLANFILE_NO_CACHE"}
    env.update(NO_COLOR="1", PYTHONHASHSEED="0", PLANFILE_CACHE_DIR=str(cache_dir))
    if not cache:
        env["PLANFILE_NO_CACHE"] = "1"
    return subprocess.run([sys.executable, "-m", "planner", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=300)


def _sims(cache_dir: Path) -> set[str]:
    return {p.name for p in (cache_dir / "sim").rglob("*.sim")}


def test_a_repeated_check_replays_the_exact_output(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.read_text())
    first = _run(["check", "--format", "json", str(spec)], tmp_path / "c", cwd=tmp_path)
    assert list((tmp_path / "c").rglob("*.entry")), "the first check stores its result"
    again = _run(["check", "--format", "json", str(spec)], tmp_path / "c", cwd=tmp_path)
    assert (again.stdout, again.returncode) == (first.stdout, first.returncode)
    fresh = _run(["check", "--format", "json", str(spec)], tmp_path / "c", cache=False, cwd=tmp_path)
    assert fresh.stdout == first.stdout
    # one byte more in the spec (a comment): a miss, recomputed, and the same verdict
    spec.write_text(SPEC.read_text() + "# reviewed\n")
    edited = _run(["check", "--format", "json", str(spec)], tmp_path / "c", cwd=tmp_path)
    assert json.loads(edited.stdout) == json.loads(first.stdout)


def test_an_edit_that_changes_no_configuration_re_simulates_nothing(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.read_text())
    cache = tmp_path / "c"
    first = _run(["check", "--format", "json", str(spec)], cache, cwd=tmp_path)
    stored = _sims(cache)
    # the main load, the breach search, PF504's fleets and the fixes' trials: each configuration once
    assert len(stored) >= 10, len(stored)
    # the cost basis and a comment change; no simulated configuration does
    text = SPEC.read_text().replace("name: chat-llama-70b", "name: chat-llama-70b-b", 1) + "# reviewed\n"
    assert text != SPEC.read_text() + "# reviewed\n"
    spec.write_text(text)
    edited = _run(["check", "--format", "json", str(spec)], cache, cwd=tmp_path)
    assert _sims(cache) == stored, "an unchanged configuration was simulated again"
    fresh = _run(["check", "--format", "json", str(spec)], tmp_path / "off", cache=False, cwd=tmp_path)
    assert not _sims(tmp_path / "off") and not list((tmp_path / "off").rglob("*.entry"))
    assert json.loads(edited.stdout) == json.loads(fresh.stdout)  # stored results are the results
    assert json.loads(first.stdout)["results"][0]["estimate"] == json.loads(edited.stdout)["results"][0]["estimate"]


def test_no_cache_writes_nothing(tmp_path):
    r = _run(["check", "--no-cache", str(SPEC)], tmp_path / "c")
    assert r.returncode == 0, r.stderr
    # neither a result nor a simulation (the parsed catalog, keyed on its bytes, is kept: planner/catalog.py)
    assert not _sims(tmp_path / "c") and not list((tmp_path / "c").rglob("*.entry"))


def test_the_store_round_trips_a_simulation_exactly_and_keys_on_planfiles_code(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANFILE_CACHE_DIR", str(tmp_path))
    from planner import cache
    from planner.physics import serving

    def step(decode, decode_ctx, prefill, prefill_ctx):  # 10 ms + 0.01 ms per decode token + 0.1 us per prompt token
        return 0.010 + 1e-5 * decode + 1e-7 * prefill

    lim = serving.Limits(max_seqs=64, token_budget=4096, kv_tokens=200_000)
    inp, out = serving.Lengths(500, 400, 1500, 4000), serving.Lengths(200, 150, 600, 1000)
    res = serving._simulate(step, lim, inp, out, rate_rps=5.0, n_requests=300)
    store = cache.SimStore()
    key = ("step-source", lim, inp, out, 5.0, None, 300)
    assert store.get(key) is None
    store.put(key, res)
    back = store.get(key)
    for f in ("ttft_s", "e2e_s", "itl_s", "itl_w", "prompt_tokens"):
        a, b = getattr(res, f), getattr(back, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
        assert not b.flags.writeable  # shared between callers, like the in-process memo's results
    for f in ("duration_s", "output_tokens", "completed", "preemptions", "mean_batch", "steps", "truncated"):
        assert getattr(res, f) == getattr(back, f), f
    assert back.pct("ttft", 95) == res.pct("ttft", 95)
    assert store.get(key[:-1] + (301,)) is None  # another argument: another simulation
    # planfile's code or data changed: nothing stored before is trusted
    monkeypatch.setattr(cache, "_FINGERPRINT", ["another planfile"])
    assert store.get(key) is None
    # a corrupt entry is a miss, never a crash
    monkeypatch.setattr(cache, "_FINGERPRINT", [])
    path = Path(store._path(key))
    path.write_bytes(b"\x00garbage")
    assert store.get(key) is None


def test_a_stored_simulation_is_read_once_per_process(monkeypatch):
    from planner.physics import serving

    def step(decode, decode_ctx, prefill, prefill_ctx):  # 10 ms + 0.01 ms per decode token
        return 0.010 + 1e-5 * decode

    step.key = "a step model for this test"
    lim = serving.Limits(max_seqs=16, token_budget=2048, kv_tokens=50_000)
    inp, out = serving.Lengths(100, 100, 100, 100), serving.Lengths(20, 20, 20, 20)
    computed = serving._simulate(step, lim, inp, out, rate_rps=2.0, n_requests=50)

    class Store:
        gets = puts = 0

        def get(self, key):
            Store.gets += 1
            return computed

        def put(self, key, res):
            Store.puts += 1

    monkeypatch.setattr(serving, "STORE", Store())
    monkeypatch.setattr(serving, "_MEMO", {})
    a = serving.simulate(step, lim, inp, out, rate_rps=2.0, n_requests=50)
    b = serving.simulate(step, lim, inp, out, rate_rps=2.0, n_requests=50)
    assert a is b is computed and (Store.gets, Store.puts) == (1, 0)
