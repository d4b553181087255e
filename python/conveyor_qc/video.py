"""Video input: files, camera indices and stream URLs through one reader.

Decoding runs in a thread of its own (OpenCV releases the GIL while it
decodes), so it overlaps the core's work on the previous frame.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["VideoError", "VideoInfo", "VideoReader", "open_source"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class VideoError(ValueError):
    """The source cannot be opened or decoded. The message says why."""


@dataclass(frozen=True)
class VideoInfo:
    source: str
    width: int
    height: int
    fps: float
    #: Frames the container announces (0 for streams and cameras, or when unknown).
    frame_count: int
    is_file: bool


def _describe(source: str | int | os.PathLike) -> tuple[str | int, bool]:
    """Camera index, URL or file path; checks a file exists and is not empty."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return int(source), False
    if _URL.match(source):
        return source, False
    path = Path(source)
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if path.is_dir():
        raise VideoError(f"video path is a folder, not a file: {path}")
    if not os.access(path, os.R_OK):
        raise VideoError(f"video is not readable (permissions): {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"video file is empty (0 bytes): {path}")
    return str(path), True


class VideoReader:
    """Opens a source and yields BGR frames (uint8, HxWx3, C-contiguous).

    Opening reads the first frame, so a file that is not a video, or one
    truncated before its first frame, fails here, before any output exists.
    ``frames_read`` and ``ended_early`` tell, after iteration, whether a file
    gave fewer frames than it announced (a truncated or damaged file).
    """

    def __init__(self, source: str | int | os.PathLike, prefetch: int = 4):
        target, is_file = _describe(source)
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            what = "a video OpenCV can decode" if is_file else "a camera or stream that answers"
            raise VideoError(f"cannot open {source!r}: not {what}")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise VideoError(f"no frame could be decoded from {source!r} (damaged, truncated or not a video)")
        first = self._normalise(first)
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if is_file else 0
        self.info = VideoInfo(
            source=str(source),
            width=first.shape[1],
            height=first.shape[0],
            fps=fps if 0 < fps < 1000 else 30.0,
            frame_count=max(count, 0),
            is_file=is_file,
        )
        self._first: np.ndarray | None = first
        self._prefetch = max(1, prefetch)
        self.frames_read = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _normalise(frame: np.ndarray) -> np.ndarray:
        """Any decoded frame as 8-bit, 3-channel BGR, C-contiguous."""
        if frame.dtype != np.uint8:
            frame = cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        return np.ascontiguousarray(frame)

    @property
    def ended_early(self) -> bool:
        """True when a file gave clearly fewer frames than its header announced."""
        n = self.info.frame_count
        return self.info.is_file and n > 0 and self.frames_read < n - max(2, n // 100)

    def _decode(self, out: queue.Queue) -> None:
        try:
            while not self._stop.is_set():
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    break
                out.put(self._normalise(frame))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, never lost
            out.put(exc)
        finally:
            out.put(None)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is None:
            raise VideoError("a VideoReader can be iterated once")
        first, self._first = self._first, None
        self.frames_read = 1
        yield first
        frames: queue.Queue = queue.Queue(maxsize=self._prefetch)
        self._thread = threading.Thread(target=self._decode, args=(frames,), daemon=True, name="decoder")
        self._thread.start()
        try:
            while True:
                item = frames.get()
                if item is None:
                    break
                if isinstance(item, Exception):
                    raise VideoError(f"decoding failed after {self.frames_read} frames: {item}") from item
                self.frames_read += 1
                yield item
        finally:
            self._stop.set()
            while self._thread.is_alive():  # unblock a decoder waiting on a full queue
                try:
                    frames.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.05)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._cap.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(source: str | int | os.PathLike) -> VideoReader:
    return VideoReader(source)
