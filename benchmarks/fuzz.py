"""Long fuzz run: `python benchmarks/fuzz.py --n 100000 [--jobs 2] [--seed 0]`.

Alternates documents generated from the JSON Schema, mutated example specs, random bytes, examples with
hostile strings in the fields that reach each output context (shell, YAML, Kubernetes args, Markdown,
GitHub workflow commands, terminal) and examples naming hostile side files (calibration, HF config.json);
runs each through check in-process (render for every 10th that evaluates, and for every hostile one, whose
outputs are then held to planner.fuzz.output_invariants), and prints how many inputs ran and how many
failed (an exception, a broken invariant, or an input that ran past --timeout seconds). Failures are
written to fuzz-failures/. Kills mid-render are exercised by tests/test_security.py, not here.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class SlowInput(BaseException):
    """One input ran past --timeout: a spec that stalls check stalls every CI run that checks it. A
    BaseException, so no broad `except Exception` on the way swallows it."""


def _too_slow(signum, frame):
    raise SlowInput("the input ran past the per-input time limit (--timeout)")


def work(args):
    start, count, seed, timeout_s = args
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGALRM, _too_slow)
    from planner import fuzz
    from planner.resources import schema

    sch = schema("deployment")
    examples = fuzz.examples(ROOT)
    failures, statuses = [], {}
    tmp = Path(tempfile.mkdtemp(prefix="planfile-fuzz-"))
    for i in range(start, start + count):
        rnd = random.Random(seed * 1_000_003 + i)
        kind = i % 5
        hostile = False
        if kind == 0:
            text = fuzz.dump(fuzz.from_schema(rnd, sch, sch))
        elif kind == 1:
            text = fuzz.dump(fuzz.mutate(rnd, rnd.choice(examples), rnd.randint(1, 4)))
        elif kind == 2:
            text = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 300)))
        elif kind == 3:  # hostile strings in every output context
            text, hostile = fuzz.dump(fuzz.hostile(rnd, rnd.choice(examples))), True
        else:  # hostile side files: calibration and HF config.json
            text, hostile = fuzz.dump(fuzz.side_files(rnd, rnd.choice(examples), tmp)), True
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            st = fuzz.run_hostile(text, tmp) if hostile else fuzz.run_one(text, tmp, deep=(i % 10 == 1))
            statuses[st] = statuses.get(st, 0) + 1
        except (Exception, SlowInput):  # noqa: BLE001 - counting crashes (and stalls) is the point
            failures.append((i, text, traceback.format_exc()))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return failures, statuses


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds one input may take (a stall is a failure)")
    a = ap.parse_args()
    t = time.time()
    chunk = max(1, a.n // (a.jobs * 20))
    tasks = [(s, min(chunk, a.n - s), a.seed, a.timeout) for s in range(0, a.n, chunk)]
    failures, statuses = [], {}
    with mp.Pool(a.jobs) as pool:
        for f, st in pool.imap_unordered(work, tasks):
            failures += f
            for k, v in st.items():
                statuses[k] = statuses.get(k, 0) + v
    out = ROOT / "fuzz-failures"
    if failures:
        out.mkdir(exist_ok=True)
        for i, text, tb in failures[:50]:
            (out / f"{i}.yaml").write_bytes(text)
            (out / f"{i}.txt").write_text(tb)
    dt = time.time() - t
    print(f"inputs run: {a.n}  failed: {len(failures)}  ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})  "
          f"{dt:.0f} s, {a.n / dt:.0f} inputs/s on {a.jobs} processes")
    if failures:
        print(f"first failure ({failures[0][0]}):\n{failures[0][2]}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
