"""The ``run`` job: a video in, tracks, objects, crops, annotated video and summary out."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .config import Config
from .counts import LineCounts
from .outputs import RunWriter, count_line_segment, draw_tracks
from .pipeline import Pipeline
from .video import VideoReader

__all__ = ["run_video", "RunResult", "Progress"]

#: An anomaly model judges an object from at most OBJECT_CROPS crops spread over its path: its
#: first crop while wholly in view, then every JUDGE_EVERY-th (crops are output.crop_every frames
#: apart: 0, 50, 100 frames by default). A crop costs ~10 ms of CPU; judging every crop (~1.5 a
#: frame on the cookies demo) made the model most of a run's time, and was no more accurate than
#: these three views (docs/anomaly.md, "An object's verdict from several crops").
OBJECT_CROPS = 3
JUDGE_EVERY = 5

#: progress(frames_done, frames_total_or_0, objects_counted, fps)
Progress = Callable[[int, int, int, float], None]


@dataclass
class RunResult:
    summary: dict
    #: True when the input ended before the frames its header announced (truncated file).
    ended_early: bool
    #: True when stopped by Ctrl-C (outputs hold everything seen until then).
    interrupted: bool


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
) -> RunResult:
    """Run the pipeline over ``source`` and write its outputs into ``out_dir``.

    The source is opened (and its first frame decoded) before anything is
    written, so a missing or unreadable video leaves no output behind.
    Ctrl-C stops reading and still writes complete files for what was seen.
    ``model`` (a folder or an :class:`~conveyor_qc.model.AnomalyModel`) labels each
    finished object from its crops taken while wholly in view (``combine_verdicts``).
    """
    config = config if config is not None else Config()
    config.validate()
    out = config.output
    write_video = out.video if video is None else video
    write_crops = out.crops if crops is None else crops

    own_model = False
    if model is not None and not hasattr(model, "predict"):
        from .model import load_model

        model, own_model = load_model(model), True  # a damaged model fails before anything is written
    try:
        reader = VideoReader(source)
    except BaseException:
        if own_model:
            model.close()
        raise
    info = reader.info
    pipeline = Pipeline(config, keep_crops=write_crops, object_crops=OBJECT_CROPS if model is not None else 0,
                        judge_every=JUDGE_EVERY)

    # Each crop of an object wholly in view is judged as it is cut, so the annotated video shows
    # the verdict so far (combine_verdicts over the crops seen); the object's final verdict is the
    # same combination over all of them when it finishes.
    seen: dict[int, list] = {}

    def judge_crops(crops) -> None:
        if model is None or not crops:
            return
        from .model import combine_verdicts

        for crop, verdict in zip(crops, model.predict([c.image for c in crops])):
            seen.setdefault(crop.track_id, []).append(verdict)
        for tid in {c.track_id for c in crops}:
            counts.set_label(tid, combine_verdicts(seen[tid]).label)

    def judge(objects) -> None:
        if model is None:
            return
        from .model import combine_verdicts

        for obj in objects:
            verdicts = seen.pop(obj.track_id, [])
            if not verdicts and obj.ever_whole and obj.best_crop is not None:
                verdicts = model.predict([obj.best_crop])  # left before its first periodic crop
            verdict = combine_verdicts(verdicts)
            if verdict is not None:
                obj.label, obj.score = verdict.label, verdict.score
            obj.crops = []  # the pixels are not needed any more

    writer = RunWriter(out_dir, info.fps, (info.width, info.height), video=write_video, crops=write_crops,
                       crop_format=out.crop_format, crop_quality=out.crop_quality)

    # Objects counted at the counting line, by label (the label lookup an
    # anomaly model fills as objects are judged) and by video time.
    counts = LineCounts(info.fps)
    line = None  # drawn once the belt's direction is known (read from the footage with track.direction = auto)
    interrupted = False
    start = time.perf_counter()
    frames = 0
    try:
        try:
            for frame in reader:
                update = pipeline.process(frame)
                judge_crops(update.judge_crops)
                judge(update.finished)
                writer.add_crops(update.crops)
                writer.add_objects(update.finished)
                for obj in update.finished:
                    counts.set_label(obj.track_id, obj.label)
                counts.add_crossed(update.tracks.crossed, update.tracks.frame_index)
                if write_video:
                    if line is None and pipeline.direction != "auto":
                        line = count_line_segment((info.width, info.height), config.count.line, pipeline.direction)
                    draw_tracks(frame, update.tracks, counts.labels, counts.running(), line=line)
                    writer.add_frame(frame)
                frames += 1
                if progress is not None and (frames % 10 == 0):
                    elapsed = time.perf_counter() - start
                    progress(frames, info.frame_count, update.tracks.count, frames / max(elapsed, 1e-9))
                if max_frames is not None and frames >= max_frames:
                    break
        except KeyboardInterrupt:
            interrupted = True
        last = pipeline.finish()
        judge(last)
        writer.add_objects(last)
        for obj in last:
            counts.set_label(obj.track_id, obj.label)
        counts.add_crossed(pipeline.finish_crossed, max(frames - 1, 0))  # counted at the stream end
        elapsed = time.perf_counter() - start
        objects = writer.objects
        summary = {
            "source": str(source),
            "version": __version__,
            "objects": len(objects),
            "anomalies": sum(1 for o in objects if o.label == "anomaly"),
            "normal": sum(1 for o in objects if o.label == "normal"),
            "unknown": sum(1 for o in objects if o.label == "unknown"),
            # Objects counted at the counting line (count.line; the exit edge by default).
            "counts": counts.counts(),
            "counts_over_time": counts.over_time(frames),
            # track.direction, or the direction read from the footage ("auto": the belt never moved).
            "direction": pipeline.direction,
            "frames": frames,
            "video_seconds": round(frames / info.fps, 3),
            "width": info.width,
            "height": info.height,
            "video_fps": info.fps,
            "processing_seconds": round(elapsed, 3),
            "fps": round(frames / max(elapsed, 1e-9), 2),
            "complete": not interrupted and not reader.ended_early,
            "interrupted": interrupted,
            "ended_early": reader.ended_early,
            "config": config.to_dict(),
        }
        if progress is not None:
            progress(frames, info.frame_count, len(objects), summary["fps"])
        writer.close(summary)  # adds crops_written once the crop writer is done
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
        if own_model:
            model.close()
    return RunResult(summary=summary, ended_early=reader.ended_early, interrupted=interrupted)


def terminal_progress(stream=sys.stderr) -> Progress | None:
    """A one-line progress bar on a terminal; None when output is not a terminal."""
    if not stream.isatty():
        return None

    def show(done: int, total: int, count: int, fps: float) -> None:
        if total:
            filled = int(30 * min(done, total) / total)
            bar = "#" * filled + "." * (30 - filled)
            stream.write(f"\r[{bar}] {done}/{total} frames  {count} objects  {fps:.0f} fps ")
        else:
            stream.write(f"\r{done} frames  {count} objects  {fps:.0f} fps ")
        stream.flush()

    return show
