"""Crops that will mislead a model, found before it is trained on them.

A model learns what it is shown. A crop that is blurred, cut by the frame's edge, holds two
objects, repeats another object's crops under a second number (a broken track), or was taken in
the wrong light teaches it something about the camera, not the product; the same object on both
sides of a train/test split grades it on what it was taught. :func:`check_run` reads a run folder
(what ``conveyor-qc run`` wrote) and flags each object's crops:

=============  ===============================================================================
``blurred``    the object's edges are much softer than the run's typical object's
``cut``        part of the object is not in view: it never was wholly in view (so it has no
               crops), or a crop's box is much smaller than its others; a photo's object
               reaches the photo's edge
``merged``     two objects in one box: a second object-sized core, and far more area than
               the run's typical object
``duplicate``  the same object as an earlier track: it is where and when that one is or was
               lost, and their crops look alike
``exposure``   too dark, too bright or clipped against the run's typical crop, or absolutely
=============  ===============================================================================

Each check is one function below (``is_blurred``, ``partial_crops`` and ``cut_side``,
``is_merged``, ``duplicate_pairs``, ``exposure_problem``) with its thresholds in
:class:`Thresholds`. The thresholds are relative to the run itself wherever the product decides
what is normal (how sharp, how large, how bright its crops are), so they hold for any product and
line; only the clipping and darkness floors are absolute. The reference is the median over the run's objects
(each object counted once, whatever its number of crops); with fewer than
``Thresholds.min_objects`` objects the relative checks are skipped (the report says so).

The object in a crop is found as the embedded model finds it
(:func:`conveyor_qc.anomaly.features.read_crop`: the letterbox padding cut off, the object
split from the belt around it), and everything is measured on the object's part of the crop,
never on the padding. Sizes are converted to the frame's pixels through the object's box in
``tracks.txt``, so a crop's letterbox scale does not change them.

``conveyor-qc dataset`` writes the report into the dataset (``quality.csv``, ``quality.html``)
and with ``--flagged exclude|review`` leaves the flagged crops out; ``conveyor-qc quality
RUN_DIR`` prints it. docs/dataset.md, "Crops that mislead a model", has the measured precision
and recall of every flag.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.anomaly.base import ImageError, read_image
from conveyor_qc.anomaly.features import read_crop
from conveyor_qc.crops import content_rect, expand_box, jpeg_data_uri
from conveyor_qc.dataset.label_server import LabelStore
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.evaluation.metrics import EvalError, read_mot

__all__ = [
    "FLAGS",
    "CropCheck",
    "ObjectCrops",
    "ObjectFlags",
    "QualityError",
    "QualityReport",
    "Thresholds",
    "check_objects",
    "check_run",
    "cut_side",
    "duplicate_pairs",
    "exposure_problem",
    "format_counts",
    "is_blurred",
    "is_merged",
    "measure_crop",
    "quality_csv",
    "quality_page",
]

FLAGS = ("blurred", "cut", "merged", "duplicate", "exposure")
#: Frame pixels over which an edge's contrast is measured (a defocus of 6 px spreads an edge over 12).
STEEPNESS_WINDOW = 15

#: What each flag means, for the report's readers.
FLAG_MEANINGS = {
    "blurred": "out of focus or smeared: its edges much softer than the run's typical object's",
    "cut": "part of the object not in view: cut by the frame's edge (or never wholly in view)",
    "merged": "two objects in one box (touching objects the detector did not split)",
    "duplicate": "the same object as another track (a broken track): it would leak across a train/test split",
    "exposure": "too dark, too bright or clipped against the run's typical crop",
}


class QualityError(ConveyorQCError, ValueError):
    """A folder cannot be checked (not a run folder, unreadable tracks); the message says which."""


@dataclass(frozen=True)
class Thresholds:
    """When a crop is flagged. Ratios are against the run's median object."""

    #: blurred: the steepness of the object's edges across x or y below this share of the run's
    #: median object's. On the clips it was chosen on, a defocus of 3-6 px or a smear of 7-13 px
    #: left 0.35-0.7 of it; sharp objects kept 0.7 and more (a burnt cracker on a blue belt, 0.69).
    blur_ratio: float = 0.7
    #: cut (a run): a crop's box smaller than this share of the object's median box over its crops.
    partial: float = 0.6
    #: cut (a photo): the object reaches a side of the photo along at least this share of it.
    cut_share: float = 0.15
    #: merged: a second core (:func:`_second_core`) whose inscribed radius is at least this share of
    #: the run's median object's ...
    core_ratio: float = 0.6
    #: ... and at least this many times the run's median object area (a single object has one core).
    merged_area: float = 1.4
    #: duplicate: the second track starts at most this many seconds after the first ended (at most
    #: 1 s on a line: a track breaks when its object is lost for a few frames) ...
    duplicate_gap_s: float = 1.0
    #: ... where the first is, or would be by then: at least this share of the smaller box inside
    #: the other ...
    duplicate_inside: float = 0.5
    #: ... and the two crops nearest in time look alike (:func:`similarity` at least this). Measured:
    #: the same object 0.95 and more; other objects of one kind 0.75 for 99 pairs in 100, up to 0.93
    #: for crackers (hence the time and the place too).
    duplicate_similarity: float = 0.85
    #: exposure: the belt around the object below ``dark`` or above ``bright`` times as bright as
    #: around the run's median object, and the object darker (brighter) too. The belt, because the
    #: light changes it as it changes the object while the product does not (a burnt cracker, a
    #: black pack on a normal belt are no exposure fault); the object too, as a check ...
    dark: float = 0.6
    bright: float = 1.5
    #: ... or this share more of its pixels clipped (a channel at 250 or more) than the run's
    #: median crop (a pale cookie's highlights clip a few per cent; an overexposed one, most) ...
    clipped: float = 0.15
    #: ... or, whatever the run, a crop with nothing brighter than ``floor`` grey (its 99th
    #: percentile), or with ``blown`` of its pixels clipped.
    floor: float = 40.0
    blown: float = 0.25
    #: Relative checks need at least this many objects with crops to compare against.
    min_objects: int = 5


# --------------------------------------------------------------------------- what is read of a run


@dataclass
class ObjectCrops:
    """One object to check: its crops and, for a run's track, its boxes in the frame."""

    name: str  # track id (a run), or the photo's name (a manifest)
    crops: Sequence[tuple[Path, int | None]]  # (file, frame or None)
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)  # frame -> x, y, w, h
    first_frame: int | None = None
    last_frame: int | None = None
    never_whole: bool = False  # every box touched a frame edge: the run cut no crop of it


@dataclass
class CropCheck:
    """One crop: what was measured on it and its flags (each with why)."""

    path: Path
    frame: int | None
    found: bool  # an object was found in it
    steepness: tuple[float, float] = (math.nan, math.nan)  # of its edges across x and y (:func:`_steepness`)
    sharpness: float = math.nan  # the lower of the two against the run's median (set by check_objects)
    area: float = math.nan  # object area, frame px (crop px without a box)
    thickness: float = math.nan  # the object's largest inscribed radius, same px
    second_core: float = 0.0  # the inscribed radius of its second core (:func:`_second_core`), same px
    object_grey: float = math.nan  # median grey level of the object
    belt_grey: float = math.nan  # median grey level around it
    bright_p99: float = math.nan  # 99th percentile of the crop's grey levels (padding left out)
    clipped: float = 0.0  # share of the crop's pixels with a channel at 250 or more
    cut_sides: str = ""  # a photo's sides, each with the share of it the object reaches ("left:0.20 ...")
    light: float = math.nan  # the belt around it against the run's median (set by check_objects)
    object_light: float = math.nan  # the object against the run's median (set by check_objects)
    flags: dict[str, str] = field(default_factory=dict)  # flag -> why
    look: np.ndarray | None = field(default=None, repr=False)  # grey, half the frame's scale: for look-alikes
    look_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # the object's box in ``look`` (x0, y0, x1, y1)


@dataclass
class ObjectFlags:
    """An object's flags (the union of its crops' and its own), why, and the crop that shows each best."""

    name: str
    flags: tuple[str, ...]
    reasons: dict[str, str]
    worst: dict[str, Path | None]  # flag -> the crop that shows it most (None: no crop, e.g. never in view)
    crops: list[CropCheck]
    object_flags: dict[str, str] = field(default_factory=dict)  # flags of the object as a whole (all crops go)
    same_as: str | None = None  # a duplicate: the earlier object it is (the dataset keeps the two on one side)

    @property
    def track_id(self) -> int | None:
        return int(self.name) if self.name.isdigit() else None

    def crop_flags(self, check: CropCheck) -> dict[str, str]:
        """Every flag that leaves this crop out: its own and its object's."""
        return {**self.object_flags, **check.flags}


@dataclass
class QualityReport:
    """The flags of one run (or one set of photos)."""

    source: str
    objects: dict[str, ObjectFlags]
    reference: dict[str, float]  # the run's medians the relative checks compare against
    thresholds: Thresholds
    notes: list[str] = field(default_factory=list)

    def flagged(self, flag: str | None = None) -> list[ObjectFlags]:
        return [o for o in self.objects.values() if (o.flags if flag is None else flag in o.flags)]

    def counts(self) -> dict[str, int]:
        """Objects with each flag (an object may have several)."""
        return {f: len(self.flagged(f)) for f in FLAGS}

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "objects": len(self.objects),
            "counts": self.counts(),
            "flagged": {
                o.name: {"flags": list(o.flags), "reasons": o.reasons, "worst": {k: str(v) for k, v in o.worst.items()}}
                for o in self.flagged()
            },
            "reference": {k: round(v, 4) for k, v in self.reference.items()},
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- measuring one crop


def _steepness(image: np.ndarray, near: np.ndarray, window: int = STEEPNESS_WINDOW) -> tuple[float, float]:
    """How steep the object's strongest edges are against their own contrast, across x and
    across y: at each pixel near the object, a colour channel's step to the next pixel over its
    range within ``window`` px (1/2 for a crisp step, 1/w for a ramp w px wide), the median over
    the steepest tenth. Each direction on its own, because a smear along the belt softens one.
    Colour channels, not grey: a brown cracker on a blue belt has little grey contrast but a
    crisp edge."""
    channels = [image[..., k].astype(np.float32) for k in range(image.shape[2])]
    steepness = [math.nan, math.nan]
    for axis, (dx, dy, span) in enumerate(((1, 0, (window, 1)), (0, 1, (1, window)))):
        steps, ranges = [], []
        line = np.ones(span[::-1], np.uint8)
        for g in channels:
            step = np.abs(cv2.Sobel(g, cv2.CV_32F, dx, dy, ksize=1)) / 2
            spread = cv2.dilate(g, line) - cv2.erode(g, line)
            keep = near & (spread > 20)  # an edge, not noise on a flat patch
            steps.append(step[keep])
            ranges.append(spread[keep])
        step_all, range_all = np.concatenate(steps), np.concatenate(ranges)
        if step_all.size < 20:
            continue
        top = step_all >= np.percentile(step_all, 90)
        steepness[axis] = float(np.median(step_all[top] / range_all[top]))
    return steepness[0], steepness[1]


def _second_core(distance: np.ndarray, steps: int = 16, neck: float = 0.75) -> float:
    """The inscribed radius of the object's second core: the largest ``d`` for which the parts of
    the object deeper than ``neck`` x ``d`` (from its outline) include two that are each ``d`` deep
    somewhere. Two discs of radius r side by side: r (what joins them, a touch or a shadow between
    them, is shallower than 3/4 of r); one disc, a stack of two offset discs or a cookie with a bite
    out of it: much less than its radius (one deep part); a cookie broken in two halves: half its
    radius (each half is a half-disc)."""
    deepest = float(distance.max())
    for d in np.linspace(deepest, 0.2 * deepest, steps):
        n, labels = cv2.connectedComponents((distance >= neck * d).astype(np.uint8), connectivity=8)
        if n <= 2:
            continue
        depth = np.zeros(n, np.float32)
        np.maximum.at(depth, labels.ravel(), distance.ravel())
        if int((depth[1:] >= d).sum()) >= 2:
            return float(d)
    return 0.0


def _crop_box(box, frame_size, crop_margin: float) -> tuple[int, int, int, int] | None:
    if box is None or frame_size is None:
        return None
    return expand_box(box, crop_margin, int(frame_size[0]), int(frame_size[1]))


def measure_crop(
    image: np.ndarray,
    box: tuple[float, float, float, float] | None = None,
    frame_size: tuple[int, int] | None = None,
    crop_margin: float = 0.1,
) -> CropCheck:
    """What :func:`check_objects` judges a crop by (its flags are left empty here).

    ``box``: the object's box in the frame (x, y, w, h) the crop was cut around (grown by
    ``crop_margin``), ``frame_size``: (width, height). With both, sizes are in frame pixels and
    only what is inside the box counts as the object; without, the crop is a photo: sizes are in
    its pixels, and its edges are the frame's.
    """
    check = CropCheck(path=Path(), frame=None, found=False)
    found, _ = read_crop(image)
    if found is None:  # no object: the exposure is still measured, on the crop without its padding
        x0, y0, x1, y1 = content_rect(image)
        region, outline = image[y0:y1, x0:x1], None
    else:
        region, outline = found.region, found.outline > 0
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    check.bright_p99 = float(np.percentile(grey, 99))
    check.clipped = float((region.max(axis=2) >= 250).mean())
    if outline is None or not outline.any():
        check.belt_grey = float(np.median(grey))
        return check
    assert found is not None
    check.found = True
    # frame px per region px: through the box the crop was cut around, else the crop's own px
    crop_box = _crop_box(box, frame_size, crop_margin)
    span = (0, 0, outline.shape[1], outline.shape[0])  # where the object is meant to be: its box
    if crop_box is not None and box is not None:
        per_px = max(crop_box[2], crop_box[3]) / max(region.shape[:2])
        span = _box_in_region(box, crop_box, per_px, outline.shape)
    else:
        per_px = 1.0 / found.region_scale
    # The object as its box holds it: a neighbour that touches it reaches into the crop's margin,
    # and joined to its outline there would look like a second object in the box.
    held = np.zeros_like(outline)
    held[span[1] : span[3], span[0] : span[2]] = outline[span[1] : span[3], span[0] : span[2]]
    if not held.any():
        held = outline
    ring = cv2.dilate(outline.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))) > 0
    check.object_grey = float(np.median(grey[held]))
    check.belt_grey = float(np.median(grey[~ring])) if (~ring).sum() >= 50 else math.nan
    check.area = float(held.sum()) * per_px**2
    # sharpness near the object's outline and inside it (blur shows most on edges), at the frame's own
    # scale: crops are enlarged to 384 px, and an enlarged object is softer than it was
    image, near = region, held.astype(np.uint8)
    if per_px < 1:
        image = cv2.resize(region, None, fx=per_px, fy=per_px, interpolation=cv2.INTER_AREA)
        near = cv2.resize(near, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST).astype(np.uint8)
    check.steepness = _steepness(image, cv2.dilate(near, np.ones((7, 7), np.uint8)) > 0)
    distance = cv2.distanceTransform(held.astype(np.uint8), cv2.DIST_L2, 5)
    check.thickness = float(distance.max()) * per_px
    check.second_core = _second_core(distance) * per_px
    check.look, check.look_box = _look(grey, span, per_px)
    if box is None:  # a photo: its edges are the frame's (a run's crop is never cut at a frame edge: see cut_side)
        check.cut_sides = _photo_cut_sides(outline, grey, check.object_grey)
    return check


def _box_in_region(box, crop_box, per_px: float, shape: tuple) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the object's frame box in the crop's region (its content, rescaled)."""
    h, w = shape
    x0 = int(np.clip(math.floor((box[0] - crop_box[0]) / per_px), 0, w))
    y0 = int(np.clip(math.floor((box[1] - crop_box[1]) / per_px), 0, h))
    x1 = int(np.clip(math.ceil((box[0] + box[2] - crop_box[0]) / per_px), x0, w))
    y1 = int(np.clip(math.ceil((box[1] + box[3] - crop_box[1]) / per_px), y0, h))
    return x0, y0, x1, y1


def _look(grey: np.ndarray, span: tuple, per_px: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The crop's grey levels at half the frame's scale (so two crops of one object match in size,
    whatever their letterbox scale), and where the object's box is in it."""
    scale = 0.5 * per_px
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    look = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = (round(v * scale) for v in span)
    return look, (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def similarity(a: CropCheck, b: CropCheck) -> float:
    """How alike the objects of two crops look: the best normalised correlation of either's box
    content slid over the other crop (so a fragment of an object matches the whole one, and an
    object a little off-centre matches itself). -1 to 1; 0 when either has no object."""
    best = 0.0
    for small, large in ((a, b), (b, a)):
        if small.look is None or large.look is None:
            return 0.0
        x0, y0, x1, y1 = small.look_box
        template = small.look[y0:y1, x0:x1]
        th, tw = template.shape
        if th < 8 or tw < 8 or float(template.std()) < 1.0:
            continue
        pad_y, pad_x = th // 4, tw // 4
        search = large.look
        grow_y, grow_x = max(pad_y, th - search.shape[0] + pad_y), max(pad_x, tw - search.shape[1] + pad_x)
        search = cv2.copyMakeBorder(search, grow_y, grow_y, grow_x, grow_x, cv2.BORDER_REPLICATE)
        score = cv2.matchTemplate(search, template, cv2.TM_CCOEFF_NORMED)
        best = max(best, float(np.nanmax(score)))
    return best


def _photo_cut_sides(outline: np.ndarray, grey: np.ndarray, object_grey: float) -> str:
    """For a photo (no box, no frame): each side of it with the share of its length where the
    object reaches it (``"left:0.85 top:0.00 ..."``): the photo's edge cuts the object there. Only
    where what reaches the edge looks like the object (its grey level within a third of the
    object's): an outline may leak along a shadow or the tray's darker rim."""
    sides = []
    for name, strip in (
        ("left", np.s_[:, :3]),
        ("top", np.s_[:3, :]),
        ("right", np.s_[:, -3:]),
        ("bottom", np.s_[-3:, :]),
    ):
        border = outline[strip]
        share = float(border.any(axis=1 if name in ("left", "right") else 0).mean())
        if share > 0 and abs(float(np.median(grey[strip][border])) - object_grey) > object_grey / 3:
            share = 0.0
        sides.append(f"{name}:{share:.2f}")
    return " ".join(sides)


# --------------------------------------------------------------------------- the checks


def is_blurred(check: CropCheck, reference: dict[str, float], t: Thresholds) -> str:
    """Blurred: the steepness of the object's edges (:func:`_steepness`), across x or across y,
    below ``blur_ratio`` of the run's median object's. Why relative: how crisp a product's edges
    and texture are is the product's (a chocolate-chip cookie has more detail than a cracker), and
    a line filmed a little soft throughout (a camera's motion blur along the belt) teaches nothing
    wrong; a crop softer than its peers does. Each direction against its own median, so a line
    smeared along the belt still shows an object out of focus across it. Returns why, or ''."""
    ratios = [
        mine / typical if np.isfinite(mine) and typical > 0 else math.nan
        for mine, typical in zip(check.steepness, (reference["steepness_x"], reference["steepness_y"]), strict=True)
    ]
    check.sharpness = min((r for r in ratios if np.isfinite(r)), default=math.nan)
    if check.sharpness < t.blur_ratio:
        across = "x" if ratios[0] == check.sharpness else "y"
        return (
            f"its edges across {across} {check.sharpness:.2f} as steep as the run's median object's (< {t.blur_ratio})"
        )
    return ""


def cut_side(check: CropCheck, t: Thresholds) -> str:
    """Cut, on a photo: the object reaches a side of the photo along at least ``cut_share`` of it,
    so the rest of it is outside. A run's crops are not judged so: ``run`` cuts no crop of a box
    within ``track.edge_margin`` of a frame edge, and what is left near an edge misleads (a whole
    object 3-4 px from the edge reaches its crop's border, whose margin the frame clipped; a pack
    cut by the edge whose cut part has the belt's colour does not). An object of a run that never
    was wholly in view has no crop and is flagged as a whole by :func:`check_objects`.
    Returns why, or ''."""
    for item in check.cut_sides.split():
        side, _, share = item.partition(":")
        if float(share) >= t.cut_share:
            return f"reaches the photo's {side} edge along {float(share):.0%} of it (>= {t.cut_share:.0%})"
    return ""


def partial_crops(obj: ObjectCrops, crops: list[CropCheck], t: Thresholds) -> list[tuple[CropCheck, str]]:
    """Cut, in a run: the crops whose box is less than ``partial`` of the object's median box over
    its crops. Objects keep their size as the belt carries them, so a box that small holds part of
    the object: the rest is still outside the frame, or was not seen (a toy's head entering the
    view, a pack's end in the belt's own colour). Measured: a third of the crops that show such a
    part, and one crop in 600 of whole objects (a box that grew when a neighbour joined it).
    [(crop, why)]."""
    areas = {id(c): obj.boxes[c.frame][2] * obj.boxes[c.frame][3] for c in crops if c.frame in obj.boxes}
    if len(areas) < 2:
        return []
    typical = float(np.median(list(areas.values())))
    found = []
    for c in crops:
        ratio = areas.get(id(c), typical) / typical if typical > 0 else 1.0
        if ratio < t.partial:
            found.append(
                (c, f"its box is {ratio:.2f} of the object's median box (< {t.partial}): part of it is not in view")
            )
    return found


def is_merged(check: CropCheck, reference: dict[str, float], t: Thresholds) -> str:
    """Merged: a second core (:func:`_second_core`) at least ``core_ratio`` as thick as the run's
    median object, and at least ``merged_area`` times the run's median area. Both, because a
    product may have a head and a body (two cores, one object's area), and a stack or a large
    object is big (one core); two objects in one box are both. A cookie broken in two halves has
    two cores of half the thickness, not counted. Returns why, or ''."""
    thickness, area = reference.get("thickness", math.nan), reference.get("area", math.nan)
    if not (thickness > 0 and area > 0 and np.isfinite(check.area)):
        return ""
    core, ratio = check.second_core / thickness, check.area / area
    if core >= t.core_ratio and ratio >= t.merged_area:
        return (
            f"a second core {core:.2f} as thick as the run's median object (>= {t.core_ratio}) and "
            f"{ratio:.1f} times its area (>= {t.merged_area})"
        )
    return ""


def exposure_problem(check: CropCheck, reference: dict[str, float], t: Thresholds) -> str:
    """Exposure: the crop is darker or brighter than the run's typical crop by more than the
    ``dark``/``bright`` ratios (both the object and the belt around it: a darker product on a
    normal belt is the product, not the light), clips more of its pixels than the run's typical
    crop, or, whatever the run, has nothing brighter than ``floor`` or ``blown`` of it clipped.
    Returns why, or ''."""
    if np.isfinite(check.bright_p99) and check.bright_p99 < t.floor:
        return f"too dark: nothing brighter than grey {check.bright_p99:.0f} (< {t.floor:.0f})"
    if check.clipped >= t.blown:
        return f"blown out: {check.clipped:.0%} of the crop clipped (>= {t.blown:.0%})"
    light, thing = check.light, check.object_light
    if not np.isfinite(light):  # no belt in view around it: the object alone
        light, thing = thing, 1.0
    if (light < t.dark and thing < 1) or (light > t.bright and thing > 1):
        return (
            f"{'too dark' if light < 1 else 'too bright'}: the belt around it {check.light:.2f} times as bright "
            f"as around the run's typical object (outside {t.dark}-{t.bright}), the object {check.object_light:.2f}"
        )
    clipped_ref = reference.get("clipped", math.nan)
    if np.isfinite(clipped_ref) and check.clipped >= clipped_ref + t.clipped:
        return f"{check.clipped:.0%} of the crop clipped, the run's typical crop {clipped_ref:.0%}"
    return ""


def duplicate_pairs(
    objects: Sequence[ObjectCrops], checks: dict[str, list[CropCheck]], fps: float | None, t: Thresholds
) -> dict[str, tuple[str, str]]:
    """Duplicates: {later object: (earlier object, why)} for two tracks of one physical object (a
    broken track, or two tracks on one object at once), which would leak between train and test.
    The later starts at most ``duplicate_gap_s`` after the earlier ended (or while it is still
    there), where the earlier is or would be by then (:func:`_where_expected`, when the boxes are
    known), and their crops nearest in time look alike (:func:`similarity` at least
    ``duplicate_similarity``). All three: products of one kind look alike (every cookie of a
    line), and objects side by side share their time; only a track that is where another is or
    left off, with the same look, is the same object."""
    gap = t.duplicate_gap_s * (fps or 30.0)
    timed = [o for o in objects if o.first_frame is not None and o.last_frame is not None and checks.get(o.name)]
    timed.sort(key=lambda o: (o.first_frame or 0, o.name))
    found: dict[str, tuple[str, str]] = {}
    recent: list[ObjectCrops] = []  # the tracks that ended at most ``gap`` before the next one starts
    for later in timed:
        assert later.first_frame is not None
        recent = [e for e in recent if later.first_frame - (e.last_frame or 0) <= gap]
        candidates, recent = list(recent), [*recent, later]
        for earlier in candidates:
            if later.name in found:
                break
            near = _where_expected(earlier, later, t)
            if near is None and earlier.boxes and later.boxes:
                continue
            b = [c for c in checks[later.name] if c.look is not None]
            a = [c for c in checks[earlier.name] if c.look is not None]
            if not a or not b:
                continue
            first = b[0]
            nearest = min(a, key=lambda c: abs((c.frame or 0) - (first.frame or 0)))
            alike = similarity(nearest, first)
            if alike >= t.duplicate_similarity:
                when = later.first_frame - (earlier.last_frame or 0)
                timing = f"starts {when} frame(s) after it ended" if when > 0 else "while it is there"
                where = f", {near}" if near else ""
                found[later.name] = (
                    earlier.name,
                    f"the same object as #{earlier.name}: {timing}{where}, crops alike {alike:.2f} "
                    f"(>= {t.duplicate_similarity})",
                )
    return found


def _where_expected(earlier: ObjectCrops, later: ObjectCrops, t: Thresholds) -> str | None:
    """A note when ``later``'s boxes are where ``earlier`` is or would be: on shared frames, or
    else with its last box carried on by its motion (over its last boxes) to ``later``'s first
    frame, at least ``duplicate_inside`` of the smaller box inside the other (so a fragment of the
    object counts, and the next object in the lane, a gap behind, does not); None if not, or
    unknown."""
    if not earlier.boxes or not later.boxes:
        return None
    shared = sorted(set(earlier.boxes) & set(later.boxes))
    if shared:
        inside = float(np.median([_inside(earlier.boxes[f], later.boxes[f]) for f in shared]))
        where = "on the frames both are seen"
    else:
        frames = sorted(earlier.boxes)[-10:]
        centres = np.array([_centre(earlier.boxes[f]) for f in frames])
        dx, dy = (centres[-1] - centres[0]) / max(frames[-1] - frames[0], 1) * (min(later.boxes) - frames[-1])
        x, y, w, h = earlier.boxes[frames[-1]]
        inside = _inside((x + dx, y + dy, w, h), later.boxes[min(later.boxes)])
        where = "where it would be by then"
    return f"{inside:.0%} of the smaller box inside the other {where}" if inside >= t.duplicate_inside else None


def _centre(box) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def _inside(a, b) -> float:
    """The share of the smaller of two (x, y, w, h) boxes inside the other."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    smaller = min(a[2] * a[3], b[2] * b[3])
    return max(w, 0) * max(h, 0) / smaller if smaller > 0 else 0.0


# --------------------------------------------------------------------------- checking a run


def _median(values: Iterable[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def _object_median(checks: dict[str, list[CropCheck]], attr: str) -> float:
    """The median over objects of each object's median ``attr``: each object counts once."""
    return _median(_median(getattr(c, attr) for c in crops) for crops in checks.values() if crops)


def check_objects(
    objects: Sequence[ObjectCrops],
    *,
    source: str = "",
    frame_size: tuple[int, int] | None = None,
    fps: float | None = None,
    crop_margin: float = 0.1,
    thresholds: Thresholds | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QualityReport:
    """Flag the crops of ``objects`` (one run's, or one set of photos'), each against the others."""
    t = thresholds or Thresholds()
    checks: dict[str, list[CropCheck]] = {}
    total = sum(len(o.crops) for o in objects)
    done = 0
    for o in objects:
        crops = []
        for path, frame in o.crops:
            image = _read(path)
            box = o.boxes.get(frame) if frame is not None else None
            c = measure_crop(image, box, frame_size, crop_margin)
            c.path, c.frame = path, frame
            crops.append(c)
            done += 1
            if progress is not None and (done % 50 == 0 or done == total):
                progress(done, total)
        checks[o.name] = crops

    with_object = {name: [c for c in crops if c.found] for name, crops in checks.items()}
    readable = sum(1 for crops in with_object.values() if crops)
    reference = {
        "steepness_x": _median(_median(c.steepness[0] for c in crops) for crops in with_object.values() if crops),
        "steepness_y": _median(_median(c.steepness[1] for c in crops) for crops in with_object.values() if crops),
        "area": _object_median(with_object, "area"),
        "thickness": _object_median(with_object, "thickness"),
        "object_grey": _object_median(with_object, "object_grey"),
        "belt_grey": _object_median(checks, "belt_grey"),
        "clipped": _object_median(checks, "clipped"),
    }
    notes = []
    relative = readable >= t.min_objects
    if not relative:
        notes.append(
            f"{readable} object(s) with a readable crop, fewer than {t.min_objects}: only the absolute checks "
            "(cut, duplicate, clipped or dark) were made"
        )
    for crops in checks.values():
        for c in crops:
            if relative:
                c.light = _ratio(c.belt_grey, reference["belt_grey"])
                c.object_light = _ratio(c.object_grey, reference["object_grey"])
            why = {
                "blurred": is_blurred(c, reference, t) if relative else "",
                "cut": cut_side(c, t),
                "merged": is_merged(c, reference, t) if relative else "",
                "exposure": exposure_problem(c, reference if relative else {}, t),
            }
            c.flags = {k: v for k, v in why.items() if v}
    for o in objects:
        for c, partial in partial_crops(o, checks[o.name], t):
            c.flags.setdefault("cut", partial)

    duplicates = duplicate_pairs(objects, checks, fps, t)
    results: dict[str, ObjectFlags] = {}
    for o in objects:
        own: dict[str, str] = {}
        if o.name in duplicates:
            own["duplicate"] = duplicates[o.name][1]
        if o.never_whole:
            own["cut"] = "never wholly in view (every box at a frame edge): the run cut no crop of it"
        results[o.name] = _object_flags(o.name, checks[o.name], own)
        if o.name in duplicates:
            results[o.name].same_as = duplicates[o.name][0]
    return QualityReport(source, results, reference, t, notes)


def _ratio(mine: float, typical: float) -> float:
    return max(mine, 0.5) / typical if np.isfinite(mine) and np.isfinite(typical) and typical > 0 else math.nan


_WORST = {  # which crop shows a flag best: the lowest (or highest) of its figure
    "blurred": lambda c: c.sharpness,
    "merged": lambda c: -c.area,
    "exposure": lambda c: -abs(math.log(c.light)) if np.isfinite(c.light) else -c.clipped,
    "cut": lambda c: 0.0,
}


def _object_flags(name: str, crops: list[CropCheck], own: dict[str, str]) -> ObjectFlags:
    reasons: dict[str, str] = dict(own)
    worst: dict[str, Path | None] = {}
    for flag in FLAGS:
        hit = [c for c in crops if flag in c.flags]
        if hit:
            pick = min(hit, key=_WORST[flag])
            reasons.setdefault(flag, f"{len(hit)} of {len(crops)} crop(s): {pick.flags[flag]}")
            worst[flag] = pick.path
        elif flag in own:
            worst[flag] = crops[0].path if crops else None
    flags = tuple(f for f in FLAGS if f in reasons)
    return ObjectFlags(name, flags, {f: reasons[f] for f in flags}, worst, crops, own)


def esc(value: object) -> str:
    """Text for the quality page's HTML (attributes too)."""
    return html.escape(str(value), quote=True)


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except (ImageError, OSError) as exc:
        raise QualityError(f"{path}: not a readable crop ({getattr(exc, 'strerror', None) or exc})") from None


def read_run(run_dir: str | Path) -> tuple[list[ObjectCrops], dict]:
    """A run folder's objects with their crops, boxes and times, and what the checks need of its
    summary (frame size, fps, margins). :class:`QualityError` for a folder that is not a run's."""
    run = Path(run_dir)
    try:
        store = LabelStore(run)
    except ConveyorQCError as exc:
        raise QualityError(str(exc)) from None
    summary: dict = {}
    with contextlib.suppress(OSError, ValueError):  # an unfinished run: the checks that need it are skipped
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    config = summary.get("config") or {}
    frame_size = (summary["width"], summary["height"]) if "width" in summary and "height" in summary else None
    edge = float((config.get("track") or {}).get("edge_margin", 2.0))
    margin = float((config.get("output") or {}).get("crop_margin", 0.1))
    boxes: dict[int, dict[int, tuple[float, float, float, float]]] = {}
    tracks = run / "tracks.txt"
    if tracks.is_file():
        try:
            rows = read_mot(tracks)
        except EvalError as exc:
            raise QualityError(str(exc)) from None
        for r in rows:
            boxes.setdefault(int(r[1]), {})[int(r[0])] = (float(r[2]), float(r[3]), float(r[4]), float(r[5]))
    objects = []
    for tid, obj in store.objects.items():
        crops = []
        for name in obj.crops:
            stem = name.partition(".")[0]
            if store.crop_file(tid, name) is not None:  # (the page's test: a file inside crops/)
                crops.append((run / "crops" / str(tid) / name, int(stem) if stem.isdigit() else None))
        own = boxes.get(tid, {})
        never_whole = bool(own) and frame_size is not None and not crops and _never_whole(own, frame_size, edge)
        objects.append(ObjectCrops(str(tid), crops, own, obj.first_frame, obj.last_frame, never_whole))
    info = {"frame_size": frame_size, "fps": store.fps, "crop_margin": margin}
    return objects, info


def _never_whole(boxes: dict, frame_size: tuple[int, int], edge: float) -> bool:
    """Every box of the track within ``edge`` px of a frame edge (``run``'s own test of a whole box)."""
    width, height = frame_size
    for x, y, w, h in boxes.values():
        if x > edge and y > edge and x + w < width - edge and y + h < height - edge:
            return False
    return True


def check_run(
    run_dir: str | Path,
    thresholds: Thresholds | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QualityReport:
    """Flag the objects of a run folder (``conveyor-qc run``'s ``--out``): see the module doc."""
    objects, info = read_run(run_dir)
    report = check_objects(objects, source=str(run_dir), thresholds=thresholds, progress=progress, **info)
    if info["frame_size"] is None:
        report.notes.append("no summary.json with the frame's size: crops cut by the frame's edge not looked for")
    return report


# --------------------------------------------------------------------------- reporting


def format_counts(reports: Sequence[QualityReport]) -> str:
    """``flagged 7 of 81 objects: 3 blurred, 2 cut, 1 merged, 1 duplicate, 0 exposure``."""
    n = sum(len(r.objects) for r in reports)
    flagged = sum(len(r.flagged()) for r in reports)
    per = {f: sum(r.counts()[f] for r in reports) for f in FLAGS}
    return f"flagged {flagged} of {n} objects: " + ", ".join(f"{per[f]} {f}" for f in FLAGS)


_CSV_FIELDS = (
    "source",
    "object",
    "crop",
    "flags",
    "reasons",
    "sharpness",
    "area",
    "second_core",
    "light",
    "clipped",
)


def quality_csv(reports: Sequence[tuple[str, QualityReport]], relative_to: Callable[[Path], str] = str) -> str:
    """quality.csv: one row per flagged crop (and one without a crop for an object flagged as a
    whole that has none), ``source`` naming the run (a dataset's video name)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_FIELDS)
    for name, report in reports:
        for o in report.flagged():
            rows: list[CropCheck | None] = [c for c in o.crops if o.crop_flags(c)] or [None]
            for c in rows:
                why = o.crop_flags(c) if c is not None else o.object_flags
                w.writerow(
                    [
                        name,
                        o.name,
                        "" if c is None else relative_to(c.path),
                        " ".join(f for f in FLAGS if f in why),
                        "; ".join(f"{f}: {why[f]}" for f in FLAGS if f in why),
                        *(
                            ("",) * 5
                            if c is None
                            else (
                                _num(c.sharpness),
                                _num(c.area, 0),
                                _num(c.second_core, 1),
                                _num(c.light),
                                _num(c.clipped),
                            )
                        ),
                    ]
                )
    return buf.getvalue()


def _num(v: float, digits: int = 3) -> str:
    return "" if not np.isfinite(v) else f"{v:.{digits}f}"


def quality_page(reports: Sequence[tuple[str, QualityReport]], title: str = "Crops that mislead a model") -> str:
    """A page that opens offline: the flagged objects grouped by flag, each with the crop that
    shows it best (inlined), its number and why. A person would rather look than read."""

    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
        "h2{margin-top:28px}.grid{display:flex;flex-wrap:wrap;gap:12px}"
        "figure{margin:0;width:196px}figure img{width:192px;height:192px;border:2px solid #ccc;"
        "background:#000}figcaption{font-size:12px;color:#444}p.m{color:#555}</style>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{esc(format_counts([r for _, r in reports]))}</p>",
    ]
    for _, r in reports:
        parts.extend(f"<p class='m'>{esc(r.source)}: {esc(note)}</p>" for note in r.notes)
    for flag in FLAGS:
        hits = [(name, o) for name, r in reports for o in r.flagged(flag)]
        parts.append(f"<h2 id='{flag}'>{esc(flag)} ({len(hits)})</h2><p class='m'>{esc(FLAG_MEANINGS[flag])}</p>")
        parts.append("<div class='grid'>")
        for name, o in hits:
            path = o.worst.get(flag)
            img = "<div style='width:192px;height:192px;background:#eee'></div>"
            if path is not None:
                img = f"<img alt='crop' src='{jpeg_data_uri(_read(path), 192)}'>"
            where = f"{name} #{o.name}" if name else f"#{o.name}"
            parts.append(f"<figure>{img}<figcaption><b>{esc(where)}</b> {esc(o.reasons[flag])}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</html>\n")
    return "\n".join(parts)
