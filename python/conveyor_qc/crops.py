"""Cutting objects out of frames, letterboxed to a square (384x384 by default).

Lookout for Vision takes fixed-size images, so each crop keeps the object's
aspect ratio and is padded (not stretched) to the square.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["expand_box", "letterbox", "cut_out"]


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


def cut_out(frame: np.ndarray, box, size: int = 384, margin: float = 0.1) -> np.ndarray | None:
    """The object in ``box`` (x, y, w, h, full-resolution pixels) as a letterboxed square, or None if empty."""
    x, y, w, h = expand_box(box, margin, frame.shape[1], frame.shape[0])
    if w < 2 or h < 2:
        return None
    return letterbox(frame[y : y + h, x : x + w], size)
