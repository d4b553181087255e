"""The annotated video's encoder, on a thread of its own.

Encoding a 1280x720 frame as MPEG-4 Part 2 (``mp4v``, the codec every OpenCV
wheel carries) costs about 6 ms of CPU: more than decoding it (3 ms) and more
than the core's work on it. OpenCV's ``VideoWriter.write`` releases the GIL,
so on a thread of its own it runs beside the main loop (core, crops, model) on
the machine's other core instead of after it, every frame.

``scale`` shrinks the annotated video (``output.video_scale``): encoding cost
goes with the pixel count, so 0.5 costs a quarter.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.errors import ConveyorQCError

__all__ = ["EncoderError", "VideoEncoder"]

#: Frames waiting for the encoder. Enough to ride out a slow frame; a full
#: queue makes the main loop wait, so memory stays bounded (a few frames).
QUEUE_FRAMES = 4


class EncoderError(ConveyorQCError, OSError):
    """The video could not be opened or written. The message names the file."""


class VideoEncoder:
    """``write(frame)`` hands a BGR frame to the encoding thread; ``close()`` waits
    for every frame to be encoded and closes the file. A failure on the thread
    is raised by the next ``write`` or by ``close``."""

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int], scale: float = 1.0):
        if not 0 < scale <= 1:
            raise ValueError(f"video scale must be in (0, 1], got {scale}")
        self.path = Path(path)
        w, h = frame_size
        # Even sizes: the MPEG-4 encoder works on 2x2 chroma blocks.
        self.size = (max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2))
        self._resize = self.size != (w, h)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), fps, self.size)
        if not self._writer.isOpened():
            raise EncoderError(f"cannot encode video into {self.path}")
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name="video-encoder", daemon=True)
        self._thread.start()

    def canvas(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` at the video's size: a new array to draw on (the frame itself is not changed
        when the size is smaller; it is returned as is at full size)."""
        if not self._resize:
            return frame
        return cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)

    def write(self, frame: np.ndarray) -> None:
        """Queue a frame. The frame must not be changed afterwards (the loop's frames are new
        arrays each time, so this costs no copy)."""
        self._raise_error()
        if frame.shape[1::-1] != self.size:
            frame = self.canvas(frame)
        self._queue.put(frame)

    def close(self) -> None:
        """Encode what is queued, then close the file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._writer.release()
        self._raise_error()

    def abort(self) -> None:
        """Stop without waiting for queued frames (the file is left incomplete)."""
        if self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put(None)
            self._thread.join()
        self._writer.release()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise EncoderError(f"encoding {self.path} failed: {error}") from error

    def _encode(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is not None:
                continue  # drain: the main loop sees the error on its next write
            try:
                self._writer.write(frame)
            except BaseException as exc:  # noqa: BLE001  cv2.error: handed to the main thread
                self._error = exc
