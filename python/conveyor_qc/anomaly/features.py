"""The embedded model's image features: what a crop's object is, and 39 figures about it.

Nothing is downloaded. A crop (a letterboxed square from ``run``, or a photo of one object on a
tray) becomes a vector of figures:

- **the object's mask**: the crop's background is its border (the belt or the
  tray; the black letterbox padding is cut off first), every pixel is measured
  by its Lab distance to that background colour, Otsu's threshold splits the
  two, and the connected component nearest the middle is the object. Holes are
  kept in one copy (a crack or a gap shows the belt through the object) and
  filled in the other (the outline);
- **shape** from the core (``_core.Detector``: area, solidity, circularity of
  the outline) plus convexity defects (deepest and total depth, relative to
  the object's size), the ellipse's axis ratio, the spread of the radius
  around the centre, the hole fraction, and the object's share of the crop;
- **colour**: Lab mean and spread inside the mask;
- **texture**: gradient magnitude (mean, spread, 90th percentile), Canny edge
  density, the share of pixels much darker than the object's median (cracks,
  shadows of a stacked top), and an 8-bin histogram of local binary patterns.

These figures were chosen for cookies; what the model learns of any other product comes mostly
from :mod:`conveyor_qc.anomaly.patches`, which reads the same object (:func:`find_object`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from conveyor_qc import _core

__all__ = [
    "FEATURE_NAMES",
    "CropObject",
    "CropOutline",
    "crop_features",
    "features_of",
    "find_object",
    "object_features",
    "read_crop",
]

WORK_SIZE = 256  # long side of the object's region, pixels, before measuring

FEATURE_NAMES = (
    "area_share",
    "solidity",
    "circularity",
    "hole_share",
    "defect_max",
    "defect_sum",
    "defect_count",
    "pieces",
    "crack_share",
    "crack_len",
    "crack_count",
    "hull_gap",
    "hole_max",
    "hole_elong",
    "hole_count",
    "axis_ratio",
    "radius_cv",
    "radius_min",
    "radius_max",
    "L_mean",
    "a_mean",
    "b_mean",
    "L_std",
    "a_std",
    "b_std",
    "grad_mean",
    "grad_std",
    "grad_p90",
    "edge_density",
    "dark_share",
    "dark_share_strong",
    *(f"lbp_{i}" for i in range(8)),
)

_DETECT = _core.DetectParams()
_DETECT.min_area = 1.0
_DETECT.split_solidity = 0.0  # never cut the crop's object in parts
_DETECTOR = _core.Detector(_DETECT)


def _content(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The crop without its black letterbox padding (rows/columns that are all near black), and
    where that content starts in the crop (x, y)."""
    h, w = image.shape[:2]
    # "any channel > 8" per row and per column, without numpy's slow reduction over the 3 channels
    _, nonblack = cv2.threshold(np.ascontiguousarray(image).reshape(h, w * 3), 8, 255, cv2.THRESH_BINARY)
    rows = np.flatnonzero(nonblack.any(axis=1))
    cols = np.flatnonzero(nonblack.any(axis=0).reshape(w, 3).any(axis=1))
    if len(rows) < 8 or len(cols) < 8:
        return image, (0, 0)
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], (int(cols[0]), int(rows[0]))


_K3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_K5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_K7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
_K15 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
_LEVELS = np.arange(256, dtype=np.float32)


def _object_mask(lab: np.ndarray, d: _Distances | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 0/255 mask of the object (holes kept) in a Lab image whose border is background,
    and every pixel's (unblurred) colour distance to the background."""
    d = _distances(lab) if d is None else d
    return _pick_object(d.otsu), d.raw


@dataclass
class _Distances:
    raw: np.ndarray  # each pixel's Lab distance to the background (float32)
    dist: np.ndarray  # the same, blurred
    d8: np.ndarray  # blurred, scaled to 0-255 (uint8)
    scale: float  # d8 per unit of dist
    border: int  # the border's width, pixels
    level: float  # Otsu's threshold on d8
    otsu: np.ndarray  # d8 above it (0/255), opened (3 px): specks of noise gone


def _distances(lab: np.ndarray) -> _Distances:
    h, w = lab.shape[:2]
    b = max(2, min(h, w) // 40)
    border = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)]
    )
    # np.median of each channel, from its histogram instead of a sort (the same number)
    bg = np.array([_u8_quantiles(border[:, c], (50,))[0] for c in range(3)], np.float32)
    # Each channel's squared (float32) difference to the background for all 256 levels, looked up
    # per pixel: the same numbers as squaring lab - bg pixel by pixel, summed in the same order.
    sq = _LEVELS[:, None] - bg
    sq[:, 0] *= 0.6  # lightness varies with shadows and lighting more than hue does
    sq *= sq
    per = cv2.LUT(lab, sq.reshape(1, 256, 3))
    raw = np.sqrt(per[..., 0] + per[..., 1] + per[..., 2])
    dist = cv2.GaussianBlur(raw, (5, 5), 0)
    scale = 255.0 / max(float(dist.max()), 1e-6)
    d8 = np.clip(dist * scale, 0, 255).astype(np.uint8)
    level, otsu = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _Distances(raw, dist, d8, scale, b, float(level), cv2.morphologyEx(otsu, cv2.MORPH_OPEN, _K3))


def _outline_mask(d: _Distances) -> np.ndarray:
    """uint8 0/255 mask of the object's whole outline, holes filled, in a Lab image whose border
    is background: Otsu's split of the distances, and every pixel further from the background
    than the border's own noise (1.5 x the 99th percentile of the border's distances). Otsu alone
    keeps only the relief of a product close to the belt's colour (a grey coin on a grey belt);
    the object's frame (:mod:`conveyor_qc.anomaly.patches`) needs the whole object to turn and
    scale it."""
    b, dist = d.border, d.dist
    ring = np.concatenate([dist[:b].ravel(), dist[-b:].ravel(), dist[:, :b].ravel(), dist[:, -b:].ravel()])
    noise = 1.5 * float(np.quantile(ring, 0.99)) * d.scale
    _, wide = cv2.threshold(d.d8, min(d.level, noise), 255, cv2.THRESH_BINARY)
    wide = cv2.morphologyEx(wide, cv2.MORPH_OPEN, _K5)
    return _fill(_pick_object(cv2.bitwise_or(wide, d.otsu)))


def _pick_object(mask: np.ndarray) -> np.ndarray:
    """The crop's object among a mask's components: the one nearest the middle, weighted by its
    size (a neighbour peeks in at the edges), and with it every large piece that does not touch
    the border (the halves of a broken object)."""
    h, w = mask.shape
    n, cc, stats, cent = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    d = np.hypot(cent[1:, 0] - w / 2, cent[1:, 1] - h / 2) / max(h, w)
    best = 1 + int(np.argmax(area * np.exp(-4 * d * d)))  # the first of equals, as a loop would
    x, y, bw, bh = (stats[1:, k] for k in (0, 1, 2, 3))
    touches = (x <= 0) | (y <= 0) | (x + bw >= w) | (y + bh >= h)
    keep = np.zeros(n, np.uint8)
    keep[1:][(area >= 0.15 * area[best - 1]) & ~touches] = 255
    keep[best] = 255
    return keep[cc]


def _fill(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask)
    if contours:
        cv2.drawContours(out, contours, -1, 255, -1)
    return out


def _outline_of(filled: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """One contour around several pieces: close the gaps between them, then take the outer contour
    (the gap stays as a deep notch, a convexity defect). Contours are shifted by ``offset``.
    ``filled`` may be cut from a larger image if it keeps 15 px of background around the pieces
    (or the larger image's own edge): the closing gives the same there."""
    closed = cv2.morphologyEx(filled, cv2.MORPH_CLOSE, _K15)
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=offset)
    return max(contours, key=cv2.contourArea)


def _lbp_hist(gray: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """8-bin histogram, over the pixels of ``inside`` not on the image's edge, of the number of
    neighbours brighter than the centre by more than 2 (a rotation-invariant LBP)."""
    c = gray[1:-1, 1:-1]
    # brighter than c + 2: saturating at 255 changes nothing (no pixel is brighter than 255)
    c2 = cv2.add(c, 2)
    count = np.zeros(c.shape, np.uint8)
    h, w = gray.shape
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)):
        count += gray[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] > c2
    vals = np.minimum(count[inside[1:-1, 1:-1] > 0], 7)
    hist = np.bincount(vals, minlength=8).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def _u8_quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile(values, q) (its default linear interpolation) of a non-empty uint8 array,
    from its histogram instead of a sort. Equal to numpy's for q a multiple of 25 (what it is used
    for): the interpolation weight is then 0, 1/4, 1/2 or 3/4 and every step is exact."""
    cum = np.cumsum(np.bincount(values, minlength=256))
    n = int(cum[-1])
    out = []
    for q in qs:
        pos = (n - 1) * (q / 100.0)
        k = int(math.floor(pos))
        g = pos - k
        a = float(np.searchsorted(cum, k, side="right"))  # the k-th smallest (0-based)
        b = float(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(a + (b - a) * g)
    return out


#: Background kept around the object when only its neighbourhood is measured: the 15 px closing
#: of _outline_of needs 15 px around the pieces to give what it gives on the whole image (the
#: erosions, Sobel and the LBP need 1-3 px).
_MARGIN = 16


@dataclass
class CropObject:
    """One crop's object, as every group of features sees it: the object's neighbourhood (its
    mask's bounding box with a margin, where each operation gives what it gives on the whole crop)."""

    region: np.ndarray  # the crop's content, resized to WORK_SIZE (BGR)
    lab: np.ndarray  # the neighbourhood in Lab
    mask: np.ndarray  # the object's pixels (holes open)
    dist: np.ndarray  # each pixel's Lab distance to the background
    filled: np.ndarray  # the object with its holes filled (its outline)
    offset: tuple[int, int]  # the neighbourhood's top-left corner in region
    crop_area: float  # region's pixels
    area: float  # the filled object's pixels
    mask_area: float  # the object's own pixels
    outline: np.ndarray  # one contour around all its pieces (a gap between halves is a defect)

    @property
    def size(self) -> float:
        return math.sqrt(self.area)


def crop_features(image: np.ndarray) -> np.ndarray:
    """The feature vector (FEATURE_NAMES) of one BGR uint8 crop."""
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("a crop must be a BGR uint8 HxWx3 image")
    return object_features(*find_object(image))


def object_features(obj: CropObject | None, pieces: int) -> np.ndarray:
    """The feature vector (FEATURE_NAMES) of a crop's object (zeros when the crop has none)."""
    if obj is None:
        return np.zeros(len(FEATURE_NAMES))
    feats = {
        **_shape_features(obj, pieces),
        **_outline_features(obj),
        **_hole_features(obj),
        **_crack_features(obj),
        **_colour_and_texture_features(obj),
    }
    return np.array([feats[n] for n in FEATURE_NAMES], dtype=np.float64)


@dataclass
class CropOutline:
    """A crop's object as its frame needs it: the region measured and the object's outline."""

    region: np.ndarray  # the crop's content, resized to WORK_SIZE (BGR)
    outline: np.ndarray  # uint8 0/255, region's size: the object, holes filled
    content_at: tuple[int, int]  # where region's content starts in the crop (x, y)
    region_scale: float  # region pixels per crop pixel


def _region(
    image: np.ndarray, interpolation: int = cv2.INTER_AREA, size: int = WORK_SIZE
) -> tuple[np.ndarray, tuple[int, int], float]:
    """The crop's content scaled to ``size`` (its long side), where it starts in the crop, and its scale."""
    region, content_at = _content(image)
    h, w = region.shape[:2]
    s = size / max(h, w)
    region = cv2.resize(region, (max(8, round(w * s)), max(8, round(h * s))), interpolation=interpolation)
    return region, content_at, s


def read_crop(image: np.ndarray, figures: bool = False) -> tuple[CropOutline | None, np.ndarray | None]:
    """The crop's object's outline (None when there is none) and, with ``figures``, its 39 figures,
    from one pass over the crop (the region resized linearly: a quarter of the time of an area
    resize, and the distances are blurred next anyway)."""
    region, content_at, s = _region(image, cv2.INTER_LINEAR)
    lab = cv2.cvtColor(region, cv2.COLOR_BGR2LAB)
    d = _distances(lab)
    outline = _outline_mask(d)
    found = CropOutline(region, outline, content_at, s) if cv2.countNonZero(outline) >= 20 else None
    return found, object_features(*_object_in(region, lab, d)) if figures else None


def find_object(image: np.ndarray) -> tuple[CropObject | None, int]:
    """The crop's object and its number of sizeable pieces; None when there is none to measure.
    (As format-1 models were trained: the region resized by area.)"""
    region, _, _ = _region(image)
    lab = cv2.cvtColor(region, cv2.COLOR_BGR2LAB)
    return _object_in(region, lab, _distances(lab))


def _object_in(region: np.ndarray, lab: np.ndarray, d: _Distances) -> tuple[CropObject | None, int]:
    mask_full, dist_full = _object_mask(lab, d)
    H, W = mask_full.shape
    x, y, bw, bh = cv2.boundingRect(mask_full)
    if bw == 0 or bh == 0:
        return None, 0
    x0, y0 = max(x - _MARGIN, 0), max(y - _MARGIN, 0)
    x1, y1 = min(x + bw + _MARGIN, W), min(y + bh + _MARGIN, H)
    mask = mask_full[y0:y1, x0:x1]
    filled = _fill(mask)
    fa = float(np.count_nonzero(filled))
    if fa < 20:
        return None, 0
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x0, y0))
    pieces = sum(1 for c in contours if cv2.contourArea(c) >= 0.02 * fa)
    outline = np.vstack(contours) if len(contours) > 1 else contours[0]
    if len(contours) > 1:
        outline = cv2.convexHull(outline) if len(outline) < 5 else _outline_of(filled, (x0, y0))
    obj = CropObject(
        region=region,
        lab=lab[y0:y1, x0:x1],
        mask=mask,
        dist=dist_full[y0:y1, x0:x1],
        filled=filled,
        offset=(x0, y0),
        crop_area=float(H * W),
        area=fa,
        mask_area=float(np.count_nonzero(mask)),
        outline=outline,
    )
    return obj, pieces


def _shape_features(o: CropObject, pieces: int) -> dict[str, float]:
    """Size, solidity and circularity (the core's detector), holes' share, pieces."""
    d = _DETECTOR.detect(o.filled)
    i = int(np.argmax(d.area)) if len(d.area) else -1
    return {
        "area_share": o.area / o.crop_area,
        "solidity": float(d.solidity[i]) if i >= 0 else 1.0,
        "circularity": float(d.circularity[i]) if i >= 0 else 1.0,
        "hole_share": 1.0 - o.mask_area / o.area,
        "pieces": float(pieces),
    }


def _outline_features(o: CropObject) -> dict[str, float]:
    """Convexity defects (a bite, a gap between halves), the hull's gap, the ellipse's axis ratio,
    the spread of the radius around the centre."""
    cnt = o.outline
    dmax = dsum = 0.0
    dcount = 0
    if len(cnt) >= 4:
        hull = cv2.convexHull(cnt, returnPoints=False)
        try:
            defects = cv2.convexityDefects(cnt, hull) if hull is not None and len(hull) > 3 else None
        except cv2.error:
            defects = None
        if defects is not None:
            depth = defects.reshape(-1, 4)[:, 3] / 256.0 / o.size
            dmax, dsum = float(depth.max()), float(depth.sum())
            dcount = int(np.count_nonzero(depth > 0.05))
    hull_area = max(float(cv2.contourArea(cv2.convexHull(cnt))), 1.0)
    feats = {
        "defect_max": dmax,
        "defect_sum": dsum,
        "defect_count": float(dcount),
        "hull_gap": 1.0 - o.mask_area / hull_area,
    }
    if len(cnt) >= 5:
        (_, _), (ea, eb), _ = cv2.fitEllipse(cnt)
        feats["axis_ratio"] = min(ea, eb) / max(ea, eb, 1e-6)
    else:
        feats["axis_ratio"] = 1.0
    m = cv2.moments(o.filled, binaryImage=True)
    # the moments of a binary image are whole numbers: shifting them back to the whole image is exact
    x0, y0 = o.offset
    cx, cy = (m["m10"] + x0 * m["m00"]) / m["m00"], (m["m01"] + y0 * m["m00"]) / m["m00"]
    pts = cnt[:, 0, :].astype(np.float64)
    r = np.hypot(pts[:, 0] - cx, pts[:, 1] - cy)
    rm = max(float(r.mean()), 1e-6)
    feats["radius_cv"] = float(r.std()) / rm
    feats["radius_min"] = float(r.min()) / rm
    feats["radius_max"] = float(r.max()) / rm
    return feats


def _hole_features(o: CropObject) -> dict[str, float]:
    """Holes: chips are small and round, cracks and gaps large or long."""
    holes = cv2.bitwise_and(o.filled, cv2.bitwise_not(o.mask))
    # most objects have no hole: no labelling then
    hn, hstats = 1, np.zeros((1, 5), np.int32).view(np.ndarray)
    if cv2.countNonZero(holes):
        hn, _, hstats, _ = cv2.connectedComponentsWithStats(holes, connectivity=8)
    hmax = helong = 0.0
    hcount = 0
    for j in range(1, hn):
        a = float(hstats[j, cv2.CC_STAT_AREA])
        if a / o.area > 0.002:
            hcount += 1
        if a > hmax:
            hmax = a
            bw, bh = hstats[j, cv2.CC_STAT_WIDTH], hstats[j, cv2.CC_STAT_HEIGHT]
            helong = max(bw, bh) ** 2 / max(a, 1.0)
    return {"hole_max": hmax / o.area, "hole_elong": helong, "hole_count": float(hcount)}


def _crack_features(o: CropObject) -> dict[str, float]:
    """Cracks and gaps: pixels inside the outline with the background's own colour (the belt or
    tray seen through the object; chocolate chips and creases are dark but not belt-coloured)."""
    inner = cv2.erode(o.filled, _K7)
    ref = float(np.median(o.dist[o.mask > 0])) if o.mask_area else 1.0
    crack = cv2.bitwise_and(inner, (o.dist < 0.4 * max(ref, 1e-6)).view(np.uint8))
    crack_px = cv2.countNonZero(crack)
    cn, cstats = 1, np.zeros((1, 5), np.int32).view(np.ndarray)
    if crack_px:
        cn, _, cstats, _ = cv2.connectedComponentsWithStats(crack, connectivity=8)
    lengths = [math.hypot(cstats[j, cv2.CC_STAT_WIDTH], cstats[j, cv2.CC_STAT_HEIGHT]) / o.size for j in range(1, cn)]
    return {
        "crack_share": float(crack_px) / o.area,
        "crack_len": max(lengths, default=0.0),
        "crack_count": float(sum(1 for v in lengths if v > 0.1)),
    }


def _colour_and_texture_features(o: CropObject) -> dict[str, float]:
    """Lab mean and spread inside the object, gradients, edges, dark pixels, local binary patterns."""
    feats: dict[str, float] = {}
    inside = cv2.erode(o.mask, _K5)
    if np.count_nonzero(inside) < 10:
        inside = o.mask
    sel = inside > 0
    for j, ch in enumerate("Lab"):
        px = o.lab[..., j][sel].astype(np.float64)
        feats[f"{ch}_mean"] = float(px.mean())
        feats[f"{ch}_std"] = float(px.std())
    x0, y0 = o.offset
    y1, x1 = y0 + o.mask.shape[0], x0 + o.mask.shape[1]
    gray_full = cv2.cvtColor(o.region, cv2.COLOR_BGR2GRAY)
    # Sobel at a selected pixel needs its 3x3 neighbourhood: the margin holds it
    gray = gray_full[y0:y1, x0:x1]
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)[sel]
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)[sel]
    gm = np.sqrt(gx * gx + gy * gy)
    feats["grad_mean"] = float(gm.mean())
    feats["grad_std"] = float(gm.std())
    feats["grad_p90"] = float(np.percentile(gm, 90))
    edges = cv2.Canny(gray_full, 60, 150)  # whole image: hysteresis follows edges anywhere
    n_sel = max(int(np.count_nonzero(sel)), 1)
    feats["edge_density"] = float(np.count_nonzero(edges[y0:y1, x0:x1][sel])) / n_sel
    # dark pixels inside the outline: cracks (belt or tray through the object), a stacked top's shadow
    fsel = cv2.erode(o.filled, _K5) > 0
    if not fsel.any():
        fsel = o.filled > 0
    L = o.lab[..., 0]
    q25, med, q75 = _u8_quantiles(L[sel], (25, 50, 75))
    spread = max(q75 - q25, 4.0)
    Lf = L[fsel]
    feats["dark_share"] = float(np.count_nonzero(Lf < med - 2.0 * spread)) / len(Lf)
    feats["dark_share_strong"] = float(np.count_nonzero(Lf < med - 4.0 * spread)) / len(Lf)
    # The crop's outer ring holds no selected pixel but on the image's own edge, which the LBP
    # leaves out as it does on the whole image: the crop gives the same histogram.
    for j, v in enumerate(_lbp_hist(gray, inside)):
        feats[f"lbp_{j}"] = float(v)
    return feats


def features_of(images: list[np.ndarray]) -> np.ndarray:
    """(N, F) features of N crops."""
    if not images:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([crop_features(im) for im in images])
