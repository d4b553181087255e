"""What both reports share: the templates and style sheet shipped beside this module, escaping,
inlined pictures, numbers and dates in words, and the atomic write.

Every value that comes from a run (file names, settings, error messages) goes through
:func:`esc` before it reaches the page; the templates are :class:`string.Template` files whose
placeholders receive HTML built here, never raw text.
"""

from __future__ import annotations

import html
import os
import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

from conveyor_qc.crops import jpeg_data_uri
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_text
from conveyor_qc.run.outputs import REPORT_NAME as OUTPUTS_REPORT_NAME

__all__ = [
    "REPORT_NAME",
    "ReportError",
    "clock",
    "esc",
    "jpeg_data_uri",
    "local_time",
    "prose",
    "relative_link",
    "render",
    "seconds_text",
    "write_page",
]

#: The report's file name in a run folder and in a batch folder (one name, with the run's other files).
REPORT_NAME = OUTPUTS_REPORT_NAME


class ReportError(ConveyorQCError, ValueError):
    """A report cannot be made (no such folder, not a run or batch folder, a damaged summary.json);
    the message says which."""


def esc(value: object) -> str:
    """Text for HTML: ``&``, ``<``, ``>`` and both quotes escaped (safe in attributes too)."""
    return html.escape(str(value), quote=True)


def prose(text: str) -> str:
    """Text for HTML, with its `backquoted` parts (commands, file names) as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def render(template: str, **values: str) -> str:
    """The shipped template ``template`` with every ``$name`` replaced by ``values[name]`` (HTML:
    escape text first). A placeholder without a value is a KeyError: a template and its caller
    cannot drift apart silently. The style sheet (report.css) is ``$css``."""
    folder = resources.files("conveyor_qc.report")
    css = folder.joinpath("report.css").read_text(encoding="utf-8")
    return Template(folder.joinpath(template).read_text(encoding="utf-8")).substitute(css=css, **values)


def relative_link(target: Path, page: Path) -> str:
    """The URL of ``target`` from a page at ``page``: relative (the folder can be moved or served
    as it is), each path segment percent-encoded."""
    rel = os.path.relpath(target.absolute(), page.absolute().parent)
    return "/".join(quote(part) for part in Path(rel).parts)


def local_time(when: float | str | None) -> str:
    """A moment as a person reads it: this machine's local time with its zone
    (``2026-12-07 14:03 CET``). Takes a POSIX time or an ISO 8601 text (``...Z``: UTC)."""
    if when is None or when == "":
        return "unknown"
    try:
        if isinstance(when, str):
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                return moment.strftime("%Y-%m-%d %H:%M")
        else:
            moment = datetime.fromtimestamp(float(when)).astimezone()
        return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z")
    except (ValueError, OverflowError, OSError):
        return str(when)


def seconds_text(seconds: float | None) -> str:
    """``42.0 s``, ``12 min 5 s``, ``3 h 20 min``."""
    if seconds is None:
        return "unknown"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def clock(seconds: float) -> str:
    """A moment of the video: ``0:07``, ``12:05``, ``3:20:05``."""
    s = max(0, int(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def write_page(path: Path, text: str) -> Path:
    """The page written atomically (a reader sees the old report or the new one, never half)."""
    atomic_write_text(path, text)
    return path
