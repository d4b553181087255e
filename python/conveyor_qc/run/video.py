"""Video input: files, image sequences, camera indices and stream URLs through one reader.

Decoding runs in a thread of its own (OpenCV releases the GIL while it
decodes), so it overlaps the core's work on the previous frame.

A live source (a camera index or a stream URL) is watched, not just read: when
it stops giving frames the reader reconnects with bounded exponential backoff
(``ReconnectPolicy``: at once, then 0.5 s doubling to 8 s between attempts)
until the source answers again or ``give_up_after`` seconds have passed since
it was lost. A file or an image sequence never reconnects: its end is the end.
``frames_and_events()`` tells the caller about every loss and reconnection
(``SourceLost``, ``Reconnecting``, ``Reconnected``), in order with the frames,
so the caller can decide what a gap means for the objects in view (docs/streams.md).
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.mp4 import appended_at

__all__ = [
    "ReconnectPolicy",
    "Reconnected",
    "Reconnecting",
    "SourceLost",
    "StreamEvent",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "Waiting",
    "check_frame_size",
    "decoder_threads",
    "open_source",
    "quiet_decoder_logs",
    "quiet_opencv_log",
    "to_bgr8",
    "usable_cores",
]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: printf-style frame number in an image sequence: img_%04d.png, frame%d.jpg
_SEQUENCE = re.compile(r"%0?\d*d")

#: A stream URL that answers nothing for this long while opening, or sends no
#: frame for this long while reading, counts as lost (FFmpeg's own default is 30 s).
STREAM_OPEN_TIMEOUT_S = 10.0
STREAM_READ_TIMEOUT_S = 10.0
#: Cores FFmpeg's decoder leaves to the rest of a run: the loop over frames, and the encoder,
#: judge and writer threads beside it (see decoder_threads).
CORES_LEFT_TO_THE_RUN = 2


class VideoError(ConveyorQCError, ValueError):
    """The source cannot be opened or decoded. The message says why."""


@dataclass(frozen=True)
class VideoInfo:
    source: str
    width: int
    height: int
    fps: float
    #: Frames the container announces (0 for streams and cameras, or when unknown).
    frame_count: int
    #: A file or an image sequence: read once to its end, never reconnected.
    is_file: bool
    #: "file", "sequence" (an image sequence pattern), "stream" (a live URL), "remote file" (a URL
    #: whose container announces its length, e.g. http://host/clip.mp4) or "camera" (an index).
    kind: str = "file"

    @property
    def live(self) -> bool:
        return self.kind in ("stream", "camera")


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source is reconnected: the first attempt at once, then waits of
    ``first_wait`` doubling up to ``max_wait`` seconds, until ``give_up_after`` seconds
    have passed since the source was lost (``math.inf``: never give up; 0: never reconnect)."""

    give_up_after: float = 60.0
    first_wait: float = 0.5
    max_wait: float = 8.0

    def __post_init__(self):
        for name in ("give_up_after", "first_wait", "max_wait"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f"reconnect {name} must be a number of seconds >= 0, got {value!r}")
        if self.first_wait > self.max_wait:
            raise ValueError(f"reconnect first_wait ({self.first_wait}) is larger than max_wait ({self.max_wait})")

    def waits(self) -> Iterator[float]:
        """Seconds to wait before each attempt: 0, first_wait, 2 * first_wait, ... max_wait, max_wait, ..."""
        yield 0.0
        wait = self.first_wait
        while True:
            yield wait
            wait = min(wait * 2, self.max_wait)


# --- events of a live source, in order with its frames --------------------------------------------


@dataclass(frozen=True)
class SourceLost:
    """The live source stopped giving frames after ``frames`` frames."""

    frames: int
    at: float  # time.monotonic() of the last frame received


@dataclass(frozen=True)
class Reconnecting:
    """Reconnection attempt ``attempt`` failed; the next one follows in ``next_wait`` seconds."""

    attempt: int
    lost_seconds: float  # since the source was lost
    next_wait: float


@dataclass(frozen=True)
class Reconnected:
    """The source answers again: the next frame follows a gap of ``gap_seconds`` (wall
    time from the last frame before the loss to the first after it)."""

    frames: int  # frames received before the gap
    gap_seconds: float
    attempts: int


@dataclass(frozen=True)
class Waiting:
    """No frame and no event for ``seconds``: lets the caller keep time (--duration) and
    show progress while a live source is silent."""

    seconds: float


StreamEvent = SourceLost | Reconnecting | Reconnected | Waiting


@dataclass(frozen=True)
class _Stop:
    """The decoder stopped before the source's end: ``reason`` says why."""

    reason: str


_END = object()  # the decoder reached the source's end


# --- what OpenCV cannot see in a file ---------------------------------------------------------------

#: Decoders that take in a new sequence header (a new frame size) even when told to decode no
#: picture at all (``skip_frame = ALL``): watching their sizes costs no decoding. The others
#: (H.264 and HEVC among them) decode their keyframes, where a new size can begin.
_SIZE_WITHOUT_DECODING = frozenset({"mpeg4", "mpeg1video", "mpeg2video", "mjpeg", "vp8", "vp9"})


class _SizeWatch:
    """Where a file's frame size changes, found with PyAV beside OpenCV's decoding.

    OpenCV's FFmpeg reader scales every frame to the size of the first (the size the container
    announces) without a word, and its ``CAP_PROP_FRAME_WIDTH``/``HEIGHT`` keep that size too,
    so a file joined from two encodings of different sizes (FFmpeg's concat demuxer, a remux)
    reads as one video. A size can change only at a keyframe, where the new size's headers are:
    a thread walks the file's packets ahead of the reader and, at each keyframe, reads the
    decoder's frame size (the packets alone for the decoders of ``_SIZE_WITHOUT_DECODING``, the
    keyframes decoded for the others; a 60 s 1280x720 MPEG-4 clip takes 0.1 s). Frames are
    counted as packets, in the order the reader sees them.

    Without PyAV (``av``), or on a file PyAV cannot read, it finds nothing and never holds the
    reader up."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._cond = threading.Condition()
        self._scanned = 0  # frames whose size is known
        self._done = False
        self._stop = threading.Event()
        #: (frames before the change, new width, new height, first width, first height)
        self.change: tuple[int, int, int, int, int] | None = None
        self._thread = threading.Thread(target=self._scan, daemon=True, name="size-watch")
        self._thread.start()

    def _scan(self) -> None:
        try:
            import av
        except ImportError:
            self._finish()
            return
        try:
            with av.open(self._path) as container:
                stream = container.streams.best("video")
                if not isinstance(stream, av.VideoStream):
                    return
                cc = stream.codec_context
                cc.thread_count = 1  # a thread beside the run's: one core's share at most
                cc.thread_type = "NONE"
                cc.skip_frame = "ALL" if cc.name in _SIZE_WITHOUT_DECODING else "NONKEY"
                # The size the container announces (what OpenCV scales every frame to, before any
                # rotation), else the first keyframe's.
                first: tuple[int, int] | None = (cc.width, cc.height) if min(cc.width, cc.height) > 0 else None
                # A new size seen at one keyframe, as (frames before it, size): it counts once the
                # next keyframe has it too, or none follows (a damaged header is one keyframe's).
                pending: tuple[int, tuple[int, int]] | None = None
                frames = 0
                for packet in container.demux(stream):
                    if self._stop.is_set():
                        return
                    if packet.size == 0 or getattr(packet, "is_discard", False):
                        continue  # the demuxer's flush packet; frames an edit list drops (never shown)
                    if packet.is_keyframe:
                        with contextlib.suppress(av.error.FFmpegError):  # a damaged packet: not ours to tell
                            cc.decode(packet)
                        size = (cc.width, cc.height)
                        if first is None:
                            first = size
                        elif pending is not None and size == pending[1]:
                            self._changed(pending, first)
                            return
                        elif size != first and min(size) > 0:
                            pending = (frames, size)
                        else:
                            pending = None
                    frames += 1
                    if frames % 8 == 0:
                        with self._cond:
                            self._scanned = frames if pending is None else pending[0]
                            self._cond.notify_all()
                if pending is not None and first is not None:
                    self._changed(pending, first)
        except Exception:  # noqa: BLE001 - a file PyAV cannot read: OpenCV's reading says what is wrong
            pass
        finally:
            self._finish()

    def _changed(self, pending: tuple[int, tuple[int, int]], first: tuple[int, int]) -> None:
        frames, (w, h) = pending
        self.change = (frames, w, h, first[0], first[1])

    def _finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def changed_by(self, frame_number: int, stop: threading.Event) -> tuple[int, int, int, int, int] | None:
        """The change, if frame ``frame_number`` (1-based) is of the new size; waits until the
        watch has seen that far (or ``stop`` is set)."""
        with self._cond:
            while not self._done and self._scanned < frame_number and not stop.is_set():
                self._cond.wait(0.1)
        change = self.change
        return change if change is not None and change[0] < frame_number else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class _QuietLog:
    """The state of :func:`quiet_opencv_log`'s blocks, which may overlap across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0  # blocks open
        self.level_before: int | None = None  # OpenCV's log level when the first of them began


_quiet = _QuietLog()


@contextlib.contextmanager
def quiet_opencv_log() -> Iterator[None]:
    """OpenCV's own log silenced for the block, and its level before restored after: around
    calls that probe an input whose problems the caller reports itself in one line (OpenCV's
    C++ code writes its ``[ WARN:0@...]`` lines to file descriptor 2, past ``sys.stderr``).
    Blocks of several threads may overlap: the level is restored when the last one ends.
    FFmpeg's own lines are not OpenCV's log: :func:`quiet_decoder_logs` silences those."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:  # an OpenCV build without the logging utilities
        yield
        return
    with _quiet.lock:
        if _quiet.depth == 0:
            _quiet.level_before = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _quiet.depth += 1
    try:
        yield
    finally:
        with _quiet.lock:
            _quiet.depth -= 1
            if _quiet.depth == 0 and _quiet.level_before is not None:
                logging.setLogLevel(_quiet.level_before)


def quiet_decoder_logs() -> None:
    """Silence FFmpeg's and OpenCV's own warnings on stderr (a damaged file makes FFmpeg
    print a line per bad packet): the reader reports every problem itself, in one line.
    Keeps a level the user set in OPENCV_FFMPEG_LOGLEVEL. Call before the first open: OpenCV
    reads that variable once, when it first opens a file or stream with FFmpeg."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    with contextlib.suppress(AttributeError), _quiet.lock:  # an OpenCV build without the logging utilities
        if _quiet.depth:  # inside a quiet_opencv_log block: silent after it too
            _quiet.level_before = cv2.utils.logging.LOG_LEVEL_SILENT
        else:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _describe(source: str | int | os.PathLike) -> tuple[str | int, str]:
    """Camera index, URL, image sequence pattern or file path, and its kind; checks a
    file exists and is not empty, and that a sequence pattern matches a file."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, bool):
        raise VideoError(f"not a video source: {source!r}")
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return int(source), "camera"
    if not isinstance(source, str) or not source:
        raise VideoError(f"not a video source: {source!r}")
    if _URL.match(source):
        return source, "stream"
    path = Path(source)
    if not path.exists() and _SEQUENCE.search(path.name):
        if not path.parent.is_dir():
            raise VideoError(f"image sequence folder not found: {path.parent}")
        matches = glob.glob(str(path.parent / glob.escape(_SEQUENCE.sub("\0", path.name)).replace("\0", "*")))
        if not matches:
            raise VideoError(f"no image matches the sequence pattern {path}")
        return str(path), "sequence"
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if path.is_dir():
        raise VideoError(f"video path is a folder, not a file: {path}")
    if not os.access(path, os.R_OK):
        raise VideoError(f"video is not readable (permissions): {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"video file is empty (0 bytes): {path}")
    return str(path), "file"


def _sequence_files(pattern: str) -> dict[int, str]:
    """The files of an image sequence pattern (``img_%04d.png``), by their number."""
    path = Path(pattern)
    number = _SEQUENCE.search(path.name)
    assert number is not None, "called only for a name that is a sequence pattern"
    prefix, suffix = path.name[: number.start()], path.name[number.end() :]
    named = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
    folder = path.parent
    files = {}
    for name in os.listdir(folder):
        match = named.fullmatch(name)
        if match and prefix + number.group(0) % int(match.group(1)) + suffix == name:
            files[int(match.group(1))] = str(folder / name)
    return files


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; the machine's count elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def decoder_threads() -> int:
    """FFmpeg's decoding threads for a file or a stream: the cores this process may use, less
    :data:`CORES_LEFT_TO_THE_RUN`, and at least one.

    The reader decodes on a thread of its own, beside the loop over frames, so one decoding
    thread already overlaps the core's work. FFmpeg's frame threads (OpenCV asks for one a core)
    pay only when decoding is what the run waits for; when every core is busy they cost CPU to
    hand frames between them. On this 2-core machine (issue 22), the 1080p60 bench clip: one
    thread decodes it in 2.53-2.59 ms of CPU a frame, two in 2.70-2.91; the product (crops, video,
    model) went from 0.454-0.456 to 0.470-0.477 of decode-only (medians of 4 rounds, twice); runs
    without outputs and the 720p clip moved within the noise (0.64-0.69 either way)."""
    return max(1, usable_cores() - CORES_LEFT_TO_THE_RUN)


def _open_capture(target: str | int, kind: str) -> cv2.VideoCapture:
    threads = [cv2.CAP_PROP_N_THREADS, decoder_threads()]
    if kind == "stream":
        # FFmpeg with our timeouts, so a silent server counts as lost instead of hanging the run.
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(STREAM_OPEN_TIMEOUT_S * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(STREAM_READ_TIMEOUT_S * 1000),
        ]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params + threads)
    if kind == "sequence":
        # OpenCV's image-sequence reader: every image as it is stored (grey, 16-bit, 4 channels
        # are all made BGR by to_bgr8), and it stops at the first image missing or unreadable.
        return cv2.VideoCapture(target, cv2.CAP_IMAGES)
    if kind == "file" and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        # FFmpeg alone: when it cannot open a file, OpenCV's other readers would try next, and
        # its own AVI parser prints the damaged file's bytes to stderr.
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, threads)
    return cv2.VideoCapture(target)


def to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any decoded frame as 8-bit, 3-channel BGR, C-contiguous.

    16-bit frames keep their top 8 bits and float frames are taken as 0..1: a fixed
    scale, so the belt looks the same on every frame (a per-frame stretch would make
    its brightness follow whatever is on it). Grey becomes BGR, BGRA drops alpha."""
    if frame.dtype == np.uint8:
        pass
    elif frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype.kind == "f":
        frame = np.clip(np.nan_to_num(frame) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif frame.dtype in (np.int8, np.int16):
        # signed: OpenCV's CV_8S / CV_16S; the upper half of the range
        bits = frame.dtype.itemsize * 8
        frame = (np.clip(frame.astype(np.int32), 0, None) >> (bits - 9)).astype(np.uint8)
    else:
        raise VideoError(f"frames of type {frame.dtype} are not supported (8- or 16-bit, or float, expected)")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif not (frame.ndim == 3 and frame.shape[2] == 3):
        raise VideoError(f"frames of shape {frame.shape} are not images (1, 3 or 4 channels expected)")
    return np.ascontiguousarray(frame)


def check_frame_size(width: int, height: int, downscale: float, video: bool = False) -> None:
    """Refuse frames the core cannot work on: downscaled by ``track.downscale`` (R) they
    must keep at least one pixel each way (OpenCV rounds half to even, as round() does);
    the core's resize would otherwise fail with an OpenCV assertion. With ``video`` (the
    annotated MPEG-4 video), at least 2x2: its encoder refuses a one-pixel side."""
    small = (round(width * downscale), round(height * downscale))
    if min(small) < 1:
        raise VideoError(
            f"frames of {width}x{height} pixels are too small: track.downscale = {downscale:g} makes them "
            f"{small[0]}x{small[1]}; use larger frames or --set track.downscale=1"
        )
    if video and min(width, height) < 2:
        raise VideoError(
            f"frames of {width}x{height} pixels are too small for annotated.mp4 (MPEG-4 needs "
            "2x2 at least); use --no-video"
        )


class _FramePool:
    """The decoder's frame buffers, each reused once nothing but the pool holds it.

    A new array for every frame, allocated on the decoder's thread and freed on the loop's, is
    handed back to the system by the allocator and faulted in afresh, page by zeroed page: at
    1080p a tenth of decoding's CPU. The consumer may keep a frame (or a view of it) as long as it
    likes: a buffer it still holds has a reference more than the pool's own, and is not reused."""

    #: References to a buffer only the pool holds, as sys.getrefcount sees it in take(): the
    #: pool's list, the loop's name and getrefcount's own argument.
    _ONLY_OURS = 3

    def __init__(self, size: int):
        self._buffers: list[np.ndarray] = []
        self._size = size

    def take(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A free buffer of ``shape`` to decode into, or None (the decoder makes a new one)."""
        for buffer in self._buffers:
            if sys.getrefcount(buffer) == self._ONLY_OURS and buffer.shape == shape:
                return buffer
        return None

    def keep(self, frame: np.ndarray) -> None:
        """Hold a newly made frame for reuse (up to the pool's size)."""
        if len(self._buffers) < self._size and frame.flags.owndata and frame.flags.c_contiguous:
            self._buffers.append(frame)


class VideoReader:
    """Opens a source and yields BGR frames (uint8, HxWx3, C-contiguous).

    Opening reads the first frame, so a file that is not a video, or one
    truncated before its first frame, fails here, before any output exists;
    so does a camera or stream that does not answer (reconnecting starts only
    once a live source has given frames). After iteration, ``stop_reason``
    says why the input ended before it should (None: it did not): a file
    shorter than its header announced, a frame of another size (damaged
    file, or a stream back at another size), a live source lost for longer
    than the reconnect policy allows. ``ended_early`` is ``stop_reason is not None``.

    Opening (and each reconnection attempt) keeps OpenCV's own warnings off stderr: the
    error says what went wrong, in one line. FFmpeg's own lines (``moov atom not found``)
    are silenced by :func:`quiet_decoder_logs`, which the command line calls first.
    """

    def __init__(self, source: str | int | os.PathLike, prefetch: int = 4, reconnect: ReconnectPolicy | None = None):
        target, kind = _describe(source)
        self._target = target
        self._reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        first: np.ndarray | None = None
        with quiet_opencv_log():  # OpenCV's warnings about a source it cannot open: said below in one line
            self._cap = _open_capture(target, kind)
            opened = self._cap.isOpened()
            if opened:
                try:
                    ok, raw = self._cap.read()
                    first = to_bgr8(raw) if ok and raw is not None else None
                except (cv2.error, VideoError) as exc:
                    self._cap.release()
                    raise VideoError(f"the first frame of {source!r} cannot be read: {exc}") from None
        if not opened:
            self._cap.release()
            what = {
                "file": "a video OpenCV can decode (another kind of file, or damaged or truncated)",
                "sequence": "an image sequence OpenCV can read",
                "stream": "a stream that answers",
                "camera": "a camera that answers",
            }[kind]
            raise VideoError(f"cannot open {source!r}: not {what}")
        if first is None:
            self._cap.release()
            raise VideoError(f"no frame could be decoded from {source!r} (damaged, truncated or not a video)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) if kind != "camera" else 0
        count = int(count) if math.isfinite(count) and 0 < count < 2**31 else 0
        if kind == "stream" and count:
            # A URL whose container announces its length is a video file served over the network
            # (http://host/clip.mp4), not a live stream: read to its end, never reopened (a server
            # would serve it again from the start).
            kind = "remote file"
        self.info = VideoInfo(
            source=str(source),
            width=first.shape[1],
            height=first.shape[0],
            fps=fps if 0 < fps < 1000 else 30.0,
            frame_count=count,
            is_file=kind in ("file", "sequence", "remote file"),
            kind=kind,
        )
        self._first: np.ndarray | None = first
        self._prefetch = max(1, prefetch)
        self.frames_read = 0
        #: Reconnections that succeeded, and every gap as (frames before it, seconds).
        self.reconnects = 0
        self.gaps: list[tuple[int, float]] = []
        self._stop_reason: str | None = None
        self._at_end = False  # the decoder reached the source's end (or gave up on it)
        self._appended_at: int | None = None  # a second MP4 appended to the file: where it starts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what happened ----------------------------------------------------------------------------

    @property
    def stop_reason(self) -> str | None:
        """Why the input ended before it should, in words; None if it did not."""
        if self._stop_reason is not None:
            return self._stop_reason
        if not self._at_end:
            return None
        if self.info.kind == "sequence":
            # OpenCV ends a sequence at its first unreadable image without a word: name it.
            files = _sequence_files(str(self._target))
            unread = min(files, default=0) + self.frames_read
            if unread in files:
                return (
                    f"image {files[unread]} cannot be read (damaged, or not an image): the sequence "
                    f"stopped after {self.frames_read} images"
                )
            return None
        if self._appended_at is not None:
            return (
                f"the file holds a second video appended after the first (at byte {self._appended_at}), which no "
                f"reader sees: only the first one's {self.frames_read} frames were read (split the file and run each "
                "part)"
            )
        n = self.info.frame_count
        # A container's frame count can be a little off.
        if self.info.is_file and n > 0 and self.frames_read < n - max(2, n // 100):
            return (
                f"the video ended after {self.frames_read} of the {n} frames it announced (truncated or damaged file)"
            )
        return None

    @property
    def ended_early(self) -> bool:
        """True when the input ended before it should (``stop_reason``)."""
        return self.stop_reason is not None

    # --- the decoder thread -----------------------------------------------------------------------

    def _put(self, out: queue.Queue, item) -> bool:
        """Hand an item to the consumer unless asked to stop (never blocks for good)."""
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _size_problem(self, frame: np.ndarray, after_gap: bool) -> str | None:
        h, w = frame.shape[:2]
        if (w, h) == (self.info.width, self.info.height):
            return None
        if after_gap:
            return (
                f"the stream came back at {w}x{h} after {self.info.width}x{self.info.height}: a run keeps "
                "one frame size, so it ended here (start a new run for the new size)"
            )
        why = {"file": "damaged file", "remote file": "damaged file", "sequence": "images of different sizes"}.get(
            self.info.kind, "the source changed"
        )
        return self._size_changed(w, h, why)

    def _size_changed(self, w: int, h: int, why: str) -> str:
        return (
            f"frame {self._decoded + 1} is {w}x{h} but the {self.info.kind} started at {self.info.width}x"
            f"{self.info.height} ({why}); stopped there"
        )

    def _decode(self, out: queue.Queue) -> None:
        cap = self._cap
        self._decoded = 1  # the first frame, read when opening
        last_frame_at = time.monotonic()
        # A local file's frames all come at the first frame's size from OpenCV: the watch finds
        # where the size really changes (a remote file would be downloaded twice: not watched).
        watch = _SizeWatch(str(self._target)) if self.info.kind == "file" else None
        try:
            pool = _FramePool(self._prefetch + 3)  # the queue's, the loop's, the one being decoded
            shape: tuple[int, ...] = ()
            while not self._stop.is_set():
                buffer = pool.take(shape)
                ok, frame = cap.read() if buffer is None else cap.read(buffer)
                if ok and frame is not None:
                    shape = frame.shape
                    if frame is not buffer:
                        pool.keep(frame)
                    del buffer
                    frame = to_bgr8(frame)
                    problem = self._size_problem(frame, after_gap=False)
                    change = watch.changed_by(self._decoded + 1, self._stop) if watch is not None else None
                    if change is not None:
                        problem = self._size_changed(change[1], change[2], "the frame size changed: two videos joined?")
                    if problem:
                        self._put(out, _Stop(problem))
                        return
                    last_frame_at = time.monotonic()
                    self._decoded += 1
                    if not self._put(out, frame):
                        return
                    continue
                if not self.info.live:
                    if self.info.kind == "file":
                        self._appended_at = appended_at(str(self._target))
                    self._put(out, _END)
                    return
                cap.release()
                again = self._reconnect_source(out, last_frame_at)
                if again is None:
                    return
                cap = self._cap = again
                last_frame_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, never lost
            self._put(out, exc)
        finally:
            if watch is not None:
                watch.close()
            cap.release()
            self._put(out, None)

    def _reconnect_source(self, out: queue.Queue, last_frame_at: float) -> cv2.VideoCapture | None:
        """Open the live source again, with backoff. Hands over the events, and the first
        frame after the gap; None when it gave up (``_Stop`` sent) or was asked to stop."""
        policy = self._reconnect
        if not self._put(out, SourceLost(frames=self._decoded, at=last_frame_at)):
            return None
        lost_at = time.monotonic()
        attempt = 0
        waits = policy.waits()
        wait = next(waits)
        while policy.give_up_after > 0:
            remaining = policy.give_up_after - (time.monotonic() - lost_at)
            if remaining <= 0:
                break
            # The last attempt is made at the deadline, not skipped for a wait that overshoots it.
            if wait and self._stop.wait(min(wait, remaining)):
                return None
            attempt += 1
            with quiet_opencv_log():  # a failed attempt is told by the Reconnecting event
                cap = _open_capture(self._target, self.info.kind)
                ok, frame = cap.read() if cap.isOpened() else (False, None)
            if ok and frame is not None:
                frame = to_bgr8(frame)
                problem = self._size_problem(frame, after_gap=True)
                if problem:
                    cap.release()
                    self._put(out, _Stop(problem))
                    return None
                gap = time.monotonic() - last_frame_at
                self._decoded += 1
                if not (
                    self._put(out, Reconnected(frames=self._decoded - 1, gap_seconds=gap, attempts=attempt))
                    and self._put(out, frame)
                ):
                    cap.release()
                    return None
                return cap
            cap.release()
            if self._stop.is_set():
                return None
            wait = next(waits)
            lost_for = time.monotonic() - lost_at
            if lost_for >= policy.give_up_after:
                break
            if not self._put(
                out,
                Reconnecting(
                    attempt=attempt, lost_seconds=lost_for, next_wait=min(wait, policy.give_up_after - lost_for)
                ),
            ):
                return None
        lost_for = time.monotonic() - lost_at
        if policy.give_up_after == 0:
            reason = f"the {self.info.kind} stopped after {self._decoded} frames (reconnecting is off)"
        else:
            reason = (
                f"the {self.info.kind} was lost after {self._decoded} frames and did not come back in "
                f"{lost_for:.0f} s ({attempt} attempts; the reconnect timeout is {policy.give_up_after:g} s)"
            )
        self._put(out, _Stop(reason))
        return None

    # --- the consumer -----------------------------------------------------------------------------

    def frames_and_events(self, idle_seconds: float = 0.5) -> Iterator[np.ndarray | StreamEvent]:
        """Frames, and for a live source the events of its losses and reconnections in
        order with them (``SourceLost``, ``Reconnecting``, ``Reconnected``; ``Waiting``
        after every ``idle_seconds`` without anything). A file gives frames only."""
        if self._first is None:
            raise VideoError("a VideoReader can be iterated once")
        first, self._first = self._first, None
        self.frames_read = 1
        yield first
        items: queue.Queue = queue.Queue(maxsize=self._prefetch)
        self._thread = threading.Thread(target=self._decode, args=(items,), daemon=True, name="decoder")
        self._thread.start()
        timeout = idle_seconds if self.info.live else None
        try:
            while True:
                try:
                    item = items.get(timeout=timeout)
                except queue.Empty:
                    yield Waiting(seconds=idle_seconds)
                    continue
                if item is None:
                    self._at_end = True
                    break
                if item is _END:
                    self._at_end = True
                    continue
                if isinstance(item, _Stop):
                    self._at_end = True
                    self._stop_reason = item.reason
                    continue
                if isinstance(item, Exception):
                    raise VideoError(f"decoding failed after {self.frames_read} frames: {item}") from item
                if isinstance(item, np.ndarray):
                    self.frames_read += 1
                elif isinstance(item, Reconnected):
                    self.reconnects += 1
                    self.gaps.append((item.frames, item.gap_seconds))
                yield item
        finally:
            self._stop.set()

    def __iter__(self) -> Iterator[np.ndarray]:
        for item in self.frames_and_events():
            if isinstance(item, np.ndarray):
                yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is None:
            self._cap.release()
            return
        # The decoder releases its capture itself: it may be inside a read (a stream read
        # returns within STREAM_READ_TIMEOUT_S), and releasing under it would crash.
        self._thread.join(timeout=2)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(source: str | int | os.PathLike, reconnect: ReconnectPolicy | None = None) -> VideoReader:
    return VideoReader(source, reconnect=reconnect)
