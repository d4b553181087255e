"""The embedded anomaly model: hand-made image features and a logistic regression.

Nothing is downloaded, nothing is pickled. A crop (a letterboxed square from
``run``, or a photo of one object on a tray) becomes a vector of figures:

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

The classifier is an L2-regularised logistic regression on standardised
features, fitted by Newton's method in NumPy. Its saved form is a handful of
numbers in ``model.json`` (the feature names, means, scales, weights,
intercept), which any later release can read without a library version to
match. The regularisation strength and the decision threshold are chosen by
5-fold cross-validation on the training images (the F1 of the anomaly class);
the intercept is then shifted so that the threshold is at score 0.5 (score =
the shifted probability), so a score >= 0.5 means anomaly for every mode.

One-class mode (trained on normal images only): the squared Mahalanobis
distance of the standardised features to the normal mean, with a shrunk
covariance; ``score = d2 / (d2 + q)``, ``q`` being the 90th percentile of the
training distances (leave-one-out), so again the threshold is 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from conveyor_qc import _core
from conveyor_qc.anomaly.base import (
    MODEL_FORMAT,
    MODEL_VERSION,
    AnomalyModel,
    ModelError,
    Verdict,
    read_image,
    verdict_of,
)
from conveyor_qc.dataset.manifest import ManifestEntry
from conveyor_qc.version import __version__

__all__ = ["FEATURE_NAMES", "LocalClassifier", "crop_features", "features_of", "fit_logistic"]

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


def _content(image: np.ndarray) -> np.ndarray:
    """The crop without its black letterbox padding (rows/columns that are all near black)."""
    h, w = image.shape[:2]
    # "any channel > 8" per row and per column, without numpy's slow reduction over the 3 channels
    _, nonblack = cv2.threshold(np.ascontiguousarray(image).reshape(h, w * 3), 8, 255, cv2.THRESH_BINARY)
    rows = np.flatnonzero(nonblack.any(axis=1))
    cols = np.flatnonzero(nonblack.any(axis=0).reshape(w, 3).any(axis=1))
    if len(rows) < 8 or len(cols) < 8:
        return image
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


_K3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_K5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_K7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
_K15 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
_LEVELS = np.arange(256, dtype=np.float32)


def _object_mask(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 0/255 mask of the object (holes kept) in a Lab image whose border is background,
    and every pixel's (blurred) colour distance to the background."""
    h, w = lab.shape[:2]
    b = max(2, min(h, w) // 40)
    border = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)]
    ).astype(np.float32)
    bg = np.median(border, axis=0)
    # Each channel's squared (float32) difference to the background for all 256 levels, looked up
    # per pixel: the same numbers as squaring lab - bg pixel by pixel, summed in the same order.
    sq = _LEVELS[:, None] - bg
    sq[:, 0] *= 0.6  # lightness varies with shadows and lighting more than hue does
    sq *= sq
    per = cv2.LUT(lab, sq.reshape(1, 256, 3))
    raw = np.sqrt(per[..., 0] + per[..., 1] + per[..., 2])
    dist = cv2.GaussianBlur(raw, (5, 5), 0)
    d8 = np.clip(dist * (255.0 / max(float(dist.max()), 1e-6)), 0, 255).astype(np.uint8)
    _, mask = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _K3)
    n, cc, stats, cent = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask, raw
    # the component nearest the middle, weighted by its size (a neighbour peeks in at the edges),
    # and with it every large piece that does not touch the border (the halves of a broken object)
    cx, cy = w / 2, h / 2
    best, best_v = 1, -1.0
    for i in range(1, n):
        area = stats[i, cv2.CC_STAT_AREA]
        d = math.hypot(cent[i][0] - cx, cent[i][1] - cy) / max(h, w)
        v = area * math.exp(-4 * d * d)
        if v > best_v:
            best, best_v = i, v
    keep = np.zeros(n, np.uint8)
    keep[best] = 255
    main_area = stats[best, cv2.CC_STAT_AREA]
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        touches = x <= 0 or y <= 0 or x + bw >= w or y + bh >= h
        if i != best and area >= 0.15 * main_area and not touches:
            keep[i] = 255
    return keep[cc], raw


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
class _Object:
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
    obj, pieces = _find_object(image)
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


def _find_object(image: np.ndarray) -> tuple[_Object | None, int]:
    """The crop's object and its number of sizeable pieces; None when there is none to measure."""
    region = _content(image)
    h, w = region.shape[:2]
    s = WORK_SIZE / max(h, w)
    region = cv2.resize(region, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(region, cv2.COLOR_BGR2LAB)
    mask_full, dist_full = _object_mask(lab)
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
    obj = _Object(
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


def _shape_features(o: _Object, pieces: int) -> dict[str, float]:
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


def _outline_features(o: _Object) -> dict[str, float]:
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


def _hole_features(o: _Object) -> dict[str, float]:
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


def _crack_features(o: _Object) -> dict[str, float]:
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


def _colour_and_texture_features(o: _Object) -> dict[str, float]:
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


# --- classifiers ----------------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (intercept not penalised), Newton's method.
    Classes are weighted to equal total weight. Returns (weights, intercept)."""
    n, f = X.shape
    pos = max(int(y.sum()), 1)
    neg = max(n - pos, 1)
    sw = np.where(y > 0, n / (2.0 * pos), n / (2.0 * neg))
    A = np.hstack([X, np.ones((n, 1))])
    w = np.zeros(f + 1)
    reg = np.full(f + 1, l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = _sigmoid(A @ w)
        g = A.T @ (sw * (p - y)) + reg * w
        hdiag = sw * p * (1 - p)
        H = (A * hdiag[:, None]).T @ A + np.diag(reg) + 1e-9 * np.eye(f + 1)
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def f1_score(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(pred & (y > 0)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y > 0)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def group_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Group-aware, class-stratified fold numbers: every group in exactly one fold."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    ug = np.unique(groups)
    glabel = {g: int(y[groups == g].max()) for g in ug}
    for cls in (0, 1):
        gs = [g for g in ug if glabel[g] == cls]
        rng.shuffle(gs)
        for i, g in enumerate(gs):
            fold[groups == g] = i % k
    return fold


L2_GRID = (1.0, 3.0, 10.0, 30.0)
#: How many features, best first, the cross-validation may choose from. All of them: letting it
#: pick fewer was measured to hurt on the real photos (F1 0.90 against 0.93, docs/anomaly.md): on
#: tens of images the choice itself overfits, and the L2 penalty already tames the weak features.
TOP_K_GRID = (len(FEATURE_NAMES),)


def _separation(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How well each feature alone tells the classes apart: |AUC - 0.5| (rank statistic)."""
    pos, neg = Z[y > 0], Z[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return np.zeros(Z.shape[1])
    ranks = np.argsort(np.argsort(np.vstack([pos, neg]), axis=0, kind="stable"), axis=0) + 1.0
    auc = (ranks[: len(pos)].sum(axis=0) - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    return np.abs(auc - 0.5)


class LocalClassifier:
    """Standardisation + logistic regression (supervised) or Mahalanobis distance (one-class)."""

    def __init__(self, params: dict):
        self.mode = params["mode"]
        self.mean = np.asarray(params["mean"], float)
        self.scale = np.asarray(params["scale"], float)
        self.params = params

    # ---- training
    @classmethod
    def fit(
        cls, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, one_class: bool = False
    ) -> LocalClassifier:
        X = np.asarray(X, float)
        y = np.asarray(y, int)
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        if one_class or y.sum() == 0:
            Xn = X[y == 0] if (y == 0).any() else X
            return cls._fit_one_class(Xn)
        if (y == 0).sum() == 0:
            raise ModelError("training needs normal images (it has only anomalies)")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = (X - mean) / scale
        # Choose how many features (ranked by how well each alone separates the classes), the L2
        # strength and the threshold from out-of-fold probabilities: with tens of images, a few
        # strong shape figures generalise better than all of them at once.
        k = int(min(5, len(np.unique(groups[y == 1])), len(np.unique(groups[y == 0]))))
        order = np.argsort(-_separation(Z, y), kind="stable")
        best = (-1.0, 0, 1.0, 0.5)  # f1, n_features, l2, threshold
        if k >= 2:
            fold = group_folds(y, groups, k)
            for nf in sorted({min(n, Z.shape[1]) for n in TOP_K_GRID}):
                for l2 in L2_GRID:
                    oof = np.zeros(len(y))
                    for f in range(k):
                        tr, te = fold != f, fold == f
                        if y[tr].min() == y[tr].max():
                            continue
                        # the ranking is redone inside each fold, so the held-out images never pick features
                        sub = np.argsort(-_separation(Z[tr], y[tr]), kind="stable")[:nf]
                        w, b = fit_logistic(Z[tr][:, sub], y[tr], l2)
                        oof[te] = _sigmoid(Z[te][:, sub] @ w + b)
                    for t in np.linspace(0.2, 0.8, 25):
                        f1 = f1_score(y, oof >= t)
                        # the better F1, then fewer features, stronger regularisation, a threshold nearer 0.5
                        key = (round(f1, 6), -nf, l2, -abs(t - 0.5))
                        if key > (round(best[0], 6), -best[1], best[2], -abs(best[3] - 0.5)):
                            best = (f1, nf, l2, float(t))
        else:
            best = (-1.0, Z.shape[1], 1.0, 0.5)
        cv_f1, nf, l2, t = best
        sub = order[:nf]
        w_sub, b = fit_logistic(Z[:, sub], y, l2)
        w = np.zeros(Z.shape[1])
        w[sub] = w_sub
        b -= math.log(t / (1 - t))  # the chosen threshold becomes score 0.5
        return cls(
            {
                "mode": "supervised",
                "mean": mean.tolist(),
                "scale": scale.tolist(),
                "weights": w.tolist(),
                "intercept": b,
                "l2": l2,
                "features_used": int(nf),
                "cv_threshold": t,
                "cv_f1": cv_f1 if k >= 2 else None,
            }
        )

    @classmethod
    def _fit_one_class(cls, X: np.ndarray) -> LocalClassifier:
        if len(X) < 3:
            raise ModelError("one-class training needs at least 3 normal images")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = (X - mean) / scale
        prec = _shrunk_precision(Z)
        # leave-one-out distances, so the threshold is not set on distances the fit has seen
        d2 = np.empty(len(Z))
        for i in range(len(Z)):
            rest = np.delete(Z, i, axis=0)
            mu = rest.mean(axis=0)
            d2[i] = _mahalanobis2(Z[i : i + 1] - mu, _shrunk_precision(rest))[0]
        q = float(np.quantile(d2, _OC_Q))
        return cls(
            {
                "mode": "one-class",
                "mean": mean.tolist(),
                "scale": scale.tolist(),
                "precision": prec.tolist(),
                "center": Z.mean(axis=0).tolist(),
                "d2_threshold": q,
            }
        )

    # ---- scoring
    def scores(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores in [0, 1]; >= 0.5 is anomaly."""
        X = np.asarray(X, float)
        if X.ndim != 2 or X.shape[1] != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} features per crop")
        Z = (X - self.mean) / self.scale
        if self.mode == "supervised":
            return _sigmoid(Z @ np.asarray(self.params["weights"]) + self.params["intercept"])
        d2 = _mahalanobis2(Z - np.asarray(self.params["center"]), np.asarray(self.params["precision"]))
        q = self.params["d2_threshold"]
        return d2 / (d2 + q)

    def to_dict(self) -> dict:
        return dict(self.params)


#: One-class mode: the training quantile of the (leave-one-out) distances taken as the threshold,
#: and how far the covariance is shrunk towards a multiple of the identity (few normal images,
#: many features: the raw covariance is singular).
_OC_Q = 0.90
_OC_SHRINK = 0.3


def _shrunk_precision(Z: np.ndarray, shrink: float | None = None) -> np.ndarray:
    shrink = _OC_SHRINK if shrink is None else shrink
    cov = np.cov(Z, rowvar=False) if len(Z) > 1 else np.eye(Z.shape[1])
    cov = np.atleast_2d(cov)
    cov = (1 - shrink) * cov + shrink * np.eye(cov.shape[0]) * max(float(np.trace(cov)) / cov.shape[0], 1e-6)
    return np.linalg.inv(cov)


def _mahalanobis2(D: np.ndarray, prec: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jk,ik->i", D, prec, D)


# --- the model interface ----------------------------------------------------------------------------


class LocalModel(AnomalyModel):
    """The embedded model as an :class:`AnomalyModel`, from its ``model.json``."""

    def __init__(self, meta: dict):
        names = meta.get("features")
        if list(names or []) != list(FEATURE_NAMES):
            raise ModelError(
                f"the model's features differ from this release's (made by conveyor-qc "
                f"{meta.get('conveyor_qc_version', '?')}, this is {__version__}): train it again"
            )
        try:
            self.classifier = LocalClassifier(meta["classifier"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"damaged local model: {exc}") from None
        self.meta = meta

    def scores(self, images: list[np.ndarray]) -> np.ndarray:
        return self.classifier.scores(features_of(images)) if images else np.zeros(0)

    def predict(self, images: list[np.ndarray]) -> list[Verdict]:
        return [verdict_of(s) for s in self.scores(images)]


def train_local(entries: list[ManifestEntry], one_class: bool | None = None) -> dict:
    """Fit the embedded model on a manifest's entries; returns its ``model.json`` content."""
    images, labels, groups = [], [], []
    for e in entries:
        if e.path is None:
            raise ModelError(f"{e.source_ref}: the local backend reads local images, not s3:// ones")
        images.append(read_image(e.path))
        labels.append(1 if e.label == "anomaly" else 0)
        # crops of one object stay in one fold when the threshold is chosen
        groups.append(e.object_id or str(e.path))
    if not images:
        raise ModelError("the manifest has no images")
    X = features_of(images)
    y = np.array(labels, int)
    one = bool(one_class) or int(y.sum()) == 0
    _, g = np.unique(np.array(groups), return_inverse=True)
    clf = LocalClassifier.fit(X, y, g, one_class=one)
    meta = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "backend": "local",
        "conveyor_qc_version": __version__,
        "mode": clf.mode,
        "trained_on": {"images": len(y), "normal": int((y == 0).sum()), "anomaly": int(y.sum())},
        "features": list(FEATURE_NAMES),
        "classifier": clf.to_dict(),
        "threshold": 0.5,
    }
    return meta
