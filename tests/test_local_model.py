"""The embedded model's crop reading (the core's CropReader): the object it finds and the figures it
measures, against plain NumPy/OpenCV computations of the same figures, and on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conveyor_qc.anomaly import features as lm

BELT = (70, 75, 80)
COOKIE = (90, 170, 215)


def _cookie(
    size=(300, 260), centre=None, radius=90, crack=False, halves=False, letterbox=True, chips=True, seed=0, gap=12
):
    """A drawn cookie on a grey belt: chips, optionally a crack through it or broken in two,
    letterboxed into a black square like run's crops."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BELT
    img = cv2.add(img, rng.integers(0, 6, img.shape, dtype=np.uint8))
    cx, cy = centre or (w // 2, h // 2)
    if halves:
        cv2.ellipse(img, (cx - gap, cy), (radius, radius), 0, 90, 270, COOKIE, -1)
        cv2.ellipse(img, (cx + gap, cy), (radius, radius), 0, -90, 90, COOKIE, -1)
    else:
        cv2.circle(img, (cx, cy), radius, COOKIE, -1)
    for _ in range(12 if chips else 0):
        x, y = rng.integers(-radius // 2, radius // 2, 2)
        cv2.circle(img, (cx + int(x), cy + int(y)), int(rng.integers(3, 8)), (30, 50, 70), -1)
    if crack:
        cv2.line(img, (cx - radius // 2, cy - radius // 3), (cx + radius // 3, cy + radius // 2), BELT, 3)
    if not letterbox:
        return img
    side = max(h, w) + 40
    out = np.zeros((side, side, 3), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = img
    return out


def _figure(figures, name):
    return float(figures[lm.FEATURE_NAMES.index(name)])


def _read(image):
    outline, figures = lm.read_crop(image, figures=True)
    assert outline is not None
    return outline, figures


def test_the_object_and_its_place_in_the_crop():
    crop = _cookie(chips=False)  # 300 x 260 content in a 340 x 340 black square
    outline, figures = _read(crop)
    assert outline.content_at == (40, 20)  # the padding cut off: x from (340 - 260) / 2, y from 20
    assert max(outline.region.shape[:2]) == 256 and outline.region_scale == pytest.approx(256 / 300)
    # the outline is the drawn disc, scaled
    s = outline.region_scale
    disc = np.zeros(outline.outline.shape, np.uint8)
    cv2.circle(disc, (round(130 * s), round(150 * s)), round(90 * s), 255, -1)
    inter = np.count_nonzero(disc & outline.outline)
    assert inter / np.count_nonzero(disc | outline.outline) > 0.95
    assert _figure(figures, "area_share") == pytest.approx(np.pi * (90 * s) ** 2 / disc.size, rel=0.03)
    assert _figure(figures, "solidity") > 0.97 and _figure(figures, "circularity") > 0.85
    assert _figure(figures, "axis_ratio") > 0.97 and _figure(figures, "radius_cv") < 0.03
    assert _figure(figures, "pieces") == 1 and _figure(figures, "hole_share") == 0
    assert _figure(figures, "crack_share") == 0 and _figure(figures, "defect_max") < 0.05


def test_colour_and_texture_figures_equal_the_plain_computation():
    """On a textured disc (Otsu's object is then the outline, holes none), each colour and texture
    figure as NumPy and OpenCV compute it over the whole region."""
    crop = _cookie(chips=False, seed=3)
    rng = np.random.default_rng(3)
    disc = np.zeros(crop.shape[:2], np.uint8)
    cv2.circle(disc, (170, 170), 80, 255, -1)
    noise = rng.integers(0, 16, crop.shape, dtype=np.uint8)
    crop = np.where(disc[..., None] > 0, cv2.subtract(crop, noise), crop)
    reading = lm._OUTLINE_AND_FIGURES.read(crop)
    figures, region, mask = reading.figures, reading.region, reading.object
    assert (mask <= reading.outline).all() and np.count_nonzero(mask) > 0.9 * np.count_nonzero(reading.outline)
    inside = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    lab = cv2.cvtColor(region, cv2.COLOR_BGR2LAB)
    for j, ch in enumerate("Lab"):
        px = lab[..., j][inside].astype(np.float64)
        assert _figure(figures, f"{ch}_mean") == pytest.approx(px.mean(), rel=1e-9)
        assert _figure(figures, f"{ch}_std") == pytest.approx(px.std(), rel=1e-6)
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    gm = np.sqrt(gx * gx + gy * gy)[inside].astype(np.float64)
    assert _figure(figures, "grad_mean") == pytest.approx(gm.mean(), rel=1e-6)
    assert _figure(figures, "grad_std") == pytest.approx(gm.std(), rel=1e-5)
    assert _figure(figures, "grad_p90") == pytest.approx(np.percentile(gm, 90), rel=1e-6)
    edges = cv2.Canny(gray, 60, 150) > 0
    assert _figure(figures, "edge_density") == pytest.approx(edges[inside].mean())
    # local binary patterns: neighbours brighter than the centre by more than 2, counted (8 joins 7)
    g = gray.astype(np.int16)
    c = g[1:-1, 1:-1]
    count = sum(
        (g[1 + dy : g.shape[0] - 1 + dy, 1 + dx : g.shape[1] - 1 + dx] > c + 2).astype(np.int32)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
    hist = np.bincount(np.minimum(count[inside[1:-1, 1:-1]], 7), minlength=8) / inside[1:-1, 1:-1].sum()
    np.testing.assert_allclose([_figure(figures, f"lbp_{j}") for j in range(8)], hist, rtol=1e-12)
    assert 0.3 < hist[0] < 0.95  # the texture makes a spread of patterns


def test_broken_cracked_and_odd_crops():
    _, whole = _read(_cookie(seed=1))
    _, halves = _read(_cookie(halves=True, seed=2))
    _, plain = _read(_cookie(chips=False, seed=1))
    _, cracked = _read(_cookie(chips=False, crack=True, seed=1))
    bitten = _cookie(seed=1)
    cv2.circle(bitten, (170 + 90, 170), 40, BELT, -1)
    _, bitten = _read(bitten)
    assert _figure(halves, "pieces") == 2 and _figure(whole, "pieces") == 1
    assert _figure(bitten, "defect_max") > 0.1 > 0.05 > _figure(whole, "defect_max")
    assert _figure(bitten, "solidity") < 0.95 < _figure(whole, "solidity")
    # the belt seen through a crack across it: one long crack (dark chips are short ones)
    assert _figure(cracked, "crack_len") > 0.5 > _figure(whole, "crack_len")
    assert _figure(cracked, "crack_count") == 1 and _figure(cracked, "crack_share") > 0.005
    assert _figure(plain, "crack_share") == 0 and _figure(plain, "hole_share") == 0
    # cut by the crop's edges, small, or nothing at all: finite, and zeros without an object
    for crop in (
        _cookie(centre=(40, 60), radius=90, seed=4, letterbox=False),
        _cookie(size=(120, 120), radius=58, crack=True, seed=6, letterbox=False),
    ):
        assert np.isfinite(_read(crop)[1]).all()
    for empty in (np.zeros((384, 384, 3), np.uint8), np.full((50, 80, 3), 128, np.uint8)):
        outline, figures = lm.read_crop(empty, figures=True)
        assert outline is None and not figures.any()
    # not a copy's worth of trouble: a strided view reads as its copy
    view = _cookie(seed=1)[:, ::-1]
    np.testing.assert_array_equal(lm.read_crop(view, figures=True)[1], lm.read_crop(view.copy(), figures=True)[1])
    with pytest.raises(ValueError, match="BGR uint8"):
        lm.read_crop(np.zeros((10, 10), np.uint8))


def test_a_crop_reads_the_same_whatever_was_read_before():
    """The reader keeps nothing between crops: a small object's shape does not depend on the larger
    ones read before it (the detector inside learns typical sizes; a fresh one each crop)."""
    small = _cookie(size=(120, 120), radius=20, seed=5, letterbox=False)
    alone = lm.read_crop(small, figures=True)[1]
    for _ in range(8):
        lm.read_crop(_cookie(radius=110, seed=6), figures=True)
    np.testing.assert_array_equal(lm.read_crop(small, figures=True)[1], alone)


def test_broken_cookies_look_broken_in_the_real_photos(cookies_dir):
    """On the 63 real photos: the broken and stacked cookies' outlines are less solid and more
    bitten than the whole ones' (each figure alone ranks them above chance by far)."""
    from conveyor_qc.dataset.manifest import read_manifest

    entries = read_manifest(cookies_dir / "train.manifest")
    X = lm.features_of([cv2.imread(str(cookies_dir / e.source_ref)) for e in entries])
    y = np.array([e.label == "anomaly" for e in entries])
    assert np.isfinite(X).all() and (X[:, lm.FEATURE_NAMES.index("area_share")] > 0.1).all()

    def auroc(score):
        pos, neg = score[y], score[~y]
        return (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()

    assert auroc(-X[:, lm.FEATURE_NAMES.index("solidity")]) > 0.75
    assert auroc(X[:, lm.FEATURE_NAMES.index("defect_max")]) > 0.75
