"""What ``run`` writes into its output folder, and how, so nothing is half-written.

- ``tracks.txt`` and ``objects.csv`` grow in hidden ``.partial`` files, a block
  per finished object, flushed at once: a crash loses at most the objects in
  view. ``close()`` writes the final files atomically (sorted) and removes them.
- ``crops/`` is filled as ``.crops.partial/`` (``<track_id>/<frame>.jpg``, or ``.png``
  per ``output.crop_format``), flushed with one syncfs and renamed into place at the end.
- ``annotated.mp4`` is encoded under a temporary name and renamed at the end.
- ``summary.json`` is written last, atomically: its presence means the run is complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_write_text, sync_filesystem
from .crops import CROP_FORMATS, JPEG_QUALITY, encode_crop
from .pipeline import Crop, ObjectEvent, Tracks

__all__ = ["RunWriter", "OBJECT_COLUMNS", "draw_tracks", "count_line_segment", "OutputError"]

OBJECT_COLUMNS = ["track_id", "first_frame", "last_frame", "frames", "x", "y", "w", "h", "label", "score"]

LABEL_COLOURS = {  # BGR
    "normal": (60, 200, 60),
    "anomaly": (40, 40, 230),
    "unknown": (0, 200, 255),
}
LINE_COLOUR = (255, 0, 255)  # BGR magenta: the counting line


class OutputError(OSError):
    """The output folder cannot be written. The message names the path."""


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def mot_block(track_id: int, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """One track as MOTChallenge rows ``frame,id,x,y,w,h,conf,-1,-1,-1``: frames
    1-based (the core's are 0-based), conf 1. An (N, 10) float array."""
    block = np.empty((frames.shape[0], 10))
    block[:, 0] = frames + 1
    block[:, 1] = track_id
    block[:, 2:6] = boxes
    block[:, 6] = 1
    block[:, 7:] = -1
    return block


def mot_line(frame: int, track_id: int, x: float, y: float, w: float, h: float) -> str:
    """One line of tracks.txt (MOTChallenge, conf 1), without its newline."""
    return f"{frame},{track_id},{_fmt(x)},{_fmt(y)},{_fmt(w)},{_fmt(h)},1,-1,-1,-1"


def mot_rows(obj: ObjectEvent) -> list[tuple[int, int, str]]:
    """The lines of tracks.txt for one object, with their (frame, id) sort keys."""
    rows = []
    for f, _, x, y, w, h, *_ in mot_block(obj.track_id, obj.frames, obj.boxes).tolist():
        f = int(f)
        rows.append((f, obj.track_id, mot_line(f, obj.track_id, x, y, w, h)))
    return rows


def object_row(obj: ObjectEvent) -> list[str]:
    x, y, w, h = obj.best_box
    score = "" if math.isnan(obj.score) else f"{obj.score:.4f}"
    return [
        str(obj.track_id), str(obj.first_frame + 1), str(obj.last_frame + 1), str(obj.frame_count),
        _fmt(x), _fmt(y), _fmt(w), _fmt(h), obj.label, score,
    ]


def count_line_segment(frame_size: tuple[int, int], line: float, direction: str
                       ) -> tuple[tuple[int, int], tuple[int, int]]:
    """End points (pixels) of the counting line across a ``(width, height)`` frame:
    ``line`` of the frame along the belt from the entry edge (``count.line``),
    kept inside the frame (the exit edge, 1.0, is its last row or column)."""
    w, h = frame_size
    horizontal = direction in ("left_to_right", "right_to_left")
    length = w if horizontal else h
    pos = min(max(int(round(line * length)), 0), length - 1)
    if direction in ("right_to_left", "bottom_to_top"):
        pos = length - 1 - pos
    return ((pos, 0), (pos, h - 1)) if horizontal else ((0, pos), (w - 1, pos))


def draw_tracks(frame: np.ndarray, tracks: Tracks, labels: dict[int, str], counts: dict[str, int],
                line: tuple[tuple[int, int], tuple[int, int]] | None = None) -> None:
    """Draw the counting line (end points, see count_line_segment), boxes, numbers
    and running counts onto ``frame`` in place."""
    scale = max(0.5, frame.shape[0] / 720)
    thick = max(1, round(2 * scale))
    if line is not None:
        cv2.line(frame, line[0], line[1], LINE_COLOUR, thick, cv2.LINE_8)
    for tid, (x, y, w, h) in tracks:
        colour = LABEL_COLOURS.get(labels.get(tid, "unknown"), LABEL_COLOURS["unknown"])
        p0, p1 = (int(x), int(y)), (int(x + w), int(y + h))
        cv2.rectangle(frame, p0, p1, colour, thick)
        cv2.putText(frame, str(tid), (p0[0] + 3, p0[1] + int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7 * scale, colour, thick, cv2.LINE_AA)
    text = "  ".join(f"{k}: {v}" for k, v in counts.items())
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, thick)
    cv2.rectangle(frame, (8, 8), (20 + tw, 20 + th + int(8 * scale)), (0, 0, 0), -1)
    cv2.putText(frame, text, (14, 14 + th), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), thick, cv2.LINE_AA)


class RunWriter:
    """Writes one run's outputs into ``out_dir``. Use as a context manager or call close().

    Crops are written as ``crop_format`` files (``jpg`` at ``crop_quality``, or ``png``:
    ``output.crop_format`` and ``output.crop_quality``)."""

    def __init__(self, out_dir: str | Path, fps: float, frame_size: tuple[int, int],
                 video: bool = True, crops: bool = True, crop_format: str = "jpg",
                 crop_quality: int = JPEG_QUALITY):
        if crop_format not in CROP_FORMATS:  # before anything is written
            raise ValueError(f"crop format {crop_format!r} is not one of {', '.join(CROP_FORMATS)}")
        self.crop_format = crop_format
        self.crop_quality = crop_quality
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"cannot write to output folder {self.out_dir}: {exc.strerror}") from None
        # A summary.json marks a complete run: a new run into this folder is not complete yet.
        (self.out_dir / "summary.json").unlink(missing_ok=True)
        self.fps = fps
        self.frame_size = frame_size
        self.objects: list[ObjectEvent] = []
        self.crops_written = 0
        self._tracks_partial = self.out_dir / ".tracks.txt.partial"
        self._objects_partial = self.out_dir / ".objects.csv.partial"
        self._tracks_fh = open(self._tracks_partial, "w", encoding="utf-8")
        self._objects_fh = open(self._objects_partial, "w", encoding="utf-8", newline="")
        self._objects_csv = csv.writer(self._objects_fh)
        self._objects_csv.writerow(OBJECT_COLUMNS)
        self._objects_fh.flush()

        self._crops_dir: Path | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        if crops:
            self._crops_dir = self.out_dir / ".crops.partial"
            shutil.rmtree(self._crops_dir, ignore_errors=True)
            self._crops_dir.mkdir()
            # Image encoding releases the GIL: one writer thread keeps it off the frame loop.
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crop-writer")

        self._video: cv2.VideoWriter | None = None
        self._video_tmp = self.out_dir / ".annotated.partial.mp4"
        if video:
            self._video = cv2.VideoWriter(str(self._video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame_size)
            if not self._video.isOpened():
                raise OutputError(f"cannot encode video into {self._video_tmp}")
        self._closed = False

    # --- per frame ------------------------------------------------------------

    def add_crops(self, crops: list[Crop]) -> None:
        if self._pool is None:
            return
        for c in crops:
            self._pending.append(self._pool.submit(self._write_crop, c))
        if len(self._pending) > 256:  # keep memory bounded; surface write errors early
            done, self._pending = self._pending[:128], self._pending[128:]
            for f in done:
                f.result()

    def _write_crop(self, crop: Crop) -> None:
        folder = self._crops_dir / str(crop.track_id)
        folder.mkdir(exist_ok=True)
        try:
            data = encode_crop(crop.image, self.crop_format, self.crop_quality)
        except ValueError:
            raise OutputError(f"cannot encode crop of object {crop.track_id}") from None
        # The crops folder is itself temporary (renamed into place by close()), so each
        # crop needs no atomic rename or fsync of its own: that cost 8% of a run's time.
        (folder / f"{crop.frame_index + 1:06d}.{self.crop_format}").write_bytes(data)
        self.crops_written += 1

    def add_frame(self, frame: np.ndarray) -> None:
        if self._video is not None:
            self._video.write(frame)

    def add_objects(self, objects: list[ObjectEvent]) -> None:
        for obj in objects:
            self.objects.append(obj)
            self._tracks_fh.write("".join(r[2] + "\n" for r in mot_rows(obj)))
            self._objects_csv.writerow(object_row(obj))
        if objects:
            self._tracks_fh.flush()
            self._objects_fh.flush()

    # --- end ------------------------------------------------------------------

    def close(self, summary: dict) -> None:
        """Finish every file and write ``summary.json`` last."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            for f in self._pending:
                f.result()
        self._tracks_fh.close()
        self._objects_fh.close()

        rows = sorted((row for obj in self.objects for row in mot_rows(obj)), key=lambda r: (r[0], r[1]))
        atomic_write_text(self.out_dir / "tracks.txt", "".join(r[2] + "\n" for r in rows))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(OBJECT_COLUMNS)
        for obj in sorted(self.objects, key=lambda o: o.track_id):
            w.writerow(object_row(obj))
        atomic_write_text(self.out_dir / "objects.csv", buf.getvalue())
        self._tracks_partial.unlink(missing_ok=True)
        self._objects_partial.unlink(missing_ok=True)

        if self._crops_dir is not None:
            sync_filesystem(self._crops_dir)  # the crops reach the disk before they take their final name
            final = self.out_dir / "crops"
            old = self.out_dir / ".crops.old"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            self._crops_dir.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        if self._video is not None:
            self._video.release()
            os.replace(self._video_tmp, self.out_dir / "annotated.mp4")

        summary["crops_written"] = self.crops_written
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=False) + "\n")

    def abort(self) -> None:
        """Stop without final files (the .partial files stay for inspection)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._tracks_fh.close()
        self._objects_fh.close()
        if self._video is not None:
            self._video.release()
            self._video_tmp.unlink(missing_ok=True)
