"""What ``run`` writes into its output folder, and how, so that a kill at any moment (or a power
cut, or a full disk) leaves whole files: the previous complete state, or a consistent prefix of
whole rows that ``conveyor-qc recover`` (or the next run into the folder) finishes. docs/outputs.md
tells what each stage of a run leaves on disk.

- ``objects.csv`` and ``tracks.txt`` are created at the start (atomically: the header, and empty)
  and grow as objects finish, a batch of whole rows at a time, committed in the journal
  ``.run.journal`` (conveyor_qc.journal) and flushed to disk every ``SYNC_SECONDS``: a crash loses
  at most the objects in view (a power cut, also those finished in the last second). An object's
  crops are written before its rows (one writer thread does both, in order). ``close()`` rewrites
  both files sorted (objects by number, tracks by frame), each atomically.
- ``crops/`` is filled as ``.crops.partial/`` (``<track_id>/<frame>.jpg``, or ``.png`` per
  ``output.crop_format``; each file under a temporary name, then renamed), flushed with one syncfs
  and swapped into place at the end.
- ``annotated.mp4`` is encoded under a temporary name and, once the encoder has finished it (first
  thing in ``close()``, after the rows are on disk), renamed to ``.annotated.done.mp4``, flushed and
  renamed into place: a kill from then on leaves a whole video that ``recover`` puts in place (an MP4
  cut short has no index and cannot be played, so a run killed before has none).
- ``summary.json`` is written last, atomically: its presence means the run is finished (its
  ``complete`` says whether it saw the whole video; ``recovered`` marks one finished by recovery).
"""

from __future__ import annotations

import csv
import errno
import functools
import io
import json
import logging
import math
import os
import shutil
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc import _core
from conveyor_qc.crops import CROP_FORMATS, CROP_SUFFIXES, JPEG_QUALITY, encode_crop
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import (
    WriteError,
    as_write_error,
    atomic_write_text,
    check_writable_directory,
    fsync_directory,
    fsync_path,
    replace_directory,
    sync_filesystem,
)
from conveyor_qc.io.journal import AppendJournal, JournalBusy, JournalError, recover_journal
from conveyor_qc.io.mp4 import whole_mp4
from conveyor_qc.run.encoder import EncoderError, Overlay, VideoEncoder
from conveyor_qc.run.pipeline import Crop, ObjectEvent, Tracks

__all__ = [
    "OBJECT_COLUMNS",
    "OutputError",
    "RecoverError",
    "RunWriter",
    "check_output_dir",
    "count_line_segment",
    "draw_tracks",
    "recover_run",
]

OBJECT_COLUMNS = ["track_id", "first_frame", "last_frame", "frames", "x", "y", "w", "h", "label", "score"]
OBJECTS_NAME, TRACKS_NAME, SUMMARY_NAME, CROPS_NAME, VIDEO_NAME = (
    "objects.csv",
    "tracks.txt",
    "summary.json",
    "crops",
    "annotated.mp4",
)
#: The page a person reads (conveyor_qc.report, written after the run) and the reject line's events
#: (conveyor_qc.line: appended as anomalies are judged): a run's too, replaced by the next one.
REPORT_NAME, REJECTS_NAME = "report.html", "rejects.jsonl"
JOURNAL_NAME = ".run.journal"
PENDING_SUMMARY = ".summary.pending.json"
CROPS_PARTIAL = ".crops.partial"
VIDEO_PARTIAL = ".annotated.partial.mp4"
#: The video once its encoder has finished it, until it is flushed and renamed into place.
VIDEO_DONE = ".annotated.done.mp4"
#: Room kept from the start for the reason a run failed (a full disk...), so that it can be
#: recorded before the clean-up even when nothing else can be written, and ``recover`` tells it.
FAILURE_NAME = ".run.failure"
FAILURE_BYTES = 4096
#: Rows reach the disk (fdatasync) at least this often; a kill of the process loses nothing
#: written, a power cut what was written since.
SYNC_SECONDS = 1.0
#: How often (frames) the free space of the output's disk is looked at.
SPACE_CHECK_FRAMES = 30
#: A run into a folder holding a killed run's files keeps them in ``interrupted-<start time>/``.
INTERRUPTED_PREFIX = "interrupted-"
#: Each step of close() is logged here at DEBUG as it is done (extra ``close_step``: synced, encoded,
#: video, tracks, objects, crops, summary): where a stalled or killed close stopped.
log = logging.getLogger(__name__)

#: Box colours by verdict (BGR): Okabe and Ito's blue, vermillion and yellow, which viewers with any
#: of the common colour-vision deficiencies still tell apart (red and green were not: deuteranopes,
#: 1 man in 20, saw the two boxes alike). Anomalies are drawn twice as thick as well, so that they
#: stand out without colour. docs/anomaly.md and docs/outputs.md say the same.
LABEL_COLOURS = {
    "normal": (178, 114, 0),  # blue
    "anomaly": (0, 94, 213),  # vermillion
    "unknown": (66, 228, 240),  # yellow: not judged (yet, or no model)
}
_BLACK, _WHITE = (0, 0, 0), (255, 255, 255)
#: The number's colour on each verdict's label: whichever of black and white reads better on it.
_LABEL_INK = {"normal": _WHITE, "anomaly": _BLACK, "unknown": _BLACK}
LINE_COLOUR = (255, 0, 255)  # BGR magenta: the counting line
_FONT = cv2.FONT_HERSHEY_DUPLEX
_BANNER_AT = 8  # px from the top and the left: the running counts' corner


class OutputError(WriteError):
    """The output folder cannot be written. The message names the path and the problem."""


class RecoverError(ConveyorQCError, ValueError):
    """A folder holds nothing to recover, or is being written by a live run."""


class RunBusy(RecoverError):
    """A live run holds the folder's journal."""


def _step_done(step: str) -> None:
    log.debug("close: %s done", step, extra={"close_step": step})


def _output_error(exc: OSError, path=None, suffix: str = "") -> OutputError:
    err = as_write_error(exc, path)
    return OutputError(err.message + suffix, err.errno, err.filename)


def _fmt(v: float) -> str:
    """``v`` to 2 decimals, without trailing zeros ("12", "12.5", "12.25"): tracks.txt's rule
    (the core's, which writes tracks.txt's lines: mot_text)."""
    return _core.format_decimal2(v)


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
    """One line of tracks.txt (MOTChallenge, conf 1; ``frame`` 1-based), without its newline."""
    box = np.array([[x, y, w, h]], np.float64)
    return _core.mot_lines(int(track_id), np.array([frame - 1], np.int32), box).decode().rstrip("\n")


def mot_text(obj: ObjectEvent) -> bytes:
    """One object's lines of tracks.txt, each with its newline: written by the core (the rows of
    the objects still in view as a video ends are all written at once: issue 22). The frames and
    boxes as the core gives them (int32, float32)."""
    frames = np.ascontiguousarray(obj.frames, np.int32)
    return _core.mot_lines(int(obj.track_id), frames, np.ascontiguousarray(obj.boxes, np.float32).reshape(-1, 4))


def object_row(obj: ObjectEvent) -> list[str]:
    x, y, w, h = obj.best_box
    score = "" if math.isnan(obj.score) else f"{obj.score:.4f}"
    return [
        str(obj.track_id),
        str(obj.first_frame + 1),
        str(obj.last_frame + 1),
        str(obj.frame_count),
        _fmt(x),
        _fmt(y),
        _fmt(w),
        _fmt(h),
        obj.label,
        score,
    ]


def count_line_segment(
    frame_size: tuple[int, int], line: float, direction: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """End points (pixels) of the counting line across a ``(width, height)`` frame:
    ``line`` of the frame along the belt from the entry edge (``count.line``),
    kept inside the frame (the exit edge, 1.0, is its last row or column). The core's counter
    places it (``LineCounter::segment``); this only draws it."""
    return _core.count_line_segment((int(frame_size[0]), int(frame_size[1])), line, direction)


@functools.lru_cache(maxsize=1024)
def _label_patch(
    text: str, colour: tuple[int, int, int], ink: tuple[int, int, int], font_scale: float, thick: int
) -> np.ndarray:
    """``text`` in ``ink`` on a filled ``colour`` background, a little wider and taller than the text.
    Kept (read-only) for the next frames: a label costs a copy instead of a text rendering."""
    (tw, th), _ = cv2.getTextSize(text, _FONT, font_scale, thick)
    pad = max(2, round(th / 5))
    patch = np.empty((th + 2 * pad, tw + 2 * pad, 3), np.uint8)
    patch[:] = colour
    cv2.putText(patch, text, (pad, pad + th), _FONT, font_scale, ink, thick, cv2.LINE_AA)
    patch.flags.writeable = False
    return patch


def _paste(frame: np.ndarray, patch: np.ndarray, x: int, top: int) -> None:
    """``patch`` onto ``frame`` with its top-left corner at (x, top), moved into the frame."""
    h, w = patch.shape[:2]
    rows, cols = frame.shape[:2]
    x = min(max(x, 0), max(cols - w, 0))
    top = min(max(top, 0), max(rows - h, 0))
    region = frame[top : top + h, x : x + w]
    region[...] = patch[: region.shape[0], : region.shape[1]]


def _draw_count_line(
    frame: np.ndarray,
    line: tuple[tuple[int, int], tuple[int, int]],
    scale: float,
    thick: int,
    font_scale: float,
    text_thick: int,
) -> None:
    """The counting line ``thick`` pixels wide, wholly inside the frame (at count.line = 1.0 its last
    columns or rows: the core's last pixel of the full-size frame can fall just outside a scaled
    one), and a "count" tag beside it, towards the inside of the frame, at its far end."""
    rows, cols = frame.shape[:2]
    (x0, y0), (x1, y1) = ((round(x * scale), round(y * scale)) for x, y in line)
    tag = _label_patch("count", LINE_COLOUR, _BLACK, font_scale, text_thick)
    h, w = tag.shape[:2]
    gap = 2
    if x0 == x1 or y0 == y1:  # across the belt: a column or a row of the frame
        vertical = x0 == x1
        extent, at = (rows, cols) if vertical else (cols, rows)
        a, b = sorted((y0, y1) if vertical else (x0, x1))
        a, b = max(a, 0), min(b, extent - 1) + 1
        lo = min(max((x0 if vertical else y0) - thick // 2, 0), max(at - thick, 0))
        if vertical:
            frame[a:b, lo : lo + thick] = LINE_COLOUR
            tag_x = lo - gap - w if lo - gap - w >= 0 else lo + thick + gap
            tag_top = b - h - gap
        else:
            frame[lo : lo + thick, a:b] = LINE_COLOUR
            tag_x = b - w - gap
            tag_top = lo - gap - h if lo - gap - h >= 0 else lo + thick + gap
    else:  # not a line the core draws today; kept inside the frame all the same
        _, p0, p1 = cv2.clipLine((0, 0, cols, rows), (x0, y0), (x1, y1))
        cv2.line(frame, p0, p1, LINE_COLOUR, thick, cv2.LINE_8)
        tag_x, tag_top = p1[0] - w - gap, p1[1] - h - gap
    _paste(frame, tag, tag_x, tag_top)


def _banner_items(counts: dict[str, int], judged: bool) -> tuple[tuple[str, str | None], ...]:
    """The running counts as (text, verdict whose colour marks it): the total, then normal and
    anomaly, and unknown when some counted objects have no verdict; without a model, "not judged"."""
    total = counts.get("total", 0)
    if not judged:
        return ((f"total: {total}", None), ("not judged", "unknown"))
    normal, anomaly = counts.get("normal", 0), counts.get("anomaly", 0)
    unknown = counts.get("unknown", total - normal - anomaly)
    items: tuple[tuple[str, str | None], ...] = (
        (f"total: {total}", None),
        (f"normal: {normal}", "normal"),
        (f"anomaly: {anomaly}", "anomaly"),
    )
    if unknown > 0:
        items += ((f"unknown: {unknown}", "unknown"),)
    return items


@functools.lru_cache(maxsize=64)
def _banner_patch(items: tuple[tuple[str, str | None], ...], font_scale: float, thick: int) -> np.ndarray:
    """The running counts in white on black, each verdict's count after a square of its colour.
    Kept (read-only) while the counts stay the same."""
    sizes = [cv2.getTextSize(text, _FONT, font_scale, thick)[0] for text, _ in items]
    th = max(h for _, h in sizes)
    pad = max(4, round(th / 2))
    space = round(th * 0.8)
    swatch = th
    width = sum(w + (swatch + pad // 2 if verdict else 0) for (w, _), (_, verdict) in zip(sizes, items))
    patch = np.zeros((th + 2 * pad, width + space * (len(items) - 1) + 2 * pad, 3), np.uint8)
    x = pad
    for (w, _), (text, verdict) in zip(sizes, items):
        if verdict is not None:
            patch[pad : pad + th, x : x + swatch] = LABEL_COLOURS[verdict]
            x += swatch + pad // 2
        cv2.putText(patch, text, (x, pad + th), _FONT, font_scale, _WHITE, thick, cv2.LINE_AA)
        x += w + space
    patch.flags.writeable = False
    return patch


def draw_tracks(
    frame: np.ndarray,
    tracks: Tracks,
    labels: dict[int, str],
    counts: dict[str, int],
    line: tuple[tuple[int, int], tuple[int, int]] | None = None,
    scale: float = 1.0,
    judged: bool = True,
) -> None:
    """Draw the counting line (end points, see count_line_segment), boxes, numbers and running
    counts onto the BGR ``frame`` in place. Boxes and line are in the pixels of the full-resolution
    frame; ``scale`` is the size of ``frame`` against it (output.video_scale).

    Each box is drawn in its verdict's colour (``labels``, by track id; LABEL_COLOURS, anomalies
    twice as thick), its number on a label of that colour at its top-left corner (above the box
    where there is room, else just inside it; below the banner, never under it; always inside
    the frame), every label over every box. The line is drawn wholly inside the frame, with a
    "count" tag. The banner shows ``counts`` (``total``, ``normal``, ``anomaly``; ``unknown`` if
    given, else what the total leaves, when not 0); with ``judged`` false (no anomaly model) the
    total and "not judged".
    Text is sized for the frame drawn on: digits 13 px high at 360 rows (the default half-size
    video of a 720-row input), larger from 480 rows."""
    rows = frame.shape[0]
    grow = max(1.0, rows / 480)
    font_scale = round(0.6 * grow, 2)
    text_thick = max(1, round(grow))
    thick = max(2, round(rows / 360))
    if line is not None:
        _draw_count_line(frame, line, scale, max(4, round(rows / 90)), round(0.85 * font_scale, 2), text_thick)
    placed = []
    for tid, (x, y, w, h) in tracks:
        label = labels.get(tid, "unknown")
        if label not in LABEL_COLOURS:
            label = "unknown"
        t = 2 * thick if label == "anomaly" else thick
        p0, p1 = (int(x * scale), int(y * scale)), (int((x + w) * scale), int((y + h) * scale))
        cv2.rectangle(frame, p0, p1, LABEL_COLOURS[label], t)
        placed.append((tid, label, p0, t))
    banner = _banner_patch(_banner_items(counts, judged), font_scale, text_thick)
    banner_right, banner_bottom = _BANNER_AT + banner.shape[1], _BANNER_AT + banner.shape[0]
    for tid, label, (bx, by), t in placed:  # over every box: a neighbour's edge never hides a number
        patch = _label_patch(str(tid), LABEL_COLOURS[label], _LABEL_INK[label], font_scale, text_thick)
        outer = t // 2
        top = by - outer - patch.shape[0]
        if top < 0:  # no room above: just inside the box, under its top edge
            top = by + outer + 1
        if bx - outer < banner_right and top < banner_bottom:  # not under the banner: just below it
            top = max(top, banner_bottom + 1)
        _paste(frame, patch, bx - outer, top)
    _paste(frame, banner, _BANNER_AT, _BANNER_AT)


def _objects_text(rows: list[list[str]], header: bool = False) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(OBJECT_COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


OBJECTS_HEADER = _objects_text([], header=True).encode()


def _sorted_outputs(objects: bytes, tracks: bytes) -> tuple[bytes, bytes]:
    """The final ``objects.csv`` (rows by object number) and ``tracks.txt`` (rows by frame, then
    number) from the rows as they were appended (objects in the order they finished)."""
    head, _, body = objects.partition(b"\n")
    rows = [r for r in body.split(b"\n") if r]
    rows.sort(key=lambda r: int(r.split(b",", 1)[0]))
    return head + b"\n" + b"".join(r + b"\n" for r in rows), _sorted_track_lines(tracks)


def _sorted_track_lines(tracks: bytes) -> bytes:
    """tracks.txt's lines by frame, then number (a stable sort): each ends with a newline, empty
    ones dropped. In numpy, which reads the two numbers of every line at once: a sort keyed in
    Python took 30-60 ms as a 1080p run finished (issue 22). Lines that do not start with two
    numbers (only a damaged file has them) are sorted as the key in Python would."""
    if not tracks.endswith(b"\n"):
        tracks += b"\n"
    data = np.frombuffer(tracks, np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate(([0], ends[:-1] + 1))
    kept = np.flatnonzero(ends > starts)  # the lines' numbers among tracks.split(b"\n")
    starts, ends = starts[kept], ends[kept]
    if starts.size == 0:
        return b""
    commas = np.flatnonzero(data == ord(","))
    first = np.searchsorted(commas, starts)
    second = first + 1
    if second[-1] >= commas.size or (commas[second] >= ends).any():
        return _sorted_track_lines_slowly(tracks)
    frame = _whole_numbers(data, starts, commas[first])
    track = _whole_numbers(data, commas[first] + 1, commas[second])
    if frame is None or track is None:
        return _sorted_track_lines_slowly(tracks)
    lines = tracks.split(b"\n")
    return b"\n".join([lines[i] for i in kept[np.lexsort((track, frame))].tolist()]) + b"\n"


def _whole_numbers(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """The unsigned decimal numbers written in ``data[starts[i]:ends[i]]``, or None when one is
    not (empty, a sign, a point or another character, or more than 18 digits)."""
    lengths = ends - starts
    if lengths.min() < 1 or lengths.max() > 18:
        return None
    values = np.zeros(starts.size, np.int64)
    for k in range(int(lengths.max())):
        has = lengths > k
        digit = data[np.where(has, starts + k, 0)].astype(np.int64) - ord("0")
        if ((digit < 0) | (digit > 9))[has].any():
            return None
        values = np.where(has, values * 10 + digit, values)
    return values


def _sorted_track_lines_slowly(tracks: bytes) -> bytes:
    lines = [r for r in tracks.split(b"\n") if r]

    def key(line: bytes) -> tuple[int, int]:
        frame, tid, _ = line.split(b",", 2)
        return int(frame), int(tid)

    lines.sort(key=key)
    return b"".join(r + b"\n" for r in lines)


def _read_prefix(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def check_output_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed and prove it can be written (a folder, writable, not on a
    read-only or full file system); OutputError naming it and the problem otherwise."""
    try:
        return check_writable_directory(out_dir)
    except WriteError as exc:
        raise OutputError(exc.message, exc.errno, exc.filename) from None


class RunWriter:
    """Writes one run's outputs into ``out_dir``. Use as a context manager or call close().

    Crops are written as ``crop_format`` files (``jpg`` at ``crop_quality``, or ``png``:
    ``output.crop_format`` and ``output.crop_quality``). ``meta`` (source, version, config)
    is kept in the journal so that recovery can write a summary of a killed run.

    Before anything is written the folder is checked (a folder, writable, not read-only, not
    full: OutputError otherwise); a killed run's files found there are finished and kept in
    ``interrupted-<start time>/`` (``self.preserved``); the previous run's outputs are removed."""

    def __init__(
        self,
        out_dir: str | Path,
        fps: float,
        frame_size: tuple[int, int],
        video: bool = True,
        crops: bool = True,
        crop_format: str = "jpg",
        crop_quality: int = JPEG_QUALITY,
        meta: dict | None = None,
        sync_seconds: float = SYNC_SECONDS,
        video_scale: float = 1.0,
        video_codec: str = "h264",
        video_every: int = 1,
    ):
        if crop_format not in CROP_FORMATS:  # before anything is written
            raise ValueError(f"crop format {crop_format!r} is not one of {', '.join(CROP_FORMATS)}")
        self.crop_format = crop_format
        self.crop_quality = crop_quality
        self.out_dir = Path(out_dir)
        check_output_dir(self.out_dir)
        self.fps = fps
        self.frame_size = frame_size
        #: Objects written so far, and how many of each label.
        self.object_count = 0
        self.label_counts: dict[str, int] = {}
        self.crops_written = 0
        self._frames_seen = 0
        self._closed = False
        self._failed: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        self._video: VideoEncoder | None = None
        self._video_tmp = self.out_dir / VIDEO_PARTIAL
        self._crops_dir: Path | None = None
        self._journal: AppendJournal | None = None
        try:
            self.preserved = preserve_interrupted_run(self.out_dir)
            # The folder now belongs to this run: the previous run's outputs go, summary.json
            # (the mark of a finished run) first.
            (self.out_dir / SUMMARY_NAME).unlink(missing_ok=True)
            fsync_directory(self.out_dir)
            for stale in (CROPS_PARTIAL, CROPS_NAME):
                if (self.out_dir / stale).is_dir():
                    aside = self.out_dir / f".{stale.lstrip('.')}.old"
                    shutil.rmtree(aside, ignore_errors=True)
                    (self.out_dir / stale).rename(aside)
                    shutil.rmtree(aside, ignore_errors=True)
            for stale in (VIDEO_NAME, VIDEO_PARTIAL, VIDEO_DONE, FAILURE_NAME, REPORT_NAME, REJECTS_NAME):
                (self.out_dir / stale).unlink(missing_ok=True)
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            journal_meta = {
                "started": started,
                "pid": os.getpid(),
                "video_fps": fps,
                "width": frame_size[0],
                "height": frame_size[1],
                "crops": crops,
                "crop_format": crop_format,
                "video": video,
                **(meta or {}),
            }
            self._journal = AppendJournal(
                self.out_dir,
                JOURNAL_NAME,
                {TRACKS_NAME: b"", OBJECTS_NAME: OBJECTS_HEADER},
                meta=journal_meta,
                sync_seconds=sync_seconds,
            )
            _reserve_failure_record(self.out_dir)
            if crops:
                self._crops_dir = self.out_dir / CROPS_PARTIAL
                self._crops_dir.mkdir()
                # Image encoding releases the GIL: one writer thread keeps it off the frame loop. It
                # also commits the rows of finished objects, after their crops (FIFO, one thread).
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-writer")
            if video:
                try:
                    # Encoded on a thread of its own (encoder.py): the costliest output, beside the loop.
                    # one frame in video_every (output.video_max_fps): the video's rate is the source's over it
                    self._video = VideoEncoder(
                        self._video_tmp, fps / video_every, frame_size, scale=video_scale, codec=video_codec
                    )
                except EncoderError:
                    raise OutputError(f"cannot encode video into {self._video_tmp}", None, self._video_tmp) from None
        except (JournalBusy, RunBusy):
            self._release()
            raise OutputError(
                f"another conveyor-qc run is writing into {self.out_dir} (it holds "
                f"{JOURNAL_NAME}): stop it or choose another --out",
                None,
                self.out_dir,
            ) from None
        except OSError as exc:
            self._release()
            raise _output_error(exc) from None
        except BaseException:
            self._release()
            raise

    # --- per frame ------------------------------------------------------------

    def _check(self) -> None:
        """Raise the first error of the writer thread (a full disk while writing a crop...)."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
        if len(self._pending) > 256:  # keep memory bounded
            while len(self._pending) > 128:
                self._pending.popleft().result()

    @property
    def _open_journal(self) -> AppendJournal:
        """The journal, open from the constructor until close()."""
        assert self._journal is not None, "the writer's journal is open until close()"
        return self._journal

    def _submit(self, fn, *args) -> None:
        assert self._pool is not None, "only with a writer thread"
        self._pending.append(self._pool.submit(fn, *args))
        self._check()

    def _watch_space(self) -> None:
        """Every SPACE_CHECK_FRAMES frames: a full disk is an error now, with what was written
        intact, rather than a video encoder that drops frames without a word."""
        self._frames_seen += 1
        if self._frames_seen % SPACE_CHECK_FRAMES:
            return
        try:
            st = os.statvfs(self.out_dir)
        except OSError:
            return
        if st.f_bavail == 0:
            raise _output_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), self.out_dir, self._kept_note())

    def add_crops(self, crops: list[Crop]) -> None:
        """Called once a frame (with the crops cut on it, maybe none)."""
        self._watch_space()
        # Rows committed a while ago reach the disk even when no object has finished since
        # (on the writer thread when there is one, after what it has queued).
        if self._open_journal.sync_due():
            if self._pool is None:
                self._sync()
            else:
                self._submit(self._sync)
        if self._pool is None:
            return
        for c in crops:
            self._submit(self._write_crop, c)

    def _write_crop(self, crop: Crop) -> None:
        if self._failed is not None:
            return
        try:
            assert self._crops_dir is not None, "crops are written only into a crops folder"
            folder = self._crops_dir / str(crop.track_id)
            folder.mkdir(exist_ok=True)
            try:
                data = encode_crop(crop.image, self.crop_format, self.crop_quality)
            except ValueError:
                raise OutputError(f"cannot encode crop of object {crop.track_id}") from None
            # The crops folder is itself temporary (swapped into place by close()), so a crop needs
            # no fsync of its own (that cost 8% of a run's time): only a rename, so that a kill
            # never leaves a crop cut short.
            final = folder / f"{crop.frame_index + 1:06d}.{self.crop_format}"
            tmp = final.with_name(final.name + ".tmp")
            try:
                tmp.write_bytes(data)
                os.rename(tmp, final)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise _output_error(exc, final, self._kept_note()) from None
            self.crops_written += 1
        except BaseException as exc:
            self._failed = exc
            raise

    @property
    def video_size(self) -> tuple[int, int] | None:
        """The annotated video's (width, height) (``output.video_scale`` of the input's), or None
        without a video."""
        return self._video.size if self._video is not None else None

    def add_frame(self, frame: np.ndarray, overlay: Overlay | None = None) -> None:
        """Queue a frame of the annotated video (at the input's size, or already at the video's)
        and what to draw on it at the video's size (``overlay(canvas)``, on the encoder's thread);
        the frame must not change afterwards."""
        if self._video is not None:
            try:
                self._video.write(frame, overlay)
            except EncoderError as exc:
                raise self._video_error(exc) from None

    def _video_error(self, exc: EncoderError) -> OutputError:
        """The encoder's error; one of writing (a full disk: the OSError it came from) in the words
        of every other write error, with what was kept."""
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno:
            return _output_error(OSError(cause.errno, os.strerror(cause.errno)), self._video_tmp, self._kept_note())
        return OutputError(str(exc), None, self._video_tmp)

    def add_objects(self, objects: list[ObjectEvent]) -> None:
        """Append the rows of objects that have finished (in the order they finished); the objects
        must not change afterwards."""
        if not objects:
            return
        self.object_count += len(objects)
        for obj in objects:
            self.label_counts[obj.label] = self.label_counts.get(obj.label, 0) + 1
        # Formatted on the writer thread, off the loop over frames (they must not change afterwards).
        if self._pool is not None:
            self._submit(self._commit, list(objects))
        else:
            self._commit(objects)

    def _commit(self, objects: list[ObjectEvent]) -> None:
        if self._failed is not None:
            return
        rows = [object_row(obj) for obj in objects]
        tracks = b"".join(mot_text(obj) for obj in objects)
        # tracks.txt first: an object in objects.csv always has its path in tracks.txt.
        chunks = [tracks, _objects_text(rows).encode()]
        count = len(objects)
        try:
            self._open_journal.append(chunks, count)
        except OSError as exc:
            self._failed = exc
            raise _output_error(exc, None, self._kept_note()) from None

    def _sync(self) -> None:
        if self._failed is not None:
            return
        try:
            self._open_journal.sync_if_due()
        except OSError as exc:
            self._failed = exc
            raise _output_error(exc, None, self._kept_note()) from None

    def _kept_note(self) -> str:
        n = self._journal.items if self._journal is not None else 0
        return f"; the {n} objects finished before are in {self.out_dir / OBJECTS_NAME} and {TRACKS_NAME}"

    # --- end ------------------------------------------------------------------

    def close(self, summary: dict) -> None:
        """Finish every file and write ``summary.json`` last (it gets ``crops_written``)."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            while self._pending:
                self._pending.popleft().result()
        journal = self._open_journal
        try:
            journal.close()  # every row on disk; the journal stays until summary.json is
        except OSError as exc:
            raise _output_error(exc) from None
        # The summary as it will be, for recovery if the process dies before writing it.
        summary["crops_written"] = self.crops_written
        atomic_write_text(self.out_dir / PENDING_SUMMARY, json.dumps(summary) + "\n")
        _step_done("synced")
        # The video next: until its encoder has finished it (the frames still queued, the index)
        # it cannot be played, and a kill loses it; once finished, a kill leaves it whole.
        if self._video is not None:
            video, self._video = self._video, None
            try:
                video.close()  # every queued frame encoded, the file finished
            except EncoderError as exc:
                raise self._video_error(exc) from None
            done = self.out_dir / VIDEO_DONE
            os.replace(self._video_tmp, done)  # finished: recover puts it in place from here on
            _step_done("encoded")
            fsync_path(done)
            os.replace(done, self.out_dir / VIDEO_NAME)
            fsync_directory(self.out_dir)
            _step_done("video")
        committed = dict(zip(journal.names, journal.lengths))
        objects, tracks = (_read_prefix(self.out_dir / name, committed[name]) for name in (OBJECTS_NAME, TRACKS_NAME))
        objects, tracks = _sorted_outputs(objects, tracks)
        atomic_write_text(self.out_dir / TRACKS_NAME, tracks.decode())
        _step_done("tracks")
        atomic_write_text(self.out_dir / OBJECTS_NAME, objects.decode())
        _step_done("objects")
        if self._crops_dir is not None:
            sync_filesystem(self._crops_dir)  # the crops reach the disk before they take their final name
            replace_directory(self._crops_dir, self.out_dir / CROPS_NAME)
            _step_done("crops")
        atomic_write_text(self.out_dir / SUMMARY_NAME, json.dumps(summary, indent=2, sort_keys=False) + "\n")
        _step_done("summary")
        journal.remove()
        (self.out_dir / PENDING_SUMMARY).unlink(missing_ok=True)
        (self.out_dir / FAILURE_NAME).unlink(missing_ok=True)

    def _release(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._video is not None:
            self._video.abort()
            self._video = None
            # (only ours: a writer refused because another run holds the folder touches nothing)
            self._video_tmp.unlink(missing_ok=True)
        if self._journal is not None:
            self._journal.close_quietly()

    def abort(self, error: BaseException | None = None) -> None:
        """Stop after an error or an interruption: the rows committed so far are finished as a
        recovered run (summary.json with ``complete`` false and the error). If that fails too
        (the disk is still full) the folder is left for ``conveyor-qc recover``, and an
        OutputError ``error`` says so."""
        self._closed = True
        reason = str(error) if error is not None else "stopped"
        if self._journal is not None:
            # First, in the room kept for it: the clean-up below may fail too (the disk is still
            # full), and a later `recover` then tells this reason, not "killed".
            _record_failure(self.out_dir, reason)
        self._release()
        if self._journal is None:
            return
        try:
            recover_run(self.out_dir, reason=reason)
        except (OSError, RecoverError) as exc:
            if isinstance(error, WriteError):
                error.message += (
                    f"; `conveyor-qc recover {self.out_dir}` finishes the folder once it can be written ({exc})"
                )


# --- recovery ---------------------------------------------------------------------------


def _reserve_failure_record(out: Path) -> None:
    """``FAILURE_BYTES`` of zeros written and flushed at the start of a run: a reason is later
    written over them in place, which takes no new room on a full disk."""
    fd = os.open(out / FAILURE_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = memoryview(bytes(FAILURE_BYTES))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(out)


def _record_failure(out: Path, reason: str) -> None:
    """Write why the run failed over the room kept for it (best effort: nothing is raised)."""
    record = json.dumps({"reason": reason}).encode()
    if len(record) + 1 > FAILURE_BYTES:
        record = json.dumps({"reason": reason[: FAILURE_BYTES // 2] + "..."}).encode()
    try:
        fd = os.open(out / FAILURE_NAME, os.O_WRONLY)  # never created here: no room may be left
    except OSError:
        return
    try:
        os.pwrite(fd, record + b"\n", 0)
        os.fdatasync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _recorded_failure(out: Path) -> str | None:
    """The reason a failed run recorded (None: none, or not readable)."""
    try:
        data = (out / FAILURE_NAME).read_bytes()
        record = json.loads(data.split(b"\0", 1)[0] or b"null")
    except (OSError, ValueError):
        return None
    reason = record.get("reason") if isinstance(record, dict) else None
    return reason if isinstance(reason, str) and reason else None


def _finish_video(out: Path) -> None:
    """A video that its encoder finished (``VIDEO_DONE``) is flushed and renamed into place; the
    check of its boxes guards against a power cut that kept the rename but not the bytes. One
    not finished (``VIDEO_PARTIAL``: no index, cannot be played) is removed."""
    (out / VIDEO_PARTIAL).unlink(missing_ok=True)  # first, as it frees the most on a full disk
    done = out / VIDEO_DONE
    if not done.exists():
        return
    if whole_mp4(done):
        fsync_path(done)
        os.replace(done, out / VIDEO_NAME)
    else:
        done.unlink()
    fsync_directory(out)


def recover_run(out_dir: str | Path, reason: str = "killed") -> dict:
    """Finish the files of a run that was killed (or stopped by an error) in ``out_dir``: cut
    ``objects.csv`` and ``tracks.txt`` back to the last commit, sort them, put the crops of
    those objects in ``crops/`` (the others were of objects still in view), drop the
    unplayable partial video (a finished one is renamed into place) and write ``summary.json``
    (``complete`` false unless killed while closing, ``recovered`` true). ``reason`` is the
    reason a failed run recorded, if it did (a full disk whose clean-up failed too), else the one
    given. Safe to repeat after a kill of its own. Returns the summary."""
    out = Path(out_dir)
    journal_path = out / JOURNAL_NAME
    if not journal_path.exists():
        if not out.exists():
            raise RecoverError(f"run folder {out} does not exist")
        if not out.is_dir():
            raise RecoverError(f"{out} is a file, not a run folder")
        if (out / SUMMARY_NAME).exists():
            raise RecoverError(f"{out} holds a finished run (summary.json): nothing to recover")
        raise RecoverError(f"{out} holds no run to recover (no {JOURNAL_NAME})")
    try:
        state, lengths, _items = recover_journal(journal_path)
    except JournalBusy:
        raise RunBusy(f"a conveyor-qc run is still writing into {out}: stop it first") from None
    except JournalError as exc:
        raise RecoverError(str(exc)) from None
    if (out / SUMMARY_NAME).exists():  # killed after its last step: already complete
        journal_path.unlink()
        fsync_directory(out)
        (out / PENDING_SUMMARY).unlink(missing_ok=True)
        (out / FAILURE_NAME).unlink(missing_ok=True)
        return json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    reason = _recorded_failure(out) or reason
    files = dict(zip(state.files, lengths))
    _finish_video(out)
    objects, tracks = _sorted_outputs(
        _read_prefix(out / OBJECTS_NAME, files[OBJECTS_NAME]), _read_prefix(out / TRACKS_NAME, files[TRACKS_NAME])
    )
    rows = list(csv.DictReader(io.StringIO(objects.decode())))
    ids = {r["track_id"] for r in rows}

    # The crops of objects not committed (in view at the kill or the error) go before the sorted
    # files are written: on a full disk that is room for them.
    crops_written = 0
    partial = out / CROPS_PARTIAL
    if partial.is_dir():
        for folder in list(partial.iterdir()):
            if not (folder.is_dir() and folder.name in ids):
                shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink()
                continue
            for f in list(folder.iterdir()):
                if f.suffix not in CROP_SUFFIXES or f.stat().st_size == 0:  # a .tmp, or lost in a power cut
                    f.unlink()
    atomic_write_text(out / TRACKS_NAME, tracks.decode())
    atomic_write_text(out / OBJECTS_NAME, objects.decode())
    if partial.is_dir():
        sync_filesystem(partial)
        replace_directory(partial, out / CROPS_NAME)
    elif state.meta.get("crops") and not (out / CROPS_NAME).is_dir():
        (out / CROPS_NAME).mkdir()  # killed before its first crop: as a run with no object has
    if (out / CROPS_NAME).is_dir():
        crops_written = sum(1 for f in (out / CROPS_NAME).glob("*/*") if f.suffix in CROP_SUFFIXES)

    meta = state.meta
    labels = [r["label"] for r in rows]
    try:  # killed while closing: every object was written, and the summary was known
        pending = json.loads((out / PENDING_SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pending = None
    if isinstance(pending, dict) and pending.get("objects") == len(rows):
        summary = {
            **pending,
            "recovered": True,
            "reason": reason,
            "crops_written": crops_written,
            "recovered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "started": meta.get("started"),
        }
        if not (out / VIDEO_NAME).exists() and meta.get("video"):
            summary["video_lost"] = True
        atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
        journal_path.unlink()
        (out / PENDING_SUMMARY).unlink(missing_ok=True)
        (out / FAILURE_NAME).unlink(missing_ok=True)
        fsync_directory(out)
        return summary
    summary = {
        "source": meta.get("source"),
        "version": meta.get("version"),
        "objects": len(rows),
        "anomalies": labels.count("anomaly"),
        "normal": labels.count("normal"),
        "unknown": labels.count("unknown"),
        "width": meta.get("width"),
        "height": meta.get("height"),
        "video_fps": meta.get("video_fps"),
        "complete": False,
        "interrupted": True,
        "recovered": True,
        "reason": reason,
        "started": meta.get("started"),
        "recovered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "crops_written": crops_written,
        "config": meta.get("config"),
    }
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    journal_path.unlink()
    (out / PENDING_SUMMARY).unlink(missing_ok=True)
    (out / FAILURE_NAME).unlink(missing_ok=True)
    fsync_directory(out)
    return summary


def preserve_interrupted_run(out_dir: str | Path) -> Path | None:
    """Before a new run writes into ``out_dir``: a killed run's files there are recovered and
    moved into ``out_dir/interrupted-<its start time>/``, so a restart after a crash or a power
    cut loses nothing. Returns that folder, or None when there was none."""
    out = Path(out_dir)
    summary_path = out / SUMMARY_NAME
    if (out / JOURNAL_NAME).exists():
        recover_run(out)
    elif not summary_path.exists():
        return None
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(summary, dict) and summary.get("recovered")):
        return None
    stamp = str(summary.get("started") or "unknown").replace("-", "").replace(":", "")
    target = out / f"{INTERRUPTED_PREFIX}{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out / f"{INTERRUPTED_PREFIX}{stamp}-{n}"
    tmp = out / f".{INTERRUPTED_PREFIX}pending"  # kept as it is if a kill cut a move short
    tmp.mkdir(exist_ok=True)
    # summary.json moves last: until then a kill leaves the recovered run where it was.
    for name in (OBJECTS_NAME, TRACKS_NAME, CROPS_NAME, VIDEO_NAME, REJECTS_NAME, REPORT_NAME, SUMMARY_NAME):
        if (out / name).exists():
            (out / name).rename(tmp / name)
    fsync_directory(tmp)
    tmp.rename(target)
    fsync_directory(out)
    return target
