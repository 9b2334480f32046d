"""Writing rendered files as one transaction: inside --out only, all files staged before any is replaced,
under a lock, never over files planfile did not write (unless forced), and drift detection for
`render --check` that also sees stray and half-written files.

A manifest `.planfile-render.json` in the output folder lists what planfile wrote (path -> sha256). It is
written last, atomically, so after an interrupted render it still describes the previous render and
`--check` reports every file that no longer matches it. Files are deleted only when the manifest lists
them, their content still has the hash planfile wrote, and the path is one planfile renders (so an
edited manifest cannot make render delete a README).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import field
from pathlib import Path, PurePosixPath

from planner.records import record

MANIFEST = ".planfile-render.json"
LOCK = ".planfile-render.lock"
TEMP_PREFIX = ".planfile-"
OWN_DIRS = ("engine/", "k8s/", "alerts/", "charts/", "disagg/")
OWN_FILES = ("bench.sh", "report.md", "report.html")


class OutError(Exception):
    pass


@record
class WritePlan:
    """What writing a render would do to the output folder: files to write, unchanged, to remove, in conflict."""

    write: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # exist, not written by planfile


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def owned_path(rel: str) -> bool:
    """A path planfile itself renders (the only ones it ever deletes)."""
    return rel in OWN_FILES or (rel.startswith(OWN_DIRS) and rel.count("/") == 1)


def safe_path(root: Path, rel: str) -> Path:
    """`root/rel`, refusing absolute paths, `..`, and anything (symlinks included) resolving outside root."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or rel != str(p):
        raise OutError(f"refusing to write {rel!r}: not a plain relative path")
    target = root / Path(*p.parts)
    real_root = root.resolve()
    if not str(target.resolve()).startswith(str(real_root) + os.sep):
        raise OutError(f"refusing to write {rel!r}: it resolves outside {root}")
    return target


def read_manifest(root: Path) -> dict:
    m = root / MANIFEST
    if not m.is_file():
        return {}
    try:
        data = json.loads(m.read_text(encoding="utf-8"))
        files = data.get("files", {})
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError
        return dict(files)
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise OutError(f"{m} is not a planfile render manifest; remove it or choose another --out") from None


def _on_disk(target: Path) -> bytes | None:
    try:
        return target.read_bytes() if target.is_file() and not target.is_symlink() else None
    except OSError:
        return None


def plan(root: Path, files: dict[str, str], force: bool = False) -> WritePlan:
    owned = read_manifest(root) if root.exists() else {}
    wp = WritePlan()
    for rel, text in files.items():
        target = safe_path(root, rel)
        current = _on_disk(target)
        if current is not None:
            if current == text.encode("utf-8"):
                wp.unchanged.append(rel)
                continue
            # planfile may replace a file it wrote (its hash is the one recorded), or anything with --force
            if not force and owned.get(rel) != _sha(current):
                wp.conflicts.append(rel)
                continue
        elif target.exists() or target.is_symlink():
            wp.conflicts.append(rel)
            continue
        wp.write.append(rel)
    for rel in sorted(owned):
        if rel in files or not owned_path(rel):
            continue
        current = _on_disk(safe_path(root, rel))
        if current is not None and _sha(current) == owned[rel]:
            wp.remove.append(rel)
    return wp


def _write_temp(target: Path, data: bytes, mode: int) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def _atomic_write(target: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = _write_temp(target, data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(target: Path, text: str) -> None:
    """Write a whole file or nothing (a temporary file in the same folder, then rename)."""
    try:
        _atomic_write(target, text.encode("utf-8"))
    except OSError as exc:
        raise OutError(f"cannot write {target}: {exc.strerror or exc}") from None


class _Lock:
    """An exclusive lock on the output folder: two renders into one folder would interleave."""

    def __init__(self, root: Path):
        self.path = root / LOCK
        self.fd = None

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise OutError(f"another planfile render is writing to {self.path.parent}; try again when it ends") from None
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _sweep_temps(root: Path) -> None:
    for p in root.rglob(TEMP_PREFIX + "*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass


def write(root: Path, files: dict[str, str], spec: str, force: bool = False) -> WritePlan:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _Lock(root):
            _sweep_temps(root)  # what an interrupted render left behind
            wp = plan(root, files, force)
            if wp.conflicts:
                raise OutError("refusing to overwrite files planfile did not write (use --force): " + ", ".join(wp.conflicts))
            staged: list[tuple[str, Path]] = []
            try:
                # 1. stage every new file next to its target (a full disk fails here, before anything changed)
                for rel in wp.write:
                    target = safe_path(root, rel)
                    staged.append((_write_temp(target, files[rel].encode("utf-8"), 0o755 if rel.endswith(".sh") else 0o644),
                                   target))
            except BaseException:
                for tmp, _ in staged:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                raise
            # 2. swap them in (renames only), 3. remove what the spec no longer renders, 4. the manifest last
            for tmp, target in staged:
                os.replace(tmp, target)
            for rel in wp.remove:
                safe_path(root, rel).unlink()
            manifest = {"generator": "planfile", "spec": os.path.normpath(spec) if spec != "-" else "-",
                        "files": {rel: _sha(files[rel]) for rel in sorted(files)}}
            _atomic_write(root / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
            return wp
    except OSError as exc:
        raise OutError(f"cannot write to {root}: {exc.strerror or exc} (nothing was replaced unless the message above says so)") from None


def drift(root: Path, files: dict[str, str]) -> str:
    """A unified diff between what is on disk and what the spec renders now ('' when identical), plus files
    that should not be there: ones the manifest lists but the spec no longer renders, planfile paths the
    manifest does not know, and temporary files of an interrupted render."""
    chunks = []
    owned = read_manifest(root) if root.exists() else {}
    for rel, text in files.items():
        target = safe_path(root, rel)
        raw = _on_disk(target)
        current = raw.decode("utf-8", errors="replace") if raw is not None else None
        if current == text:
            continue
        chunks.extend(difflib.unified_diff((current or "").splitlines(keepends=True), text.splitlines(keepends=True),
                                           fromfile=f"a/{rel}" if current is not None else "/dev/null", tofile=f"b/{rel}"))
    for rel in sorted(owned):
        if rel not in files and _on_disk(safe_path(root, rel)) is not None:
            current = safe_path(root, rel).read_text(encoding="utf-8", errors="replace")
            chunks.extend(difflib.unified_diff(current.splitlines(keepends=True), [], fromfile=f"a/{rel}", tofile="/dev/null"))
    if root.exists():
        for p in sorted(root.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(root).as_posix()
            if p.name.startswith(TEMP_PREFIX) and p.name.endswith(".tmp"):
                chunks.append(f"stray temporary file {rel} (an interrupted render): render again\n")
            elif owned_path(rel) and rel not in files and rel not in owned:
                chunks.append(f"stray file {rel}: planfile renders no such file for this spec\n")
    return "".join(c if c.endswith("\n") else c + "\n" for c in chunks)
