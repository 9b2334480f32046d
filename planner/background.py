"""A pure computation on a second core: forked now, its result read when it is needed.

check's PF504 (plan's search on the provider's other GPUs for fleets that meet the same SLOs) is about a
quarter of a cold check and needs nothing check computes after the spec's own peak run, so on a machine
with a second core it runs there beside the breach-point search, the other checks and the fix trials.

The child computes exactly what the parent would: the same pure function on the same inputs, forked with
the same in-process memo, so the output is byte-for-byte the same as inline (tests/test_background.py
asserts it). What the child cannot hand back is never trusted: a child that raised, was killed or wrote
nothing is recomputed inline by the parent, so an error surfaces exactly as it would without the fork.

Inline, without a fork: with one usable core, where os.fork is missing (Windows) or is not the platform's
safe default (only Linux forks here), in a process with other threads running, inside a child already,
and with PLANFILE_JOBS=1. The result crosses the pipe as a pickle between a process and its own fork: same
code, same interpreter, never a file.
"""

from __future__ import annotations

import os
import sys

_IN_CHILD = False


def usable() -> bool:
    """May work be forked: Linux, a second core in this process's CPU set, one thread, not a child, PLANFILE_JOBS
    not 1."""
    if _IN_CHILD or os.environ.get("PLANFILE_JOBS", "").strip() == "1":
        return False
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    threading = sys.modules.get("threading")  # planfile embedded in a threaded program: a fork copies locks another
    if threading is not None and threading.active_count() > 1:  # thread may hold, so it stays inline
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except OSError:  # pragma: no cover
        return False


class Pending:
    """fn(*args), running in a forked child (or not started: computed inline by result())."""

    def __init__(self, fn, args: tuple) -> None:
        self.fn, self.args = fn, args
        self.pid: int | None = None
        self.fd: int | None = None
        self.forked = False  # a child was started (tests read it)

    def result(self):
        if self.pid is not None:
            data = b""
            try:
                chunks = []
                while True:
                    chunk = os.read(self.fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                data = b"".join(chunks)
            finally:
                ok = self._reap(kill=False) and bool(data)
            if ok:
                import pickle

                try:
                    return pickle.loads(data)
                except Exception:  # pragma: no cover - a truncated write: recompute
                    pass
        return self.fn(*self.args)

    def cancel(self) -> None:
        """The result is not needed (or the parent is leaving with an error): stop and reap the child."""
        if self.pid is not None:
            self._reap(kill=True)

    def _reap(self, kill: bool) -> bool:
        pid, fd = self.pid, self.fd
        self.pid = self.fd = None
        try:
            os.close(fd)
        except OSError:  # pragma: no cover
            pass
        if kill:
            try:
                os.kill(pid, 9)
            except OSError:  # pragma: no cover - already gone
                pass
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # pragma: no cover
            return False
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def start(fn, *args) -> Pending:
    """fn(*args) in a forked child where usable(), else deferred to result(). fn must be pure (no output, no
    state the parent reads later) and return something picklable."""
    p = Pending(fn, args)
    if not usable():
        return p
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # pragma: no cover - out of processes or memory: inline
        os.close(read_fd)
        os.close(write_fd)
        return p
    if pid == 0:  # the child: compute, write, leave without the parent's atexit handlers or buffered output
        global _IN_CHILD
        _IN_CHILD = True
        code = 1
        try:
            os.close(read_fd)
            import pickle

            data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        except BaseException:  # noqa: BLE001 - any failure: the parent recomputes inline and sees it there
            pass
        finally:
            os._exit(code)
    os.close(write_fd)
    p.pid, p.fd, p.forked = pid, read_fd, True
    return p
