"""Live metrics of a run for Prometheus (``run --metrics-port``), with prometheus_client.

Each run has a registry of its own (two runs in one process never mix their series) served on
``host:port`` at ``/metrics`` while the run goes on. Series (docs/line.md lists them with example
Grafana queries):

- ``conveyor_qc_frames_total``: frames processed;
- ``conveyor_qc_fps``: frames processed a second over the last ~2 seconds;
- ``conveyor_qc_frame_seconds``: histogram of each frame's time on the loop (core, crops, drawing);
- ``conveyor_qc_lag_seconds``: how far the run is behind the source's clock: wall-clock seconds
  since the first frame, less the video seconds of the frame just processed (frame / fps). On a
  camera or stream it grows when the run falls behind; a file read faster than it plays is negative;
- ``conveyor_qc_counted_objects{label}``: objects counted at the counting line, by label (normal,
  anomaly, unknown: an object counted before its verdict moves from unknown to its label);
- ``conveyor_qc_objects_total{label}``: objects finished with their final verdict (monotonic: use
  ``rate()``); ``label="anomaly"`` are the anomalies;
- ``conveyor_qc_reconnects_total``, ``conveyor_qc_source_up`` (0 while a live source is lost);
- ``conveyor_qc_judge_queue``: batches of crops and objects waiting for the anomaly model;
- ``conveyor_qc_reject_events_total{late}``: reject events sent, on time or late;
- ``conveyor_qc_run_info``: version, source and model of the run.
"""

from __future__ import annotations

import time
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from conveyor_qc.errors import ConveyorQCError

__all__ = ["MetricsError", "RunMetrics"]

#: Seconds over which conveyor_qc_fps is measured.
FPS_WINDOW = 2.0
#: Frame times (seconds) the histogram's buckets end at: 60 fps leaves 16.7 ms a frame.
FRAME_BUCKETS = (0.002, 0.005, 0.01, 0.0167, 0.025, 0.033, 0.05, 0.1, 0.25, 1.0)
LABELS = ("normal", "anomaly", "unknown")


class MetricsError(ConveyorQCError, OSError):
    """The metrics endpoint could not be served (port taken, address not this machine's)."""


class RunMetrics:
    """The series of one run, and (``serve``) their HTTP endpoint."""

    def __init__(self, fps: float):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames = Counter("conveyor_qc_frames", "Frames processed", registry=r)
        self.fps = Gauge("conveyor_qc_fps", f"Frames processed a second, over the last {FPS_WINDOW:g} s", registry=r)
        self.frame_seconds = Histogram(
            "conveyor_qc_frame_seconds", "Seconds of the loop over frames per frame", buckets=FRAME_BUCKETS, registry=r
        )
        self.lag = Gauge(
            "conveyor_qc_lag_seconds",
            "Wall-clock seconds since the first frame less the video seconds of the last frame processed",
            registry=r,
        )
        self.counted = Gauge(
            "conveyor_qc_counted_objects", "Objects counted at the line, by label", ["label"], registry=r
        )
        self.objects = Counter("conveyor_qc_objects", "Objects finished, by final label", ["label"], registry=r)
        self.reconnects = Counter("conveyor_qc_reconnects", "Reconnections of a live source", registry=r)
        self.source_up = Gauge("conveyor_qc_source_up", "1 while the source gives frames, 0 while lost", registry=r)
        self.judge_queue = Gauge("conveyor_qc_judge_queue", "Batches waiting for the anomaly model", registry=r)
        self.reject_events = Counter("conveyor_qc_reject_events", "Reject events sent", ["late"], registry=r)
        self.info = Info("conveyor_qc_run", "The run: version, source, model", registry=r)
        for label in LABELS:  # every series exists from the start, at 0
            self.counted.labels(label).set(0)
            self.objects.labels(label)
        for late in ("false", "true"):
            self.reject_events.labels(late)
        self.source_up.set(1)
        self._video_fps = fps if fps > 0 else 30.0
        self._start: float | None = None
        self._window_start = 0.0
        self._window_frames = 0
        self._server: WSGIServer | None = None

    # --- the endpoint ------------------------------------------------------------------------

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on host:port (0: a free port); returns the port."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- updates from the run ----------------------------------------------------------------

    def frame(self, frame_index: int, seconds: float, now: float, counts: dict[str, int], judge_queue: int) -> None:
        """One frame processed, which took ``seconds`` on the loop; ``now``: time.perf_counter()."""
        if self._start is None:
            self._start = self._window_start = now - seconds
        self.frames.inc()
        self.frame_seconds.observe(seconds)
        self.lag.set((now - self._start) - (frame_index + 1) / self._video_fps)
        self._window_frames += 1
        if now - self._window_start >= FPS_WINDOW:
            self.fps.set(self._window_frames / (now - self._window_start))
            self._window_start, self._window_frames = now, 0
        for label in LABELS:
            self.counted.labels(label).set(counts.get(label, 0))
        self.judge_queue.set(judge_queue)

    def finished(self, label: str) -> None:
        self.objects.labels(label if label in LABELS else "unknown").inc()

    def reject(self, late: bool) -> None:
        self.reject_events.labels("true" if late else "false").inc()

    def source_lost(self) -> None:
        self.source_up.set(0)

    def source_back(self) -> None:
        self.source_up.set(1)
        self.reconnects.inc()

    @staticmethod
    def now() -> float:
        return time.perf_counter()
