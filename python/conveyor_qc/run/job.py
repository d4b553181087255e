"""The ``run`` job: a video in, tracks, objects, crops, annotated video and summary out."""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.anomaly.model import load_model
from conveyor_qc.anomaly.patches import one_blas_thread
from conveyor_qc.config import Config, OutputParams
from conveyor_qc.line.metrics import RunMetrics
from conveyor_qc.line.reject import RejectLine
from conveyor_qc.line.sinks import JsonLinesSink, RejectTargets, open_sinks
from conveyor_qc.run.counts import LineCounts
from conveyor_qc.run.earlier_labels import EarlierLabels
from conveyor_qc.run.judging import Judge
from conveyor_qc.run.mask_watch import MaskWatch
from conveyor_qc.run.outputs import (
    REJECTS_NAME,
    RunWriter,
    check_output_dir,
    count_line_segment,
    draw_tracks,
)
from conveyor_qc.run.pipeline import FrameUpdate
from conveyor_qc.run.provenance import model_identity, source_identity
from conveyor_qc.run.segments import SegmentedPipeline
from conveyor_qc.run.stopping import terminated, whole_step
from conveyor_qc.run.video import (
    Reconnected,
    Reconnecting,
    ReconnectPolicy,
    SourceLost,
    VideoReader,
    check_frame_size,
)
from conveyor_qc.version import __version__

#: A live source back within this many seconds keeps its open tracks (run --max-gap; docs/streams.md):
#: the tracker finds an object again within track.max_distance (60 px) of where it predicts it, and a
#: belt at 8 px a frame and 30 fps (the synthetic presets) moves 60 px in a quarter of a second.
MAX_GAP_SECONDS = 0.25
#: Reading times kept for the last this many frames (reject events' delays): far more than an
#: object waits for its verdict (the judge is at most judging.MAX_BEHIND batches behind).
FRAME_TIMES = 8192
#: A live source lost for longer than this many seconds ends the run (run --reconnect-timeout).
RECONNECT_TIMEOUT_SECONDS = 60.0

__all__ = ["Progress", "RunResult", "judged", "run_video"]

#: An anomaly model judges an object from at most OBJECT_CROPS crops spread over its path: its
#: first crop while wholly in view, then the periodic crops (output.crop_spacing of the view apart)
#: nearest to every JUDGE_TRAVEL of the view after it: 0, 0.3, 0.6 by default. A crop costs ~5 ms
#: of CPU; judging every crop (~1.5 a frame on the cookies demo) made the model most of a run's
#: time, and was no more accurate than these three views (docs/anomaly.md, "An object's verdict
#: from several crops").
OBJECT_CROPS = 3
JUDGE_TRAVEL = 0.3


def judge_every(crop_spacing: float) -> int:
    """Every how many periodic crops one is judged, for crops ``crop_spacing`` of the view apart."""
    return max(1, round(JUDGE_TRAVEL / crop_spacing))


_libraries_lock = threading.Lock()
_libraries_runs = 0
_opencv_threads = 0
_blas_limit: Any = None


@contextmanager
def libraries_single_threaded() -> Iterator[None]:
    """OpenCV's own thread pool (cv2.setNumThreads) and BLAS's (OpenBLAS, through threadpoolctl)
    set to one thread while runs are going on, and put back as they were when the last one ends.

    A run is already parallel by threads of its own (decoding, the core, the video's encoder, the
    judge, writing crops), which keep the cores busy. OpenCV's pool woke its workers for every
    letterboxed crop, and they spun waiting for more work: 3.5 % of a run's CPU on 2 cores, and
    10 % fewer frames a second. OpenBLAS's did the same for the model's products that the patch
    bank's own limit does not hold (issue 22: its servers' threads took 2 % of the CPU at 1080p;
    with one thread the product made 2-5 % more frames a second). A limit set here holds on every
    thread of the process, the judge's too.
    """
    global _libraries_runs, _opencv_threads, _blas_limit  # noqa: PLW0603  one count for the whole process
    with _libraries_lock:
        if _libraries_runs == 0:
            _opencv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            _blas_limit = one_blas_thread()
        _libraries_runs += 1
    try:
        yield
    finally:
        with _libraries_lock:
            _libraries_runs -= 1
            if _libraries_runs == 0:
                cv2.setNumThreads(_opencv_threads)
                _blas_limit.restore_original_limits()
                _blas_limit = None


#: progress(frames_done, frames_total_or_0, objects_counted, fps)
Progress = Callable[[int, int, int, float], None]


def video_every(fps: float, max_fps: float) -> int:
    """Every how many frames of the source one goes to the annotated video (output.video_max_fps):
    the least k with fps / k <= max_fps (a rate a hair over, 30.00001 for 30, rounds down)."""
    if not fps or fps <= max_fps * (1 + 1e-6):
        return 1
    return max(1, math.ceil(fps / max_fps - 1e-6))


def video_scale(frame_size: tuple[int, int], scale: float, max_pixels: int) -> float:
    """The annotated video's size against the input's: output.video_scale, or less where that
    would give more than output.video_max_pixels pixels (0: no cap)."""
    w, h = frame_size
    if max_pixels > 0 and w * h * scale * scale > max_pixels:
        return math.sqrt(max_pixels / (w * h))
    return scale


@dataclass
class RunResult:
    summary: dict
    #: True when the input ended before the frames its header announced (truncated file).
    ended_early: bool
    #: True when stopped by Ctrl-C (outputs hold everything seen until then).
    interrupted: bool
    #: Why the input ended before it should (VideoReader.stop_reason: a truncated file, a
    #: stream lost for longer than reconnect_timeout or back at another size); None if it did not.
    stop_reason: str | None = None


def run_video(
    source: str | int,
    out_dir: str | Path,
    config: Config | None = None,
    *,
    video: bool | None = None,
    crops: bool | None = None,
    max_frames: int | None = None,
    progress: Progress | None = None,
    model=None,
    duration: float | None = None,
    reconnect_timeout: float = RECONNECT_TIMEOUT_SECONDS,
    max_gap: float = MAX_GAP_SECONDS,
    stream_status: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    on_reject: Callable[[dict], object] | None = None,
    reject_to: RejectTargets | None = None,
    realtime: bool = False,
) -> RunResult:
    """Run the pipeline over ``source`` and write its outputs into ``out_dir``.

    The source is opened (and its first frame decoded) before anything is
    written, so a missing or unreadable video leaves no output behind.
    Ctrl-C stops reading and still writes complete files for what was seen.
    ``model`` (a folder or an :class:`~conveyor_qc.model.AnomalyModel`) labels each
    finished object from its crops taken while wholly in view (``combine_verdicts``).
    ``duration`` stops after that many seconds of wall-clock time, ``max_frames`` after that
    many frames. A live source (camera, stream URL) that drops is reconnected for up to
    ``reconnect_timeout`` seconds; back within ``max_gap`` seconds its open tracks go on,
    after a longer gap they end first (docs/streams.md). ``stream_status(text)`` is told of
    every loss and reconnection. ``warn(text)`` is told at once when the scene defeats the
    mask (no clear belt, frames that change while nothing is found: mask_watch.py); by
    default it goes to stderr. Every warning is also in summary.json's ``mask`` section.

    On the line (docs/line.md): ``metrics_port`` serves Prometheus metrics on
    ``metrics_host:metrics_port`` while the run goes on (0: a free port, in summary.json's
    ``metrics``). With a reject line (``config.reject.distance``), every object judged an anomaly
    gives an event, written to ``rejects.jsonl`` in the run folder, passed to ``on_reject(event)``
    (on the run's thread) and sent where ``reject_to`` says (stdout or a file, a webhook, MQTT).
    ``realtime`` reads a file no faster than its frame rate, as a camera would give it.
    """
    config = config if config is not None else Config()
    config.validate()
    # What the results are made from, as the run starts (summary.json: "input", "model").
    identity = {"input": source_identity(source), "model": model_identity(model)}
    write_video = config.output.video if video is None else video
    write_crops = config.output.crops if crops is None else crops
    # Everything opened is closed in the reverse order, whatever happens: the judge, the
    # reader, then the model (if loaded here); the writer finishes what it has as a recovered
    # run when the run fails or is killed (docs/outputs.md).
    with ExitStack() as stack:
        if model is not None and not hasattr(model, "predict"):
            model = load_model(model)  # a damaged model fails before anything is written
            stack.callback(model.close)
        reader = VideoReader(source, reconnect=ReconnectPolicy(give_up_after=reconnect_timeout))
        stack.callback(reader.close)
        check_frame_size(reader.info.width, reader.info.height, config.track.downscale, video=write_video)
        run = _Run(config, reader, model, write_crops=write_crops, warn=warn or _warn_on_stderr)
        if run.judge is not None:
            stack.callback(run.judge.close)
        # A broker that does not answer, a port already taken: told before anything is written.
        if config.reject.enabled:
            run.reject_sinks = open_sinks(reject_to or RejectTargets(), on_reject, warn or _warn_on_stderr)
            stack.callback(run.close_reject)
        if metrics_port is not None:
            run.metrics = RunMetrics(reader.info.fps)
            run.metrics.info.info({"version": __version__, "source": str(source), "model": str(identity["model"])})
            run.metrics_port = run.metrics.serve(metrics_port, metrics_host)
            stack.callback(run.metrics.close)
        # An output folder that cannot be written (not a folder, read-only, full) is told
        # before any frame is processed; only after the model and the video have opened
        # (which write nothing), so that a bad model or video leaves no folder behind.
        check_output_dir(out_dir)
        earlier_labels = EarlierLabels.find(out_dir)
        run.open_writer(out_dir, source, write_video=write_video, write_crops=write_crops)
        stack.push(run.abort_on_error)
        if config.reject.enabled:
            run.open_reject(Path(out_dir), live=realtime or reader.info.kind in ("camera", "stream"))
        with libraries_single_threaded():
            interrupted = run.read(
                progress,
                max_frames=max_frames,
                duration=duration,
                max_gap=max_gap,
                reconnect_timeout=reconnect_timeout,
                stream_status=stream_status or (lambda _text: None),
                write_video=write_video,
                realtime=realtime,
            )
        summary = run.finish(source, identity, interrupted)
        if progress is not None:
            progress(run.frames, reader.info.frame_count, run.writer.object_count, summary["fps"])
        run.writer.close(summary)  # adds crops_written once the crop writer is done
        try:  # report.html (docs/report.md), with the loaded model's heat maps: it never fails the run
            from conveyor_qc.report import write_run_report

            write_run_report(out_dir, model)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001  the run's own files are all written by now
            (warn or _warn_on_stderr)(f"report.html not written: {str(exc) or type(exc).__name__}")
        if earlier_labels is not None:
            earlier_labels.settle(warn or _warn_on_stderr)
    return RunResult(
        summary=summary, ended_early=reader.ended_early, interrupted=interrupted, stop_reason=reader.stop_reason
    )


def judged(summary: dict) -> bool:
    """Whether an anomaly model judged the run's objects: summary.json's ``model`` is null without
    one. A summary recovered from a killed run's journal has no ``model``: then, unless every
    object is ``unknown``."""
    if "model" in summary:
        return summary["model"] is not None
    return not (summary.get("objects") and summary.get("unknown") == summary["objects"])


class _Run:
    """One run's moving parts and the steps of its loop over frames (run_video opens and closes them)."""

    def __init__(self, config: Config, reader: VideoReader, model, *, write_crops: bool, warn: Callable[[str], None]):
        self.config = config
        self.reader = reader
        self.info = reader.info
        self.video_every = video_every(self.info.fps, config.output.video_max_fps)
        self.warn = warn
        # A live source back after a long gap restarts the core (segments.py), numbering continued.
        self.pipeline = SegmentedPipeline(
            config,
            keep_crops=write_crops,
            object_crops=OBJECT_CROPS if model is not None else 0,
            judge_every=judge_every(config.output.crop_spacing),
        )
        # Each crop of an object wholly in view is judged as it is cut, so the annotated video shows
        # the verdict so far (combine_verdicts over the crops seen); the object's final verdict is the
        # same combination over all of them when it finishes. The model works in a thread of its own
        # (judging.py): finished objects reach the writer once judged, in the order they finished.
        self.judge = Judge(model) if model is not None else None
        # Objects counted at the counting line, by label (the label lookup an
        # anomaly model fills as objects are judged) and by video time.
        self.counts = LineCounts(self.info.fps)
        self.watch = MaskWatch(
            config.mask.mode,
            self.info.fps,
            config.mask.auto_learn_frames,
            config.mask.auto_learn_stride,
            warn=warn,
        )
        # Drawn once the belt's direction is known (read from the footage with track.direction = auto).
        self.line: tuple | None = None
        self.frames = 0
        self.gaps: list[dict] = []  # summary.json "stream_gaps"
        self.start = time.perf_counter()
        self.started = time.time()
        self.writer: RunWriter
        # On the line (docs/line.md): live metrics, and the reject line with where its events go.
        self.metrics: RunMetrics | None = None
        self.metrics_port: int | None = None
        self.reject_sinks: list = []
        self.reject_line: RejectLine | None = None
        self.reject_events = {"events": 0, "late": 0, "no_speed": 0}
        # When each of the last frames was read (perf_counter and Unix time), by frame index: a
        # reject event's delay runs from its object's last frame to its verdict.
        self._read_at = np.zeros((FRAME_TIMES, 2))
        self._read_index = np.full(FRAME_TIMES, -1, np.int64)

    def open_writer(self, out_dir: str | Path, source: str | int, *, write_video: bool, write_crops: bool) -> None:
        out = self.config.output
        frame_size = (self.info.width, self.info.height)
        scale = video_scale(frame_size, out.video_scale, out.video_max_pixels)
        self.writer = RunWriter(
            out_dir,
            self.info.fps,
            frame_size,
            video=write_video,
            crops=write_crops,
            crop_format=out.crop_format,
            crop_quality=out.crop_quality,
            video_scale=scale,
            video_codec=out.video_codec,
            video_every=self.video_every,
            meta={"source": str(source), "version": __version__, "config": self.config.to_dict()},
        )
        size = self.writer.video_size
        if size is not None and scale < out.video_scale and out.video_scale != OutputParams.video_scale:
            # A scale the user chose, overruled by the pixel cap: say so rather than surprise them.
            self.warn(
                f"annotated.mp4 is {size[0]}x{size[1]}, less than output.video_scale {out.video_scale:g} makes: "
                f"output.video_max_pixels ({out.video_max_pixels}) caps its pixels (0 lifts the cap)"
            )

    def open_reject(self, out_dir: Path, live: bool) -> None:
        """The reject line and rejects.jsonl in the run folder (the other sinks are open already)."""
        self.reject_line = RejectLine(
            self.config.reject,
            self.info.fps,
            (self.info.width, self.info.height),
            lambda: self.pipeline.direction,
            live=live,
        )
        self.reject_sinks.insert(0, JsonLinesSink(out_dir / REJECTS_NAME))

    def close_reject(self) -> None:
        for sink in self.reject_sinks:
            sink.close()

    def abort_on_error(self, exc_type, exc, tb) -> bool:
        """ExitStack's exit step: what was written is finished as a recovered run (docs/outputs.md)."""
        if exc is not None:
            self.writer.abort(exc)
        return False

    # --- objects ---------------------------------------------------------------------------------

    def finished(self, objects) -> None:
        """Objects that have left: to the judge, or (no model) straight to the writer."""
        if self.judge is not None:
            self.judge.objects(objects)
        else:
            self.add_objects(objects)

    def add_objects(self, objects) -> None:
        self.writer.add_objects(objects)
        for obj in objects:
            self.counts.set_label(obj.track_id, obj.label)
            if self.metrics is not None:
                self.metrics.finished(obj.label)
            if self.reject_line is not None and obj.label == "anomaly":
                self.reject(obj)

    def reject(self, obj) -> None:
        """An anomaly's event, to every sink; late or not, never dropped."""
        assert self.reject_line is not None
        slot = obj.last_frame % FRAME_TIMES
        now = time.perf_counter()
        if self._read_index[slot] == obj.last_frame:
            read_at, read_unix = self._read_at[slot]
        else:  # judged longer ago than the times kept: the delay is unknown, take the worst (now)
            read_at, read_unix = now, time.time()
        event = self.reject_line.event(obj, read_at, now, read_unix).to_dict()
        for sink in self.reject_sinks:
            sink.send(event)
        self.reject_events["events"] += 1
        self.reject_events["late"] += bool(event["late"])
        self.reject_events["no_speed"] += event["crossing_s"] is None
        if self.metrics is not None:
            self.metrics.reject(bool(event["late"]))

    def collect(self, wait: bool = False) -> None:
        """What the judge has done so far (``wait``: all of it) into the counts and the writer."""
        if self.judge is None:
            return
        for judged in self.judge.done(wait):
            for tid, label in judged.labels:
                self.counts.set_label(tid, label)
            self.add_objects(judged.objects)

    # --- the loop over frames ----------------------------------------------------------------------

    def read(
        self,
        progress: Progress | None,
        *,
        max_frames: int | None,
        duration: float | None,
        max_gap: float,
        reconnect_timeout: float,
        stream_status: Callable[[str], None],
        write_video: bool,
        realtime: bool = False,
    ) -> bool:
        """Every frame (and live-source event) until the source ends, a limit is reached or Ctrl-C;
        returns whether it was interrupted."""

        def out_of_time() -> bool:
            return duration is not None and time.perf_counter() - self.start >= duration

        try:
            for frame in self.reader.frames_and_events():
                if not isinstance(frame, np.ndarray):  # a live source's event, or a pause without frames
                    with whole_step():
                        self.source_event(frame, stream_status, max_gap, reconnect_timeout)
                    if out_of_time():
                        break
                    continue
                if realtime:  # a file given at its frame rate from its first frame on, as a camera gives it
                    if self.frames == 0:
                        first_at = time.perf_counter()
                    wait = first_at + self.frames / max(self.info.fps, 1e-3) - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                with whole_step():  # a stop waits for the frame's objects to reach the judge and the writer
                    update = self.frame(frame, write_video)
                    self.frames += 1
                if progress is not None and (self.frames % 10 == 0):
                    elapsed = time.perf_counter() - self.start
                    progress(self.frames, self.info.frame_count, update.tracks.count, self.frames / max(elapsed, 1e-9))
                if max_frames is not None and self.frames >= max_frames:
                    break
                if out_of_time():
                    break
        except KeyboardInterrupt:
            return True
        return False

    def frame(self, frame: np.ndarray, write_video: bool) -> FrameUpdate:
        """One frame: the pipeline, crops to the judge and the writer, counts, the mask watch, the video."""
        read_at = time.perf_counter()
        slot = self.frames % FRAME_TIMES
        self._read_at[slot] = read_at, time.time()
        self._read_index[slot] = self.frames
        update = self.pipeline.process(frame)
        if self.judge is not None:
            self.judge.crops(update.judge_crops)
        self.writer.add_crops(update.crops)
        self.finished(update.finished)
        self.collect()
        self.counts.add_crossed(update.tracks.crossed, update.tracks.frame_index)
        self.watch.after_frame(self.frames, frame, len(update.tracks) > 0, lambda: self.pipeline.belt_stats)
        if write_video and self.frames % self.video_every == 0:
            self.draw(frame, update)
        if self.metrics is not None:
            now = time.perf_counter()
            queued = self.judge.waiting if self.judge is not None else 0
            self.metrics.frame(self.frames, now - read_at, now, self.counts.counts(), queued)
        return update

    def draw(self, frame: np.ndarray, update: FrameUpdate) -> None:
        """The frame to the annotated video, with what to draw on it: drawn on the encoder's thread
        (encoder.py), from a snapshot of this frame's tracks, verdicts and counts."""
        if self.line is None and self.pipeline.direction != "auto":
            self.line = count_line_segment(
                (self.info.width, self.info.height), self.config.count.line, self.pipeline.direction
            )
        size = self.writer.video_size
        if size is None:
            return
        core_size = self.pipeline.downscaled_size
        if size[0] <= core_size[0] and size[1] <= core_size[1]:
            # The video is at most the core's size (output.video_scale = track.downscale, the
            # default 0.5 of both, or smaller): the core's downscaled frame, a new array to draw on
            # (or to shrink further, 2.25 times fewer pixels at R 0.5), instead of the encoder
            # resizing the full frame once it has left the cache.
            frame = self.pipeline.downscaled(frame)
        verdicts = self.counts.labels
        shown = {tid: verdicts[tid] for tid in update.tracks.ids.tolist() if tid in verdicts}
        overlay = functools.partial(
            draw_tracks,
            tracks=update.tracks,
            labels=shown,
            counts=self.counts.running(),
            line=self.line,
            scale=size[0] / self.info.width,  # drawn at the video's size (output.video_scale): text keeps its size
            judged=self.judge is not None,
        )
        self.writer.add_frame(frame, overlay)

    def source_event(self, event, say: Callable[[str], None], max_gap: float, reconnect_timeout: float) -> None:
        """A live source lost, reconnecting, back (video.py's events): told, and acted on."""
        if self.metrics is not None:
            if isinstance(event, SourceLost):
                self.metrics.source_lost()
            elif isinstance(event, Reconnected):
                self.metrics.source_back()
        if isinstance(event, SourceLost):
            say(f"source lost after frame {self.frames}: reconnecting for up to {reconnect_timeout:g} s")
        elif isinstance(event, Reconnecting):
            say(
                f"reconnect attempt {event.attempt} failed, lost for {event.lost_seconds:.1f} s; "
                f"next attempt in {event.next_wait:.1f} s"
            )
        elif isinstance(event, Reconnected):
            long_gap = event.gap_seconds > max_gap
            if long_gap:  # the objects moved out of the tracker's reach: end them, start afresh
                self.finished(self.pipeline.restart())
                self.counts.add_crossed(self.pipeline.finish_crossed, max(self.frames - 1, 0))
            self.gaps.append(
                {
                    "after_frame": self.frames,
                    "seconds": round(event.gap_seconds, 3),
                    "attempts": event.attempts,
                    "tracks": "ended" if long_gap else "kept",
                }
            )
            say(
                f"source back after a gap of {event.gap_seconds:.1f} s (attempt {event.attempts}): open tracks "
                + (f"ended (gap longer than {max_gap:g} s)" if long_gap else "kept")
            )

    # --- the end -----------------------------------------------------------------------------------

    def finish(self, source: str | int, identity: dict, interrupted: bool) -> dict[str, Any]:
        """The objects still in view finished and judged; the summary of the run."""
        self.finished(self.pipeline.finish())
        self.collect(wait=True)
        self.counts.add_crossed(self.pipeline.finish_crossed, max(self.frames - 1, 0))  # counted at the stream end
        elapsed = time.perf_counter() - self.start
        labelled = self.writer.label_counts
        reader, info, frames = self.reader, self.info, self.frames
        return {
            "source": str(source),
            "input": identity["input"],  # the file's bytes and mtime_ns (null for a camera or stream)
            "model": identity["model"],  # the model folder and the sha256 of its model.json (null: none)
            "version": __version__,
            "objects": self.writer.object_count,
            "anomalies": labelled.get("anomaly", 0),
            "normal": labelled.get("normal", 0),
            "unknown": labelled.get("unknown", 0),
            # Objects counted at the counting line (count.line; the exit edge by default).
            "counts": self.counts.counts(),
            "counts_over_time": self.counts.over_time(frames),
            # track.direction, or the direction read from the footage ("auto": the belt never moved).
            "direction": self.pipeline.direction,
            "frames": frames,
            "video_seconds": round(frames / info.fps, 3),
            "width": info.width,
            "height": info.height,
            "video_fps": info.fps,
            "processing_seconds": round(elapsed, 3),
            "fps": round(frames / max(elapsed, 1e-9), 2),
            "complete": not interrupted and not reader.ended_early,
            "interrupted": interrupted,
            # what stopped it: Ctrl-C (SIGINT) or SIGTERM (a service manager); null: not interrupted
            "stopped_by": ("SIGTERM" if terminated() else "SIGINT") if interrupted else None,
            "ended_early": reader.ended_early,
            # Why the input ended before it should (null: it did not); docs/streams.md
            "stop_reason": reader.stop_reason,
            "source_kind": info.kind,  # file, sequence, stream or camera
            "reconnects": reader.reconnects,
            # Every reconnection of a live source: frames before it, its seconds, its open tracks kept or ended.
            "stream_gaps": self.gaps,
            # How objects were told from the belt: the belt model's figures and any warning (mask_watch.py).
            "mask": self.watch.section(self.pipeline.belt_stats),
            "config": self.config.to_dict(),
            # When the run started and its last frame was done (ISO 8601, UTC).
            "started": _iso(self.started),
            "finished": _iso(time.time()),
            # The reject line's events (docs/line.md); null without a reject line.
            "reject": self.reject_section(),
            # The Prometheus endpoint served during the run; null: none.
            "metrics": None if self.metrics_port is None else {"port": self.metrics_port},
        }

    def reject_section(self) -> dict | None:
        if self.reject_line is None:
            return None
        for sink in self.reject_sinks:  # the webhook and MQTT send on threads: their figures once done
            sink.drain()
        return {
            "line_px": self.reject_line.line_px,
            "latency_s": self.reject_line.latency,
            **self.reject_events,
            "sinks": {sink.name: sink.status() for sink in self.reject_sinks[1:]},
        }


def _iso(unix: float) -> str:
    """UTC, to the second, as the journal of a killed run records its start: 2026-12-07T02:21:50Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def _warn_on_stderr(text: str) -> None:
    sys.stderr.write(f"\nwarning: {text}\n")
    sys.stderr.flush()
