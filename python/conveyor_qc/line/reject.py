"""The reject signal: for each object judged an anomaly, when it will reach the reject gate.

The gate (an air jet, a pusher) stands downstream of the camera's view, ``reject.distance`` past
the frame's exit edge. When an object's verdict is known (after it has left the view: its crops
are judged while it passes, the verdict is theirs combined), the event says when its centre will
cross the gate's line, and the window its leading and trailing edges span. The prediction is the
core's (``_core.predict_crossing``: its measured speed along the belt, from its last box on).

Times, in every event (docs/line.md):

- ``crossing_s``, ``window_s``: seconds of video from the first frame (the source's own clock:
  frame index / fps), when the centre, then the edges, reach the line;
- ``decided_s``: when the verdict was known on that clock: the object's last frame, plus the
  wall-clock seconds the run took from reading that frame to the verdict (tracking it out of view,
  judging it). On a live source that is the real delay; a file read faster than it plays gets the
  delay it would have live;
- ``margin_s``: ``crossing_s - decided_s - latency``; ``late`` when it is negative: the gate,
  which needs ``reject.latency`` seconds, cannot act in time. A late event is sent all the same,
  marked, and counted: never dropped;
- ``crossing_at``: for a live source (camera, stream), the Unix time of the crossing, for a gate
  controller whose clock is synchronised (NTP); null for a file.

Where events go: ``rejects.jsonl`` in the run folder (always, one JSON object a line, flushed as
each is written), and any of: stdout or another JSON-lines file, a Python callback, an HTTP
webhook (``sinks.py``), an MQTT topic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from conveyor_qc import _core
from conveyor_qc.config import RejectParams
from conveyor_qc.run.pipeline import ObjectEvent

__all__ = ["RejectEvent", "RejectLine"]


@dataclass(frozen=True)
class RejectEvent:
    """One anomalous object and when it reaches the reject line (see the module docstring)."""

    track_id: int
    label: str
    score: float
    #: How its track ended: "exited" (the usual), "lost" or "stream_end" (still in view).
    end: str
    last_frame: int
    #: Its speed along the belt, px per frame and px per second (0: unknown, no crossing).
    speed_px_per_frame: float
    speed_px_per_s: float
    crossing_s: float | None
    window_s: tuple[float, float] | None
    decided_s: float
    margin_s: float | None
    late: bool
    crossing_at: float | None
    #: The gate's distance past the exit edge, full-resolution px.
    line_px: float

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.window_s is not None:
            d["window_s"] = list(self.window_s)
        for key in ("score",):
            if isinstance(d[key], float) and not math.isfinite(d[key]):
                d[key] = None
        return d


class RejectLine:
    """Makes the event of an object whose verdict has just been given.

    ``fps``: the source's frames a second; ``frame_size``: (width, height); ``direction``: a
    callable giving the belt's direction (known once the core has read it); ``live``: a camera or
    stream (its events get ``crossing_at``)."""

    def __init__(
        self,
        params: RejectParams,
        fps: float,
        frame_size: tuple[int, int],
        direction: Callable[[], str],
        live: bool,
    ):
        if not params.enabled:
            raise ValueError("no reject line: reject.distance is 0")
        self.line_px = params.distance_px()
        self.latency = params.latency
        self.fps = fps if fps > 0 else 30.0
        self.frame_size = frame_size
        self._direction = direction
        self.live = live

    def event(self, obj: ObjectEvent, last_frame_wall: float, now_wall: float, last_frame_unix: float) -> RejectEvent:
        """``last_frame_wall``/``now_wall``: a monotonic clock when the object's last frame was read
        and now; ``last_frame_unix``: the Unix time its last frame was read (for ``crossing_at``)."""
        fps = self.fps
        last_frame = int(obj.last_frame)
        last_s = last_frame / fps
        delay = max(0.0, now_wall - last_frame_wall)
        decided_s = last_s + delay
        crossing = None
        if obj.speed > 0:
            crossing = _core.predict_crossing(
                float(obj.centre_along),
                float(obj.speed),
                obj.best_box,
                self._direction(),
                self.frame_size,
                self.line_px,
            )
        # No speed, no time: the gate cannot be timed, so the event is late by definition.
        untimed = RejectEvent(
            track_id=int(obj.track_id),
            label=obj.label,
            score=float(obj.score),
            end=obj.end,
            last_frame=last_frame,
            speed_px_per_frame=0.0,
            speed_px_per_s=0.0,
            crossing_s=None,
            window_s=None,
            decided_s=round(decided_s, 4),
            margin_s=None,
            late=True,
            crossing_at=None,
            line_px=self.line_px,
        )
        if crossing is None or not crossing.known:
            return untimed
        crossing_s = last_s + crossing.centre / fps
        margin = float(crossing_s - decided_s - self.latency)
        return replace(
            untimed,
            speed_px_per_frame=round(float(obj.speed), 4),
            speed_px_per_s=round(float(obj.speed) * fps, 3),
            crossing_s=round(crossing_s, 4),
            window_s=(round(last_s + crossing.front / fps, 4), round(last_s + crossing.back / fps, 4)),
            margin_s=round(margin, 4),
            late=bool(margin < 0),
            crossing_at=round(last_frame_unix + crossing.centre / fps, 4) if self.live else None,
        )
