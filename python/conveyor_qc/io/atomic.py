"""Atomic file output: a kill at any moment leaves the old file or the new one.

Everything is written to a temporary file in the destination's folder (same
file system), flushed to disk, then renamed over the destination, and the
folder itself is flushed so that the rename survives a power cut too. Folders
built as a whole (a dataset, a run's crops) are swapped into place in one
system call where the kernel can (``replace_directory``).

Write errors come out as :class:`WriteError` (an ``OSError``) whose message
names the file and the problem in words ("no space left on the device").
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from conveyor_qc.errors import ConveyorQCError

__all__ = [
    "WriteError",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable_directory",
    "describe_write_error",
    "fsync_directory",
    "fsync_path",
    "replace_directory",
    "sync_filesystem",
    "temporary_sibling",
]

#: How a write error is told to a person (errno -> words).
_WRITE_PROBLEMS = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (the file size limit, ulimit -f, was reached)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.EIO: "input/output error (failing disk?)",
    errno.ENOENT: "no such file or folder",
}


class WriteError(ConveyorQCError, OSError):
    """A file could not be written. ``str()`` names the path and the problem."""

    def __init__(self, message: str, errno_: int | None = None, path: str | Path | None = None):
        super().__init__(errno_, message)
        self.message = message
        self.errno = errno_
        self.filename = str(path) if path is not None else None

    def __str__(self) -> str:
        return self.message


def describe_write_error(exc: OSError, path: str | Path | None = None) -> str:
    """``cannot write PATH: PROBLEM`` in words, for any OSError raised while writing."""
    where = path if path is not None else (exc.filename or "?")
    problem = _WRITE_PROBLEMS.get(exc.errno or 0) or exc.strerror or str(exc)
    return f"cannot write {where}: {problem}"


def as_write_error(exc: OSError, path: str | Path | None = None, suffix: str = "") -> WriteError:
    if isinstance(exc, WriteError):
        return exc
    return WriteError(describe_write_error(exc, path) + suffix, exc.errno, path if path is not None else exc.filename)


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh, unused path next to ``path`` (hidden, ``.tmp`` inside its name).

    The file is created with the permissions a plain ``open(path, "w")`` would give
    (mkstemp's 0600 would make every output readable by its owner only), or those of
    the file it will replace."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = _FILE_MODE
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Path(name)


def fsync_directory(path: str | Path) -> None:
    """Flush a folder's entries (a rename or a new file inside it) to disk; best effort
    where the file system cannot (some refuse fsync on folders)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_path(path: str | Path) -> None:
    """Flush one file written by someone else (an encoder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling for writing; rename it to ``path`` on success only.
    An OSError while writing is raised as a :class:`WriteError` naming ``path``."""
    path = Path(path)
    try:
        tmp = temporary_sibling(path)
    except OSError as exc:
        raise as_write_error(exc, path) from None
    binary = "b" in mode
    try:
        try:
            with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else "") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise as_write_error(exc, path) from None
        fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call (Linux renameat2 RENAME_EXCHANGE). False where
    the kernel, C library or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_directory(new: str | Path, dest: str | Path) -> None:
    """Put the folder ``new`` in ``dest``'s place and remove the old ``dest``.

    Where Linux can swap the two in one call, ``dest`` is at every moment either the old
    folder or the new one; elsewhere the old one is first renamed aside, leaving a short
    moment with no ``dest`` (the old one is then at ``.<name>.old``). The caller flushes
    ``new``'s files first (sync_filesystem)."""
    new, dest = Path(new), Path(dest)
    if dest.exists():
        if _exchange(new, dest):
            fsync_directory(dest.parent)
            shutil.rmtree(new, ignore_errors=True)  # now the old folder
            return
        old = dest.parent / f".{dest.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        try:
            new.rename(dest)
        except BaseException:
            old.rename(dest)
            raise
        fsync_directory(dest.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(dest)
        fsync_directory(dest.parent)


def sync_filesystem(path: str | Path) -> None:
    """Flush everything written to the file system holding ``path`` to disk, in one call
    (Linux syncfs; os.sync elsewhere): for a folder of many files written plainly, then
    renamed into place as a whole, this replaces one fsync per file."""
    try:
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


#: Bytes written (and flushed) by the start-up probe: enough for a full disk to refuse it,
#: small enough for any disk with room for a run.
PROBE_BYTES = 16 * 1024


def check_writable_directory(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and prove that files can be written into it, before any
    work: it is a folder, writable, on a file system that is not read-only and not full.
    Raises :class:`WriteError` naming the folder and the problem; the folders it created for
    ``path`` are then removed again (a full disk still makes folders: they cost no block), never
    one that existed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(f"{what} {path} exists and is not a folder", errno.ENOTDIR, path)
    created = []  # the folders missing now, the deepest first: made here, removed on a failure
    missing = path
    while not missing.exists() and not missing.is_symlink() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise WriteError(
            f"cannot create {what} {path}: {_WRITE_PROBLEMS.get(exc.errno or 0) or exc.strerror}", exc.errno, path
        ) from None
    probe = path / f".write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = b"\0" * PROBE_BYTES
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        _remove_empty(created)
        raise WriteError(
            f"cannot write to {what} {path}: {_WRITE_PROBLEMS.get(exc.errno or 0) or exc.strerror}", exc.errno, path
        ) from None
    with contextlib.suppress(OSError):
        probe.unlink()
    return path


def _remove_empty(folders: list[Path]) -> None:
    """Remove these folders, the deepest first, each only if empty (``rmdir``); stop at the first
    that cannot be (something was put in it meanwhile)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
