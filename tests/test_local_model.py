"""The local model's features: the shortcuts that make crop_features cheap give exactly the numbers
of the plain computation over the whole image (a model trained before them scores the same)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conveyor_qc.anomaly import features as lm


def _cookie(size=(300, 260), centre=None, radius=90, crack=False, halves=False, letterbox=True, seed=0):
    """A drawn cookie on a grey belt: chips, optionally a crack through it or broken in two,
    letterboxed into a black square like run's crops."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (70, 75, 80)
    img = cv2.add(img, rng.integers(0, 6, img.shape, dtype=np.uint8))
    cx, cy = centre or (w // 2, h // 2)
    if halves:
        cv2.ellipse(img, (cx - 12, cy), (radius, radius), 0, 90, 270, (90, 170, 215), -1)
        cv2.ellipse(img, (cx + 12, cy), (radius, radius), 0, -90, 90, (90, 170, 215), -1)
    else:
        cv2.circle(img, (cx, cy), radius, (90, 170, 215), -1)
    for _ in range(12):
        x, y = rng.integers(-radius // 2, radius // 2, 2)
        cv2.circle(img, (cx + int(x), cy + int(y)), int(rng.integers(3, 8)), (30, 50, 70), -1)
    if crack:
        cv2.line(img, (cx - radius // 2, cy - radius // 3), (cx + radius // 3, cy + radius // 2), (70, 75, 80), 3)
    if not letterbox:
        return img
    side = max(h, w) + 40
    out = np.zeros((side, side, 3), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = img
    return out


def _images(cookies_dir=None):
    images = [
        _cookie(),
        _cookie(crack=True, seed=1),
        _cookie(halves=True, seed=2),
        _cookie(size=(220, 380), radius=100, seed=3),
        # the object cut by the crop's edges: the margin around it is clipped by the image
        _cookie(centre=(40, 60), radius=90, seed=4, letterbox=False),
        _cookie(centre=(230, 250), radius=100, seed=5, letterbox=False),
        _cookie(size=(120, 120), radius=58, crack=True, seed=6, letterbox=False),
        np.zeros((384, 384, 3), np.uint8),
        np.full((50, 80, 3), 128, np.uint8),
    ]
    if cookies_dir is not None:
        photos = sorted((cookies_dir / "images").glob("*.jpg"))
        images += [cv2.imread(str(p)) for p in photos[::8]]
    return images


@pytest.fixture
def photos_dir(request):
    try:
        return request.getfixturevalue("cookies_dir")
    except pytest.skip.Exception:
        return None


def test_features_near_the_object_equal_those_over_the_whole_image(photos_dir, monkeypatch):
    images = _images(photos_dir)
    near = lm.features_of(images)
    monkeypatch.setattr(lm, "_MARGIN", 10**6)  # the "neighbourhood" is the whole image
    whole = lm.features_of(images)
    assert np.isfinite(near).all()
    np.testing.assert_array_equal(near, whole)
    assert (near[:7, lm.FEATURE_NAMES.index("area_share")] > 0.1).all()  # the cookies were found


def _plain_lbp(gray, inside):
    g = gray.astype(np.int16)
    c = g[1:-1, 1:-1]
    count = np.zeros_like(c, dtype=np.uint8)
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)):
        count += (g[1 + dy : g.shape[0] - 1 + dy, 1 + dx : g.shape[1] - 1 + dx] > c + 2).astype(np.uint8)
    vals = np.minimum(count[inside[1:-1, 1:-1] > 0], 7)
    hist = np.bincount(vals, minlength=8).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def test_lbp_and_content_match_the_plain_numpy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
        gray[rng.random(gray.shape) < 0.2] = 255  # saturated pixels: c + 2 > 255
        inside = np.where(rng.random(gray.shape) < 0.5, 255, 0).astype(np.uint8)  # edges included
        np.testing.assert_array_equal(lm._lbp_hist(gray, inside), _plain_lbp(gray, inside))
    for image in _images():
        nonblack = image.max(axis=2) > 8
        rows, cols = np.flatnonzero(nonblack.any(axis=1)), np.flatnonzero(nonblack.any(axis=0))
        want = image if len(rows) < 8 or len(cols) < 8 else image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        np.testing.assert_array_equal(lm._content(image)[0], want)


def test_colour_distance_matches_the_plain_numpy():
    lab = cv2.cvtColor(cv2.resize(_cookie(crack=True), (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2LAB)
    _, raw = lm._object_mask(lab)
    b = 256 // 40
    border = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)]
    ).astype(np.float32)
    diff = lab.astype(np.float32) - np.median(border, axis=0)
    diff[..., 0] *= 0.6
    np.testing.assert_array_equal(raw, np.sqrt((diff**2).sum(axis=2)))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 101, 1000])
def test_uint8_quantiles_match_numpy(n):
    rng = np.random.default_rng(n)
    for _ in range(10):
        v = rng.integers(0, 256, n).astype(np.uint8)
        got = lm._u8_quantiles(v, (25, 50, 75))
        f = v.astype(np.float64)
        assert got == [np.percentile(f, 25), np.median(f), np.percentile(f, 75)]
