"""Tallies of the objects counted at the counting line: by label, and over video time.

The core says which object ids cross the line on each frame (``Tracks.crossed``,
``count.line``, the exit edge by default). ``LineCounts`` keeps, for each of
them, the frame it crossed on and its label: ``unknown`` until something labels
the object (an anomaly model, when there is one, fills ``set_label``; a label
given after the crossing moves the object to its new label's tally).

``counts_over_time`` is the seed's "bird's eye view" of the line: one bin per
second of video when the video is shorter than two minutes, per minute
otherwise, each with the objects that crossed in it (by video time of the
crossing frame, ``frame / fps``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["LABELS", "LineCounts", "bin_seconds_for"]

#: The labels counts are kept under; any other label is counted as ``unknown``.
LABELS = ("normal", "anomaly", "unknown")

#: Videos shorter than this many seconds get bins of one second, longer ones of a minute.
SHORT_VIDEO_SECONDS = 120.0


def bin_seconds_for(video_seconds: float) -> int:
    return 1 if video_seconds < SHORT_VIDEO_SECONDS else 60


def _label_key(label: str) -> str:
    return label if label in LABELS else "unknown"


class LineCounts:
    """Objects counted at the line: running totals by label, and when each crossed."""

    def __init__(self, fps: float):
        self.fps = fps if fps > 0 else 30.0
        #: id -> 0-based frame it crossed the line on
        self.crossed_frame: dict[int, int] = {}
        #: id -> label; objects without one are ``unknown``
        self.labels: dict[int, str] = {}
        self._totals = {"total": 0, **dict.fromkeys(LABELS, 0)}

    def add_crossed(self, ids: Iterable[int], frame: int) -> None:
        """Objects counted at the line on ``frame``. An id already counted is ignored."""
        for tid in ids:
            tid = int(tid)
            if tid in self.crossed_frame:
                continue
            self.crossed_frame[tid] = int(frame)
            self._totals["total"] += 1
            self._totals[_label_key(self.labels.get(tid, "unknown"))] += 1

    def set_label(self, track_id: int, label: str) -> None:
        """The object's label (from the anomaly model): moves it between tallies if it has crossed."""
        old = _label_key(self.labels.get(track_id, "unknown"))
        self.labels[track_id] = label
        if track_id in self.crossed_frame:
            self._totals[old] -= 1
            self._totals[_label_key(label)] += 1

    def running(self) -> dict[str, int]:
        """The counts the annotated video shows: total, normal, anomaly."""
        return {k: self._totals[k] for k in ("total", "normal", "anomaly")}

    def counts(self) -> dict[str, int]:
        """``{total, normal, anomaly, unknown}`` for summary.json."""
        return dict(self._totals)

    def over_time(self, frames: int) -> dict:
        """``{"bin_seconds": 1 or 60, "bins": [{"start_s", "total", "normal", "anomaly", "unknown"}, ...]}``
        covering the ``frames`` frames of video read (empty bins included)."""
        seconds = frames / self.fps
        step = bin_seconds_for(seconds)
        n = max(1, math.ceil(seconds / step - 1e-9))
        bins = [{"start_s": i * step, "total": 0, **dict.fromkeys(LABELS, 0)} for i in range(n)]
        for tid, frame in self.crossed_frame.items():
            i = min(n - 1, max(0, int(frame / self.fps // step)))
            bins[i]["total"] += 1
            bins[i][_label_key(self.labels.get(tid, "unknown"))] += 1
        return {"bin_seconds": step, "bins": bins}
