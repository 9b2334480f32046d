import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def run_cli(*args, stdin=None, env_extra=None):
    # the result cache is off unless a test turns it on (tests/test_cache.py)
    env = dict(os.environ, NO_COLOR="1", PYTHONHASHSEED="0", PLANFILE_NO_CACHE="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "planner", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, env=env, timeout=120)


@pytest.fixture
def cli():
    return run_cli


# Deterministic property and fuzz tests in CI: the same examples on every run (the long randomized
# search is benchmarks/fuzz.py). PLANFILE_HYPOTHESIS_RANDOM=1 explores new examples locally.
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile("planfile", derandomize=not os.environ.get("PLANFILE_HYPOTHESIS_RANDOM"), deadline=None,
                            print_blob=True)
_hsettings.load_profile("planfile")
