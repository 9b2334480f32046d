"""The simulator's random variates (planner.physics.serving.Draws): the interpreter's Mersenne Twister for
the bits, numpy for the transforms — and a cold `planfile check` that never imports numpy.random."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

from planner.physics.serving import Draws, Lengths

ROOT = Path(__file__).resolve().parents[2]


def test_the_stream_is_the_interpreters_mersenne_twister():
    # 64 bits of getrandbits as one little-endian word; the uniform keeps its top 53 bits: u = (bits >> 11) / 2**53.
    # Python fixes only random()'s sequence across versions: a change to getrandbits would fail here, by name
    bits = random.Random(7).getrandbits(64)
    assert Draws(7).uniform(1)[0] == (bits >> 11) / 2**53
    assert np.array_equal(Draws(7).uniform(1000), Draws(7).uniform(1000))
    assert not np.array_equal(Draws(7).uniform(1000), Draws(8).uniform(1000))
    assert Draws(7).uniform(0).shape == (0,)


def test_uniforms_exponentials_and_lognormals_have_their_moments():
    n = 200_000
    u = Draws(1).uniform(n)
    assert u.min() >= 0.0 and u.max() < 1.0
    # mean 1/2 and variance 1/12; the mean's standard error is sqrt(1/12/n) = 0.00065: 5 of them = 0.0032
    assert abs(u.mean() - 0.5) < 0.0032 and abs(u.var() - 1 / 12) < 0.002
    e = Draws(2).exponential(2.5, n)
    # an exponential of scale 2.5 has mean 2.5 and standard deviation 2.5: standard error 2.5 / sqrt(n) = 0.0056
    assert e.min() >= 0.0 and abs(e.mean() - 2.5) < 0.03 and abs(e.std() - 2.5) < 0.05
    x = Draws(3).lognormal(math.log(300), 0.6, n)
    # median exp(mu) = 300; p95 exp(mu + 1.6449 sigma) = 300 x e^0.98694 = 805.1; mean 300 x e^(0.18) = 359.2
    p50, p95 = np.percentile(x, [50, 95])
    assert abs(p50 / 300 - 1) < 0.01 and abs(p95 / 805.1 - 1) < 0.015 and abs(x.mean() / 359.2 - 1) < 0.01


def test_token_lengths_follow_their_p50_and_p95():
    # Lengths(mean, p50, p95, max): lognormal through p50 and p95, rounded and capped at max
    L = Lengths(mean=400, p50=300, p95=1200, max=4096)
    x = L.sample(Draws(4), 100_000)
    assert x.dtype == np.int64 and x.min() >= 1 and x.max() <= 4096
    p50, p95 = np.percentile(x, [50, 95])
    assert abs(p50 / 300 - 1) < 0.02 and abs(p95 / 1200 - 1) < 0.03


def test_a_cold_check_never_imports_numpy_random(tmp_path):
    """numpy.random costs ~14 ms at import (with OpenSSL, through `secrets`): a cold check leaves it out. Through
    the real entry point, with the result cache off; what the process imported is read just before it exits."""
    code = ("import os, sys\n"
            "from planner import cli\n"
            "leave = os._exit\n"
            "def report(c):\n"
            "    sys.stdout.flush()\n"
            "    sys.stderr.write('IMPORTED ' + ' '.join(sorted(m for m in sys.modules if m.startswith(('numpy.random', '_hashlib')))) + '\\n')\n"
            "    sys.stderr.flush()\n"
            "    leave(c)\n"
            "os._exit = report\n"
            f"sys.argv = ['planfile', 'check', {str(ROOT / 'specs' / 'chat-llama-3.1-70b.yaml')!r}]\n"
            "cli.main()\n")
    env = {"PATH": "/usr/bin:/bin", "PLANFILE_NO_CACHE": "1", "PLANFILE_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "chat-llama-3.1-70b.yaml: PASS" in r.stdout
    imported = r.stderr.rsplit("IMPORTED", 1)[1].split()
    assert imported == [], imported
