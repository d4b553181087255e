"""One line of progress on a terminal, rewritten in place: what every long command shows.

Nothing is shown when standard error is not a terminal (a log file, a pipe, a service's journal),
or with a command's ``-q``.
"""

from __future__ import annotations

import sys
from typing import TextIO

BAR_WIDTH = 30


class ProgressLine:
    """Shows ``text`` over the previous line's; ``end()`` moves on to a fresh line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._shown = False

    def show(self, text: str) -> None:
        self.stream.write(f"\r{text} ")
        self.stream.flush()
        self._shown = True

    def end(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def progress_line(quiet: bool = False, stream: TextIO | None = None) -> ProgressLine | None:
    """A progress line on standard error if it is a terminal and the command is not quiet."""
    stream = stream or sys.stderr
    return None if quiet or not stream.isatty() else ProgressLine(stream)


def bar(done: int, total: int) -> str:
    """``[#####.....] done/total``."""
    filled = int(BAR_WIDTH * min(done, total) / total) if total else 0
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
