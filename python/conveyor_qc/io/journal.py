"""Crash-safe appends: text files that grow by whole rows, with a journal of what is committed.

A run on a live stream appends rows to ``objects.csv`` and ``tracks.txt`` as objects finish,
for days, so a crash or a power cut must cost at most what was not finished yet. Rewriting a
file atomically for every object would cost the whole file each time; instead:

- each file is created (empty, or with its header) atomically, then only ever appended to,
  each batch of rows in one ``write()`` call of whole lines, on the file's own descriptor (no
  buffer in this process: a killed process loses nothing it has written);
- after every batch, one line is appended to the journal (``.<name>.journal`` beside them):
  every file's length and the number of items so far, with a CRC32, so a torn journal line is
  recognised and ignored;
- every ``sync_seconds`` the files, then the journal, are flushed to disk (fdatasync): after a
  power cut the journal never claims bytes the disk did not keep;
- a batch that fails half-way (disk full, file size limit) is cut back off every file at once
  (ftruncate frees space, so it works on a full disk): the files end on the last commit.

The only moment a file can end in a partial line is a kill inside the ``write()`` system call
of a batch (Linux stops a write between pages on SIGKILL) or a power cut before the next flush:
:func:`recover_journal` cuts every file back to the last commit the files fully hold, so what
is read after it is whole rows only. The writer holds an exclusive ``flock`` on the journal,
which tells a live writer from a dead one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import (
    as_write_error,
    atomic_write_bytes,
    fsync_directory,
    temporary_sibling,
)

__all__ = ["AppendJournal", "JournalBusy", "JournalState", "read_journal", "recover_journal"]

_VERSION = 1


class JournalError(ConveyorQCError, ValueError):
    """A file is not a journal this release can read, or does not match the files beside it."""


class JournalBusy(ConveyorQCError, OSError):
    """Another process holds the journal: its writer is alive."""


def _record(lengths: list[int], items: int) -> bytes:
    body = " ".join(str(n) for n in lengths) + f" {items}"
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def _parse_record(line: bytes, files: int) -> tuple[list[int], int] | None:
    """A commit line without its newline, or None when it is torn or damaged."""
    try:
        text = line.decode("ascii")
        body, crc = text.rsplit(" ", 1)
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(body.encode()):
            return None
        numbers = [int(v) for v in body.split(" ")]
    except (UnicodeDecodeError, ValueError):
        return None
    if len(numbers) != files + 1 or min(numbers) < 0:
        return None
    return numbers[:-1], numbers[-1]


@dataclass
class JournalState:
    """What a journal holds: its header (``files`` and the writer's ``meta``) and the commits
    found whole, oldest first (each: the files' lengths, and the items committed)."""

    path: Path
    files: list[str]
    meta: dict
    commits: list[tuple[list[int], int]]


def read_journal(path: str | Path) -> JournalState:
    """Parse a journal; torn or damaged commit lines are skipped. Raises JournalError when the
    header itself is not a journal's."""
    path = Path(path)
    data = path.read_bytes()
    head, _, rest = data.partition(b"\n")
    try:
        header = json.loads(head)
        files = [str(f) for f in header["files"]]
        if header.get("journal") != _VERSION or not files:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise JournalError(f"{path} is not a conveyor-qc journal (or of another version)") from None
    commits = []
    for line in rest.split(b"\n")[:-1]:  # the piece after the last newline is torn (or empty)
        rec = _parse_record(line, len(files))
        if rec is not None:
            commits.append(rec)
    return JournalState(path, files, dict(header.get("meta") or {}), commits)


def _lock(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise JournalBusy(f"another process is writing {path.parent} (it holds {path.name})") from None


class AppendJournal:
    """Files in one folder that grow by whole rows, committed together (module docstring).

    ``files`` maps each file name to its first bytes (a CSV header, or b""); each is created
    anew, atomically. ``meta`` (JSON) is kept in the journal's header for recovery."""

    def __init__(
        self,
        folder: str | Path,
        journal_name: str,
        files: dict[str, bytes],
        meta: dict | None = None,
        sync_seconds: float = 1.0,
    ):
        self.folder = Path(folder)
        self.path = self.folder / journal_name
        self.names = list(files)
        self.sync_seconds = sync_seconds
        self.items = 0
        self._fds: list[int] = []
        self._journal_fd = -1
        self._last_sync = time.monotonic()
        self._unsynced = False
        # The journal is taken (and locked) before the files are replaced: a second writer
        # into the same folder fails here, before it has touched anything.
        tmp = temporary_sibling(self.path)
        try:
            self._journal_fd = os.open(tmp, os.O_WRONLY | os.O_APPEND)
            _lock(self._journal_fd, self.path)
            if self.path.exists():
                with open(self.path, "rb") as fh:  # a live writer holds it
                    _lock(fh.fileno(), self.path)
            for name, first in files.items():
                atomic_write_bytes(self.folder / name, first)
            self.lengths = [len(first) for first in files.values()]
            header = json.dumps(
                {"journal": _VERSION, "files": self.names, "meta": meta or {}}, separators=(",", ":"), default=str
            )
            self._write_all(self._journal_fd, header.encode() + b"\n" + _record(self.lengths, 0))
            os.fsync(self._journal_fd)
            os.replace(tmp, self.path)
            fsync_directory(self.folder)
            for name in self.names:
                self._fds.append(os.open(self.folder / name, os.O_WRONLY | os.O_APPEND))
        except BaseException:
            self._close_fds()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def append(self, chunks: list[bytes], items: int = 0) -> None:
        """Append ``chunks[i]`` (whole lines) to file ``i`` and commit them with ``items`` more
        items. On an error every file is cut back to the last commit and a WriteError naming
        the file is raised."""
        where = self.folder / self.names[0]
        try:
            for i, data in enumerate(chunks):
                if data:
                    where = self.folder / self.names[i]
                    self._write_all(self._fds[i], data)
            lengths = [n + len(d) for n, d in zip(self.lengths, chunks)]
            where = self.path
            self._write_all(self._journal_fd, _record(lengths, self.items + items))
        except OSError as exc:
            self._cut_back()
            raise as_write_error(exc, where) from None
        self.lengths = lengths
        self.items += items
        self._unsynced = True
        self.sync_if_due()

    def sync_due(self) -> bool:
        """Rows were committed and not flushed for ``sync_seconds``."""
        return self._unsynced and time.monotonic() - self._last_sync >= self.sync_seconds

    def sync_if_due(self) -> None:
        if self.sync_due():
            self.sync()

    def _cut_back(self) -> None:
        """Files back to the committed lengths; the journal is left as is (a torn last line of
        it is ignored when read)."""
        for fd, n in zip(self._fds, self.lengths):
            with contextlib.suppress(OSError):
                os.ftruncate(fd, n)

    def sync(self) -> None:
        """Files first, then the journal: a commit on disk implies its rows are."""
        try:
            for fd in self._fds:
                os.fdatasync(fd)
            os.fdatasync(self._journal_fd)
        except OSError as exc:
            raise as_write_error(exc, self.folder) from None
        self._last_sync = time.monotonic()
        self._unsynced = False

    def close(self) -> None:
        """Flush and close; the journal stays (and stays valid) until :meth:`remove`."""
        try:
            if self._journal_fd >= 0:
                self.sync()
        finally:
            self._close_fds()

    def close_quietly(self) -> None:
        """Close after an error: flush what can be flushed, ignore what cannot."""
        with contextlib.suppress(OSError):
            self.close()

    def _close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        if self._journal_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._journal_fd)  # releases the lock
            self._journal_fd = -1

    def remove(self) -> None:
        self._close_fds()
        self.path.unlink(missing_ok=True)
        fsync_directory(self.folder)


def recover_journal(path: str | Path) -> tuple[JournalState, list[int], int]:
    """Cut every file of a dead writer's journal back to its last commit that the files fully
    hold (each at least that long, and ending in a newline there). Returns the journal, the
    lengths kept and the items they hold. Raises JournalBusy if the writer is alive."""
    path = Path(path)
    with open(path, "rb") as fh:
        _lock(fh.fileno(), path)
        state = read_journal(path)
        folder = path.parent
        sizes = []
        for name in state.files:
            try:
                sizes.append((folder / name).stat().st_size)
            except FileNotFoundError:
                sizes.append(-1)

        def held(lengths: list[int]) -> bool:
            for name, n, size in zip(state.files, lengths, sizes):
                if size < n:
                    return False
                if n:
                    with open(folder / name, "rb") as f:
                        f.seek(n - 1)
                        if f.read(1) != b"\n":
                            return False
            return True

        for lengths, items in reversed(state.commits):  # noqa: B007  the commit found is used below
            if held(lengths):
                break
        else:  # never cut a file to nothing on a guess
            raise JournalError(
                f"{path}: no commit matches the files beside it (sizes {sizes}): they were changed after the run"
            )
        for name, n, size in zip(state.files, lengths, sizes):
            if size > n:
                with open(folder / name, "r+b") as f:
                    f.truncate(n)
                    os.fsync(f.fileno())
    return state, lengths, items
