"""Atomic file output: a kill at any moment leaves the old file or the new one.

Everything is written to a temporary file in the destination's folder (same
file system), flushed to disk, then renamed over the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_open", "temporary_sibling", "sync_filesystem"]


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh, unused path next to ``path`` (hidden, ``.tmp`` inside its name)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling for writing; rename it to ``path`` on success only."""
    path = Path(path)
    tmp = temporary_sibling(path)
    binary = "b" in mode
    try:
        with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else "") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sync_filesystem(path: str | Path) -> None:
    """Flush everything written to the file system holding ``path`` to disk, in one call
    (Linux syncfs; os.sync elsewhere): for a folder of many files written plainly, then
    renamed into place as a whole, this replaces one fsync per file."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()
