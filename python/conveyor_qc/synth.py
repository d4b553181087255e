"""Synthetic conveyor-belt videos with exact ground truth.

``synthesize(out_dir, preset, seed, seconds)`` renders a belt carrying products
(chocolate-chip cookies) past a fixed camera and writes, atomically:

* ``video.mp4``  - the video (``mp4v``, BGR),
* ``gt.txt``     - MOTChallenge ground truth ``frame,id,x,y,w,h,1,1,visibility``:
  frame and id 1-based (ids in order of entry), the box is the *visible* part
  of the object (clipped to the frame, from the object's own alpha mask), and
  visibility is the visible fraction of the object's area,
* ``labels.csv`` - ``id,label,kind`` with label ``normal|anomaly`` and kind
  ``normal|broken|stacked``.

How it works. The scene is rendered in a canonical orientation where the belt
moves along +u (columns) and "across" is v (rows); the vertical preset is the
transpose of that. Every object (sprite with alpha, plus its soft shadow) is
rendered once into a pre-multiplied patch ``(M, A)`` so that compositing is a
single ``frame = frame * M + A`` per visible object and frame. Objects never
rotate and all move with the belt by the same whole-pixel shift each frame,
so their relative positions are fixed: they are placed once on an endless
belt so that the boxes of different objects never overlap (except touching
pairs, whose masks touch without overlapping). A broken cookie split in two,
or two stacked cookies, is ONE object (one id, the union box). Shadows are
not part of an object. The belt texture is a periodic strip scrolled by the
same shift, so the belt visibly moves with the objects.

Everything random comes from one ``numpy`` Generator seeded by ``seed``: the
same seed gives the same ground truth (and the same frames).

Photo credit: the "light-on-dark" preset pastes cut-outs of real cookie photos
from the AWS Lookout for Vision samples (aws-samples/amazon-lookout-for-vision,
computer-vision-defect-detection/cookie-dataset), licensed CC BY-SA 4.0, found
in ``$CONVEYOR_QC_SHARED/data/aws-cookies`` (default ``../shared`` beside the
repository root).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .atomic import fsync_directory, fsync_path, temporary_sibling

__all__ = ["PRESETS", "Preset", "SynthResult", "SynthDataError", "synthesize", "shared_dir"]

SHARED_ENV = "CONVEYOR_QC_SHARED"
_PHOTO_SUBDIR = Path("data") / "aws-cookies"


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """Every parameter of a synthetic video. Lengths in pixels, colours BGR 0-255."""

    name: str
    description: str = ""
    # --- video -------------------------------------------------------------------
    width: int = 1280  # frame width
    height: int = 720  # frame height
    fps: float = 30.0  # frames per second written into the mp4
    seconds: float = 20.0  # default duration when synthesize(seconds=None)
    direction: str = "right"  # "right": enter at the left, move to +x; "down": enter at the top, move to +y
    # --- belt --------------------------------------------------------------------
    belt_speed: float = 8.0  # belt (and object) speed, px per frame
    belt_bgr: tuple = (182, 193, 200)  # mean belt colour (light grey/beige)
    belt_texture: float = 1.0  # strength of the moving belt texture (grain, streaks, blotches, specks); 0 = flat
    rail_px: int = 34  # width of the static side rails along both belt edges (0 = none)
    rail_bgr: tuple = (118, 120, 122)  # rail colour
    vignette: float = 0.10  # brightness loss in the frame corners (lens / lighting fall-off), fraction
    prefill: bool = True  # the belt already carries objects on frame 1 (else it starts empty)
    # --- objects -----------------------------------------------------------------
    style: str = "drawn"  # "drawn": procedural cookies; "photo": cut-outs of the real cookie photos
    rate: float = 3.0  # mean number of objects entering the view per second
    radius: tuple = (40.0, 55.0)  # object radius range (drawn cookies; photo cut-outs: equivalent-disc radius)
    lane_margin: int = 8  # minimum distance between an object and the belt edge (rails)
    min_gap: int = 8  # minimum clearance between the boxes of two objects that do not touch
    touching_share: float = 0.12  # chance that an object arrives as a pair of two objects just touching
    anomaly_share: float = 0.25  # chance that an object is an anomaly
    stacked_share: float = 0.4  # among anomalies: share of "stacked" (two cookies on top of each other)
    split_share: float = 0.5  # among "broken": share split in two halves with a gap (else: a chunk missing)
    split_gap: tuple = (3.0, 6.0)  # gap between the two halves of a split cookie
    stack_offset: tuple = (0.3, 0.5)  # offset of the top cookie of a stack, fraction of the radius
    # --- shadows -----------------------------------------------------------------
    shadow_offset: tuple = (5.0, 7.0)  # shadow displacement (dx, dy) in the output frame
    shadow_blur: float = 5.0  # gaussian sigma of the shadow edge
    shadow_strength: float = 0.42  # darkening at the shadow's core, fraction
    # --- camera ------------------------------------------------------------------
    noise_sigma: float = 2.5  # gaussian sensor noise, grey levels, fresh each frame
    jpeg_quality: int = 80  # JPEG round-trip of each frame before mp4 encoding (0 = off)
    flicker: float = 0.0  # frame-to-frame global brightness variation (std, fraction)
    motion_blur: int = 0  # length of the box blur along the motion, px (0 or 1 = none)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="cookies",
            description="The demo: chocolate-chip cookies on a light beige belt, entering from the left, "
            "1280x720 at 30 fps, ~3 cookies/s at 8 px/frame, 25% anomalies (broken or stacked).",
        ),
        Preset(
            name="vertical",
            description="A vertical section of belt: the cookies enter at the top and move down "
            "(720x1280 portrait); otherwise like 'cookies'.",
            width=720,
            height=1280,
            direction="down",
        ),
        Preset(
            name="light-on-dark",
            description="Real cookie photos (AWS Lookout for Vision samples, CC BY-SA 4.0) cut out and "
            "pasted on a dark belt; anomaly photos give 'broken' anomalies.",
            style="photo",
            belt_bgr=(54, 56, 58),
            belt_texture=0.7,
            rail_bgr=(96, 98, 100),
            rate=2.5,
            radius=(45.0, 55.0),
            stacked_share=0.0,
            touching_share=0.10,
            shadow_strength=0.5,
            shadow_blur=4.0,
            noise_sigma=3.0,
        ),
        Preset(
            name="hard",
            description="Crowded belt with many touching pairs, flickering light, motion blur along the "
            "motion and strong noise.",
            belt_speed=10.0,
            rate=6.0,
            min_gap=4,
            touching_share=0.35,
            noise_sigma=6.0,
            flicker=0.06,
            motion_blur=9,
            vignette=0.18,
            jpeg_quality=70,
        ),
    )
}


@dataclass(frozen=True)
class SynthResult:
    """What synthesize() wrote."""

    out_dir: Path
    video: Path
    gt: Path
    labels: Path
    preset: str
    seed: int
    frames: int
    fps: float
    size: tuple  # (width, height)
    objects: int  # ground-truth ids
    anomalies: int  # ids labelled anomaly
    kinds: dict  # {"normal": n, "broken": n, "stacked": n}
    sources: tuple = ()  # per id (index id - 1): source photo ("images/x.jpg") or "" for drawn objects


class SynthDataError(FileNotFoundError, ValueError):
    """The real photos needed by a preset are missing."""


def shared_dir() -> Path:
    """The shared folder: $CONVEYOR_QC_SHARED, default ``../shared`` beside the repository root."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env)
    beside_repo = Path(__file__).resolve().parents[2].parent / "shared"  # source checkout: <repo>/python/conveyor_qc
    beside_cwd = Path.cwd().resolve().parent / "shared"  # installed package, run from the repository root
    return beside_repo if beside_repo.is_dir() or not beside_cwd.is_dir() else beside_cwd


# --------------------------------------------------------------------------- small helpers


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
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
    n /= float(n.std()) + 1e-9
    return n


def _shift(img: np.ndarray, dx: float, dy: float, size: tuple | None = None) -> np.ndarray:
    """Translate by (dx, dy) (sub-pixel, bilinear) into an array of ``size`` = (w, h)."""
    h, w = img.shape[:2]
    m = np.float32([[1, 0, dx], [0, 1, dy]])
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


# --------------------------------------------------------------------------- drawn cookies

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
    rot = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(rng.uniform(-4, 4)), 1.0)
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


# --------------------------------------------------------------------------- real photos


@dataclass
class _Photo:
    ref: str  # "images/x.jpg"
    anomaly: bool
    alpha: np.ndarray  # float32 mask crop (feathered), full photo resolution
    pm: np.ndarray  # premultiplied colour crop
    radius: float  # equivalent-disc radius of the cookie, px


_PHOTO_CACHE: dict[str, list] = {}


def _segment_cookie(img: np.ndarray, anomaly: bool) -> np.ndarray:
    """The cookie of a photo as a 0/255 mask: Otsu on yellowness + lightness, keep the big parts."""
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    lum, _, yb = [c.astype(np.float32) for c in cv2.split(lab)]
    feat = (yb - 128.0) * 2.0 + (lum - float(lum.mean())) * 0.5
    feat = cv2.GaussianBlur(feat, (0, 0), 1.5)
    f8 = cv2.normalize(feat, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, m = cv2.threshold(f8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    n, lab_img, st, _ = cv2.connectedComponentsWithStats(m)
    if n <= 1:
        raise ValueError("no cookie found")
    areas = st[1:, cv2.CC_STAT_AREA]
    big = int(np.argmax(areas))
    h, w = m.shape
    keep = np.zeros_like(m)
    for i, area in enumerate(areas):
        x, y, bw, bh = st[i + 1, :4]
        at_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        if i == big or (area >= 0.08 * areas[big] and not at_border):
            keep[lab_img == i + 1] = 255
    # chips at the outline leave notches: close them (gently for broken cookies, to keep the cracks)
    k = 15 if not anomaly else 5
    keep = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    # fill holes (dark chips inside)
    ff = cv2.bitwise_not(keep)
    cv2.floodFill(ff, np.zeros((h + 2, w + 2), np.uint8), (0, 0), 0)
    keep = keep | ff
    # leave out the tray-coloured outline
    return cv2.erode(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))


def _photo_folder() -> Path:
    return shared_dir() / _PHOTO_SUBDIR


def _load_photos() -> list:
    folder = _photo_folder()
    key = str(folder.resolve())
    if key in _PHOTO_CACHE:
        return _PHOTO_CACHE[key]
    manifest = folder / "train.manifest"
    hint = (f"the 'light-on-dark' preset needs the real cookie photos in {folder} "
            f"(images/*.jpg and train.manifest); set {SHARED_ENV} to the shared folder")
    if not manifest.is_file():
        raise SynthDataError(f"{hint}: {manifest} not found")
    photos = []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        ref = entry["source-ref"]
        cls = entry["anomaly-label-metadata"]["class-name"]
        img = cv2.imread(str(folder / ref), cv2.IMREAD_COLOR)
        if img is None:
            raise SynthDataError(f"{hint}: cannot read {folder / ref}")
        anomaly = cls == "anomaly"
        mask = _segment_cookie(img, anomaly)
        ys, xs = np.nonzero(mask)
        pad = 3
        y0, y1 = max(0, ys.min() - pad), min(img.shape[0], ys.max() + 1 + pad)
        x0, x1 = max(0, xs.min() - pad), min(img.shape[1], xs.max() + 1 + pad)
        a = cv2.GaussianBlur(mask[y0:y1, x0:x1].astype(np.float32) / 255.0, (0, 0), 0.7)
        pm = img[y0:y1, x0:x1].astype(np.float32) * a[..., None]
        photos.append(_Photo(ref, anomaly, a, pm, math.sqrt(float((mask > 0).sum()) / math.pi)))
    if not photos or not any(p.anomaly for p in photos) or all(p.anomaly for p in photos):
        raise SynthDataError(f"{hint}: the manifest must list both normal and anomaly photos")
    _PHOTO_CACHE[key] = photos
    return photos


def _photo_sprite(rng: np.random.Generator, photo: _Photo, r: float) -> tuple:
    a, pm = photo.alpha, photo.pm
    if rng.random() < 0.5:
        a, pm = a[:, ::-1], pm[:, ::-1]
    h, w = a.shape
    scale = r / photo.radius
    diag = int(math.ceil(math.hypot(h, w) * scale)) + 4
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(rng.uniform(0, 360)), scale)
    m[:, 2] += np.array([diag / 2.0 - w / 2.0, diag / 2.0 - h / 2.0])
    a = cv2.warpAffine(np.ascontiguousarray(a), m, (diag, diag), flags=cv2.INTER_AREA)
    pm = cv2.warpAffine(np.ascontiguousarray(pm), m, (diag, diag), flags=cv2.INTER_AREA)
    pm = pm * rng.uniform(0.94, 1.06)
    return _crop_sprite(np.clip(a, 0, 1), pm)


# --------------------------------------------------------------------------- scene


@dataclass
class _Obj:
    alpha: np.ndarray
    pm: np.ndarray
    kind: str
    source: str
    lift: float  # height above the belt, scales the shadow
    b: int = 0  # canonical along-belt position of the sprite origin at frame 0
    v: int = 0  # canonical across position
    # filled by _prepare
    mask: np.ndarray | None = None
    patch_m: np.ndarray | None = None
    patch_a: np.ndarray | None = None
    pu: int = 0  # patch origin relative to the sprite origin
    pv: int = 0
    colcount: np.ndarray | None = None
    colmin: np.ndarray | None = None
    colmax: np.ndarray | None = None
    area: int = 0
    full_box: tuple = ()
    id: int = 0  # ground-truth id once it has entered the view


_MAX_LIFT = 1.5  # shadow scale of the tallest objects (stacks)


def _make_sprite(rng: np.random.Generator, p: Preset, kind: str, photos: list | None) -> _Obj:
    r = float(rng.uniform(*p.radius))
    sh = _canon_xy(p, p.shadow_offset)
    if p.style == "photo":
        pool = [ph for ph in photos if ph.anomaly == (kind != "normal")]
        photo = pool[int(rng.integers(len(pool)))]
        a, pm = _photo_sprite(rng, photo, r)
        return _Obj(a, pm, kind, photo.ref, 1.0)
    if kind == "stacked":
        a, pm = _draw_stacked(rng, r, float(rng.uniform(*p.stack_offset)), sh)
        return _Obj(a, pm, kind, "", _MAX_LIFT)
    if kind == "broken":
        if rng.random() < p.split_share:
            a, pm = _draw_split(rng, r, float(rng.uniform(*p.split_gap)))
        else:
            a, pm = _draw_chunk_missing(rng, r)
        return _Obj(a, pm, kind, "", 1.0)
    a, pm = _draw_cookie(rng, r)
    a, pm = _crop_sprite(a, pm)
    return _Obj(a, pm, kind, "", 1.0)


def _canon_xy(p: Preset, xy: tuple) -> tuple:
    """An (dx, dy) of the output frame in canonical (along, across) = (du, dv) order."""
    return (float(xy[0]), float(xy[1])) if p.direction == "right" else (float(xy[1]), float(xy[0]))


def _mask(o: _Obj) -> np.ndarray:
    return o.alpha >= 0.5


def _touch_offset(m1: np.ndarray, m2: np.ndarray, rng: np.random.Generator) -> tuple:
    """Integer offset (du, dv) of m2's origin relative to m1's so that the masks touch without overlap."""
    h1, w1 = m1.shape
    h2, w2 = m2.shape
    c1 = np.array([w1 / 2.0, h1 / 2.0])
    c2 = np.array([w2 / 2.0, h2 / 2.0])
    ang = rng.uniform(0, 2 * np.pi)
    direction = np.array([math.cos(ang), math.sin(ang)])
    pad = max(h2, w2) + 4
    big = np.zeros((h1 + 2 * pad, w1 + 2 * pad), bool)
    big[pad : pad + h1, pad : pad + w1] = m1
    grown = cv2.dilate(big.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    last = None
    d = (max(h1, w1) + max(h2, w2)) / 2.0 + 2.0
    while d > 0:
        o = np.round(c1 + d * direction - c2).astype(int)
        ys, xs = o[1] + pad, o[0] + pad
        if 0 <= ys and ys + h2 <= big.shape[0] and 0 <= xs and xs + w2 <= big.shape[1]:
            if (big[ys : ys + h2, xs : xs + w2] & m2).any():
                break
            last = (int(o[0]), int(o[1]))
            if (grown[ys : ys + h2, xs : xs + w2] & m2).any():
                return last
        d -= 0.5
    if last is None:  # cannot happen for sane masks
        last = (w1 + 1, 0)
    return last


class _Placer:
    """Places groups on the endless belt so that the boxes of different groups keep min_gap apart."""

    def __init__(self, gap: int):
        self.gap = gap
        self.boxes = np.zeros((0, 4), np.int64)  # u0, v0, u1, v1 (exclusive)

    def free(self, u0: int, v0: int, u1: int, v1: int) -> bool:
        b = self.boxes
        if not len(b):
            return True
        g = self.gap
        hit = (b[:, 0] < u1 + g) & (u0 < b[:, 2] + g) & (b[:, 1] < v1 + g) & (v0 < b[:, 3] + g)
        return not bool(hit.any())

    def add(self, u0: int, v0: int, u1: int, v1: int) -> None:
        self.boxes = np.vstack([self.boxes, [[u0, v0, u1, v1]]])
        if len(self.boxes) > 400:  # far-away ones can no longer collide (cursor only moves left)
            self.boxes = self.boxes[-200:]


class _Planner:
    """Makes the objects in order of arrival and places them on the endless belt.

    Objects are made only when the belt brings them close to the view, so memory
    stays bounded for long videos, and a longer video starts like a shorter one
    with the same seed.
    """

    def __init__(self, rng: np.random.Generator, p: Preset, L: int, W: int, photos: list | None):
        self.rng, self.p, self.photos = rng, p, photos
        self.spacing = p.belt_speed * p.fps / p.rate  # mean along-belt distance per object
        self.lo_v = p.rail_px + p.lane_margin
        self.hi_v = W - p.rail_px - p.lane_margin
        self.cursor = float(L) if p.prefill else 0.0  # right edge (along) of the next group, belt coordinates
        self.placer = _Placer(p.min_gap)
        # Shuffle bags keep every stretch of video close to the preset's shares (plain coin flips
        # give 12% in one 10 s clip and 38% in the next): a bag of 20 objects holds round(20 *
        # anomaly_share) anomalies, a bag of 10 anomalies round(10 * stacked_share) stacked ones.
        self.bags: dict[str, list] = {"anomaly": [], "kind": []}

    def _from_bag(self, name: str, size: int, share: float) -> bool:
        bag = self.bags[name]
        if not bag:
            k = int(round(size * share))
            bag.extend(self.rng.permutation(np.array([True] * k + [False] * (size - k), bool)).tolist())
        return bag.pop()

    def _kind(self) -> str:
        if self._from_bag("anomaly", 20, self.p.anomaly_share):
            return "stacked" if self._from_bag("kind", 10, self.p.stacked_share) else "broken"
        return "normal"

    def next_group(self) -> list:
        """One arriving object, or a pair of touching objects, placed left of the previous ones."""
        rng, p = self.rng, self.p
        while True:
            group = [_make_sprite(rng, p, self._kind(), self.photos)]
            rel = [(0, 0)]
            if rng.random() < p.touching_share:
                group.append(_make_sprite(rng, p, self._kind(), self.photos))
                rel.append(_touch_offset(_mask(group[0]), _mask(group[1]), rng))
            gu0 = min(ru for ru, _ in rel)
            gv0 = min(rv for _, rv in rel)
            gw = max(ru + o.alpha.shape[1] for (ru, _), o in zip(rel, group, strict=True)) - gu0
            gh = max(rv + o.alpha.shape[0] for (_, rv), o in zip(rel, group, strict=True)) - gv0
            if gh <= self.hi_v - self.lo_v:
                break  # else too wide for the belt (a pair across it): make another
        self.cursor -= len(group) * self.spacing * rng.gamma(3.0, 1.0 / 3.0)
        v0 = None
        while v0 is None:
            u1 = int(math.floor(self.cursor))
            u0 = u1 - gw
            for _ in range(24):  # a random lane with room for the group
                v = int(rng.integers(self.lo_v, self.hi_v - gh + 1))
                if self.placer.free(u0, v, u1, v + gh):
                    v0 = v
                    break
            else:
                self.cursor -= 6.0  # no room across the belt here: a little further upstream
        self.placer.add(u0, v0, u1, v0 + gh)
        for (ru, rv), o in zip(rel, group, strict=True):
            o.b = u0 + ru - gu0
            o.v = v0 + rv - gv0
        return group


def _prepare(o: _Obj, p: Preset) -> None:
    """Mask statistics for the ground truth and the pre-multiplied (M, A) patch with the shadow."""
    a, pm = o.alpha, o.pm
    h, w = a.shape
    m = a >= 0.5
    o.mask = m
    o.colcount = m.sum(axis=0).astype(np.int64)
    rows = np.arange(h)[:, None]
    o.colmin = np.where(m, rows, h).min(axis=0)
    o.colmax = np.where(m, rows, -1).max(axis=0)
    o.area = int(o.colcount.sum())
    cols = np.flatnonzero(o.colcount)
    o.full_box = (int(cols[0]), int(o.colmin.min()), int(cols[-1]) + 1, int(o.colmax.max()) + 1)

    du, dv = _canon_xy(p, p.shadow_offset)
    du, dv = du * o.lift, dv * o.lift
    sig = p.shadow_blur * (1.0 + 0.3 * (o.lift - 1.0))
    pad = int(math.ceil(max(abs(du), abs(dv)) + 3.0 * sig)) + 1
    hp, wp = h + 2 * pad, w + 2 * pad
    # the shadow is the object's own silhouette, a little grown, displaced and blurred
    sil = cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    sh = np.zeros((hp, wp), np.float32)
    sh[pad : pad + h, pad : pad + w] = sil
    sh = cv2.GaussianBlur(_shift(sh, du, dv), (0, 0), sig)
    ap = np.zeros((hp, wp), np.float32)
    ap[pad : pad + h, pad : pad + w] = a
    mm = (1.0 - p.shadow_strength * sh) * (1.0 - ap)
    aa = np.zeros((hp, wp, 3), np.float32)
    aa[pad : pad + h, pad : pad + w] = pm
    ys, xs = np.nonzero((mm < 0.998) | (ap > 0))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    o.patch_m = np.ascontiguousarray(np.repeat(mm[y0:y1, x0:x1, None], 3, axis=2))
    o.patch_a = np.ascontiguousarray(aa[y0:y1, x0:x1])
    o.pu, o.pv = x0 - pad, y0 - pad
    o.alpha = o.pm = None  # no longer needed


# --------------------------------------------------------------------------- belt and camera


def _belt_strip(rng: np.random.Generator, p: Preset, W: int, L: int) -> tuple:
    """A periodic belt texture strip (W x P) extended by L columns for wrap-free slicing, and P."""
    period = 1 << int(math.ceil(math.log2(max(2 * L, 1024))))
    shape = (W, period)
    s = p.belt_texture
    lum = np.zeros(shape, np.float32)
    if s > 0:
        lum += 2.6 * s * rng.standard_normal(shape).astype(np.float32)  # grain
        lum += 2.8 * s * _periodic_noise(rng, shape, 1.2, 30.0)  # streaks along the motion
        lum += 4.0 * s * _periodic_noise(rng, shape, 45.0, 70.0)  # blotches
        specks = np.zeros(shape, np.uint8)
        for _ in range(int(period * W / 5000 * s)):
            x, y = int(rng.integers(period)), int(rng.integers(W))
            rad = int(rng.integers(1, 3))
            val = int(rng.integers(60, 200))
            for xx in (x - period, x, x + period):
                cv2.circle(specks, (xx, y), rad, val, -1, cv2.LINE_AA)
        lum -= 0.22 * s * cv2.GaussianBlur(specks.astype(np.float32), (0, 0), 0.6)
    base = np.asarray(p.belt_bgr, np.float32)
    tint = np.array([1.0, 0.98, 0.95], np.float32)
    strip = base + lum[..., None] * tint
    strip = np.clip(np.concatenate([strip, strip[:, :L]], axis=1), 0, 255)
    return strip.astype(np.uint8), period


def _rails(p: Preset, W: int, L: int, rng: np.random.Generator) -> tuple:
    """Static side rails (top and bottom rows of the canonical frame), float32, or None."""
    r = p.rail_px
    if r <= 0:
        return None, None
    base = np.asarray(p.rail_bgr, np.float32)
    y = np.arange(r, dtype=np.float32)[:, None]
    prof = 1.0 + 0.18 * np.exp(-((y - r * 0.35) ** 2) / (2 * (r * 0.12) ** 2)) - 0.25 * _smoothstep(r * 0.75, r, y)
    brushed = 1.0 + 0.02 * _blur_noise(rng, (r, L), 0).astype(np.float32)
    brushed = cv2.GaussianBlur(brushed, (0, 0), sigmaX=25, sigmaY=0.5)
    top = base * (prof * brushed)[..., None]
    top[-3:] *= np.array([0.45, 0.55, 0.75], np.float32)[:, None, None]  # dark gap at the belt edge
    bottom = top[::-1].copy()
    bottom *= 0.92
    return np.clip(top, 0, 255).astype(np.float32), np.clip(bottom, 0, 255).astype(np.float32)


def _vignette(p: Preset, W: int, L: int) -> np.ndarray:
    yy, xx = np.mgrid[0:W, 0:L].astype(np.float32)
    rr = ((xx - L / 2.0) ** 2 + (yy - W / 2.0) ** 2) / ((L / 2.0) ** 2 + (W / 2.0) ** 2)
    g = 1.0 - p.vignette * rr
    return np.repeat(g[..., None], 3, axis=2)


# --------------------------------------------------------------------------- API


def _check_args(preset, seed, seconds) -> tuple:
    if isinstance(preset, Preset):
        p = preset
    elif isinstance(preset, str) and preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if seconds is None:
        seconds = p.seconds
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"seconds must be a number, not {seconds!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a positive number, not {seconds!r}")
    if p.direction not in ("right", "down"):
        raise ValueError(f"preset {p.name!r}: direction must be 'right' or 'down', not {p.direction!r}")
    if p.style not in ("drawn", "photo"):
        raise ValueError(f"preset {p.name!r}: style must be 'drawn' or 'photo', not {p.style!r}")
    if p.rate <= 0 or p.belt_speed <= 0 or p.fps <= 0 or p.width < 64 or p.height < 64:
        raise ValueError(f"preset {p.name!r}: rate, belt_speed and fps must be positive, size at least 64x64")
    across = p.height if p.direction == "right" else p.width
    if across - 2 * (p.rail_px + p.lane_margin) < 2.6 * p.radius[1] * (2.0 if p.stacked_share > 0 else 1.0):
        raise ValueError(f"preset {p.name!r}: the belt is too narrow for objects of radius {p.radius[1]}")
    frames = max(1, int(round(seconds * p.fps)))
    return p, int(seed), seconds, frames


def _check_out_dir(out_dir) -> Path:
    try:
        out = Path(os.fspath(out_dir))
    except TypeError:
        raise ValueError(f"out_dir must be a path, not {out_dir!r}") from None
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create out_dir {str(out)!r}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"out_dir {str(out)!r} is not writable")
    return out


def synthesize(out_dir, preset: str | Preset = "cookies", seed: int = 0, seconds: float | None = None,
               progress: Callable[[int, int], None] | None = None) -> SynthResult:
    """Render a synthetic belt video with exact ground truth into ``out_dir``.

    Writes ``video.mp4``, ``gt.txt`` and ``labels.csv`` (each to a temporary
    name in ``out_dir``, renamed into place at the end). ``preset`` is a name
    from ``PRESETS`` (or a ``Preset``), ``seconds`` defaults to the preset's,
    ``progress(done_frames, total_frames)`` is called after every frame.
    Raises ValueError for bad arguments before writing anything.
    """
    p, seed, seconds, frames = _check_args(preset, seed, seconds)
    photos = _load_photos() if p.style == "photo" else None
    out = _check_out_dir(out_dir)

    ss = np.random.SeedSequence([seed, 0x5EED])
    rng_obj, rng_belt, rng_cam = (np.random.default_rng(s) for s in ss.spawn(3))
    fps = float(p.fps)
    if p.direction == "right":
        L, W = p.width, p.height
    else:
        L, W = p.height, p.width
    shifts = np.round(p.belt_speed * np.arange(frames)).astype(np.int64)

    # --- scene
    planner = _Planner(rng_obj, p, L, W, photos)
    reach = int(math.ceil(_MAX_LIFT * max(map(abs, p.shadow_offset)) + 3.5 * p.shadow_blur * _MAX_LIFT)) + 8
    strip, period = _belt_strip(rng_belt, p, W, L)
    rail_top, rail_bottom = _rails(p, W, L, rng_belt)
    vign = _vignette(p, W, L)
    n_bank, bpad = 4, 32
    bank = None
    if p.noise_sigma > 0:
        bank = [np.round(rng_cam.standard_normal((W + bpad, L + bpad, 3), dtype=np.float32) * p.noise_sigma)
                .astype(np.int16) for _ in range(n_bank)]
    flick_phase = rng_cam.uniform(0, 2 * np.pi)
    flick_freq = rng_cam.uniform(1.5, 4.0)

    # --- temporary outputs
    names = {"video": "video.mp4", "gt": "gt.txt", "labels": "labels.csv"}
    tmp: dict[str, Path] = {}
    try:
        for key, name in names.items():
            # (mkstemp alone made the outputs readable by their owner only)
            tmp[key] = temporary_sibling(out / name, suffix=Path(name).suffix)
    except OSError as e:
        for t in tmp.values():
            with contextlib.suppress(OSError):
                t.unlink()
        raise ValueError(f"out_dir {str(out)!r} is not writable: {e.strerror or e}") from None

    out_w, out_h = p.width, p.height
    entered: list[_Obj] = []  # in id order
    active: list[_Obj] = []  # made, and not yet past the view
    try:
        writer = _BackgroundWriter(tmp["video"], fps, (out_w, out_h), p.jpeg_quality)
        try:
            with open(tmp["gt"], "w", newline="") as gt:
                for t in range(frames):
                    s = int(shifts[t])
                    # bring in the objects the belt carries close to the view (their shadows reach
                    # at most `reach` px beyond their right edge)
                    while planner.cursor + s + reach > 0:
                        for o in planner.next_group():
                            _prepare(o, p)
                            active.append(o)
                    start = (-s) % period
                    frame = strip[:, start : start + L].astype(np.float32)
                    if rail_top is not None:
                        frame[: p.rail_px] = rail_top
                        frame[W - p.rail_px :] = rail_bottom
                    still, new, rows = [], [], []
                    for o in active:
                        left = o.b + o.pu + s
                        if left >= L:  # gone past the view for good
                            o.patch_m = o.patch_a = o.mask = None
                            continue
                        still.append(o)
                        _composite(frame, o.patch_m, o.patch_a, o.v + o.pv, left)
                        box = _visible_box(o, o.b + s, L)
                        if box is not None:
                            rows.append((o, box))
                            if not o.id:
                                new.append(o)
                    active = still
                    # ids in order of entry: first frame, then the leading edge further along, then across
                    new.sort(key=lambda o: (-(o.b + o.full_box[2]), o.v))
                    for o in new:
                        entered.append(o)
                        o.id = len(entered)
                    rows.sort(key=lambda r: r[0].id)
                    for o, (u0, v0, du, dv, vis) in rows:
                        x, y, w, h = (u0, v0, du, dv) if p.direction == "right" else (v0, u0, dv, du)
                        gt.write(f"{t + 1},{o.id},{x},{y},{w},{h},1,1,{_fmt_vis(vis)}\n")

                    gain = 1.0
                    if p.flicker > 0:
                        gain = 1.0 + p.flicker * (0.8 * math.sin(2 * math.pi * flick_freq * t / fps + flick_phase)
                                                  + 0.6 * float(rng_cam.standard_normal()))
                    img = cv2.multiply(frame, vign, scale=gain, dtype=cv2.CV_8U)
                    if p.motion_blur > 1:  # everything in view moves with the belt (the rails are uniform along it)
                        img = cv2.blur(img, (int(p.motion_blur), 1))
                    if bank is not None:
                        k, oy, ox = (int(x) for x in rng_cam.integers(0, [n_bank, bpad, bpad]))
                        noise = bank[k][oy : oy + W, ox : ox + L]
                        img = cv2.add(img, noise, dtype=cv2.CV_8U) if t % 2 == 0 else \
                            cv2.subtract(img, noise, dtype=cv2.CV_8U)
                    if p.direction == "down":
                        img = cv2.transpose(img)
                    writer.put(img)
                    if progress is not None:
                        progress(t + 1, frames)
        finally:
            writer.close()

        kinds = {"normal": 0, "broken": 0, "stacked": 0}
        with open(tmp["labels"], "w", newline="") as fh:
            fh.write("id,label,kind\n")
            for o in entered:
                kinds[o.kind] += 1
                fh.write(f"{o.id},{'normal' if o.kind == 'normal' else 'anomaly'},{o.kind}\n")
        for key, name in names.items():
            fsync_path(tmp[key])  # the data reaches the disk before the name does
            os.replace(tmp[key], out / name)
        fsync_directory(out)
    except BaseException:
        for t in tmp.values():
            with contextlib.suppress(OSError):
                t.unlink()
        raise

    return SynthResult(
        out_dir=out,
        video=out / names["video"],
        gt=out / names["gt"],
        labels=out / names["labels"],
        preset=p.name,
        seed=seed,
        frames=frames,
        fps=fps,
        size=(out_w, out_h),
        objects=len(entered),
        anomalies=kinds["broken"] + kinds["stacked"],
        kinds=kinds,
        sources=tuple(o.source for o in entered),
    )


class _BackgroundWriter:
    """JPEG round-trip and mp4v encoding on a second thread (OpenCV releases the GIL)."""

    def __init__(self, path: Path, fps: float, size: tuple, jpeg_quality: int):
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise RuntimeError("cv2.VideoWriter cannot write mp4v video (OpenCV built without a video backend?)")
        self.jpeg_quality = int(jpeg_quality)
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="synth-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            img = self.queue.get()
            if img is None:
                return
            if self.error is not None:
                continue
            try:
                if self.jpeg_quality > 0:
                    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
                self.writer.write(img)
            except BaseException as e:  # reported to the caller by put() / close()
                self.error = e

    def put(self, img: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(img)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.writer.release()
        if self.error is not None:
            raise self.error


def _fmt_vis(v: float) -> str:
    if v >= 1.0:
        return "1"
    s = f"{v:.5f}".rstrip("0").rstrip(".")
    return s if s not in ("0", "") else "0.00001"


def _composite(frame: np.ndarray, m: np.ndarray, a: np.ndarray, top: int, left: int) -> None:
    hh, ww = frame.shape[:2]
    ph, pw = m.shape[:2]
    y0, y1 = max(top, 0), min(top + ph, hh)
    x0, x1 = max(left, 0), min(left + pw, ww)
    if y0 >= y1 or x0 >= x1:
        return
    sub = frame[y0:y1, x0:x1]
    cv2.multiply(sub, m[y0 - top : y1 - top, x0 - left : x1 - left], dst=sub)
    cv2.add(sub, a[y0 - top : y1 - top, x0 - left : x1 - left], dst=sub)


def _visible_box(o: _Obj, u: int, L: int) -> tuple | None:
    """Canonical (u0, v0, du, dv, visibility) of the visible part of o's mask with origin at column u."""
    w = o.colcount.size
    c0, c1 = max(0, -u), min(w, L - u)
    if c0 >= c1:
        return None
    if c0 == 0 and c1 == w:
        fb = o.full_box
        return (u + fb[0], o.v + fb[1], fb[2] - fb[0], fb[3] - fb[1], 1.0)
    cnt = o.colcount[c0:c1]
    area = int(cnt.sum())
    if area == 0:
        return None
    nz = np.flatnonzero(cnt)
    x0, x1 = c0 + int(nz[0]), c0 + int(nz[-1]) + 1
    y0 = int(o.colmin[x0:x1].min())
    y1 = int(o.colmax[x0:x1].max()) + 1
    return (u + x0, o.v + y0, x1 - x0, y1 - y0, area / o.area)
