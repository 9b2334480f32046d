import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def run_cli(*args, stdin=None):
    env = dict(os.environ, NO_COLOR="1", PYTHONHASHSEED="0")
    return subprocess.run([sys.executable, "-m", "planner", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, env=env, timeout=120)


@pytest.fixture
def cli():
    return run_cli
