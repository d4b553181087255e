"""The belt (a periodic texture strip scrolled with the objects), the static rails and the light."""

from __future__ import annotations

import math

import cv2
import numpy as np

from conveyor_qc.evaluation.synth.presets import Preset
from conveyor_qc.evaluation.synth.scene import products_of, to_canon
from conveyor_qc.evaluation.synth.util import _blur_noise, _periodic_noise, _smoothstep


def _plain_strip(rng: np.random.Generator, p: Preset, W: int, L: int) -> tuple:
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
    brushed: np.ndarray = 1.0 + 0.02 * _blur_noise(rng, (r, L), 0).astype(np.float32)
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


# --------------------------------------------------------------------------- belt patterns

# the colours of each product's crumbs (BGR)
CRUMB_COLOURS = {
    "cookie": [(78, 148, 206), (60, 118, 182), (22, 36, 62)],
    "cookie-photo": [(90, 150, 200), (60, 110, 160)],
    "choco-square": [(38, 44, 54), (46, 54, 66), (30, 35, 43)],
    "cracker": [(158, 204, 228), (112, 162, 208)],
}


def _belt_strip(
    rng: np.random.Generator,
    p: Preset,
    W: int,
    L: int,
    rng_pattern: np.random.Generator | None = None,
    photo: np.ndarray | None = None,
) -> tuple:
    """The belt: a texture strip (W x period) extended by L columns for wrap-free slicing, and its period.

    "plain" belts without seams, stains or crumbs are the first presets' strip, draw for draw.
    """
    extras = p.seams > 0 or p.stains > 0 or p.crumbs > 0
    if p.belt_pattern == "plain" and not extras:
        return _plain_strip(rng, p, W, L)
    rng2 = rng_pattern if rng_pattern is not None else rng
    period = 1 << int(math.ceil(math.log2(max(2 * L, 1024))))
    if p.belt_pattern == "photo":
        tile = max(64, int(round(1024 * p.belt_photo_scale)))
        period = tile * int(math.ceil(max(2 * L, 1024) / tile))
    if p.belt_pattern == "plain" or p.belt_pattern == "modular":
        # the plain belt's texture (grain, streaks, blotches, specks) over any period
        q = Preset(
            name="_", belt_bgr=p.belt_bgr, belt_texture=p.belt_texture * (0.45 if p.belt_pattern == "modular" else 1.0)
        )
        strip = _texture(rng2, q, W, period).astype(np.float32)
    else:
        assert photo is not None, "synthesize() loads the photograph of a photo belt"
        strip = _photo_texture(p, photo, W, period, tile)
    if p.belt_pattern == "modular":
        strip = _modular(p, strip, W, period)
    if p.seams > 0:
        strip = _seams(rng2, p, strip, period)
    if p.stains > 0:
        strip = _stains(rng2, p, strip, period)
    if p.crumbs > 0:
        strip = _crumbs(rng2, p, strip, period)
    strip = np.clip(np.concatenate([strip, strip[:, :L]], axis=1), 0, 255)
    return strip.astype(np.uint8), period


def _blur_wrap(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a strip that wraps around along the belt (columns)."""
    k = int(math.ceil(4 * sigma)) + 1
    big = np.concatenate([a[:, -k:], a, a[:, :k]], axis=1)
    return cv2.GaussianBlur(big, (0, 0), sigma)[:, k:-k]


def _texture(rng: np.random.Generator, p: Preset, W: int, period: int) -> np.ndarray:
    """The plain belt texture over W x period (not extended)."""
    shape = (W, period)
    s = p.belt_texture
    lum = np.zeros(shape, np.float32)
    if s > 0:
        lum += 2.6 * s * rng.standard_normal(shape).astype(np.float32)
        lum += 2.8 * s * _periodic_noise(rng, shape, 1.2, 30.0)
        lum += 4.0 * s * _periodic_noise(rng, shape, 45.0, 70.0)
    base = np.asarray(p.belt_bgr, np.float32)
    return base + lum[..., None] * np.array([1.0, 0.98, 0.95], np.float32)


def _photo_texture(p: Preset, photo: np.ndarray, W: int, period: int, tile: int) -> np.ndarray:
    """A grey photograph tiled seamlessly (mirrored copies side by side), scaled so that its tile
    is `tile` px, coloured around the belt colour."""
    g: np.ndarray = photo.astype(np.float32)
    g = np.concatenate([g, g[:, ::-1]], axis=1)
    g = np.concatenate([g, g[::-1]], axis=0)  # periodic in both axes
    g = cv2.resize(g, (tile, tile), interpolation=cv2.INTER_AREA if tile < g.shape[0] else cv2.INTER_CUBIC)
    reps = (W // tile + 1, period // tile)
    g = np.tile(g, reps)[:W, :period]
    g = (g - float(g.mean())) / (float(g.std()) + 1e-6)  # unit contrast
    base = np.asarray(p.belt_bgr, np.float32)
    contrast = 0.28 * max(p.belt_texture, 0.0)
    return base * (1.0 + contrast * np.clip(g, -2.5, 2.5))[..., None]


def _modular(p: Preset, strip: np.ndarray, W: int, period: int) -> np.ndarray:
    """A plastic modular belt: hinge rods across the belt every module, staggered module edges along
    it, and rows of openings where the darker underside shows."""
    n = max(1, int(round(period / p.belt_pitch)))
    pitch = period / n  # divides the period exactly: the pattern wraps without a seam
    uu = np.arange(period, dtype=np.float32)[None, :]
    vv = np.arange(W, dtype=np.float32)[:, None]
    fu = (uu % pitch) / pitch  # position within a module row, 0..1
    row = np.floor(uu / pitch).astype(np.int64)
    mod_w = 4.0 * pitch
    # hinge: a dark gap with a lit rod beside it
    d_hinge = np.minimum(fu, 1.0 - fu) * pitch
    hinge = np.clip(1.0 - d_hinge / 1.6, 0, 1)
    rod = np.exp(-((((fu - 0.12) * pitch) / 1.6) ** 2))
    # module edges along the belt, staggered by half a module every other row
    vs = (vv + (row % 2) * mod_w / 2.0) % mod_w
    d_edge = np.minimum(vs, mod_w - vs)
    edge = np.clip(1.0 - d_edge / 1.2, 0, 1)
    # openings: rounded slots across each module row
    slot_w, slot_l = 0.16 * pitch, 0.30 * pitch
    sv = (vv + (row % 2) * 0.25 * pitch) % (0.5 * pitch) - 0.25 * pitch
    su = (fu - 0.55) * pitch
    q = np.hypot(np.maximum(np.abs(sv) - slot_w / 2 + 1.5, 0), np.maximum(np.abs(su) - slot_l / 2 + 1.5, 0)) - 1.5
    hole = np.clip(0.5 - q, 0, 1) * (d_edge > slot_w)
    lum = (1.0 - 0.45 * hinge + 0.10 * rod) * (1.0 - 0.30 * edge)
    out = strip * lum[..., None]
    under = np.asarray(p.belt_bgr, np.float32) * 0.38
    return out * (1.0 - hole[..., None]) + under * hole[..., None]


def _seams(rng: np.random.Generator, p: Preset, strip: np.ndarray, period: int) -> np.ndarray:
    """Seams (splices) across the belt at even intervals: a dark line with a lighter lip."""
    n = max(1, int(round(period / p.seams)))
    W = strip.shape[0]
    uu = np.arange(period, dtype=np.float32)[None, :]
    vv = np.arange(W, dtype=np.float32)[:, None]
    lum = np.ones((W, period), np.float32)
    for k in range(n):
        u0 = (k + rng.uniform(0.2, 0.8)) * period / n
        slant = rng.uniform(-0.02, 0.02)
        d = uu - (u0 + slant * vv)
        d = (d + period / 2) % period - period / 2  # wraps
        lum *= 1.0 - 0.32 * np.exp(-((d / 1.3) ** 2)) + 0.08 * np.exp(-(((d - 3.0) / 1.5) ** 2))
    return strip * lum[..., None]


def _stains(rng: np.random.Generator, p: Preset, strip: np.ndarray, period: int) -> np.ndarray:
    """Soft darker, discoloured blotches (oil, chocolate, dirt) that move with the belt."""
    W = strip.shape[0]
    n = max(1, int(round(p.stains * W * period / 1e6)))
    acc: np.ndarray = np.zeros((W, period), np.float32)
    for _ in range(n):
        u, v = rng.uniform(0, period), rng.uniform(0, W)
        a, b = rng.uniform(8, 45), rng.uniform(5, 30)
        ang = rng.uniform(0, 180)
        val = rng.uniform(0.3, 1.0)
        for uu in (u - period, u, u + period):
            cv2.ellipse(acc, (int(uu), int(v)), (int(a), int(b)), ang, 0, 360, val, -1, cv2.LINE_AA)
    acc = _blur_wrap(acc, 6.0)
    acc = np.clip(acc, 0, 1.2) * (1.0 + 0.3 * _periodic_noise(rng, (W, period), 6.0, 6.0))
    tint = np.array([0.80, 0.86, 0.92], np.float32)  # brownish: blue falls most
    return strip * (1.0 - 0.22 * np.clip(acc, 0, 1.4)[..., None] * (2.0 - tint))


def _crumbs(rng: np.random.Generator, p: Preset, strip: np.ndarray, period: int) -> np.ndarray:
    """Crumbs: small irregular fragments in the products' colours, lying on (moving with) the belt.
    They are not objects: they never appear in the ground truth."""
    W = strip.shape[0]
    cols: list[tuple[float, ...]] = []
    for name in products_of(p):
        cols += CRUMB_COLOURS.get(name, [])
    if not cols:
        cols = [tuple(np.asarray(p.belt_bgr, np.float32) * 0.6)]
    palette = np.asarray(cols, np.float32)
    n = max(1, int(round(p.crumbs * W * period / 1e6)))
    cover = np.zeros((W, period), np.float32)
    colour = np.zeros((W, period, 3), np.float32)
    shadow = np.zeros((W, period), np.float32)
    for _ in range(n):
        u, v = rng.uniform(0, period), rng.uniform(4, W - 4)
        rad = rng.uniform(1.2, 4.5) if rng.random() < 0.85 else rng.uniform(4.5, 8.0)
        k = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rr = rad * rng.uniform(0.55, 1.0, k)
        pts = np.stack([u + rr * np.cos(ang), v + rr * np.sin(ang)], axis=1)
        c = palette[int(rng.integers(len(palette)))] * rng.uniform(0.85, 1.1)
        for off in (-period, 0, period):
            q = np.round((pts + [off, 0]) * 16).astype(np.int32)
            cv2.fillPoly(cover, [q], 1.0, cv2.LINE_AA, shift=4)
            cv2.fillPoly(colour, [q], tuple(float(x) for x in c), cv2.LINE_AA, shift=4)
            cv2.fillPoly(shadow, [q + np.array([24, 32], np.int32)], 1.0, cv2.LINE_AA, shift=4)
    shadow = _blur_wrap(shadow, 1.0) * (1.0 - cover)
    strip = strip * (1.0 - 0.25 * shadow)[..., None]
    cover = np.clip(cover, 0, 1)[..., None]
    return strip * (1.0 - cover) + colour * cover


# --------------------------------------------------------------------------- light


def _light_map(p: Preset, W: int, L: int, rng: np.random.Generator) -> np.ndarray:
    """The light's gain over the frame (static: it does not move with the belt), canonical W x L x 3:
    vignette (darker towards the corners), a linear gradient towards `light_angle`, a colour cast."""
    h, w = (W, L) if p.direction in ("right", "left") else (L, W)  # the frame's rows and columns
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rr = ((xx - w / 2.0) ** 2 + (yy - h / 2.0) ** 2) / ((w / 2.0) ** 2 + (h / 2.0) ** 2)
    g = 1.0 - p.vignette * rr
    if p.light_gradient > 0:
        a = math.radians(p.light_angle)
        proj = (xx - w / 2.0) * math.cos(a) + (yy - h / 2.0) * math.sin(a)
        half = abs(w / 2.0 * math.cos(a)) + abs(h / 2.0 * math.sin(a))
        g = g * (1.0 - p.light_gradient * (proj / half * 0.5 + 0.5))
    out = np.repeat(g[..., None], 3, axis=2)
    if p.color_cast > 0:  # each channel's gain drifts slowly across the frame
        for k in range(3):
            a = rng.uniform(0, 2 * np.pi)
            ramp = ((xx - w / 2.0) * math.cos(a) + (yy - h / 2.0) * math.sin(a)) / (0.5 * math.hypot(w, h))
            low = _blur_noise(rng, (max(8, h // 16), max(8, w // 16)), 2.0)
            low = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
            out[..., k] *= 1.0 + p.color_cast * np.clip(0.7 * ramp + 0.3 * low, -1.5, 1.5)
    return np.ascontiguousarray(to_canon(out.astype(np.float32), p.direction))
