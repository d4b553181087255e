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
) -> RunResult:
    """Run the pipeline over ``source`` and write its outputs into ``out_dir``.

    The source is opened (and its first frame decoded) before anything is
    written, so a missing or unreadable video leaves no output behind.
    Ctrl-C stops reading and still writes complete files for what was seen.
    """
    config = config if config is not None else Config()
    config.validate()
    out = config.output
    write_video = out.video if video is None else video
    write_crops = out.crops if crops is None else crops

    reader = VideoReader(source)
    info = reader.info
    pipeline = Pipeline(config, keep_crops=write_crops)
    writer = RunWriter(out_dir, info.fps, (info.width, info.height), video=write_video, crops=write_crops)

    # Objects counted at the counting line, by label (the label lookup an
    # anomaly model fills as objects finish) and by video time.
    counts = LineCounts(info.fps)
    line = count_line_segment((info.width, info.height), config.count.line, config.track.direction)
    interrupted = False
    start = time.perf_counter()
    frames = 0
    try:
        try:
            for frame in reader:
                update = pipeline.process(frame)
                writer.add_crops(update.crops)
                writer.add_objects(update.finished)
                for obj in update.finished:
                    counts.set_label(obj.track_id, obj.label)
                counts.add_crossed(update.tracks.crossed, update.tracks.frame_index)
                if write_video:
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
