"""The annotated video's encoder, on a thread of its own.

``annotated.mp4`` is H.264 (``output.video_codec = "h264"``, the default): yuv420p, tagged
BT.601, its index (``moov``) at the start of the file (``+faststart``), so that a browser plays
it in a ``<video>`` tag, and starts before it has the whole file. It is encoded by libx264 from
PyAV (``av``: its wheels carry FFmpeg with libx264). ``"mp4v"`` (MPEG-4 Part 2 from OpenCV's
``VideoWriter``, the codec every OpenCV wheel carries; browsers do not play it) is the other
choice, and the fallback, told once a process on the ``conveyor_qc.run.encoder`` logger, when
PyAV or its libx264 is missing.

What it costs, on this 2-core machine (shared, so each figure is a range or a median of
interleaved passes). The encoder alone, 600 frames of a 20 s 1280x720 clip of the cookies preset
(colour conversion included; CPU time a frame, 3 passes; PSNR against the frames encoded):

=========================  ====================  ===================  =====================
settings                   640x360 (default)     1280x720 (scale 1)   640x360 file, PSNR
=========================  ====================  ===================  =====================
mp4v (cv2.VideoWriter)     1.2-1.5 ms            8-10 ms              2.22 MB, 36.2 dB
x264 ultrafast, CRF 23     1.3-1.8 ms            7-8 ms               1.37 MB, 37.2 dB
x264 ultrafast, CRF 26     1.1-1.6 ms                                 0.78 MB, 36.4 dB
x264 superfast, CRF 23     2.5-2.6 ms            11-16 ms             1.29 MB, 36.8 dB
x264 veryfast, CRF 23      3.4-4.6 ms            14-22 ms             0.60 MB, 36.2 dB
=========================  ====================  ===================  =====================

In ``conveyor-qc run`` on that clip (annotated frames at half size; runs of each codec
interleaved): the encoding thread took 2.0 ms of CPU a frame in H.264 against 2.3 ms in mp4v
(medians of 7 runs), the whole process 7.0 s of CPU against 7.3 s (3 runs), and annotated.mp4
was 2.78 MB against 4.24 MB. ``make bench``'s rows
with crops, video and model (``run+crops+video+model`` and ``...video(mp4v)...``): 0.20 against
0.18 of decoding speed (the median of 9 rounds each).

Hence :data:`H264_OPTIONS`: ``ultrafast`` costs what ``mp4v`` cost (less at full size), in a
file 35-40 % smaller and better (+1 dB); ``veryfast`` would halve the file again but take 3x the
CPU from a 2-core line-side box that decodes, tracks, crops and judges beside it. CRF 23 (x264's
default) rather than 26: in the run, 26 made a file a third smaller (1.88 MB) whose labels and
boxes read as well, but it smooths the products' surface (chips, cracks, spots: what a reviewer
zooms in on), and 23 is already a third smaller than mp4v. A keyframe every 2 s lets a browser
seek and scrub within 2 s at once (every 10 s would save 18 % of the size). One x264 thread: no
extra threads competing with the frame loop on 2 cores; x264's own threads saved nothing
measurable here (and took up to 10 % more CPU).

PyAV releases the GIL where the time goes (``avcodec_send_frame``, which runs x264, and the
muxer's writes), as OpenCV's ``cvtColor`` (BGR to I420: a third of the CPU of PyAV's own
swscale conversion, 0.2 against 0.65 ms a 640x360 frame, and 0.7 dB better) and
``VideoWriter.write`` do: on its thread, encoding runs beside the main loop on the machine's
other core instead of after it. The thread holds the GIL only to wrap the frame and the packets
(Python objects, microseconds): in the runs above the main loop waited no longer to queue a
frame than with mp4v.

``+faststart`` moves the index to the front when the file is closed: FFmpeg rewrites the file in
place (reading it back by name, hence the ``file:`` URL), inside :meth:`VideoEncoder.close`, so
the file under its temporary name (run/outputs.py renames it only after ``close``) is complete
or is no ``annotated.mp4`` at all. The rewrite reads and writes the whole file once (500 MB for
an hour of the cookies clip at the default settings: seconds).

``scale`` shrinks the annotated video (``output.video_scale``, capped at
``output.video_max_pixels``): encoding cost goes with the pixel count, so 0.5 costs a quarter.

The boxes are drawn (``write(frame, overlay)``), and a full-size frame shrunk, on the encoder's
thread too: at 1080p that was 15 % of the main loop's time (issue 22), which the loop over frames
now spends on the next frame. By default the loop hands over the core's own downscaled frame
instead (``Pipeline.downscaled``: the video is at most the core's size), so the full frame is not
read again once it has left the cache (a third of this thread's CPU at 1080p).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.errors import ConveyorQCError

__all__ = ["CODECS", "DEFAULT_CODEC", "EncoderError", "VideoEncoder", "frame_rate", "h264_missing"]

#: ``output.video_codec``'s choices: H.264 (browsers play it) or MPEG-4 Part 2 (OpenCV's own).
CODECS = ("h264", "mp4v")
#: The codec of a VideoEncoder not told one.
DEFAULT_CODEC = "h264"
#: The FFmpeg encoder of "h264": libx264, whose preset and CRF the options below are.
H264_ENCODER = "libx264"
#: libx264's settings (module docstring: measured against mp4v and the slower presets).
H264_OPTIONS = {"preset": "ultrafast", "crf": "23"}
#: A keyframe this often (seconds of video): a browser seeks to within this at once.
KEYFRAME_SECONDS = 2.0
#: x264's threads: one, the encoder's own (module docstring).
H264_THREADS = 1

#: Frames waiting for the encoder. Enough to ride out a slow frame; a full
#: queue makes the main loop wait, so memory stays bounded (a few frames).
QUEUE_FRAMES = 4

#: Draws on a frame of the video, in place (the boxes, numbers and counts of run/outputs.py).
Overlay = Callable[[np.ndarray], None]

log = logging.getLogger(__name__)
#: Fallback reasons already told in this process (each is told once).
_told: set[str] = set()


class EncoderError(ConveyorQCError, OSError):
    """The video could not be opened or written. The message names the file."""


def h264_missing() -> str | None:
    """Why H.264 cannot be written here (PyAV or its libx264 missing), or None when it can."""
    try:
        import av
    except ImportError as exc:
        return f"PyAV is not installed ({exc})"
    if H264_ENCODER not in av.codecs_available:
        return f"PyAV {av.__version__}'s FFmpeg has no {H264_ENCODER} encoder"
    return None


def frame_rate(fps: float) -> Fraction:
    """``fps`` as an exact fraction, for the video's time base: the NTSC rates (29.97, 59.94,
    23.976: n x 1000/1001) exactly, any other to within 1/1001 of a frame a second."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"frame rate must be a positive number, got {fps}")
    whole = round(fps)
    ntsc = round(fps * 1.001)
    if abs(fps - whole) > 0.005 and ntsc > 0 and abs(fps - ntsc * 1000 / 1001) < 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def _tell_fallback(reason: str) -> None:
    if reason in _told:
        return
    _told.add(reason)
    log.warning(
        "warning: %s: annotated.mp4 is written as MPEG-4 Part 2 (mp4v), which browsers do not play; "
        "`pip install av` for H.264",
        reason,
    )


class _Mp4v:
    """MPEG-4 Part 2 from OpenCV's VideoWriter (BGR frames in, its own colour conversion)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise EncoderError(f"cannot encode video into {path}")

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()

    abort = close


class _H264:
    """H.264 (libx264) in MP4 through PyAV, yuv420p, faststart."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        import av

        self._container: Any = None
        self._picture = av.VideoFrame
        try:
            rate = frame_rate(fps)
            # "file:": FFmpeg would take a path like "run:1/x.mp4" for a protocol "run", and
            # faststart reopens the file by this name to rewrite it.
            self._container = av.open(
                "file:" + os.path.abspath(path), "w", format="mp4", options={"movflags": "+faststart"}
            )
            stream = self._container.add_stream(H264_ENCODER, rate=rate, options=dict(H264_OPTIONS))
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            ctx = stream.codec_context
            ctx.gop_size = max(1, round(float(rate) * KEYFRAME_SECONDS))
            ctx.thread_count = H264_THREADS
            # BT.601, limited range: what OpenCV's BGR-to-I420 conversion makes. Untagged, a
            # browser may take BT.709 and shift the colours (the verdicts' colours are read).
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 6  # SMPTE 170M (BT.601)
            ctx.color_range = 1  # MPEG (limited)
            self._stream = stream
            self._container.start_encoding()  # opens the file and the encoder: errors now, not at frame 1
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._discard()
            raise EncoderError(f"cannot encode video into {path}: {exc}") from None
        self._frames = 0

    def write(self, frame: np.ndarray) -> None:
        # OpenCV's conversion (releases the GIL), wrapped without a copy (x264 copies it in)...
        yuv = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), np.uint8)
        picture = self._picture.from_numpy_buffer(yuv, format="yuv420p")
        if picture.height != frame.shape[0]:
            # ...where PyAV can: its from_numpy_buffer takes heights in multiples of 4 only (it
            # made 88 rows of a 90-row frame), from_ndarray (a copy) any even height.
            picture = self._picture.from_ndarray(yuv, format="yuv420p")
        picture.pts = self._frames
        self._frames += 1
        self._container.mux(self._stream.encode(picture))

    def close(self) -> None:
        """Flush the encoder, write the index (and move it to the front)."""
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            container, self._container = self._container, None
            container.close()

    def abort(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(Exception):  # the file is left incomplete anyway
                container.close()


class VideoEncoder:
    """``write(frame)`` hands a BGR frame to the encoding thread; ``close()`` waits
    for every frame to be encoded and closes the file. A failure on the thread
    is raised by the next ``write`` or by ``close``.

    ``codec`` is one of :data:`CODECS` (None: :data:`DEFAULT_CODEC`); "h264" without PyAV or
    its libx264 falls back to "mp4v", told once (:func:`h264_missing` says why). ``self.codec``
    is the codec written."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        frame_size: tuple[int, int],
        scale: float = 1.0,
        codec: str | None = None,
    ):
        if not 0 < scale <= 1:
            raise ValueError(f"video scale must be in (0, 1], got {scale}")
        codec = DEFAULT_CODEC if codec is None else codec
        if codec not in CODECS:
            raise ValueError(f"video codec must be one of {', '.join(CODECS)}, got {codec!r}")
        self.path = Path(path)
        w, h = frame_size
        # Even sizes: both encoders work on 2x2 chroma blocks (yuv420p).
        self.size = (max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2))
        self._resize = self.size != (w, h)
        if codec == "h264":
            missing = h264_missing()
            if missing is not None:
                _tell_fallback(missing)
                codec = "mp4v"
        self.codec = codec
        self._sink: _H264 | _Mp4v
        if codec == "h264":
            self._sink = _H264(self.path, fps, self.size)
        else:
            self._sink = _Mp4v(self.path, fps, self.size)
        self._queue: queue.Queue[tuple[np.ndarray, Overlay | None] | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name="video-encoder", daemon=True)
        self._thread.start()

    def canvas(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` at the video's size: a new array to draw on (the frame itself is not changed
        when the size is smaller; it is returned as is at full size, or when it is at the video's
        size already)."""
        if not self._resize or frame.shape[1::-1] == self.size:
            return frame
        # INTER_AREA averages whole pixels; by a factor under 2 (the core's half-size frame to a
        # third of the input) it takes a general path ~4x slower than bilinear, whose samples are
        # then under 2 px apart and miss nothing.
        factor = frame.shape[1] / self.size[0]
        interpolation = cv2.INTER_LINEAR if factor < 2 and not factor.is_integer() else cv2.INTER_AREA
        return cv2.resize(frame, self.size, interpolation=interpolation)

    def write(self, frame: np.ndarray, overlay: Overlay | None = None) -> None:
        """Queue a frame, and what to draw on it at the video's size (``overlay(canvas)``, on the
        encoder's thread). A frame at the input's size is never drawn on; one already at a smaller
        video size (the core's downscaled frame) is given away and drawn on, uncopied. The frame
        must not be changed afterwards (the loop's frames are new arrays each time, so this costs
        no copy)."""
        self._raise_error()
        self._queue.put((frame, overlay))

    def close(self) -> None:
        """Encode what is queued, then close the file (for H.264, with its index moved to the
        front: the file is complete when this returns)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        try:
            self._sink.close()
        except Exception as exc:  # noqa: BLE001  av.FFmpegError, OSError: named with the file below
            if self._error is None:
                self._error = exc
            self._sink.abort()
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
        self._sink.abort()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise EncoderError(f"encoding {self.path} failed: {error}") from error

    def _encode(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: the main loop sees the error on its next write
            frame, overlay = item
            try:
                if self._resize:
                    frame = self.canvas(frame)
                elif overlay is not None:
                    frame = frame.copy()  # at full size: the caller's frame is never drawn on
                if overlay is not None:
                    overlay(frame)
                self._sink.write(frame)
            except BaseException as exc:  # noqa: BLE001  cv2.error, av.FFmpegError: handed to the main thread
                self._error = exc
