"""Small image helpers shared by the renderer's modules."""

from __future__ import annotations

import cv2
import numpy as np


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _periodic_noise(rng: np.random.Generator, shape: tuple, sig_r: float, sig_c: float) -> np.ndarray:
    """Gaussian-filtered white noise, periodic in both axes, unit std."""
    n = rng.standard_normal(shape).astype(np.float32)
    f = np.fft.rfft2(n)
    fr = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fc = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    f *= np.exp(-2.0 * np.pi**2 * ((fr * sig_r) ** 2 + (fc * sig_c) ** 2))
    out = np.fft.irfft2(f, s=shape).astype(np.float32)
    out /= float(out.std()) + 1e-9
    return out


def _blur_noise(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    n: np.ndarray = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
    n /= float(n.std()) + 1e-9
    return n


def _shift(img: np.ndarray, dx: float, dy: float, size: tuple | None = None) -> np.ndarray:
    """Translate by (dx, dy) (sub-pixel, bilinear) into an array of ``size`` = (w, h)."""
    h, w = img.shape[:2]
    m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(img, m, size or (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _crop_sprite(alpha: np.ndarray, pm: np.ndarray, thr: float = 0.004) -> tuple:
    ys, xs = np.nonzero(alpha > thr)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.ascontiguousarray(alpha[y0:y1, x0:x1]), np.ascontiguousarray(pm[y0:y1, x0:x1])


def _jagged_line(rng: np.random.Generator, p0, p1, step: float = 4.0, jitter: float = 1.8) -> np.ndarray:
    """Points from p0 to p1 with random sideways jitter (a crack / break edge)."""
    p0 = np.asarray(p0, np.float64)
    p1 = np.asarray(p1, np.float64)
    d = p1 - p0
    length = float(np.hypot(*d)) + 1e-9
    n = max(2, int(length / step) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    normal = np.array([-d[1], d[0]]) / length
    off = np.cumsum(rng.normal(0.0, jitter, (n, 1)), axis=0)  # a random walk ...
    off -= t * off[-1]  # ... pinned to 0 at both ends
    off = np.clip(off, -2.5 * jitter, 2.5 * jitter)
    return p0 + t * d + off * normal


def _fill_poly(shape: tuple, pts: np.ndarray) -> np.ndarray:
    """Anti-aliased polygon coverage in [0, 1]."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0
