"""Content-hash result cache for `planfile check`: what pre-commit and editors run on every save.

The key is a 256-bit BLAKE2b hash over every input byte the verdict depends on: the spec files as given, the catalog
and schema files, planfile's own version and code (size and mtime of every module), the command's
options and the working directory (relative side-file paths resolve against it). Files the spec names
(`calibration:`, `model.hf_config`) are only known after parsing, so each entry records their paths and
hashes — a missing file is recorded as missing — and a hit re-hashes them before it is trusted. An entry
is the exact output and exit code, so a hit prints byte-for-byte what a fresh run would.

Only builtin modules are imported here (no json: it pulls in `re`): a hit must cost a few milliseconds,
not numpy's 90. Entries are `marshal` data — the cache folder is the user's own, never a PR's.
Beside it, `SimStore` keeps simulation results across runs (see there): an edited spec re-simulates only
the configurations it changed. Off with `--no-cache` or PLANFILE_NO_CACHE=1; location PLANFILE_CACHE_DIR, else $XDG_CACHE_HOME/planfile
or ~/.cache/planfile. Entries are written atomically; a corrupt or unreadable entry is a miss.
"""

from __future__ import annotations

import marshal
import os
import sys

CACHE_FORMAT = 1
MAX_ENTRY_BYTES = 8 << 20
_PKG = os.path.dirname(os.path.abspath(__file__))

try:  # the interpreter's builtin BLAKE2b: importing hashlib loads OpenSSL (~5 ms, a quarter of a cache hit), and
    # BLAKE2b runs ~3x faster than the builtin SHA-256 (the catalog and schemas: ~0.8 ms, not ~2.5 ms)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - builds without the builtin module
    from hashlib import blake2b as _blake2b


def hasher(data: bytes = b""):
    """A 256-bit BLAKE2b hash object over data: every key of the caches (and planner.catalog's)."""
    return _blake2b(data, digest_size=32)


def cache_dir() -> str:
    d = os.environ.get("PLANFILE_CACHE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "planfile")


def enabled() -> bool:
    return not os.environ.get("PLANFILE_NO_CACHE")


def _data_roots() -> list[str]:
    packaged = os.path.join(_PKG, "_data")
    root = packaged if os.path.isdir(packaged) else os.path.dirname(_PKG)
    return [os.path.join(root, "catalog"), os.path.join(root, "schemas")]


def _walk(top: str):
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            if e.name != "__pycache__":
                yield from _walk(e.path)
        elif e.is_file(follow_symlinks=False):
            yield e


_FINGERPRINT: list = []


def fingerprint() -> str:
    """planfile's code (by size and mtime) and data (by content); computed once per process."""
    if not _FINGERPRINT:
        _FINGERPRINT.append(_fingerprint())
    return _FINGERPRINT[0]


def _fingerprint() -> str:
    h = hasher()
    from planner import __version__

    h.update(f"{CACHE_FORMAT}|{__version__}|{sys.version_info[:2]}".encode())
    for e in _walk(_PKG):
        if e.name.endswith(".py"):
            st = e.stat()
            h.update(f"{e.path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for root in _data_roots():
        for e in _walk(root):
            h.update(e.path.encode())
            with open(e.path, "rb") as fh:
                h.update(hasher(fh.read()).digest())
    return h.hexdigest()


def file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hasher(fh.read()).hexdigest()
    except OSError:
        return None


def _key(files: list[str], fail_on: str, fmt: str, no_breach: bool) -> str | None:
    h = hasher(fingerprint().encode())
    h.update(repr((os.getcwd(), fail_on, fmt, no_breach, files)).encode())
    for f in files:
        d = file_digest(f)
        h.update(f"{f}|{d}\n".encode())
    return h.hexdigest()


def _parse_check_argv(argv: list[str]):
    """The few options of `check`, or None when anything is unusual (then the real parser runs)."""
    fail_on, fmt, no_breach, files = "error", "text", False, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--fail-on", "-f", "--format") and i + 1 < len(argv):
            if a == "--fail-on":
                fail_on = argv[i + 1]
            else:
                fmt = argv[i + 1]
            i += 2
            continue
        if a.startswith("--fail-on="):
            fail_on = a.split("=", 1)[1]
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a == "--no-breach":
            no_breach = True
        elif a == "--no-cache" or a.startswith("-"):
            return None
        else:
            files.append(a)
        i += 1
    if not files or fail_on not in ("error", "warning", "info", "never") or fmt not in ("text", "json", "github", "markdown", "sarif"):
        return None
    return fail_on, fmt, no_breach, files


def lookup_check(argv: list[str]) -> int | None:
    """Print a cached result and return its exit code, or None on a miss."""
    if not enabled():
        return None
    parsed = _parse_check_argv(argv)
    if parsed is None:
        return None
    fail_on, fmt, no_breach, files = parsed
    if "-" in files or any(c in f for f in files for c in "*?["):
        return None
    if fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return None  # coloured terminal output: the full path (a person is watching, not a hook)
    key = _key(files, fail_on, fmt, no_breach)
    path = os.path.join(cache_dir(), key[:2], key + ".entry")
    try:
        with open(path, "rb") as fh:
            entry = marshal.loads(fh.read(MAX_ENTRY_BYTES))
        for p, digest in entry["side"]:
            if file_digest(p) != digest:
                return None
        out, code = entry["out"], int(entry["code"])
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    sys.stdout.write(out)
    return code


def store_check(args, files: list[str], results, out: str, code: int, stdin: bytes | None) -> None:
    if not enabled() or stdin is not None or any(c in f for f in args.files for c in "*?["):
        return
    from planner import sidefile

    try:
        key = _key(list(args.files), args.fail_on, args.format, args.no_breach)
        entry = {"side": sorted(sidefile.reads().items()), "out": out, "code": code}
        d = os.path.join(cache_dir(), key[:2])
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, f".{key}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(marshal.dumps(entry))
        os.replace(tmp, os.path.join(d, key + ".entry"))
    except OSError:
        pass  # a read-only or full cache folder only costs speed


SIM_ENTRIES_MAX = 4000  # simulations kept (about 30-60 kB each); the oldest half goes when the folder is full
_SIM_FIELDS = ("ttft_s", "e2e_s", "itl_s", "itl_w", "prompt_tokens")
_SIM_SCALARS = ("duration_s", "output_tokens", "completed", "preemptions", "mean_batch", "steps", "truncated")


class SimStore:
    """Simulation results kept across runs (planner.physics.serving.STORE): a spec edited where it does not
    change a simulated configuration (its cost, its metadata, a comment, one SLO of several) re-simulates
    nothing that an earlier check, plan or sweep already ran. The key is a 256-bit BLAKE2b hash over planfile's
    fingerprint (its code, so the simulator itself, and its data) and the simulation's whole memo key: the
    step model's generated source (every constant), the engine limits, both length distributions, the load,
    the seed and every other argument. Arrays are stored exactly (their dtype and every value)."""

    def __init__(self) -> None:
        self.dir = os.path.join(cache_dir(), "sim")
        self._pruned = False

    def _path(self, key) -> str:
        h = hasher(fingerprint().encode())
        h.update(repr(key).encode())
        d = h.hexdigest()
        return os.path.join(self.dir, d[:2], d + ".sim")

    def get(self, key):
        try:
            with open(self._path(key), "rb") as fh:
                entry = marshal.loads(fh.read(MAX_ENTRY_BYTES))
            import numpy as np

            from planner.physics.serving import SimResult

            arrays = {}
            for f in _SIM_FIELDS:
                a = entry[f]
                arrays[f] = None if a is None else np.asarray(a[1], dtype=np.dtype(a[0]))
            res = SimResult(**arrays, **{f: entry[f] for f in _SIM_SCALARS})
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None
        for a in arrays.values():
            if a is not None:
                a.flags.writeable = False
        return res

    def put(self, key, res) -> None:
        entry = {f: getattr(res, f) for f in _SIM_SCALARS}
        for f in _SIM_FIELDS:
            a = getattr(res, f)
            entry[f] = None if a is None else (a.dtype.str, a.tolist())
        path = self._path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._prune()
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(marshal.dumps(entry))
            os.replace(tmp, path)
        except (OSError, ValueError):
            pass  # a read-only or full cache folder only costs speed

    def _prune(self) -> None:
        """Once per process: when the store holds more than SIM_ENTRIES_MAX simulations, drop the oldest half."""
        if self._pruned:
            return
        self._pruned = True
        entries = [e for sub in os.scandir(self.dir) if sub.is_dir() for e in os.scandir(sub.path) if e.name.endswith(".sim")]
        if len(entries) <= SIM_ENTRIES_MAX:
            return
        entries.sort(key=lambda e: e.stat().st_mtime_ns)
        for e in entries[: len(entries) // 2]:
            try:
                os.unlink(e.path)
            except OSError:
                pass
