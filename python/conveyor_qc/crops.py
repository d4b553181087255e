"""Cutting objects out of frames, letterboxed to a square (384x384 by default),
and the image files crops are saved as.

Lookout for Vision takes fixed-size images, so each crop keeps the object's
aspect ratio and is padded (not stretched) to the square. It takes JPEG and PNG:
``run`` writes JPEG by default (``output.crop_format``), and every reader of
crops (dataset, label, lookout detect, predict) takes both, so older runs with
PNG crops keep working.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "CROP_CONTENT_TYPES",
    "CROP_FORMATS",
    "CROP_SUFFIXES",
    "JPEG_QUALITY",
    "content_rect",
    "cut_out",
    "cut_region",
    "encode_crop",
    "expand_box",
    "image_header",
    "jpeg_data_uri",
    "letterbox",
]

#: What ``run`` can write crops as (``output.crop_format``): the file suffix without its dot.
CROP_FORMATS = ("jpg", "png")
#: The suffixes of crop files every reader takes, and their content types (``.jpeg`` is
#: never written, only read).
CROP_CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
CROP_SUFFIXES = tuple(CROP_CONTENT_TYPES)
#: JPEG quality of crops (``output.crop_quality``'s default) and of images re-encoded as JPEG.
JPEG_QUALITY = 95


def expand_box(box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow an (x, y, w, h) box by ``margin`` of its size on every side, clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    dx, dy = w * margin, h * margin
    x0 = max(0, int(np.floor(x - dx)))
    y0 = max(0, int(np.floor(y - dy)))
    x1 = min(width, int(np.ceil(x + w + dx)))
    y1 = min(height, int(np.ceil(y + h + dy)))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def letterbox(image: np.ndarray, size: int = 384, pad_value: int = 0) -> np.ndarray:
    """Scale ``image`` to fit a ``size`` x ``size`` square, aspect kept, padded evenly."""
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("cannot letterbox an empty image")
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    top, left = (size - nh) // 2, (size - nw) // 2
    return cv2.copyMakeBorder(
        resized, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT, value=(pad_value,) * 3
    )


def cut_region(frame: np.ndarray, box, margin: float = 0.1) -> np.ndarray | None:
    """A copy of the part of ``frame`` around ``box`` (x, y, w, h, full-resolution pixels),
    grown by ``margin``, not yet letterboxed; None if it is less than 2 px a side."""
    x, y, w, h = expand_box(box, margin, frame.shape[1], frame.shape[0])
    if w < 2 or h < 2:
        return None
    return frame[y : y + h, x : x + w].copy()


def cut_out(frame: np.ndarray, box, size: int = 384, margin: float = 0.1) -> np.ndarray | None:
    """The object in ``box`` (x, y, w, h, full-resolution pixels) as a letterboxed square, or None if empty."""
    region = cut_region(frame, box, margin)
    return None if region is None else letterbox(region, size)


def encode_crop(image: np.ndarray, fmt: str = "jpg", quality: int = JPEG_QUALITY) -> bytes:
    """``image`` (BGR) as the bytes of a ``fmt`` file (``jpg`` at ``quality``, or lossless ``png``).
    ValueError: an unknown format, or OpenCV could not encode it."""
    if fmt == "jpg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", image)
    else:
        raise ValueError(f"crop format {fmt!r} is not one of {', '.join(CROP_FORMATS)}")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {fmt}")
    return buf.tobytes()


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_header(path: str | Path) -> tuple[str, int, int] | None:
    """``(format, width, height)`` of a PNG (``"png"``) or JPEG (``"jpg"``) file, read from its
    header without decoding it; None for anything else (or an unreadable file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            if len(head) >= 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return "png", w, h
            if head[:3] != b"\xff\xd8\xff":
                return None
            # JPEG: walk the marker segments to the frame header (SOFn) that holds the size.
            fh.seek(2)
            while True:
                if fh.read(1) != b"\xff":  # every segment starts with a marker
                    return None
                b = fh.read(1)
                while b == b"\xff":  # fill bytes
                    b = fh.read(1)
                if not b or b[0] == 0xD9:  # the end, or EOI before any frame
                    return None
                marker = b[0]
                if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
                    continue
                seg = fh.read(2)
                if len(seg) < 2:
                    return None
                length = struct.unpack(">H", seg)[0]
                if marker in _JPEG_SOF:
                    frame = fh.read(5)  # precision, height, width
                    if len(frame) < 5:
                        return None
                    h, w = struct.unpack(">HH", frame[1:5])
                    return "jpg", w, h
                if length < 2:
                    return None
                fh.seek(length - 2, 1)
    except OSError:
        return None


#: Letterbox padding is black, but a JPEG crop's padding next to the object holds compression
#: ringing (up to ~20 at quality 95). Rows and columns with no pixel above this count as padding.
#: Measured: on synthetic runs' crops the rectangle is at most 1 px too wide at quality 95 (15 px
#: with no tolerance); the dark edges of the real cookie photos are still content (24 would cut some).
PADDING_TOLERANCE = 16


def content_rect(img: np.ndarray, tolerance: int = PADDING_TOLERANCE) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the image without its letterbox padding: the rows/columns at the edges
    with no pixel brighter than ``tolerance`` in any channel (pure black in a PNG crop, near black
    in a JPEG one)."""
    nz = img.reshape(img.shape[0], img.shape[1], -1).max(axis=2) > tolerance
    rows, cols = np.flatnonzero(nz.any(axis=1)), np.flatnonzero(nz.any(axis=0))
    if rows.size == 0:
        return 0, 0, img.shape[1], img.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def jpeg_data_uri(image: np.ndarray, size: int, quality: int = 82) -> str:
    """``image`` (BGR) scaled to at most ``size`` px a side, as a JPEG ``data:`` URI for an ``<img>``
    (the self-contained pages: the run's report, the dataset's quality page)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - encoding a BGR uint8 image does not fail
        raise ValueError("a picture could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
