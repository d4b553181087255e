"""``conveyor-qc label RUN_DIR``: a local web page to label the objects of a run.

The server is Python's own ``http.server`` (a ``ThreadingHTTPServer``), bound to
127.0.0.1 unless told otherwise. It serves the page (``web/``, plain files, no
build step), the run's objects as JSON, the run's crops, and takes one label
change per request. Every accepted change rewrites ``RUN_DIR/labels.csv``
(``track_id,label``) atomically, under a lock, before it answers: killing the
server or closing the browser loses nothing.

Given an :data:`Explain` (``conveyor-qc label --model``: the command line builds it from an
anomaly model; this module knows no model), the server also shows where the model sees the
anomaly: each crop's :class:`Explanation` (score, label, the crop with the heat map over it as a
PNG), computed on first request, one at a time, and kept in a bounded cache (:class:`HeatCache`).

API
    GET  /                     the page (also /app.js, /style.css)
    GET  /api/objects          the objects, their crops and current labels
    GET  /api/order            the order to ask in and the model's guesses (dataset/asking.py), kept
                               current on a thread of its own after every label
    POST /api/labels/<id>      JSON {"label": "normal" | "anomaly" | null}; PUT too
    GET  /crops/<id>/<n>.jpg   a crop of the run (.jpg, .jpeg or .png: only real files inside RUN_DIR/crops)
    GET  /heat/<id>/<n>.jpg    that crop with the model's heat map over it (PNG), its score and label
                               in the headers X-Anomaly-Score, X-Anomaly-Label, X-Anomaly-Map (yes: a
                               heat map is drawn; no: the model says only whether, not where);
                               404 without a model; HEAD for the headers alone

labels.csv rows the server does not understand (a track that is not an object of
this run, a label other than normal/anomaly, a track id that is not a number)
are reported as warnings and kept in the file as they are; a row of a known
track with a bad label is replaced once that object is labelled or cleared.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import json
import re
import socket
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np

from conveyor_qc.crops import CROP_CONTENT_TYPES
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_text

__all__ = [
    "LABELS",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "ORDERS",
    "REQUEST_TIMEOUT",
    "Explain",
    "Explanation",
    "HeatCache",
    "LabelError",
    "LabelServer",
    "LabelStore",
    "make_server",
    "running",
    "serve",
]

LABELS = ("normal", "anomaly")
UNLABELLED = ("", "unknown")  # what a labels.csv may say for "not labelled yet"
MAX_BODY = 4096  # bytes of a label request
REQUEST_TIMEOUT = 15.0  # seconds a connection may wait for the client's next bytes before it is dropped
MAX_CONNECTIONS = 64  # connections served at once; more are answered 503 at once and closed
LABELS_FILE = "labels.csv"
#: The orders the page can show the objects in: "active", the most useful question first (the most
#: unusual with few labels, then what would teach the model most), or "passage", as they passed.
ORDERS = ("active", "passage")

# A crop's file name: its frame number and one of the suffixes in CROP_CONTENT_TYPES (lower case,
# as run writes them: .jpg, or .png in runs before output.crop_format or with crop_format png).
_CROP_FILE = r"[0-9]{1,12}\.(?:" + "|".join(re.escape(s[1:]) for s in CROP_CONTENT_TYPES) + ")"
_CROP_NAME = re.compile(rf"^{_CROP_FILE}$")
_CROP_PATH = re.compile(rf"^/crops/([0-9]{{1,12}})/({_CROP_FILE})$")
_HEAT_PATH = re.compile(rf"^/heat/([0-9]{{1,12}})/({_CROP_FILE})$")
_LABEL_PATH = re.compile(r"^/api/labels/([0-9]{1,12})$")
_STATIC = {  # URL path -> (file in web/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _crop_type(body: bytes, name: str) -> str:
    """The content type of a crop: what its bytes are (a .png holding a JPEG is served as one),
    else what its name says."""
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return CROP_CONTENT_TYPES[name[name.rindex(".") :]]


class LabelError(ConveyorQCError, ValueError):
    """The run folder cannot be labelled (missing objects.csv or crops/, unreadable labels.csv).
    The message names the file."""


@dataclass
class RunObject:
    track_id: int
    first_frame: int
    last_frame: int
    frames: int
    box: list[float]
    predicted: str
    score: float | None
    crops: list[str] = field(default_factory=list)  # file names in crops/<track_id>/, sorted


def _num(text: str) -> float:
    v = float(text)
    return int(v) if v.is_integer() else v


class LabelStore:
    """A run's objects and their labels; ``set()`` saves labels.csv at once."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.labels_path = self.run_dir / LABELS_FILE
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        self.crops_dir_outside = False  # crops/ leads out of the run folder: no crop is served
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise LabelError(f"{self.run_dir} is a file, not a run folder (give the --out folder of `conveyor-qc run`)")
        if not self.run_dir.is_dir():
            raise LabelError(f"run folder {self.run_dir} does not exist")
        self.crops_dir = (self.run_dir / "crops").resolve()
        self.objects = self._read_objects()
        self.fps = self._read_fps()
        if not (self.run_dir / "crops").is_dir():
            raise LabelError(f"{self.run_dir / 'crops'} is missing: label a run made without --no-crops")
        if self.crops_dir.is_relative_to(self.run_dir.resolve()):
            self._index_crops()
        else:  # a link out of the run folder: nothing in it is served
            self.crops_dir_outside = True
            self.warnings.append(
                f"{self.run_dir / 'crops'} is a link to {self.crops_dir}, outside the run folder: no crops shown"
            )
        # track id -> label ("normal"/"anomaly"); full rows kept for extra columns
        self.labels: dict[int, str] = {}
        self._rows: dict[int, dict[str, str]] = {}
        self._kept: list[tuple[int | None, dict[str, str]]] = []  # rows not understood, written back as they were
        self._fieldnames = ["track_id", "label"]
        self._read_labels()
        self.version = 0  # one more for every saved change: what the page's order was computed from
        self._listeners: list[Callable[[], None]] = []

    # --- reading ----------------------------------------------------------------

    def _read_objects(self) -> dict[int, RunObject]:
        path = self.run_dir / "objects.csv"
        if not path.is_file():
            raise LabelError(f"{path} is missing: RUN_DIR must be the --out folder of `conveyor-qc run`")
        objects: dict[int, RunObject] = {}
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            need = {"track_id", "first_frame", "last_frame", "frames", "x", "y", "w", "h"}
            if not need <= set(reader.fieldnames or ()):
                raise LabelError(
                    f"{path}: expected the columns of `conveyor-qc run` "
                    f"(track_id,first_frame,last_frame,frames,x,y,w,h,label,score)"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    tid = int(row["track_id"])
                    score = row.get("score") or ""
                    objects[tid] = RunObject(
                        track_id=tid,
                        first_frame=int(row["first_frame"]),
                        last_frame=int(row["last_frame"]),
                        frames=int(row["frames"]),
                        box=[_num(row[k]) for k in ("x", "y", "w", "h")],
                        predicted=(row.get("label") or "unknown"),
                        score=float(score) if score else None,
                    )
                except (TypeError, ValueError):
                    raise LabelError(f"{path}, line {line}: not a row of `conveyor-qc run`") from None
        return dict(sorted(objects.items()))

    def _read_fps(self) -> float | None:
        path = self.run_dir / "summary.json"
        try:
            fps = float(json.loads(path.read_text(encoding="utf-8"))["video_fps"])
            return fps if fps > 0 else None
        except FileNotFoundError:
            self.warnings.append(f"{path} is missing (run incomplete or still running?): no times shown")
        except (OSError, ValueError, KeyError, TypeError):
            self.warnings.append(f"{path} has no video_fps: no times shown")
        return None

    def _index_crops(self) -> None:
        """Only these files are ever served: regular files (or links to them) that resolve
        inside RUN_DIR/crops, in the folder of an object of this run."""
        for tid, obj in self.objects.items():
            folder = self.crops_dir / str(tid)
            if not folder.is_dir():
                continue
            names = []
            for p in folder.iterdir():
                if _CROP_NAME.match(p.name) and self.crop_file(tid, p.name, indexed=False) is not None:
                    names.append(p.name)
            obj.crops = sorted(names, key=lambda n: (int(n.partition(".")[0]), n))

    def crop_file(self, track_id: int, name: str, indexed: bool = True) -> Path | None:
        """The real path of crop ``name`` of ``track_id``, or None if it is not one."""
        obj = self.objects.get(track_id)
        if self.crops_dir_outside or obj is None or not _CROP_NAME.match(name) or (indexed and name not in obj.crops):
            return None
        try:
            real = (self.crops_dir / str(track_id) / name).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(self.crops_dir) or not real.is_file():
            return None
        return real

    def _read_labels(self) -> None:
        path = self.labels_path
        if not path.exists():
            return
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise LabelError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip().lower() for h in header]
        if "track_id" not in names or "label" not in names or len(set(names)) != len(names):
            raise LabelError(
                f"{path}: expected a header with the columns track_id,label, found "
                f"{','.join(header)!r}; fix or move the file (it is not overwritten)"
            )
        self._fieldnames = names
        for line, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            row = dict(zip(names, values + [""] * (len(names) - len(values))))
            raw_id, raw_label = row["track_id"].strip(), row["label"].strip()
            try:
                tid = int(raw_id)
            except ValueError:
                self.warnings.append(f"{path.name} line {line}: track_id {raw_id!r} is not a number; row kept as is")
                self._kept.append((None, row))
                continue
            label = raw_label.lower()
            if tid not in self.objects:
                self.warnings.append(
                    f"{path.name} line {line}: track {tid} is not an object of this run; row kept as is"
                )
                self._kept.append((tid, row))
                continue
            if label in UNLABELLED:
                continue
            if label not in LABELS:
                self.warnings.append(
                    f"{path.name} line {line}: label {raw_label!r} of track {tid} is not "
                    "normal or anomaly; shown unlabelled, row kept until it is labelled"
                )
                self._kept.append((tid, row))
                continue
            if tid in self.labels:
                self.warnings.append(f"{path.name} line {line}: track {tid} labelled again; the last row counts")
            row["track_id"], row["label"] = str(tid), label
            self.labels[tid] = label
            self._rows[tid] = row

    # --- state --------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        normal = sum(1 for v in self.labels.values() if v == "normal")
        anomaly = sum(1 for v in self.labels.values() if v == "anomaly")
        total = len(self.objects)
        return {"total": total, "normal": normal, "anomaly": anomaly, "left": total - normal - anomaly}

    def _seconds(self, frame: int) -> float | None:
        return None if self.fps is None else round((frame - 1) / self.fps, 3)

    def object_json(self, obj: RunObject) -> dict:
        return {
            "track_id": obj.track_id,
            "first_frame": obj.first_frame,
            "last_frame": obj.last_frame,
            "frames": obj.frames,
            "start_seconds": self._seconds(obj.first_frame),
            "end_seconds": self._seconds(obj.last_frame),
            "box": obj.box,
            "predicted": obj.predicted,
            "score": obj.score,
            "crops": [f"/crops/{obj.track_id}/{name}" for name in obj.crops],
            "label": self.labels.get(obj.track_id),
        }

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "run": self.run_dir.resolve().name,
                "video_fps": self.fps,
                "labels_file": str(self.labels_path),
                "objects": [self.object_json(o) for o in self.objects.values()],
                "counts": self.counts(),
                "warnings": list(self.warnings),
            }

    def labelled(self) -> tuple[int, dict[int, str]]:
        """The labels now (a copy) and the :attr:`version` they are."""
        with self._lock:
            return self.version, dict(self.labels)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every saved change (on the thread that made it: it must be
        quick, as the change's answer waits for it)."""
        self._listeners.append(listener)

    def set(self, track_id: int, label: str | None) -> dict:
        """Set (or with None clear) one object's label and save labels.csv. KeyError: unknown
        track; ValueError: bad label; OSError: not saved (and nothing changed)."""
        if track_id not in self.objects:
            raise KeyError(track_id)
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)} or null")
        with self._lock:
            old_labels, old_rows, old_kept = dict(self.labels), dict(self._rows), list(self._kept)
            extra = {}
            for kept_id, row in self._kept:
                if kept_id == track_id:
                    extra = row
            self._kept = [(k, r) for k, r in self._kept if k != track_id]
            if label is None:
                self.labels.pop(track_id, None)
                self._rows.pop(track_id, None)
            else:
                row = dict(self._rows.get(track_id) or extra)
                row["track_id"], row["label"] = str(track_id), label
                self.labels[track_id] = label
                self._rows[track_id] = row
            try:
                self._save()
            except OSError:
                self.labels, self._rows, self._kept = old_labels, old_rows, old_kept
                raise
            self.version += 1
            answer = {"track_id": track_id, "label": self.labels.get(track_id), "counts": self.counts()}
        for listener in self._listeners:
            listener()
        return answer

    def _save(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self._fieldnames)
        for tid in sorted(self._rows):
            w.writerow([self._rows[tid].get(k, "") for k in self._fieldnames])
        for _, row in self._kept:
            w.writerow([row.get(k, "") for k in self._fieldnames])
        atomic_write_text(self.labels_path, buf.getvalue())


# --- where the model looks ------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """What the model says about one crop."""

    score: float  # in [0, 1], higher = more anomalous
    label: str  # "normal" | "anomaly"
    png: bytes  # the crop with the model's heat map over it, the crop's size, as a PNG file
    where: bool = True  # False: the model says only whether, not where (``png`` is the crop as it is)


#: The crop (BGR uint8, as ``cv2.imread`` reads it) -> what the model says about it. Called once
#: per crop while it stays cached, never twice at once (it need not be thread-safe); it may be slow.
#: An exception it raises is answered with a 500 naming it.
Explain = Callable[[np.ndarray], Explanation]

HEAT_CACHE_ENTRIES = 300  # crops whose explanation is kept (a few pages of 8 crops per object)
HEAT_CACHE_BYTES = 96 << 20  # and at most this many bytes of PNG (a 384x384 overlay is ~0.3 MB)


class HeatCache:
    """Each crop's :class:`Explanation`, made on first request and kept for the last
    ``entries`` crops asked for (least recently used dropped first, within ``max_bytes``).
    The model runs for one crop at a time; a crop asked for again while it is being explained
    waits for that explanation instead of making its own."""

    def __init__(self, explain: Explain, entries: int = HEAT_CACHE_ENTRIES, max_bytes: int = HEAT_CACHE_BYTES):
        self._explain = explain
        self.entries = entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Explanation] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the dictionary
        self._model = threading.Lock()  # one explanation at a time

    def __len__(self) -> int:
        return len(self._items)

    def _lookup(self, key: tuple) -> Explanation | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def get(self, key: tuple, image: Callable[[], np.ndarray]) -> Explanation:
        """The explanation cached under ``key``, else that of ``image()`` (cached then).
        ``image``'s and the model's exceptions pass through; nothing is cached then."""
        hit = self._lookup(key)
        if hit is not None:
            return hit
        with self._model:
            hit = self._lookup(key)  # made while this request waited for the model
            if hit is not None:
                return hit
            made = self._explain(image())
        with self._lock:
            self._items[key] = made
            self._bytes += len(made.png)
            while self._items and (len(self._items) > self.entries or self._bytes > self.max_bytes):
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.png)
        return made


class _CropUnreadable(Exception):
    """A crop file that cannot be read or decoded (told apart from the model's own errors)."""


def _read_crop(path: Path) -> np.ndarray:
    """A crop as the model takes it (BGR uint8, as cv2.imread reads it)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _CropUnreadable(f"crop unreadable: {exc.strerror or exc}") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise _CropUnreadable("crop unreadable: not an image")
    return image


# --- HTTP ---------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_BUSY_BODY = b'{"error": "too many connections at once; try again"}'
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class Questioner(Protocol):
    """What keeps the page's questions (the order to ask in, the model's guesses) current:
    :class:`conveyor_qc.dataset.asking.Asker`, which builds on :class:`LabelStore` and is handed in
    by whoever makes the server (the command line, a test, a tool)."""

    def start(self) -> object: ...

    def close(self) -> None: ...

    def state(self) -> dict: ...


#: Makes the :class:`Questioner` of a store (``Asker`` itself).
MakeQuestioner = Callable[[LabelStore], Questioner]


class LabelServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # A page loads dozens of crops at once, one connection each (HTTP/1.0):
    # socketserver's default backlog of 5 resets connections under load.
    request_queue_size = 128

    def __init__(
        self,
        store: LabelStore,
        host: str = "127.0.0.1",
        port: int = 0,
        explain: Explain | None = None,
        timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        asker: Questioner | None = None,
        order: str = "active",
    ):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        self.store = store
        self.asker = asker  # None: no model guesses, objects in the order they passed
        self.order = order if asker is not None else "passage"
        # A client that stops sending (headers, or a body it announced) holds a thread until
        # ``timeout`` passes without a byte from it; at most ``max_connections`` are served at once.
        self.request_timeout = timeout
        self.max_connections = max_connections
        self.connections = 0  # being served now
        self._count_lock = threading.Lock()
        self.heat = HeatCache(explain) if explain is not None else None  # None: no model, no /heat
        self.loopback = _is_loopback(host)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.web = resources.files(__package__) / "web"

    def server_close(self) -> None:
        super().server_close()
        if self.asker is not None:
            self.asker.close()

    def process_request(self, request, client_address) -> None:
        with self._count_lock:
            full = self.connections >= self.max_connections
            if not full:
                self.connections += 1
        if not full:
            try:
                return super().process_request(request, client_address)
            except BaseException:  # no thread started (serve_forever closes the request)
                with self._count_lock:
                    self.connections -= 1
                raise
        # Over the cap: answered here, without reading the request or starting a thread.
        try:
            request.setblocking(False)  # a few bytes fit in any socket buffer; never wait on the client
            request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.connections -= 1

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def allowed_host(self, header: str | None) -> bool:
        """Bound to loopback, only Host headers naming loopback are served: a web page
        elsewhere cannot reach the server through DNS rebinding."""
        if not self.loopback:
            return True
        if not header:
            return False
        try:
            name = urlsplit(f"//{header}").hostname or ""
        except ValueError:
            return False
        return _is_loopback(name)


class _Handler(BaseHTTPRequestHandler):
    server: LabelServer
    server_version = "conveyor-qc-label"
    # HTTP/1.0: one request per connection. Nothing lingers on a stopped server, and on
    # loopback a connection costs nothing.
    protocol_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT  # a client that stops sending (the server's own timeout counts: setup)

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)

    def log_request(self, code="-", size="-") -> None:  # only failures are worth a line
        if isinstance(code, int) and code >= 400 and code != 404:
            super().log_request(code, size)

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write(f"label: {self.address_string()} {format % args}\n")

    # --- replies

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _check_host(self) -> bool:
        if self.server.allowed_host(self.headers.get("Host")):
            return True
        self._error(HTTPStatus.FORBIDDEN, "this server only answers requests addressed to localhost")
        return False

    def _path(self) -> str | None:
        """The request's path, raw (not percent-decoded: nothing here needs decoding,
        so an encoded character never matches a route), or None if malformed."""
        if not self.path.startswith("/"):
            return None
        return self.path.split("?", 1)[0].split("#", 1)[0]

    # --- GET

    def do_GET(self) -> None:
        if not self._check_host():
            return
        path = self._path()
        if path is None:
            return self._error(HTTPStatus.BAD_REQUEST, "bad request path")
        if path in _STATIC:
            name, ctype = _STATIC[path]
            body = (self.server.web / name).read_bytes()
            return self._send(
                HTTPStatus.OK,
                body,
                ctype,
                {
                    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; "
                    "base-uri 'none'; frame-ancestors 'none'"
                },
            )
        if path == "/api/objects":
            snapshot = self.server.store.snapshot()
            return self._json(
                HTTPStatus.OK,
                {
                    **snapshot,
                    "heat": self.server.heat is not None,
                    "order": self.server.order,
                    "asks": self.server.asker is not None,
                },
            )
        if path == "/api/order":
            if self.server.asker is None:
                return self._error(HTTPStatus.NOT_FOUND, "no ordering: the server was started without it")
            return self._json(HTTPStatus.OK, self.server.asker.state())
        if path.startswith("/crops/"):
            if (real := self._crop_file(_CROP_PATH, path)) is None:
                return None
            try:
                body = real.read_bytes()
            except OSError:
                return self._error(HTTPStatus.NOT_FOUND, "crop unreadable")
            name = path.rsplit("/", 1)[1]  # the crop's name as asked for (real may be a link's target)
            return self._send(HTTPStatus.OK, body, _crop_type(body, name), {"Cache-Control": "max-age=3600"})
        if path.startswith("/heat/"):
            return self._heat(path)
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def _crop_file(self, pattern: re.Pattern[str], path: str) -> Path | None:
        """The crop file a /crops/ or /heat/ path names (only a crop this run's index holds,
        resolved inside RUN_DIR/crops), or None with the error sent."""
        m = pattern.match(path)
        if m is None:
            bad = "%" in path or "/../" in path + "/" or "//" in path or "\\" in path
            self._error(HTTPStatus.BAD_REQUEST if bad else HTTPStatus.NOT_FOUND, "not a crop")
            return None
        real = self.server.store.crop_file(int(m.group(1)), m.group(2))
        if real is None:
            self._error(HTTPStatus.NOT_FOUND, "not a crop of this run")
        return real

    def _heat(self, path: str) -> None:
        """GET /heat/<track_id>/<crop>: the crop with the model's heat map over it."""
        if (real := self._crop_file(_HEAT_PATH, path)) is None:
            return
        if self.server.heat is None:
            return self._error(HTTPStatus.NOT_FOUND, "no model: start `conveyor-qc label` with --model DIR")
        try:
            st = real.stat()
        except OSError:
            return self._error(HTTPStatus.NOT_FOUND, "crop unreadable")
        # the file's identity is in the key: a crop replaced on disk is explained afresh
        try:
            made = self.server.heat.get((str(real), st.st_mtime_ns, st.st_size), lambda: _read_crop(real))
        except _CropUnreadable as exc:
            return self._error(HTTPStatus.NOT_FOUND, str(exc))
        except Exception as exc:  # noqa: BLE001  the model failed on this crop: the page says so, the log has why
            self.log_message("model failed on %s: %s", path, "".join(traceback.format_exception(exc)).rstrip())
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"the model failed on this crop: {exc}")
        headers = {
            "X-Anomaly-Score": f"{made.score:.4f}",
            "X-Anomaly-Label": made.label,
            "X-Anomaly-Map": "yes" if made.where else "no",
        }
        return self._send(HTTPStatus.OK, made.png, "image/png", headers)

    def do_HEAD(self) -> None:
        self.do_GET()

    # --- label changes

    def do_POST(self) -> None:
        # The body is read first (up to a limit), so that no reply leaves unread bytes behind.
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            return self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        if int(length) > MAX_BODY:
            self.rfile.read(min(int(length), 1 << 16))
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(int(length))
        if not self._check_host():
            return
        m = _LABEL_PATH.match(self._path() or "")
        if m is None:
            return self._error(HTTPStatus.NOT_FOUND, "not found: change a label with POST /api/labels/<track_id>")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
        origin = self.headers.get("Origin")
        if origin and self.server.loopback and not self.server.allowed_host(urlsplit(origin).netloc):
            return self._error(HTTPStatus.FORBIDDEN, "cross-origin request refused")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; nested too deep
            return self._error(HTTPStatus.BAD_REQUEST, 'body must be JSON: {"label": "normal"|"anomaly"|null}')
        if not isinstance(body, dict) or "label" not in body or set(body) != {"label"}:
            return self._error(HTTPStatus.BAD_REQUEST, 'body must be {"label": "normal"|"anomaly"|null}')
        label = body["label"]
        if label is not None and (not isinstance(label, str) or label not in LABELS):
            return self._error(HTTPStatus.BAD_REQUEST, "label must be normal, anomaly or null")
        track_id = int(m.group(1))
        try:
            state = self.server.store.set(track_id, label)
        except KeyError:
            return self._error(HTTPStatus.NOT_FOUND, f"track {track_id} is not an object of this run")
        except OSError as exc:
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"labels.csv not saved: {exc.strerror or exc}")
        return self._json(HTTPStatus.OK, state)

    do_PUT = do_POST

    def _refuse(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b'{"error": "method not allowed"}',
            "application/json; charset=utf-8",
            {"Allow": "GET, HEAD, POST, PUT"},
        )

    do_DELETE = do_PATCH = do_OPTIONS = _refuse


def make_server(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    explain: Explain | None = None,
    timeout: float = REQUEST_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    order: str = "active",
    asker: MakeQuestioner | None = None,
) -> LabelServer:
    """A ready server (not yet serving): ``server.serve_forever()`` in a thread, then
    ``server.shutdown(); server.server_close()``. With ``explain``, the page can show where the
    model looks (/heat/). ``timeout``: seconds a stalled client is waited for; ``max_connections``:
    served at once, more get a 503. ``asker``: makes what orders the questions and guesses for the
    store (``conveyor_qc.dataset.asking.Asker``; started here); None: no ordering and no guesses
    (nothing is read in the background). ``order``: the page's first order (:data:`ORDERS`; the page
    can switch). LabelError: the run cannot be labelled; OSError: the address cannot be bound."""
    store = LabelStore(run_dir)
    made = None if asker is None else asker(store)
    server = LabelServer(store, host, port, explain, timeout, max_connections, made, order)
    if made is not None:
        made.start()
    return server


@contextlib.contextmanager
def running(server: LabelServer) -> Iterator[LabelServer]:
    """``server`` serving on a thread of its own while the block runs, then shut down and closed
    (the page embedded in a program, a tool, a test)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    out=sys.stdout,
    err=sys.stderr,
    explain: Explain | None = None,
    order: str = "active",
    asker: MakeQuestioner | None = None,
) -> None:
    """Serve until Ctrl-C (returns normally then). ``asker``, ``order``: as :func:`make_server`'s."""
    store = LabelStore(run_dir)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    for w in store.warnings:
        print(f"warning: {w}", file=err)
    if not _is_loopback(host):
        print(
            f"warning: serving on {host}, not just this machine: anyone who can reach it can see the "
            "crops and change the labels",
            file=err,
        )
    made = None if asker is None else asker(store)
    try:
        server = LabelServer(store, host, port, explain, asker=made, order=order)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if made is not None:
        made.start()
    c = store.counts()
    print(f"labelling {c['total']} objects of {store.run_dir} ({c['left']} left) -> {store.labels_path}", file=out)
    print(f"open {server.url} in a browser; Ctrl-C stops", file=out, flush=True)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    c = store.counts()
    print(f"stopped: {c['normal'] + c['anomaly']} labelled, {c['left']} left, saved in {store.labels_path}", file=out)
