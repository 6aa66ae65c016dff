"""Atomic writes for files the user keeps: a temp file in the same folder, fsync, then os.replace.

A crash at any point leaves either the old file or the new one, never half of one; the temp file left behind is
named ``.NAME.*.tmp`` so recovery can find and remove it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def _new_file_mode() -> int:
    """What ``open()`` would give a new file here (0o644 under the usual umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


NEW_FILE_MODE = _new_file_mode()  # read once: umask is process-wide and changing it is not thread-safe


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``path`` whole or not at all. A new file gets the usual permissions (the temp file's private 0o600
    would otherwise stick to reports and projects); a replaced one keeps its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows has no such bits to keep
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); Windows cannot open folders, where this is a no-op."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (models can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def leftover_temps(folder: Path) -> list[Path]:
    """Temp files an interrupted write left in ``folder``."""
    return sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())
