"""Sprites and belt textures from real photographs.

* The real cookie photos (presets light-on-dark, photo-dense): the AWS Lookout for Vision samples
  (aws-samples/amazon-lookout-for-vision, computer-vision-defect-detection/cookie-dataset), licensed
  CC BY-SA 4.0, downscaled; shipped with the package in ``conveyor_qc/data/aws-cookies`` (see its
  NOTICE; ``$CONVEYOR_QC_SHARED/data/aws-cookies`` instead when that is set); each cookie is cut out
  by Otsu on yellowness and lightness.
* Sample images bundled with scikit-image (``skimage/data``; read from the installed package, never
  downloaded; ``pip install 'conveyor-qc[photos]'``), under the terms scikit-image documents for
  them: coins.png (Greek coins from Pompeii, Brooklyn Museum Collection, no known copyright
  restrictions) cut into its 24 coins by scikit-image's own watershed example; coffee.png (courtesy
  of Pikolo Espresso Bar, CC0 by Rachel Michetti) whose cup on its saucer is cut out by GrabCut from a
  fixed rectangle, and whose wooden table fills horse.png's silhouette (openclipart, CC0 by Andreas
  Preuss); gravel.png, brick.png (CC0Textures Gravel04, Bricks25, CC0) and grass.png (DeviantArt
  linolafett Grass-01, CC0) as belt textures, mirrored into seamless tiles.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.evaluation.synth.objects import _cut_polygon
from conveyor_qc.evaluation.synth.presets import SynthDataError, SynthError
from conveyor_qc.evaluation.synth.util import _crop_sprite
from conveyor_qc.shared import cookie_photos_dir, missing_hint


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
    ff: np.ndarray = cv2.bitwise_not(keep)
    cv2.floodFill(ff, np.zeros((h + 2, w + 2), np.uint8), (0, 0), 0)
    keep = keep | ff
    # leave out the tray-coloured outline
    return cv2.erode(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))


def _photo_folder() -> Path:
    return cookie_photos_dir()


def _load_photos() -> list:
    folder = _photo_folder()
    key = str(folder.resolve())
    if key in _PHOTO_CACHE:
        return _PHOTO_CACHE[key]
    manifest = folder / "train.manifest"
    hint = (
        f"the presets built from real cookie photos (light-on-dark, photo-dense) need them in {folder} "
        "(images/*.jpg and train.manifest)"
    )
    if not manifest.is_file():
        raise SynthDataError(f"{hint}: {manifest} not found; {missing_hint()}")
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


# --------------------------------------------------------------------------- photographs bundled with scikit-image

_SKIMAGE_HINT = (
    "needs the photographs bundled with scikit-image (skimage/data, no download): "
    "install it with  pip install 'conveyor-qc[photos]'  (or  pip install 'scikit-image>=0.22')"
)
_SK_CACHE: dict[str, object] = {}


def skimage_data_dir(preset: str = "") -> Path:
    """The folder of scikit-image's bundled sample photographs, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    who = f"the {preset!r} preset " if preset else "this preset "
    if spec is None or not spec.submodule_search_locations:
        raise SynthDataError(f"{who}{_SKIMAGE_HINT}; the package scikit-image is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (folder / "coins.png").is_file():
        raise SynthDataError(f"{who}{_SKIMAGE_HINT}; {folder} has no coins.png")
    return folder


def _sk_read(name: str, flags: int = cv2.IMREAD_UNCHANGED, preset: str = "") -> np.ndarray:
    path = skimage_data_dir(preset) / name
    img = cv2.imread(str(path), flags)
    if img is None:
        raise SynthDataError(f"cannot read {path} ({_SKIMAGE_HINT})")
    return img


def _cutout(ref: str, img: np.ndarray, mask: np.ndarray, feather: float = 0.8) -> _Photo:
    """A _Photo from a BGR image and a 0/1 mask (cropped, feathered alpha, equivalent radius)."""
    ys, xs = np.nonzero(mask)
    pad = 3
    y0, y1 = max(0, ys.min() - pad), min(img.shape[0], ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(img.shape[1], xs.max() + 1 + pad)
    a = cv2.GaussianBlur(mask[y0:y1, x0:x1].astype(np.float32), (0, 0), feather)
    a = np.clip(a, 0, 1)
    pm = img[y0:y1, x0:x1].astype(np.float32) * a[..., None]
    return _Photo(ref, False, a, pm, math.sqrt(float(mask.sum()) / math.pi))


def _segment_coins(grey: np.ndarray) -> list:
    """The coins of skimage's coins.png: watershed on the Sobel elevation from dark/bright markers
    (scikit-image's own segmentation example), holes filled, one mask per coin."""
    from scipy import ndimage as ndi
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    markers = np.zeros(grey.shape, np.int32)
    markers[grey < 30] = 1
    markers[grey > 150] = 2
    seg = ndi.binary_fill_holes(watershed(sobel(grey), markers) == 2)
    seg = cv2.morphologyEx(seg.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    n, lab, st, _ = cv2.connectedComponentsWithStats(seg)
    h, w = grey.shape
    masks = []
    for i in range(1, n):
        x, y, bw, bh, area = st[i]
        if area < 500 or x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue  # specks, and coins cut by the photo's border
        masks.append((lab == i).astype(np.uint8))
    return masks


def _segment_cup(img: np.ndarray) -> np.ndarray:
    """The cup on its saucer (with the spoon) of skimage's coffee.png: GrabCut from a fixed rectangle
    (OpenCV's random generator seeded), kept within the saucer's ellipse and the cup's box."""
    cv2.setRNGSeed(0)
    mask = np.zeros(img.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(img, mask, (72, 12, 412, 380), bgd, fgd, 6, cv2.GC_INIT_WITH_RECT)
    m = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    lim = np.zeros_like(m)
    cv2.ellipse(lim, (277, 229), (202, 158), 0, 0, 360, 1, -1)
    cv2.rectangle(lim, (176, 10), (425, 230), 1, -1)
    m = cv2.morphologyEx(m & lim, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    _n, lab, st, _ = cv2.connectedComponentsWithStats(m)
    m = (lab == 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    ff = 1 - m
    cv2.floodFill(ff, None, (0, 0), 0)
    return m | ff


def _wooden_horse(rgba: np.ndarray, coffee: np.ndarray) -> _Photo:
    """skimage's horse.png silhouette filled with the wood grain of the table in coffee.png."""
    sil = (rgba[..., :3].max(axis=2) < 128).astype(np.uint8)
    wood = np.ascontiguousarray(np.rot90(coffee[:, 490:600]))  # 110 x 400, grain along the long side
    h, w = sil.shape
    reps = (h // wood.shape[0] + 2, w // wood.shape[1] + 2)
    tile = np.concatenate([wood, wood[::-1]], axis=0)
    tex = np.tile(tile, (reps[0] // 2 + 1, reps[1], 1))[:h, :w]
    # the flat cut-out has a slightly darker sawn edge
    edge = cv2.distanceTransform(sil, cv2.DIST_L2, 3)
    tex = tex.astype(np.float32) * (0.75 + 0.25 * np.clip(edge / 4.0, 0, 1))[..., None]
    return _cutout("skimage:horse.png", np.clip(tex, 0, 255).astype(np.uint8), sil, feather=0.7)


def load_skimage_objects(preset: str = "") -> dict:
    """{"coin": [...24 coins], "cup": [cup on saucer], "horse": [wooden horse]} as _Photo cut-outs."""
    if "objects" in _SK_CACHE:
        return _SK_CACHE["objects"]  # type: ignore[return-value]
    coins = _sk_read("coins.png", cv2.IMREAD_GRAYSCALE, preset)
    coffee = _sk_read("coffee.png", cv2.IMREAD_COLOR, preset)
    horse = _sk_read("horse.png", cv2.IMREAD_UNCHANGED, preset)
    coins_bgr = cv2.cvtColor(coins, cv2.COLOR_GRAY2BGR)
    out = {
        "coin": [_cutout("skimage:coins.png", coins_bgr, m) for m in _segment_coins(coins)],
        "cup": [_cutout("skimage:coffee.png", coffee, _segment_cup(coffee))],
        "horse": [_wooden_horse(horse, coffee)],
    }
    _SK_CACHE["objects"] = out
    return out


def skimage_texture(name: str, preset: str = "") -> np.ndarray:
    """A grey texture photograph bundled with scikit-image (gravel, brick, grass), uint8."""
    if name not in ("gravel", "brick", "grass"):
        raise SynthError(f"belt_photo must be gravel, brick or grass, not {name!r}")
    return _sk_read(f"{name}.png", cv2.IMREAD_GRAYSCALE, preset)


def photo_object_sprite(rng: np.random.Generator, photo: _Photo, r: float, anomaly: str) -> tuple:
    """A turned, scaled sprite of a cut-out; anomalies are cut into the photo first: "broken" (a piece
    off the outline) or "missing-part" (the horse's leg)."""
    a, pm = photo.alpha, photo.pm
    if anomaly:
        h, w = a.shape
        if anomaly == "missing-part":  # a leg: one of the silhouette's parts below the belly
            low = (a > 0.5).astype(np.uint8)
            low[: int(0.68 * h)] = 0
            n, lab, st, _ = cv2.connectedComponentsWithStats(low)
            legs = [
                i
                for i in range(1, n)
                if st[i, cv2.CC_STAT_AREA] > 0.002 * h * w
                and st[i, cv2.CC_STAT_TOP] + st[i, cv2.CC_STAT_HEIGHT] > 0.85 * h
            ]  # down to the hooves
            cut = (lab == legs[int(rng.integers(len(legs)))]).astype(np.float32) if legs else np.zeros_like(a)
            cut = cv2.dilate(cut, np.ones((3, 3), np.uint8))
        else:
            rad = photo.radius
            cut = _cut_polygon(
                rng, (h, w), (w / 2.0, h / 2.0), rad, rng.uniform(0, 2 * np.pi), rad * rng.uniform(0.3, 0.5)
            )
        keep = 1.0 - cut
        a, pm = a * keep, pm * keep[..., None]
    return _photo_sprite(rng, _Photo(photo.ref, bool(anomaly), a, pm, photo.radius), r)
