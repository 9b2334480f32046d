"""One bounded reader for every file a spec (or a command) names: `calibration:`, `model.hf_config`,
results files, HF configs for `catalog import-hf`.

A pull request chooses these paths, so they are hostile: only regular files are read (a symlink to
/dev/zero, a FIFO, a directory or a socket is refused before any byte is read — the file is opened
non-blocking and checked with fstat, so a FIFO cannot hang the check), at most `max_bytes`, and every
read is recorded (path -> SHA-256, or None when it failed) so the result cache can tell when a named
file changed.
"""

from __future__ import annotations

import hashlib
import os
import stat

_READS: dict[str, str | None] = {}


class SideFileError(Exception):
    pass


def reads() -> dict[str, str | None]:
    """Every side file read (or attempted) in this process: absolute path -> SHA-256 or None."""
    return dict(_READS)


def read_bytes(path, max_bytes: int, what: str = "file") -> bytes:
    p = os.path.abspath(os.fspath(path))
    _READS[p] = None
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise SideFileError("file not found") from None
    except IsADirectoryError:
        raise SideFileError("is a directory, not a file") from None
    except PermissionError:
        raise SideFileError("permission denied") from None
    except OSError as exc:
        raise SideFileError(f"cannot open it ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise SideFileError(f"is {kind}; a {what} must be a regular file")
        if st.st_size > max_bytes:
            raise SideFileError(f"is {st.st_size / 1e6:.1f} MB; a {what} may be at most {max_bytes / 1e6:g} MB")
        chunks, n = [], 0
        while True:
            try:
                b = os.read(fd, min(1 << 20, max_bytes + 1 - n))
            except BlockingIOError:  # pragma: no cover - regular files never block
                break
            if not b:
                break
            chunks.append(b)
            n += len(b)
            if n > max_bytes:
                raise SideFileError(f"grows beyond {max_bytes / 1e6:g} MB while being read; a {what} may be at most that")
        data = b"".join(chunks)
    except OSError as exc:
        raise SideFileError(f"cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    _READS[p] = hashlib.sha256(data).hexdigest()
    return data


def read_text(path, max_bytes: int, what: str = "file") -> str:
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SideFileError(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
