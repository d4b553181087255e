"""Drawn (procedural) product sprites.

A sprite is (alpha HxW float32 in [0, 1], premultiplied colour HxWx3 float32 = colour * alpha).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from conveyor_qc.evaluation.synth.util import (
    _blur_noise,
    _crop_sprite,
    _fill_poly,
    _jagged_line,
    _shift,
    _smoothstep,
)

# A sprite is (alpha HxW float32 in [0,1], premultiplied colour HxWx3 float32 = colour * alpha).

_DOUGH = np.array([78, 148, 206], np.float32)  # golden dough, BGR
_RIM = np.array([44, 92, 160], np.float32)  # darker, more baked rim
_CHIP = np.array([22, 36, 62], np.float32)  # chocolate


def _draw_cookie(rng: np.random.Generator, r: float) -> tuple:
    half = int(math.ceil(r * 1.15)) + 3
    size = 2 * half + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    rho = np.hypot(xx, yy)
    th = np.arctan2(yy, xx)
    k = np.arange(2, 9, dtype=np.float32)
    amp = rng.normal(0.0, 1.0, k.size).astype(np.float32) * 0.022 / np.sqrt(k / 2.0)
    ph = rng.uniform(0, 2 * np.pi, k.size).astype(np.float32)
    rth = r * (1.0 + np.tensordot(np.cos(th[..., None] * k + ph), amp, axes=([2], [0])))
    alpha = np.clip(rth - rho + 0.5, 0.0, 1.0).astype(np.float32)
    t = np.clip(rho / rth, 0.0, 1.0)

    # golden to well-baked: blend towards the rim colour, overall brightness jitter
    bake = rng.uniform(0.0, 0.35)
    base = (_DOUGH * (1 - bake) + _RIM * bake) * rng.uniform(0.92, 1.06)
    rim = _RIM * rng.uniform(0.9, 1.1)
    edge = _smoothstep(0.70, 1.0, t)[..., None]
    col = base * (1.0 - edge) + rim * edge
    # dome lit from the top-left, fine texture, baked cracks
    light = 1.0 + 0.10 * (-(xx + yy) / (r * 1.414)) * t
    tex = 1.0 + 0.06 * _blur_noise(rng, (size, size), r / 8.0) + 0.035 * _blur_noise(rng, (size, size), 0.8)
    cracks = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 5)):
        a0 = rng.uniform(0, 2 * np.pi)
        p0 = (half + rng.uniform(0.1, 0.6) * r * np.cos(a0), half + rng.uniform(0.1, 0.6) * r * np.sin(a0))
        a1 = a0 + rng.uniform(-1.2, 1.2)
        ln = rng.uniform(0.25, 0.6) * r
        pts = _jagged_line(rng, p0, (p0[0] + ln * np.cos(a1), p0[1] + ln * np.sin(a1)), 3.0, 1.2)
        cv2.polylines(cracks, [np.round(pts * 16).astype(np.int32)], False, 255, 1, cv2.LINE_AA, shift=4)
    crack = cv2.GaussianBlur(cracks.astype(np.float32) / 255.0, (0, 0), 0.7)
    shade = (light * tex * (1.0 - 0.16 * crack))[..., None]
    col = col * shade

    # chocolate chips
    chips = np.zeros((size, size), np.uint8)
    hl = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(6, 14)):
        rr = r * 0.82 * math.sqrt(rng.uniform(0, 1))
        aa = rng.uniform(0, 2 * np.pi)
        cx, cy = half + rr * math.cos(aa), half + rr * math.sin(aa)
        a = rng.uniform(3.0, 6.5) * r / 48.0
        b = a * rng.uniform(0.55, 1.0)
        ang = rng.uniform(0, 180)
        c = (int(round(cx * 16)), int(round(cy * 16)))
        cv2.ellipse(chips, c, (int(a * 16), int(b * 16)), ang, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
        c2 = (int(round((cx - 0.35 * a) * 16)), int(round((cy - 0.35 * b) * 16)))
        cv2.ellipse(hl, c2, (int(a * 0.4 * 16), int(b * 0.35 * 16)), ang, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
    chip = chips.astype(np.float32)[..., None] / 255.0
    chipcol = _CHIP * rng.uniform(0.8, 1.2) + 38.0 * (hl.astype(np.float32)[..., None] / 255.0)
    col = col * (1.0 - chip) + chipcol * chip
    col = np.clip(col, 0, 255).astype(np.float32)
    return alpha, col * alpha[..., None]


def _break_edge_light(pm: np.ndarray, alpha: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Lighten the freshly broken surface (the crumb inside is paler than the crust)."""
    return pm * (1.0 + 0.16 * band[..., None]) + 10.0 * band[..., None] * alpha[..., None]


def _draw_chunk_missing(rng: np.random.Generator, r: float) -> tuple:
    alpha, pm = _draw_cookie(rng, r)
    h, w = alpha.shape
    c = np.array([w / 2.0, h / 2.0])
    phi = rng.uniform(0, 2 * np.pi)
    apex = c + rng.uniform(0.0, 0.35) * r * np.array([math.cos(phi), math.sin(phi)])
    span = rng.uniform(0.45, 0.85)  # half-angle of the wedge, radians
    far = 2.0 * r
    e1 = apex + far * np.array([math.cos(phi - span), math.sin(phi - span)])
    e2 = apex + far * np.array([math.cos(phi + span), math.sin(phi + span)])
    arc = [apex + far * np.array([math.cos(a), math.sin(a)]) for a in np.linspace(phi - span, phi + span, 9)]
    poly = np.vstack([_jagged_line(rng, apex, e1, 3.5, 1.6), np.array(arc), _jagged_line(rng, e2, apex, 3.5, 1.6)])
    cut = _fill_poly((h, w), poly)
    band = np.clip(cv2.GaussianBlur(cut, (0, 0), 1.6) * 3.0, 0, 1) * (1.0 - cut)
    pm = _break_edge_light(pm, alpha, band)
    keep = 1.0 - cut
    alpha = alpha * keep
    pm = pm * keep[..., None]
    return _crop_sprite(alpha, pm)


def _draw_split(rng: np.random.Generator, r: float, gap: float) -> tuple:
    alpha, pm = _draw_cookie(rng, r)
    h, w = alpha.shape
    pad = int(math.ceil(gap)) + 6
    alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    pm = cv2.copyMakeBorder(pm, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    h, w = alpha.shape
    c = np.array([w / 2.0, h / 2.0]) + rng.uniform(-0.2, 0.2, 2) * r
    psi = rng.uniform(0, np.pi)
    d = np.array([math.cos(psi), math.sin(psi)])
    n = np.array([-d[1], d[0]])
    line = _jagged_line(rng, c - 2 * r * d, c + 2 * r * d, 3.5, 1.8)
    poly = np.vstack([line, line[-1] + 3 * r * n, line[0] + 3 * r * n])
    side = _fill_poly((h, w), poly)
    band = np.clip(4.0 * cv2.GaussianBlur(side, (0, 0), 1.4) * (1.0 - cv2.GaussianBlur(side, (0, 0), 1.4)), 0, 1)
    pm = _break_edge_light(pm, alpha, band)
    a_a, p_a = alpha * side, pm * side[..., None]
    a_b, p_b = alpha * (1 - side), pm * (1 - side)[..., None]
    # move the halves apart along the normal, the second one slightly rotated
    sa = n * gap / 2.0
    a_a, p_a = _shift(a_a, sa[0], sa[1]), _shift(p_a, sa[0], sa[1])
    rot: np.ndarray = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(rng.uniform(-4, 4)), 1.0)
    rot[:, 2] -= sa
    a_b = cv2.warpAffine(a_b, rot, (w, h), flags=cv2.INTER_LINEAR)
    p_b = cv2.warpAffine(p_b, rot, (w, h), flags=cv2.INTER_LINEAR)
    alpha = np.clip(a_a + a_b, 0, 1)
    return _crop_sprite(alpha, p_a + p_b)


def _draw_stacked(rng: np.random.Generator, r: float, frac: float, shadow: tuple) -> tuple:
    r2 = r * rng.uniform(0.85, 1.0)
    a1, p1 = _draw_cookie(rng, r)
    a2, p2 = _draw_cookie(rng, r2)
    p2 = p2 * 1.04
    phi = rng.uniform(0, 2 * np.pi)
    off = frac * r * np.array([math.cos(phi), math.sin(phi)])
    h1, w1 = a1.shape
    h2, w2 = a2.shape
    pad = int(math.ceil(frac * r)) + 4
    hh, ww = max(h1, h2) + 2 * pad, max(w1, w2) + 2 * pad
    cx, cy = ww / 2.0, hh / 2.0
    size = (ww, hh)
    a1c = _shift(a1, cx - w1 / 2.0, cy - h1 / 2.0, size)
    p1c = _shift(p1, cx - w1 / 2.0, cy - h1 / 2.0, size)
    a2c = _shift(a2, cx - w2 / 2.0 + off[0], cy - h2 / 2.0 + off[1], size)
    p2c = _shift(p2, cx - w2 / 2.0 + off[0], cy - h2 / 2.0 + off[1], size)
    # the top cookie casts a shadow on the bottom one
    sh = cv2.GaussianBlur(_shift(a2c, shadow[0] * 0.6, shadow[1] * 0.6), (0, 0), 2.5)
    p1c = p1c * (1.0 - 0.38 * sh)[..., None]
    alpha = a2c + (1.0 - a2c) * a1c
    pm = p2c + (1.0 - a2c)[..., None] * p1c
    return _crop_sprite(np.clip(alpha, 0, 1), pm)


# --------------------------------------------------------------------------- signed distances

# The new products are drawn axis-aligned from signed distance functions (negative inside), as
# (alpha, colour, height): colour not premultiplied, height in px. finish() turns them to any
# orientation, shades them from the height map with the same light that casts the shadows, and
# premultiplies.


def _grid(h: int, w: int) -> tuple:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx, yy


def _sd_box(xx, yy, cx: float, cy: float, hw: float, hh: float, rad: float = 0.0) -> np.ndarray:
    """Rounded rectangle centred at (cx, cy), half sizes (hw, hh), corner radius rad."""
    rad = min(rad, hw, hh)
    qx = np.abs(xx - cx) - (hw - rad)
    qy = np.abs(yy - cy) - (hh - rad)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - rad


def _sd_circle(xx, yy, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(xx - cx, yy - cy) - r


def _sd_capsule(xx, yy, a, b, r: float) -> np.ndarray:
    """Segment a-b thickened by r."""
    ax, ay = a
    bx, by = b
    px, py = xx - ax, yy - ay
    dx, dy = bx - ax, by - ay
    t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return np.hypot(px - t * dx, py - t * dy) - r


def _sd_poly(shape: tuple, pts: np.ndarray) -> np.ndarray:
    """Signed distance to a polygon (px), from a distance transform of its raster."""
    inside = np.zeros(shape, np.uint8)
    cv2.fillPoly(inside, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return (d_out - d_in + np.where(inside > 0, 0.5, -0.5)).astype(np.float32)


def _cov(sd: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of the inside of a signed distance."""
    return np.clip(0.5 - sd, 0.0, 1.0).astype(np.float32)


def _bevel(sd: np.ndarray, width: float, height: float) -> np.ndarray:
    """A flat top at `height` falling to 0 at the outline over `width` px (rounded)."""
    t = np.clip(-sd / max(width, 1e-3), 0.0, 1.0)
    return (height * np.sqrt(1.0 - (1.0 - t) ** 2)).astype(np.float32)


def _mix(col: np.ndarray, other, w: np.ndarray) -> np.ndarray:
    w = w[..., None] if w.ndim == 2 else w
    return col * (1.0 - w) + np.asarray(other, np.float32) * w


def _wobble(rng: np.random.Generator, shape: tuple, amp: float, sigma: float) -> np.ndarray:
    """Low-frequency outline wobble added to a signed distance."""
    return (amp * _blur_noise(rng, shape, sigma)).astype(np.float32)


def _canvas(extent: float) -> tuple:
    half = int(math.ceil(extent)) + 4
    return 2 * half + 1, float(half)


class Drawn:
    """An axis-aligned drawing: alpha, colour (not premultiplied) and height, all HxW."""

    def __init__(self, alpha: np.ndarray, col: np.ndarray, height: np.ndarray):
        self.alpha, self.col, self.height = alpha, col, height


def finish(d: Drawn, angle: float, light: tuple, relief: float = 0.22) -> tuple:
    """Turn a drawing by `angle` degrees, shade it from its height map with the light coming from
    direction `light` (unit (x, y) in the frame, towards the light) and premultiply: a sprite."""
    a, col, hgt = d.alpha, d.col, d.height
    if angle % 360.0:
        h, w = a.shape
        diag = int(math.ceil(math.hypot(h, w))) + 4
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(angle), 1.0)
        m[:, 2] += np.array([diag / 2.0 - w / 2.0, diag / 2.0 - h / 2.0])
        pm = col * a[..., None]
        a = cv2.warpAffine(a, m, (diag, diag), flags=cv2.INTER_LINEAR)
        pm = cv2.warpAffine(pm, m, (diag, diag), flags=cv2.INTER_LINEAR)
        hgt = cv2.warpAffine(hgt, m, (diag, diag), flags=cv2.INTER_LINEAR)
        col = pm / np.maximum(a, 1e-4)[..., None]
    gx = cv2.Sobel(hgt, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(hgt, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    shade = np.clip(1.0 + relief * (gx * light[0] + gy * light[1]) * -1.0, 0.55, 1.45)
    col = np.clip(col * shade[..., None], 0, 255)
    a = np.clip(a, 0, 1).astype(np.float32)
    return _crop_sprite(a, (col * a[..., None]).astype(np.float32))


def _grain(rng: np.random.Generator, shape: tuple, fine: float, coarse: float, sigma: float) -> np.ndarray:
    return (1.0 + fine * _blur_noise(rng, shape, 0.7) + coarse * _blur_noise(rng, shape, sigma)).astype(np.float32)


def _cut_polygon(rng: np.random.Generator, shape: tuple, centre, r: float, phi: float, depth: float) -> np.ndarray:
    """Coverage of a region cut off the outline along a jagged chord: a broken corner or edge."""
    c = np.asarray(centre, np.float64)
    n = np.array([math.cos(phi), math.sin(phi)])
    t = np.array([-n[1], n[0]])
    p0 = c + n * (r - depth) - t * 3.0 * r
    p1 = c + n * (r - depth) + t * 3.0 * r
    line = _jagged_line(rng, p0, p1, 3.0, 1.6)
    poly = np.vstack([line, p1 + n * 3.0 * r, p0 + n * 3.0 * r])
    return _fill_poly(shape, poly)


def _apply_cut(d: Drawn, cut: np.ndarray, crumb_bgr=None) -> Drawn:
    """Remove `cut` from a drawing; the fresh break is lighter (or `crumb_bgr`) along its edge."""
    band = np.clip(cv2.GaussianBlur(cut, (0, 0), 1.5) * 3.0, 0, 1) * (1.0 - cut)
    col = d.col * (1.0 + 0.18 * band[..., None]) if crumb_bgr is None else _mix(d.col, crumb_bgr, 0.6 * band)
    return Drawn(d.alpha * (1.0 - cut), col, d.height * (1.0 - 0.5 * band))


# --------------------------------------------------------------------------- square dark chocolate cookies

_CHOCO = np.array([38, 44, 54], np.float32)  # nearly colourless dark brown, BGR


def draw_choco_square(rng: np.random.Generator, r: float) -> Drawn:
    side = r * math.sqrt(math.pi) * rng.uniform(0.97, 1.03)
    hw, hh = side / 2.0, side / 2.0 * rng.uniform(0.96, 1.04)
    size, c = _canvas(1.2 * max(hw, hh))
    xx, yy = _grid(size, size)
    sd = _sd_box(xx, yy, c, c, hw, hh, side * rng.uniform(0.10, 0.16)) + _wobble(rng, (size, size), 0.5, side / 10)
    alpha = _cov(sd)
    base = _CHOCO * rng.uniform(0.88, 1.12) + rng.normal(0, 1.5, 3).astype(np.float32)
    tex = _grain(rng, (size, size), 0.05, 0.05, side / 14)
    col = base * tex[..., None]
    # a slightly raised, smoother rim and a grid of docking dimples
    rim = np.clip(1.0 - (-sd) / (0.09 * side), 0, 1)
    col = col * (1.0 + 0.06 * rim[..., None])
    hgt = _bevel(sd, 0.07 * side, 7.0)
    k = int(rng.integers(2, 4))
    dimples = np.zeros((size, size), np.float32)
    for i in range(k):
        for j in range(k):
            px = c - hw + (i + 0.5) * 2 * hw / k + rng.normal(0, 1.0)
            py = c - hh + (j + 0.5) * 2 * hh / k + rng.normal(0, 1.0)
            dimples = np.maximum(dimples, _cov(_sd_circle(xx, yy, px, py, side * 0.028)))
    dimples = cv2.GaussianBlur(dimples, (0, 0), 0.8)
    col = col * (1.0 - 0.30 * dimples[..., None])
    hgt = hgt - 2.5 * dimples
    # sparse sugar / cocoa specks
    specks = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(5, 16))):
        cv2.circle(
            specks, (int(rng.uniform(c - hw, c + hw)), int(rng.uniform(c - hh, c + hh))), 1, 255, -1, cv2.LINE_AA
        )
    col = _mix(col, (70, 78, 90), specks.astype(np.float32) / 255.0 * 0.6)
    return Drawn(alpha, np.clip(col, 0, 255).astype(np.float32), hgt)


def _broken_square(rng: np.random.Generator, r: float, split_share: float, gap: tuple) -> Drawn:
    d = draw_choco_square(rng, r)
    h, w = d.alpha.shape
    c = (w / 2.0, h / 2.0)
    side = r * math.sqrt(math.pi)
    if rng.random() < split_share:  # broken in two halves that drifted apart: still one object
        return _split_drawn(rng, d, float(rng.uniform(*gap)), side)
    phi = math.radians(45.0 + 90.0 * int(rng.integers(4)) + rng.uniform(-20, 20))  # a corner off
    cut = _cut_polygon(rng, (h, w), c, side * 0.70, phi, side * rng.uniform(0.22, 0.38))
    return _apply_cut(d, cut, crumb_bgr=(52, 60, 72))


def _split_drawn(rng: np.random.Generator, d: Drawn, gap: float, size: float) -> Drawn:
    pad = int(math.ceil(gap)) + 6
    a = cv2.copyMakeBorder(d.alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    col = cv2.copyMakeBorder(d.col, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    hgt = cv2.copyMakeBorder(d.height, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    h, w = a.shape
    c = np.array([w / 2.0, h / 2.0]) + rng.uniform(-0.12, 0.12, 2) * size
    psi = rng.uniform(0, np.pi)
    dd = np.array([math.cos(psi), math.sin(psi)])
    n = np.array([-dd[1], dd[0]])
    line = _jagged_line(rng, c - 2 * size * dd, c + 2 * size * dd, 3.5, 1.8)
    side = _fill_poly((h, w), np.vstack([line, line[-1] + 3 * size * n, line[0] + 3 * size * n]))
    band = np.clip(4.0 * cv2.GaussianBlur(side, (0, 0), 1.4) * (1.0 - cv2.GaussianBlur(side, (0, 0), 1.4)), 0, 1)
    col = col * (1.0 + 0.18 * band[..., None])
    sa = n * gap / 2.0
    parts = []
    mat: np.ndarray | None
    for keep, mat in ((side, np.array([[1, 0, sa[0]], [0, 1, sa[1]]], np.float32)), (1.0 - side, None)):
        if mat is None:
            rot: np.ndarray = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(rng.uniform(-5, 5)), 1.0)
            rot[:, 2] -= sa
            mat = rot
        ak = cv2.warpAffine(a * keep, mat, (w, h), flags=cv2.INTER_LINEAR)
        pk = cv2.warpAffine(col * (a * keep)[..., None], mat, (w, h), flags=cv2.INTER_LINEAR)
        hk = cv2.warpAffine(hgt * keep, mat, (w, h), flags=cv2.INTER_LINEAR)
        parts.append((ak, pk, hk))
    alpha = np.clip(parts[0][0] + parts[1][0], 0, 1)
    pm = parts[0][1] + parts[1][1]
    return Drawn(alpha, pm / np.maximum(alpha, 1e-4)[..., None], parts[0][2] + parts[1][2])


def _stack_drawn(
    rng: np.random.Generator, bottom: Drawn, top: Drawn, off: tuple, turn: float, shadow_dir: tuple, lift: float
) -> Drawn:
    """`top` lying on `bottom`, offset by `off` and turned by `turn` degrees; it shades the bottom one."""
    hb, wb = bottom.alpha.shape
    ht, wt = top.alpha.shape
    pad = int(math.ceil(max(abs(off[0]), abs(off[1])))) + 6
    hh, ww = max(hb, ht) + 2 * pad, max(wb, wt) + 2 * pad
    cx, cy = ww / 2.0, hh / 2.0

    def place(d: Drawn, dx: float, dy: float, ang: float) -> tuple:
        h, w = d.alpha.shape
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), ang, 1.0)
        m[:, 2] += np.array([cx - w / 2.0 + dx, cy - h / 2.0 + dy])
        a = cv2.warpAffine(d.alpha, m, (ww, hh), flags=cv2.INTER_LINEAR)
        pm = cv2.warpAffine(d.col * d.alpha[..., None], m, (ww, hh), flags=cv2.INTER_LINEAR)
        hg = cv2.warpAffine(d.height, m, (ww, hh), flags=cv2.INTER_LINEAR)
        return a, pm, hg

    a1, p1, h1 = place(bottom, 0.0, 0.0, 0.0)
    a2, p2, h2 = place(top, off[0], off[1], turn)
    sh = cv2.GaussianBlur(_shift(a2, shadow_dir[0] * 0.6, shadow_dir[1] * 0.6), (0, 0), 2.5)
    p1 = p1 * (1.0 - 0.42 * sh)[..., None]
    alpha = np.clip(a2 + (1.0 - a2) * a1, 0, 1)
    pm = p2 * 1.04 + (1.0 - a2)[..., None] * p1
    hgt = a2 * (h2 + lift) + (1.0 - a2) * h1
    return Drawn(alpha, pm / np.maximum(alpha, 1e-4)[..., None], hgt)


# --------------------------------------------------------------------------- light crackers

_CRACKER = np.array([158, 204, 228], np.float32)  # pale baked dough, BGR
_CRACKER_RIM = np.array([112, 162, 208], np.float32)


def draw_cracker(rng: np.random.Generator, r: float, burnt: bool = False) -> Drawn:
    aspect = rng.uniform(1.25, 1.5)
    wfull = r * math.sqrt(math.pi * aspect)
    hw, hh = wfull / 2.0, wfull / aspect / 2.0
    size, c = _canvas(1.15 * hw)
    xx, yy = _grid(size, size)
    sd = _sd_box(xx, yy, c, c, hw, hh, hh * rng.uniform(0.06, 0.12)) + _wobble(rng, (size, size), 0.7, hh / 6)
    alpha = _cov(sd)
    base = _CRACKER * rng.uniform(0.95, 1.04)
    rim_w = rng.uniform(0.10, 0.16) * hh
    rim = np.clip(1.0 - (-sd) / rim_w, 0, 1) ** 1.5
    col = _mix(np.broadcast_to(base, (size, size, 3)).astype(np.float32), _CRACKER_RIM, 0.75 * rim)
    # blisters: small baked bubbles, golden brown
    blist = np.clip(_blur_noise(rng, (size, size), hh / 10) - 1.3, 0, None)
    col = _mix(col, _CRACKER_RIM * 0.92, np.clip(blist * 0.9, 0, 0.7))
    col = col * _grain(rng, (size, size), 0.035, 0.03, hh / 6)[..., None]
    hgt = _bevel(sd, 0.12 * hh, 4.0) + 1.2 * np.clip(blist, 0, 1)
    # docking holes: a regular grid of small pits with a darker ring
    nx, ny = int(rng.integers(4, 6)), int(rng.integers(3, 5))
    pits = np.zeros((size, size), np.float32)
    ring = np.zeros((size, size), np.float32)
    pr = max(1.4, 0.045 * hh)
    for i in range(nx):
        for j in range(ny):
            px = c - hw * 0.72 + i * (1.44 * hw) / (nx - 1)
            py = c - hh * 0.66 + j * (1.32 * hh) / (ny - 1)
            d0 = np.hypot(xx - px, yy - py)
            pits = np.maximum(pits, _cov(d0 - pr))
            ring = np.maximum(ring, np.clip(1.0 - np.abs(d0 - pr * 1.9) / (pr * 1.2), 0, 1))
    col = _mix(col, _CRACKER_RIM * 0.85, 0.35 * ring)
    col = _mix(col, _CRACKER_RIM * 0.55, 0.8 * pits)
    hgt = hgt - 2.0 * pits
    if burnt:  # over-baked: browner all over, dark edges and patches
        patch = np.clip(_blur_noise(rng, (size, size), hh / 4) * 0.5 + 0.5, 0, 1)
        col = col * np.array([0.55, 0.62, 0.74], np.float32) * (1.0 - 0.25 * patch[..., None])
        col = _mix(col, (30, 45, 70), 0.6 * rim)
    return Drawn(alpha, np.clip(col, 0, 255).astype(np.float32), hgt)


def _broken_cracker(rng: np.random.Generator, r: float) -> Drawn:
    d = draw_cracker(rng, r)
    h, w = d.alpha.shape
    phi = rng.uniform(0, 2 * np.pi)
    cut = _cut_polygon(rng, (h, w), (w / 2.0, h / 2.0), r * 1.05, phi, r * rng.uniform(0.35, 0.6))
    return _apply_cut(d, cut)


# --------------------------------------------------------------------------- two-colour packs with a label

_PACK_COLOURS = np.array(
    [
        (40, 40, 190),
        (150, 70, 20),
        (30, 150, 40),
        (20, 170, 220),
        (120, 30, 120),
        (200, 200, 210),
        (30, 90, 210),
        (90, 40, 20),
        (60, 170, 170),
        (20, 20, 25),
    ],
    np.float32,
)


def draw_pack(rng: np.random.Generator, r: float, belt_bgr, anomaly: str = "") -> Drawn:
    aspect = rng.uniform(1.7, 2.3)
    wfull = r * math.sqrt(math.pi * aspect)
    hw, hh = wfull / 2.0, wfull / aspect / 2.0
    size, c = _canvas(1.12 * hw)
    xx, yy = _grid(size, size)
    # crimped seals at both short ends: a saw-tooth outline
    teeth = max(2.0, hh / 7.0)
    tooth = np.abs(((yy - c) / teeth) % 1.0 - 0.5) * 2.0  # 0..1 triangle wave across
    crimp_len = 0.09 * wfull
    sd = _sd_box(xx, yy, c, c, hw, hh, 2.0)
    end = np.clip((np.abs(xx - c) - (hw - crimp_len)) / crimp_len, 0, 1)
    sd = sd + end * tooth * 1.8 * (np.abs(xx - c) > hw - 3.0)
    alpha = _cov(sd)
    # stripes of two or three colours across the pack; one may be nearly the belt's colour
    n_col = int(rng.integers(2, 4))
    cols = _PACK_COLOURS[rng.permutation(len(_PACK_COLOURS))[:n_col]].copy()
    if rng.random() < 0.5:
        cols[int(rng.integers(n_col))] = np.asarray(belt_bgr, np.float32) + rng.normal(0, 6, 3).astype(np.float32)
    bands = int(rng.integers(2, 5))
    edges = np.sort(rng.uniform(-hw, hw, bands - 1))
    which = np.searchsorted(edges, xx - c) % n_col
    col = cols[which].astype(np.float32)
    if rng.random() < 0.5:  # a stripe along the pack instead
        along = np.abs(yy - c) < hh * rng.uniform(0.15, 0.35)
        col[along] = cols[(int(rng.integers(n_col)) + 1) % n_col]
    col = cv2.GaussianBlur(col, (0, 0), 0.6)
    # the printed label: a light panel with lines of "text" and a logo
    label_ok = anomaly != "misprint"
    lw, lh = hw * rng.uniform(0.35, 0.5), hh * rng.uniform(0.45, 0.65)
    lx = c + rng.uniform(-0.2, 0.2) * hw
    if anomaly == "misprint":  # the label missing, or printed far off its place
        lx = c + hw * rng.uniform(0.55, 0.8) * (1 if rng.random() < 0.5 else -1)
        label_ok = rng.random() < 0.5
    if label_ok or anomaly == "misprint":
        paper = np.asarray((235, 238, 240) if rng.random() < 0.6 else cols[0] * 0.5 + 120, np.float32)
        lab = _cov(_sd_box(xx, yy, lx, c, lw, lh, 3.0))
        if anomaly == "misprint" and not label_ok:
            lab = lab * 0.0
        ink = np.zeros((size, size), np.uint8)
        n_lines = int(rng.integers(2, 5))
        for k in range(n_lines):
            y = c - lh * 0.6 + (k + 0.5) * 1.2 * lh / n_lines
            x = lx - lw * 0.8
            while x < lx + lw * 0.8 - 4:
                wlen = rng.uniform(0.12, 0.35) * lw
                cv2.line(
                    ink,
                    (int(x), int(y)),
                    (int(min(x + wlen, lx + lw * 0.8)), int(y)),
                    255,
                    max(1, int(lh * 0.12)),
                    cv2.LINE_AA,
                )
                x += wlen + rng.uniform(0.06, 0.12) * lw
        inkf = cv2.GaussianBlur(ink.astype(np.float32) / 255.0, (0, 0), 0.6) * lab
        logo = _cov(_sd_circle(xx, yy, lx - lw * 0.62, c - lh * 0.45, lh * 0.28)) * lab
        col = _mix(col, paper, lab)
        col = _mix(col, (40, 40, 45), 0.85 * inkf)
        col = _mix(col, cols[-1] * 0.8, logo)
    # a puffy pack: a pillow-shaped height, crimps flat, film sheen along the pack
    pillow = np.clip(1.0 - ((yy - c) / hh) ** 2, 0, 1) * (1.0 - end)
    hgt = 6.0 * np.sqrt(pillow) * (alpha > 0)
    sheen = np.clip(_blur_noise(rng, (size, size), hh / 3) * 0.5, -1, 1)
    col = col * (1.0 + 0.05 * sheen[..., None])
    col = _mix(col, (245, 245, 245), 0.18 * np.exp(-(((yy - c + 0.35 * hh) / (0.12 * hh)) ** 2)) * (1 - end))
    crimp_lines = (np.sin((xx - c) * 2.2) * 0.5 + 0.5) * end
    col = col * (1.0 - 0.12 * crimp_lines[..., None])
    d = Drawn(alpha, np.clip(col, 0, 255).astype(np.float32), hgt.astype(np.float32))
    if anomaly == "torn":  # a corner torn open: the pale inner film shows along the tear
        phi = math.atan2(hh * (1 if rng.random() < 0.5 else -1), hw * (1 if rng.random() < 0.5 else -1))
        cut = _cut_polygon(rng, (size, size), (c, c), math.hypot(hw, hh), phi, r * rng.uniform(0.35, 0.55))
        d = _apply_cut(d, cut, crumb_bgr=(215, 220, 225))
    return d


# --------------------------------------------------------------------------- toy figures

_PLASTIC = np.array(
    [
        (40, 40, 200),
        (200, 90, 30),
        (40, 200, 230),
        (60, 170, 40),
        (180, 60, 160),
        (230, 230, 230),
        (30, 120, 240),
        (150, 150, 40),
    ],
    np.float32,
)
_SKIN = np.array([140, 180, 230], np.float32)


def draw_toy(rng: np.random.Generator, r: float, missing: str = "") -> Drawn:
    """A toy figure lying on the belt: head, body, two arms and two legs in a random pose."""
    s = r * 1.25  # body length
    size, c = _canvas(1.55 * s)
    xx, yy = _grid(size, size)
    bw, bh = 0.30 * s, 0.42 * s  # body half sizes (x across the figure, y along it)
    body_c = (c, c - 0.05 * s)
    limb_r_arm, limb_r_leg = 0.085 * s, 0.11 * s
    parts = {}
    parts["body"] = (_sd_box(xx, yy, body_c[0], body_c[1], bw, bh, 0.12 * s), 0.16 * s)
    head_r = 0.24 * s
    tilt = math.radians(rng.uniform(-20, 20))
    hc = (body_c[0] + math.sin(tilt) * (bh + head_r * 0.9), body_c[1] - math.cos(tilt) * (bh + head_r * 0.9))
    parts["head"] = (_sd_circle(xx, yy, hc[0], hc[1], head_r), head_r)
    for side in (-1, 1):
        sh = (body_c[0] + side * (bw - 0.04 * s), body_c[1] - bh + 0.12 * s)
        ang = math.radians(side * rng.uniform(15, 160))  # from hanging down to raised
        ln = 0.62 * s
        hand = (sh[0] + math.sin(ang) * ln, sh[1] + math.cos(ang) * ln)
        parts["arm" + ("L" if side < 0 else "R")] = (_sd_capsule(xx, yy, sh, hand, limb_r_arm), limb_r_arm)
        hip = (body_c[0] + side * 0.16 * s, body_c[1] + bh - 0.06 * s)
        lang = math.radians(side * rng.uniform(0, 35))
        ll = 0.62 * s
        foot = (hip[0] + math.sin(lang) * ll, hip[1] + math.cos(lang) * ll)
        parts["leg" + ("L" if side < 0 else "R")] = (_sd_capsule(xx, yy, hip, foot, limb_r_leg), limb_r_leg)
    if missing:
        parts.pop(missing)
    c_body, c_limb = _PLASTIC[rng.permutation(len(_PLASTIC))[:2]]
    head_col = _SKIN * rng.uniform(0.85, 1.05) if rng.random() < 0.6 else c_limb
    sd = np.full((size, size), 1e6, np.float32)
    col = np.zeros((size, size, 3), np.float32)
    hgt = np.zeros((size, size), np.float32)
    for name, (psd, rad) in parts.items():
        pc = c_body if name == "body" else head_col if name == "head" else c_limb
        cov = _cov(psd)
        take = cov * (psd < sd)
        col = _mix(col, pc, take)
        ph = rad * np.sqrt(np.clip(1.0 - (1.0 + np.minimum(psd, 0) / rad) ** 2, 0, 1))  # round limbs
        hgt = np.maximum(hgt, ph * cov)
        sd = np.minimum(sd, psd)
    if "head" in parts:  # eyes
        for side in (-1, 1):
            ex = hc[0] + side * 0.35 * head_r * math.cos(tilt) - 0.1 * head_r * math.sin(tilt)
            ey = hc[1] - 0.1 * head_r + side * 0.35 * head_r * math.sin(tilt)
            col = _mix(col, (25, 25, 25), _cov(_sd_circle(xx, yy, ex, ey, max(1.2, 0.09 * head_r))))
    col = col * _grain(rng, (size, size), 0.015, 0.02, s / 6)[..., None]
    return Drawn(_cov(sd), np.clip(col, 0, 255).astype(np.float32), hgt)


# --------------------------------------------------------------------------- bottles

_GLASS = np.array([(40, 110, 40), (30, 70, 120), (225, 225, 225), (160, 90, 30), (60, 150, 200)], np.float32)
_CAPS = np.array([(30, 30, 200), (200, 120, 30), (230, 230, 230), (30, 160, 230), (40, 40, 40)], np.float32)


def draw_bottle(rng: np.random.Generator, r: float, no_cap: bool = False) -> Drawn:
    """A bottle lying on its side (seen from above): body, shoulder, narrower neck and a cap."""
    length = 3.0 * r * rng.uniform(0.95, 1.05)
    rb = 0.42 * r * rng.uniform(0.9, 1.1)  # body radius
    rn = rb * rng.uniform(0.32, 0.42)  # neck radius
    size, c = _canvas(0.58 * length)
    xx, yy = _grid(size, size)
    x0 = c - length / 2.0
    body_end = x0 + 0.62 * length
    neck_end = x0 + 0.90 * length
    sl = 0.16 * length  # shoulder length
    t = np.clip((xx - body_end) / sl, 0, 1)
    rad = (rb + (rn - rb) * t * t * (3.0 - 2.0 * t)).astype(np.float32)  # the bottle's radius along its axis
    body = _sd_box(xx, yy, (x0 + body_end) / 2.0, c, (body_end - x0) / 2.0, rb, 0.35 * rb)
    upper = np.maximum(np.maximum(np.abs(yy - c) - rad, xx - neck_end), (body_end - rb) - xx)
    sd = np.minimum(body, upper)
    glass = _GLASS[int(rng.integers(len(_GLASS)))] * rng.uniform(0.9, 1.1)
    col = np.broadcast_to(glass, (size, size, 3)).astype(np.float32).copy()
    # the local radius of the bottle along its axis -> a cylinder's height and shading
    rr = np.clip(np.abs(yy - c) / rad, 0, 1)
    hgt = rad * np.sqrt(1.0 - rr**2)
    if rng.random() < 0.7:  # a paper label round the body
        lab_x0 = x0 + rng.uniform(0.12, 0.2) * length
        lab_x1 = body_end - rng.uniform(0.06, 0.12) * length
        lab = ((xx > lab_x0) & (xx < lab_x1)).astype(np.float32)
        lab = cv2.GaussianBlur(lab, (0, 0), 0.7)
        lcol = _PACK_COLOURS[int(rng.integers(len(_PACK_COLOURS)))]
        col = _mix(col, lcol, lab)
        band = (np.abs(yy - c) < 0.25 * rb) & (xx > lab_x0 + 4) & (xx < lab_x1 - 4)
        col = _mix(col, (235, 235, 235), 0.8 * band.astype(np.float32))
    # specular streak along the body (the light's reflection) and darker glass at the rims
    col = col * (0.75 + 0.25 * np.sqrt(1.0 - rr**2))[..., None]
    col = _mix(col, (250, 250, 250), 0.55 * np.exp(-(((yy - c + 0.45 * rad) / (0.12 * rad)) ** 2)))
    if not no_cap:
        cap = _sd_box(xx, yy, neck_end + 0.05 * length, c, 0.055 * length, rn * 1.18, 1.5)
        capc = _CAPS[int(rng.integers(len(_CAPS)))]
        ribs = 1.0 - 0.15 * (np.sin((yy - c) * 2.5) > 0)
        capcov = _cov(cap)
        col = _mix(col, capc * ribs[..., None], capcov)
        hgt = np.maximum(hgt, rn * 1.18 * np.sqrt(np.clip(1 - ((yy - c) / (rn * 1.18)) ** 2, 0, 1)) * capcov)
        sd = np.minimum(sd, cap)
    return Drawn(_cov(sd), np.clip(col, 0, 255).astype(np.float32), hgt.astype(np.float32))


# --------------------------------------------------------------------------- L-shaped parts


def draw_lpart(rng: np.random.Generator, r: float, anomaly: str = "") -> Drawn:
    """A flat machined (aluminium) or moulded (dark plastic) L-shaped part with drilled holes."""
    a = 2.1 * r * rng.uniform(0.9, 1.1)  # long leg
    b = 1.5 * r * rng.uniform(0.9, 1.1)  # short leg
    t = 0.55 * r * rng.uniform(0.9, 1.1)  # width of the legs
    size, c = _canvas(0.75 * max(a, b) + t)
    xx, yy = _grid(size, size)
    ox, oy = c - a / 2.0, c - b / 2.0  # outer corner
    leg1 = _sd_box(xx, yy, ox + a / 2.0, oy + t / 2.0, a / 2.0, t / 2.0, 0.12 * t)
    leg2 = _sd_box(xx, yy, ox + t / 2.0, oy + b / 2.0, t / 2.0, b / 2.0, 0.12 * t)
    sd = np.minimum(leg1, leg2)
    if anomaly == "broken":  # the long leg snapped: a jagged fracture across it, the rest gone
        xb = ox + a * rng.uniform(0.45, 0.65)
        line = _jagged_line(rng, (xb, oy - 4), (xb + rng.uniform(-0.3, 0.3) * t, oy + t + 4), 2.5, 1.4)
        gone = _sd_poly((size, size), np.vstack([line, [[size + 5, oy + t + 4], [size + 5, oy - 4]]]))
        sd = np.maximum(sd, -gone)
    holes = [(ox + a - 0.55 * t, oy + t / 2.0), (ox + t / 2.0, oy + b - 0.55 * t)]
    if anomaly == "broken":
        holes = holes[1:]
    if anomaly == "missing-hole":
        holes.pop(int(rng.integers(2)))
    hr = 0.18 * t
    for hx, hy in holes:
        sd = np.maximum(sd, -_sd_circle(xx, yy, hx, hy, hr))  # through-holes: the belt shows
    metal = rng.random() < 0.6
    if metal:
        base = np.float32(rng.uniform(165, 195)) * np.array([1.0, 1.0, 0.98], np.float32)
        brushed: np.ndarray = cv2.GaussianBlur(
            rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigmaX=9.0, sigmaY=0.6
        )
        brushed /= float(brushed.std()) + 1e-9
        col = base * (1.0 + 0.04 * brushed)[..., None]
    else:
        base = np.float32(rng.uniform(40, 70)) * np.array([1.0, 1.0, 1.03], np.float32)
        col = base * _grain(rng, (size, size), 0.03, 0.03, t / 3)[..., None]
    if anomaly == "broken":  # the fracture is lighter, rough metal / plastic
        col = _mix(col, base * 1.25, 0.7 * np.clip(1.0 - np.abs(gone) / 2.5, 0, 1))
    hgt = _bevel(sd, 0.12 * t, 5.0)
    return Drawn(_cov(sd), np.clip(col, 0, 255).astype(np.float32), hgt)


# --------------------------------------------------------------------------- packs with a carrying handle

_BAG = np.array([(90, 140, 185), (235, 235, 235), (40, 120, 40), (150, 60, 30), (40, 40, 170)], np.float32)


def draw_bag(rng: np.random.Generator, r: float, torn: bool = False) -> Drawn:
    """A bag with a loop handle at one end: the loop encloses a hole where the belt shows."""
    bw = 1.0 * r * rng.uniform(0.9, 1.1)  # half length of the bag
    bh = 0.75 * r * rng.uniform(0.9, 1.1)  # half width
    loop_rx, loop_ry = 0.42 * bh, 0.62 * bh
    th = max(2.5, 0.10 * bh)  # handle thickness
    size, c = _canvas(bw + 2 * loop_rx + th)
    xx, yy = _grid(size, size)
    bx = c - loop_rx
    body = _sd_box(xx, yy, bx, c, bw, bh, 0.12 * bh) + _wobble(rng, (size, size), 1.0, bh / 4)
    lx = bx + bw + loop_rx * 0.55  # loop centre, overlapping the bag's end
    ell = np.hypot((xx - lx) / loop_rx, (yy - c) / loop_ry)
    ring = (np.abs(ell - 1.0) * min(loop_rx, loop_ry) - th / 2.0).astype(np.float32)
    if torn:  # the loop broken open at its far side
        gap = (xx > lx + 0.55 * loop_rx) & (np.abs(yy - c) < 0.35 * loop_ry + rng.uniform(0, 4))
        ring = np.where(gap, np.float32(10.0), ring)
    sd = np.minimum(body, ring)
    bagc = _BAG[int(rng.integers(len(_BAG)))] * rng.uniform(0.92, 1.06)
    wr = _blur_noise(rng, (size, size), bh / 5)  # wrinkles
    col = bagc * (1.0 + 0.06 * wr)[..., None]
    col = np.where((ring < body)[..., None], bagc * 0.8, col)
    hgt = _bevel(body, 0.25 * bh, 9.0) + 1.5 * wr * _cov(body) + 2.0 * _cov(ring)
    if rng.random() < 0.7:  # a printed logo on the bag
        col = _mix(
            col,
            _PACK_COLOURS[int(rng.integers(len(_PACK_COLOURS)))],
            0.85 * _cov(_sd_circle(xx, yy, bx - 0.2 * bw, c, 0.35 * bh)),
        )
    return Drawn(_cov(sd), np.clip(col, 0, 255).astype(np.float32), hgt.astype(np.float32))
