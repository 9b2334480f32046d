"""Writing rendered files: inside --out only, atomically, deterministically, never over files planfile did
not write (unless forced), and drift detection for `render --check`.

A manifest `.planfile-render.json` in the output folder lists what planfile wrote (path -> sha256); files
it lists but the new render no longer produces are removed, files it does not list are never touched.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MANIFEST = ".planfile-render.json"


class OutError(Exception):
    pass


@dataclass
class WritePlan:
    write: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # exist, not written by planfile


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        return dict(data.get("files", {}))
    except (ValueError, AttributeError):
        raise OutError(f"{m} is not a planfile render manifest; remove it or choose another --out") from None


def plan(root: Path, files: dict[str, str], force: bool = False) -> WritePlan:
    owned = read_manifest(root) if root.exists() else {}
    wp = WritePlan()
    for rel, text in files.items():
        target = safe_path(root, rel)
        if target.is_file():
            current = target.read_bytes()
            if current == text.encode("utf-8"):
                wp.unchanged.append(rel)
                continue
            if rel not in owned and not force:
                wp.conflicts.append(rel)
                continue
        elif target.exists():
            wp.conflicts.append(rel)
            continue
        wp.write.append(rel)
    for rel in sorted(owned):
        if rel not in files:
            target = safe_path(root, rel)
            if target.is_file():
                wp.remove.append(rel)
    return wp


def _atomic_write(target: Path, data: bytes, mode: int = 0o644) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".planfile-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(target: Path, text: str) -> None:
    """Write a whole file or nothing (a temporary file in the same folder, then rename)."""
    _atomic_write(target, text.encode("utf-8"))


def write(root: Path, files: dict[str, str], spec: str, force: bool = False) -> WritePlan:
    wp = plan(root, files, force)
    if wp.conflicts:
        raise OutError("refusing to overwrite files planfile did not write (use --force): " + ", ".join(wp.conflicts))
    root.mkdir(parents=True, exist_ok=True)
    for rel in wp.write:
        _atomic_write(safe_path(root, rel), files[rel].encode("utf-8"), 0o755 if rel.endswith(".sh") else 0o644)
    for rel in wp.remove:
        safe_path(root, rel).unlink()
    manifest = {"generator": "planfile", "spec": spec, "files": {rel: _sha(files[rel]) for rel in sorted(files)}}
    _atomic_write(root / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return wp


def drift(root: Path, files: dict[str, str]) -> str:
    """A unified diff between what is on disk and what the spec renders now ('' when identical)."""
    chunks = []
    owned = read_manifest(root) if root.exists() else {}
    for rel, text in files.items():
        target = safe_path(root, rel)
        current = target.read_text(encoding="utf-8", errors="replace") if target.is_file() else None
        if current == text:
            continue
        chunks.extend(difflib.unified_diff((current or "").splitlines(keepends=True), text.splitlines(keepends=True),
                                           fromfile=f"a/{rel}" if current is not None else "/dev/null", tofile=f"b/{rel}"))
    for rel in sorted(owned):
        if rel not in files and safe_path(root, rel).is_file():
            current = safe_path(root, rel).read_text(encoding="utf-8", errors="replace")
            chunks.extend(difflib.unified_diff(current.splitlines(keepends=True), [], fromfile=f"a/{rel}", tofile="/dev/null"))
    return "".join(c if c.endswith("\n") else c + "\n" for c in chunks)
