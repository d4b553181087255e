"""A live camera stand-in on loopback: a clip served as an MJPEG stream over HTTP
(multipart/x-mixed-replace, as IP cameras serve it), which OpenCV's FFmpeg backend
reads with its mpjpeg demuxer. The stream can be cut for a while mid-clip and then
serves again, from where the clip was (a buffering source) or further on (a live
camera, whose frames during the outage are lost). It records which clip frames it
served, in order, so a test can hold a run against the ground truth of those frames.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

BOUNDARY = b"frame"


def jpeg_frames(video: Path, quality: int = 95) -> list[bytes]:
    """Every frame of a video file, JPEG-encoded."""
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    cap.release()
    if not frames:
        raise ValueError(f"no frame in {video}")
    return frames


@dataclass
class Cut:
    """After serving clip frame ``at`` - 1, close the connection and answer 503 for
    ``seconds``; then go on from clip frame ``at + skip``."""

    at: int
    seconds: float
    skip: int = 0


class MjpegStandIn:
    """``with MjpegStandIn(frames, fps=60, cuts=[Cut(50, 1.5)]) as cam: cam.url``.

    ``loop``: start the clip again at its end (a camera that never stops); otherwise the
    stream ends there and every later request is answered 503 (the camera went away)."""

    def __init__(self, frames: list[bytes], fps: float = 60.0, cuts: list[Cut] = (), loop: bool = False):
        self.frames = frames
        self.period = 1.0 / fps
        self.cuts = sorted(cuts, key=lambda c: c.at)
        self.loop = loop
        self.served: list[int] = []  # clip frame indices, in the order they were served
        self.connections = 0  # successful stream connections
        self.refused = 0  # requests answered 503 while cut or ended
        self._cursor = 0
        self._down_until = 0.0
        self._ended = False
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                standin._serve(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="mjpeg-standin")

    def __enter__(self) -> MjpegStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _refuse(self, handler: BaseHTTPRequestHandler) -> None:
        self.refused += 1
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:  # one viewer at a time, as the test has
            if self._ended or time.monotonic() < self._down_until:
                self._refuse(handler)
                return
            self.connections += 1
            handler.send_response(200)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            handler.send_header("Cache-Control", "no-cache")
            handler.end_headers()
            next_at = time.monotonic()
            try:
                while True:
                    if self.cuts and self._cursor == self.cuts[0].at:
                        cut = self.cuts.pop(0)
                        self._down_until = time.monotonic() + cut.seconds
                        self._cursor += cut.skip
                        return  # closes the connection
                    if self._cursor >= len(self.frames):
                        if not self.loop:
                            self._ended = True
                            return
                        self._cursor = 0
                    jpeg = self.frames[self._cursor]
                    handler.wfile.write(
                        b"--"
                        + BOUNDARY
                        + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        + str(len(jpeg)).encode()
                        + b"\r\n\r\n"
                        + jpeg
                        + b"\r\n"
                    )
                    handler.wfile.flush()
                    self.served.append(self._cursor)
                    self._cursor += 1
                    next_at += self.period
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                return  # the viewer went away: the frame being written was not served
            finally:
                handler.close_connection = True
