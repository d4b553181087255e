"""Where on the object: each crop turned into the object's own frame and compared, patch by patch,
with the normal objects the model was trained on (PatchCore's idea, without a network).

**The object's frame.** The object (its outline, :func:`features.read_crop`) is moved to the
middle of a ``FRAME`` x ``FRAME`` square, turned so that its long axis (from its second moments)
lies along x and scaled so that this axis is ``AXIS_SHARE`` of the square. What is left is a
choice of four: mirrored in x, in y, both or neither. The training images are set to the one
that agrees best with the first normal image's outline; every later crop to the one that agrees
best with the mean outline of the training images.

**Patches.** The frame is cut into ``GRID`` x ``GRID`` overlapping patches (8 x 8 pixels, step
4). Each is described by its Lab colour (mean and spread), its gradients (four orientation bins,
weighted by strength), how much of it is object, and where it is: its distance from the middle,
and, on elongated objects only (where the long axis means something), its x and y. A round
object's long axis is noise, so its patches carry only their distance from the middle.

**The memory bank** holds the patches of every normal training image (at most ``BANK_SIZE``, a
core set) and their outlines. A patch's anomaly is its distance to the nearest one in the bank
(each descriptor scaled by its spread in the bank); an image's is its most anomalous patch's
(``TOP_K`` = 1: the mean of three was measured and lost a horse's small stains). The outline's
anomaly is the largest piece of it that the nearest normal outline does not share. Both, mapped
back onto the crop, are the heat map. A missing leg leaves belt where every normal horse has leg
(the outline, and the patches' place and object share tell it); a scribble, a stain or a crack
brings colours and edges no normal patch has at that distance from the middle.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from threadpoolctl import ThreadpoolController

from conveyor_qc.anomaly.features import CropOutline

FRAME = 96  # side of the object's frame, pixels
AXIS_SHARE = 0.8  # the long axis' share of the frame's side
CELL = 4  # a patch is 2 x 2 cells of CELL x CELL pixels
GRID = FRAME // CELL - 1  # patches per side
TOP_K = 1  # an image's patch evidence: the mean of its TOP_K most anomalous patches
#: Most patches kept in the bank: beyond, a core set (PatchCore's greedy k-centre: each next patch
#: the one furthest from those kept), which keeps the rare patches and drops the thousand copies of
#: the belt. A crop's cost is linear in the bank's size.
BANK_SIZE = 1500
#: How much a patch's place weighs against its look, in units of the descriptors' spread:
#: distance from the middle, and (scaled by the object's elongation) x and y.
W_RADIUS = 1.0
W_XY = 1.0

DESCRIPTOR = (
    "L",
    "a",
    "b",
    "L_sd",
    "a_sd",
    "b_sd",
    "g0",
    "g1",
    "g2",
    "g3",
    "cover",
    "radius",
    "x",
    "y",
)
_LOOK = slice(0, DESCRIPTOR.index("radius"))  # the descriptors scaled by their spread in the bank
_RADIUS = DESCRIPTOR.index("radius")
_XY = slice(DESCRIPTOR.index("x"), DESCRIPTOR.index("y") + 1)
_FLIPS = ((False, False), (True, False), (False, True), (True, True))


@dataclass
class ObjectFrame:
    """One crop's object in its own frame: the turned image and mask, and the map back to the crop."""

    image: np.ndarray  # FRAME x FRAME BGR uint8
    mask: np.ndarray  # FRAME x FRAME float32 in [0, 1], the object's outline filled
    to_crop: np.ndarray  # 2x3 affine: frame pixel -> crop pixel
    crop_shape: tuple[int, int]
    elongation: float  # 1 - short axis / long axis

    def flipped(self, fx: bool, fy: bool) -> ObjectFrame:
        if not (fx or fy):
            return self
        sl = (slice(None, None, -1) if fy else slice(None), slice(None, None, -1) if fx else slice(None))
        # frame pixel (u, v) of the flipped frame is (F-1-u, v) etc. of this one
        flip = np.array(
            [[-1.0 if fx else 1.0, 0, FRAME - 1 if fx else 0], [0, -1.0 if fy else 1.0, FRAME - 1 if fy else 0]]
        )
        to_crop = self.to_crop[:, :2] @ flip[:, :2]
        to_crop = np.hstack([to_crop, (self.to_crop[:, :2] @ flip[:, 2] + self.to_crop[:, 2])[:, None]])
        return ObjectFrame(
            np.ascontiguousarray(self.image[sl]),
            np.ascontiguousarray(self.mask[sl]),
            to_crop,
            self.crop_shape,
            self.elongation,
        )


def object_frame(obj: CropOutline, crop_shape: tuple[int, int]) -> ObjectFrame | None:
    """The object's frame: its outline's centre, long axis and length give the turn and the scale."""
    region, filled = obj.region, obj.outline
    m = cv2.moments(filled, binaryImage=True)
    if m["m00"] < 20:
        return None
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    spread = math.sqrt(((mu20 - mu02) / 2) ** 2 + mu11**2)
    lam1, lam2 = (mu20 + mu02) / 2 + spread, max((mu20 + mu02) / 2 - spread, 0.0)
    theta = 0.5 * math.atan2(2 * mu11, mu20 - mu02)
    long_axis = 4 * math.sqrt(max(lam1, 1e-6))
    scale = AXIS_SHARE * FRAME / long_axis
    # region -> frame: turn by -theta about the centroid, scale, move to the frame's middle
    c, s = math.cos(theta) * scale, math.sin(theta) * scale
    to_frame = np.array([[c, s, 0.0], [-s, c, 0.0]])
    half = (FRAME - 1) / 2
    to_frame[:, 2] = [half - (c * cx + s * cy), half - (-s * cx + c * cy)]
    # halve first (a Gaussian pyramid step) while the frame is less than half the region's scale:
    # warpAffine samples, it does not average
    src, src_mask, pre = region, filled, 1.0
    while scale / pre < 0.5 and min(src.shape[:2]) >= 16:
        src, src_mask, pre = cv2.pyrDown(src), cv2.pyrDown(src_mask), pre / 2
    warp = to_frame.copy()
    warp[:, :2] /= pre
    image = cv2.warpAffine(src, warp, (FRAME, FRAME), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(src_mask, warp, (FRAME, FRAME), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    # frame -> region -> crop
    back = cv2.invertAffineTransform(to_frame)
    to_crop = back / obj.region_scale
    to_crop[:, 2] += obj.content_at
    elongation = 1.0 - math.sqrt(lam2 / max(lam1, 1e-9))
    return ObjectFrame(image, mask, to_crop, crop_shape, elongation)


def describe(frame: ObjectFrame) -> np.ndarray:
    """(GRID * GRID, len(DESCRIPTOR)) patch descriptors of an object's frame, row by row."""
    lab = cv2.cvtColor(frame.image, cv2.COLOR_BGR2LAB).astype(np.float32)
    gray = lab[..., 0]
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    # NumPy's, not cv2.magnitude: OpenCV's vector path and its plain tail round differently, and
    # where one ends depends on how OpenCV's threads split the frame, so a crop's descriptors
    # changed in the last bit with what else the process was running (cv2.phase does not)
    mag = np.hypot(gx, gy)
    ang = cv2.phase(gx, gy)  # [0, 2pi)
    binned = (np.floor(ang * (4 / math.pi)).astype(np.int32)) % 4  # unsigned orientation, 4 bins
    planes = [lab, lab * lab, mag[..., None] * (binned[..., None] == np.arange(4)), frame.mask[..., None]]
    stack = np.concatenate(planes, axis=2)
    cells = cv2.resize(stack, (FRAME // CELL, FRAME // CELL), interpolation=cv2.INTER_AREA)
    if cells.ndim == 2:
        cells = cells[..., None]
    patch = (cells[:-1, :-1] + cells[1:, :-1] + cells[:-1, 1:] + cells[1:, 1:]) / 4
    mean = patch[..., 0:3]
    sd = np.sqrt(np.maximum(patch[..., 3:6] - mean * mean, 0.0))
    grads = patch[..., 6:10] / 16.0
    cover = patch[..., 10:11]
    ij = (np.arange(GRID, dtype=np.float32) + 1) * CELL - 0.5  # patch centres in frame pixels
    u = (ij - (FRAME - 1) / 2) / (AXIS_SHARE * FRAME / 2)  # -1..1 along the long axis
    xx, yy = np.meshgrid(u, u)
    radius = np.hypot(xx, yy)
    # rough common units for the look (the bank's spread rescales them: PatchBank.weigh); the
    # place is in half long axes
    out = np.concatenate(
        [mean / 10.0, sd / 5.0, grads, cover * 4.0, radius[..., None], xx[..., None], yy[..., None]], axis=2
    )
    return out.reshape(GRID * GRID, len(DESCRIPTOR)).astype(np.float32)


def frame_agreement(mask: np.ndarray, reference: np.ndarray) -> float:
    """How much two frames' object masks overlap (intersection over union)."""
    inter = float(np.minimum(mask, reference).sum())
    union = float(np.maximum(mask, reference).sum())
    return inter / max(union, 1e-6)


def best_flip(frame: ObjectFrame, reference: np.ndarray) -> ObjectFrame:
    """The frame mirrored the way that agrees best with a reference mask."""
    return max((frame.flipped(fx, fy) for fx, fy in _FLIPS), key=lambda f: frame_agreement(f.mask, reference))


@dataclass
class Comparison:
    """One crop's object against the bank: how unusual its most unusual patches and its outline
    are, and where (in the frame it was turned to)."""

    frame: ObjectFrame  # mirrored as it was compared
    patch_map: np.ndarray  # (GRID, GRID) distance of each patch to its nearest normal patch
    patch_score: float  # the mean of the TOP_K largest
    shape_map: np.ndarray  # FRAME x FRAME 0/1: the largest piece of outline unlike the nearest normal one
    shape_score: float  # that piece's share of the object's area


class PatchBank:
    """The normal objects' patches and outlines, each in its object's frame."""

    def __init__(
        self,
        patches: np.ndarray,
        owner: np.ndarray,
        spread: np.ndarray,
        reference: np.ndarray,
        outlines: np.ndarray,
        outline_owner: np.ndarray,
        w_xy: float,
    ):
        self.patches = patches  # (N, D) float32, weighted
        self.owner = owner  # (N,) the training group each patch came from
        self.spread = spread  # (D,) what the look descriptors are divided by
        self.reference = reference  # FRAME x FRAME mean outline of the training objects
        self.outlines = outlines  # (n, FRAME, FRAME) bool, each training object's outline
        self.outline_owner = outline_owner  # (n,) their groups
        # the outlines at half size, as rows: the nearest one is found with one product (hundreds of
        # training crops make the full-size comparison the model's largest cost)
        self._coarse = _half_size(outlines)
        self._coarse_norms = (self._coarse * self._coarse).sum(1)
        self.w_xy = w_xy  # weight of x and y (0 for round objects)
        self._columns = _as_columns(patches)

    @classmethod
    def fit(cls, frames: list[ObjectFrame], groups: np.ndarray, seed: int = 0) -> PatchBank:
        """The bank of normal frames; ``groups`` keeps the crops of one object together (left out
        together when a training crop is compared with the others)."""
        reference = frames[0].mask
        aligned = frames
        for _ in range(2):
            aligned = [best_flip(f, reference) for f in frames]
            reference = np.mean([f.mask for f in aligned], axis=0)
        raw = [describe(f) for f in aligned]
        allp = np.vstack(raw)
        spread = np.ones(allp.shape[1], np.float32)
        spread[_LOOK] = np.maximum(allp[:, _LOOK].std(axis=0), 0.05)
        # x and y mean something only where the long axis does: not on round objects
        elong = float(np.median([f.elongation for f in frames]))
        w_xy = W_XY * min(1.0, max(0.0, (elong - 0.15) / 0.25))
        patches = _weigh(allp, spread, w_xy)
        owner = np.repeat(np.asarray(groups), len(raw[0]))
        if len(patches) > BANK_SIZE:
            keep = np.sort(core_set(patches, BANK_SIZE, seed))
            patches, owner = patches[keep], owner[keep]
        outlines = np.stack([f.mask > 0.5 for f in aligned])
        return cls(patches, owner, spread, reference.astype(np.float32), outlines, np.asarray(groups), w_xy)

    def weigh(self, descriptors: np.ndarray) -> np.ndarray:
        return _weigh(descriptors, self.spread, self.w_xy)

    def compare(self, frame: ObjectFrame, leave_out: object = None) -> Comparison:
        """The frame against the bank; ``leave_out`` (a group) compares a training crop with the
        other training objects only."""
        with one_blas_thread():
            return self._compare(frame, leave_out)

    def _compare(self, frame: ObjectFrame, leave_out: object) -> Comparison:
        frame = best_flip(frame, self.reference)
        q = self.weigh(describe(frame))
        columns = self._columns if leave_out is None else self._columns[:, self.owner != leave_out]
        # |q - b|^2 = |b|^2 - 2 q.b + |q|^2: one product with the bank's columns, |q|^2 after the minimum
        lhs = np.hstack([-2.0 * q, np.ones((len(q), 1), np.float32)])
        d2 = (lhs @ columns).min(axis=1) + (q * q).sum(1)
        d = np.sqrt(np.maximum(d2, 0.0))
        patch_map = np.asarray(d, np.float32).reshape(GRID, GRID)
        shape_score, shape_map = self._shape_difference(frame, leave_out)
        return Comparison(frame, patch_map, float(np.sort(patch_map.ravel())[-TOP_K:].mean()), shape_map, shape_score)

    def _shape_difference(self, frame: ObjectFrame, leave_out: object) -> tuple[float, np.ndarray]:
        """The largest piece of outline that differs from the nearest normal outline (its share of
        the object's area, its map). Thin slivers along the edge (the outline's noise, a slightly
        different turn) are opened away first."""
        m = frame.mask > 0.5
        q = _half_size(m[None])[0]
        d2 = self._coarse_norms - 2.0 * (self._coarse @ q)  # + |q|^2, the same for every row
        if leave_out is not None:
            d2[self.outline_owner == leave_out] = np.inf
        diff = (self.outlines[int(np.argmin(d2))] != m).astype(np.uint8)
        diff = cv2.morphologyEx(diff, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, cc, stats, _ = cv2.connectedComponentsWithStats(diff, connectivity=4)
        if n <= 1:
            return 0.0, np.zeros_like(diff)
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        return float(stats[big, cv2.CC_STAT_AREA]) / max(float(m.sum()), 1.0), (cc == big).astype(np.uint8)

    # ---- saved form: arrays in an .npz next to model.json (numbers only, no pickle)
    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "patches": self.patches,
            "spread": self.spread,
            "reference": self.reference,
            "outlines": np.packbits(self.outlines, axis=-1),
            "w_xy": np.array([self.w_xy], np.float32),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> PatchBank:
        patches = np.asarray(a["patches"], np.float32)
        outlines = np.unpackbits(np.asarray(a["outlines"], np.uint8), axis=-1, count=FRAME).astype(bool)
        if patches.ndim != 2 or patches.shape[1] != len(DESCRIPTOR) or outlines.shape[1:] != (FRAME, FRAME):
            raise ValueError("the bank's arrays have the wrong shape")
        n = len(outlines)
        return cls(
            patches,
            np.full(len(patches), -1),
            np.asarray(a["spread"], np.float32),
            np.asarray(a["reference"], np.float32),
            outlines,
            np.arange(n),
            float(a["w_xy"][0]),
        )


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once


def one_blas_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread until the limit's ``restore_original_limits()`` (or the end of its ``with``):
    for the bank's products, which are small (a crop's patches against the bank), and for a whole
    run (run/job.py). The model judges on a thread of its own beside the pipeline, where OpenBLAS's
    threads spin-waited for work: on the bench clip `run --model` took 5.4 s of CPU instead of 3.3."""
    return _blas().limit(limits=1, user_api="blas")


def _weigh(descriptors: np.ndarray, spread: np.ndarray, w_xy: float) -> np.ndarray:
    """Descriptors as the bank compares them: the look in units of its spread, the place weighted."""
    w = descriptors / spread
    w[:, _RADIUS] *= W_RADIUS
    w[:, _XY] *= w_xy
    return w.astype(np.float32)


def _half_size(outlines: np.ndarray) -> np.ndarray:
    """(n, FRAME, FRAME) bool outlines as (n, (FRAME / 2)^2) float32 rows: each 2 x 2 block's share."""
    n = len(outlines)
    h = FRAME // 2
    return outlines.reshape(n, h, 2, h, 2).mean(axis=(2, 4), dtype=np.float32).reshape(n, h * h)


def _as_columns(patches: np.ndarray) -> np.ndarray:
    """The bank as (D + 1, N) columns, each patch then its squared length: a nearest-neighbour
    search is then one matrix product."""
    return np.ascontiguousarray(np.vstack([patches.T, (patches * patches).sum(1)[None, :]]), dtype=np.float32)


def core_set(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` points chosen greedily, each the furthest from those already chosen."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(points)))]
    d = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        i = int(np.argmax(d))
        chosen.append(i)
        d = np.minimum(d, ((points - points[i]) ** 2).sum(1))
    return np.array(chosen)


def heat_map(c: Comparison, patch_threshold: float, shape_threshold: float) -> np.ndarray:
    """The comparison as a map over the crop (float32, the crop's size), each evidence divided by
    its threshold: 1.0 is the edge of normal, at a patch or in its outline."""
    patches = cv2.resize(c.patch_map / patch_threshold, (GRID * CELL, GRID * CELL), interpolation=cv2.INTER_LINEAR)
    heat = np.zeros((FRAME, FRAME), np.float32)
    heat[CELL // 2 : CELL // 2 + GRID * CELL, CELL // 2 : CELL // 2 + GRID * CELL] = patches
    heat = np.maximum(heat, c.shape_map.astype(np.float32) * (c.shape_score / shape_threshold))
    h, w = c.frame.crop_shape
    return cv2.warpAffine(heat, c.frame.to_crop, (w, h), flags=cv2.INTER_LINEAR)
