"""``conveyor-qc inspect``: what the detector sees on one frame, as pictures, with the
numbers behind each decision.

The frame is found exactly as ``run`` finds it: every frame from the first up to the
inspected one goes, downscaled by ``track.downscale``, through the core's
``MaskBuilder`` (which learns the belt model from the first frames in ``auto`` mode)
and ``Detector`` (which learns the typical object size its split of touching objects
judges by). On the inspected frame the core's intermediate results are read back
(``belt_stats``, ``light_gain``, ``learning_labels``, ``object_mask``, ``shadow_mask``)
and drawn; the mask's connected components are found again here, with OpenCV, only
to tell which component gave which detections (the split itself is the core's).

Outputs (``write_inspection``): ``inspect.png`` (a contact sheet of every panel and
the figures), the panels one by one (``frame.png``, ``light.png``, ``classes.png``,
``mask.png``, ``components.png``, ``boxes.png``) and ``inspect.json`` (every number),
each written atomically, ``inspect.json`` last. docs/inspect.md shows and explains them.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc import _core
from conveyor_qc.config import Config
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import (
    atomic_write_bytes,
    atomic_write_text,
    check_writable_directory,
)
from conveyor_qc.run.mask_watch import LIMITS, MaskWatch
from conveyor_qc.run.video import VideoReader, check_frame_size

__all__ = [
    "PANELS",
    "InspectError",
    "Inspection",
    "default_frame",
    "inspect_frame",
    "inspect_video",
    "render_panels",
    "render_sheet",
    "report",
    "summary_lines",
    "write_inspection",
]

#: The panels written one by one, in the order of the contact sheet.
PANELS = ("frame", "light", "learnt", "classes", "mask", "components", "boxes")
#: Panels written as files of their own (``learnt`` is on the sheet only).
PANEL_FILES = ("frame", "light", "classes", "mask", "components", "boxes")

Progress = Callable[[int, int], None]

# Colours (BGR).
PRODUCT = (0, 150, 255)  # orange: a product colour
SHADOW = (255, 140, 40)  # blue: a shadow colour (removed from the mask)
FIXTURE = (220, 60, 220)  # magenta: a fixture (rail, guard) the model keeps out of the mask
RIM = (0, 220, 240)  # yellow: the rims the model learnt nothing from
BELT = (110, 110, 110)  # grey: belt
SINGLE = (60, 220, 60)  # green: a component that is one object
SPLIT = (255, 80, 255)  # pink: a component cut into several objects
DROPPED = (90, 90, 90)  # grey: a component that gave no object
BAD = (40, 40, 230)  # red: a figure past its limit (mask_watch.LIMITS)
WHITE = (255, 255, 255)
TITLE_BG = (48, 48, 48)
SHEET_BG = (24, 24, 24)

FONT = cv2.FONT_HERSHEY_SIMPLEX

#: A legend entry: (colour of its square or None for words only, words, colour of the words).
_LegendItem = tuple[tuple[int, int, int] | None, str, tuple[int, int, int]]


class InspectError(ConveyorQCError, ValueError):
    """Bad input to ``inspect`` (a frame past the video's end...). The message says why."""


def default_frame(config: Config) -> int:
    """The first frame (1-based) on which the belt model has learnt all its frames:
    its last learning frame, ``(auto_learn_frames - 1) * auto_learn_stride + 1``."""
    m = config.mask
    return (m.auto_learn_frames - 1) * m.auto_learn_stride + 1


@dataclass
class Inspection:
    """Everything ``inspect`` found on one frame."""

    source: str
    frame_number: int  # 1-based
    frame_count: int  # frames the container announces (0: unknown)
    config: Config
    frame: np.ndarray  # the full-resolution BGR frame
    small: np.ndarray  # the frame as the mask sees it (downscaled by R)
    mask: np.ndarray  # the final mask the detector saw (uint8 0/255)
    object_mask: np.ndarray  # product colours, before shadows and morphology
    shadow_mask: np.ndarray  # shadow colours
    light_gain: np.ndarray  # float32 per pixel (empty: no belt model)
    learning_labels: np.ndarray  # uint8 0 unused, 1 belt, 2 rim, 3 product core, 4 fixture (empty: none)
    belt_stats: _core.BeltStats  # the core's figures (MaskBuilder.belt_stats)
    stats: dict  # the same, as plain values for inspect.json
    detections: list[dict]  # number, box, centroid, area, solidity, circularity, component, split
    components: list[dict]  # id, pixels, area, box, detections, status
    labels: np.ndarray  # int32 component labels of the mask (0 background)
    warnings: list[dict] = field(default_factory=list)  # code, message
    requested: int | None = None  # --frame as given (None: the default)

    @property
    def scale(self) -> float:
        return float(self.config.track.downscale)

    @property
    def auto(self) -> bool:
        return self.config.mask.mode == "auto"

    @property
    def learnt(self) -> bool:
        return self.auto and self.stats.get("frames_learnt", 0) > 0

    @property
    def last_learning_frame(self) -> int:
        """1-based frame of the model's last learning frame (what ``learning_labels`` shows)."""
        n = max(1, int(self.stats.get("frames_learnt", 0)))
        return (n - 1) * self.config.mask.auto_learn_stride + 1

    def bad(self, figure: str) -> bool:
        """A belt model figure past its limit (mask_watch.LIMITS)."""
        if not self.learnt or figure not in self.stats:
            return False
        v = float(self.stats[figure])
        return v < LIMITS[figure] if figure == "belt_region" else v > LIMITS[figure]

    def counts(self) -> dict:
        split = [c for c in self.components if c["status"] == "split"]
        return {
            "components": len(self.components),
            "detections": len(self.detections),
            "single": sum(c["status"] in ("object", "kept whole") for c in self.components),
            "kept_whole": sum(c["status"] == "kept whole" for c in self.components),
            "split_components": len(split),
            "split_detections": sum(len(c["detections"]) for c in split),
            "too_small": sum(c["status"] == "too small" for c in self.components),
            "too_large": sum(c["status"] == "too large" for c in self.components),
            "grouped": sum(c["status"] == "grouped" for c in self.components),
            "crumbs": sum(c["status"] == "crumb" for c in self.components),
            "dropped_other": sum(c["status"] == "dropped" for c in self.components),
        }


# ----------------------------------------------------------------------------- looking


def inspect_frame(
    source: str | int, config: Config | None = None, frame: int | None = None, progress: Progress | None = None
) -> Inspection:
    """Read ``source`` up to frame ``frame`` (1-based; default :func:`default_frame`, or the
    last frame of a shorter video) through the core's mask and detector, as a run does,
    and collect what they saw on it. Writes nothing. ``progress(done, target)`` is called
    as frames are read."""
    config = config if config is not None else Config()
    config.validate()
    if frame is not None and frame < 1:
        raise InspectError(f"--frame must be at least 1, got {frame}")
    target = frame if frame is not None else default_frame(config)
    R = float(config.track.downscale)
    builder = _core.MaskBuilder(config.core.mask)
    detector = _core.Detector(config.core.detect)
    detector.explain(True)  # each component's fate, as the core decided it
    with VideoReader(source) as reader:
        info = reader.info
        check_frame_size(info.width, info.height, R)
        announced = info.frame_count
        if frame is not None and info.is_file and announced and frame > announced + max(2, announced // 100):
            # Far past what the container announces: say so without decoding it all.
            raise InspectError(f"--frame {frame} is past the end of {info.source}: it has {announced} frames")
        read = 0
        image = small = mask = None
        dets: _core.Detections | None = None
        every = max(1, target // 200)
        for image in reader:
            read += 1
            small = _core.downscale(image, R) if R < 1 else image
            mask = builder.build(small)
            # Every frame, as a run detects while it reads the belt's direction: the detector's
            # typical object size (which its split judges by) comes from the frames before.
            dets = detector.detect(mask, [], R)
            if progress is not None and (read % every == 0 or read == target):
                progress(read, target)
            if read == target:
                break
        if read < target and frame is not None:
            why = reader.stop_reason
            has = f"it has {read} frame{'s' if read != 1 else ''}" + (f" ({why})" if why else "")
            raise InspectError(f"--frame {frame} is past the end of {info.source}: {has}")
            # The default frame on a video shorter than the learning: its last frame.
        number = read
        source_name = info.source
    assert image is not None and mask is not None and small is not None
    stats = {k: _plain(v) for k, v in builder.belt_stats.as_dict().items()}
    labels, components, detections = _components(mask, dets, detector.components(), config)
    ins = Inspection(
        source=source_name,
        frame_number=number,
        frame_count=announced,
        config=config,
        frame=image,
        small=small,
        mask=mask,
        object_mask=builder.object_mask(),
        shadow_mask=builder.shadow_mask(),
        light_gain=builder.light_gain(),
        learning_labels=builder.learning_labels(),
        belt_stats=builder.belt_stats,
        stats=stats,
        detections=detections,
        components=components,
        labels=labels,
        requested=frame,
    )
    ins.warnings = _warnings(ins, info.fps)
    return ins


#: The core's outcome of a component (Detector.components(), detector.hpp ComponentNote) as
#: this page words it.
_STATUS = {
    "one": "object",
    "kept_whole": "kept whole",
    "split": "split",
    "grouped": "grouped",
    "crumb": "crumb",
    "too_small": "too small",
    "too_large": "too large",
    "cut_by_roi": "dropped",
}


def _components(
    mask: np.ndarray, dets: _core.Detections | None, notes: list[_core.ComponentNote], config: Config
) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The mask's components as the core's detector judged them (its notes, one per
    component in label order) and its detections. The label image, for drawing, is
    OpenCV's 8-connected labelling, which numbers components as the core does."""
    R = float(config.track.downscale)
    n, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    if n - 1 != len(notes):
        raise InspectError(f"the core's detector saw {len(notes)} components where OpenCV sees {n - 1}")
    boxes = np.asarray(dets.boxes if dets is not None else np.zeros((0, 4)), float).reshape(-1, 4)
    cents = np.asarray(dets.centroids if dets is not None else np.zeros((0, 2)), float).reshape(-1, 2)
    cols = {
        k: np.asarray(getattr(dets, k) if dets is not None else np.zeros(0), float).ravel()
        for k in ("area", "solidity", "circularity")
    }
    components, owner = [], [0] * boxes.shape[0]
    for i, note in enumerate(notes, start=1):
        x, y, cw, ch = note.box
        status = _STATUS[note.outcome]
        first = note.first_detection
        if status == "grouped":
            mine = [first + 1] if first >= 0 else []
        else:
            mine = list(range(first + 1, first + 1 + note.detections)) if first >= 0 else []
            for number in mine:
                owner[number - 1] = i
        components.append(
            {
                "id": i,
                "pixels": int(note.pixels),
                "area": round(float(note.area), 1),
                "box": [round(x / R, 1), round(y / R, 1), round(cw / R, 1), round(ch / R, 1)],
                "solidity": round(float(note.solidity), 4),
                "detections": mine,
                "status": status,
                "objects_by_area": int(note.objects_by_area),
                "peaks": int(note.peaks),
                "joined": note.joined + 1 if note.joined >= 0 else None,
            }
        )
    split_ids = {c["id"] for c in components if c["status"] == "split"}
    detections = []
    for i in range(boxes.shape[0]):
        detections.append(
            {
                "number": i + 1,
                "box": [round(float(v), 1) for v in boxes[i]],
                "centroid": [round(float(v), 1) for v in cents[i]],
                "area": round(float(cols["area"][i]), 1),
                "solidity": round(float(cols["solidity"][i]), 4),
                "circularity": round(float(cols["circularity"][i]), 4),
                "component": owner[i] or None,
                "split": owner[i] in split_ids,
            }
        )
    return labels, components, detections


def _warnings(ins: Inspection, fps: float) -> list[dict]:
    """The belt model's warnings, worded as ``run`` words them (mask_watch), and this frame's."""
    out: list[dict] = []
    m = ins.config.mask
    if ins.auto:
        learn_frames, stride = m.auto_learn_frames, m.auto_learn_stride
        watch = MaskWatch(m.mode, fps, learn_frames, stride)
        learnt_at = (learn_frames - 1) * stride  # 0-based: the model is judged once it has learnt
        watch.after_frame(max(ins.frame_number - 1, learnt_at), ins.small, True, lambda: ins.belt_stats)
        out += [{"code": w.code, "message": w.message} for w in watch.warnings]
        learnt = int(ins.stats.get("frames_learnt", 0))
        if learnt < learn_frames:
            out.append(
                {
                    "code": "still-learning",
                    "message": f"on frame {ins.frame_number} the belt model has learnt from {learnt} of its "
                    f"{learn_frames} frames (one every {stride}): a run sees a better model from frame "
                    f"{default_frame(ins.config)} on",
                }
            )
    c = ins.counts()
    if ins.detections and c["too_small"] >= max(5, len(ins.detections)):
        out.append(
            {
                "code": "fragments",
                "message": f"{c['too_small']} mask components are smaller than detect.min_area "
                f"({ins.config.detect.min_area:g} px^2) against {len(ins.detections)} objects: the mask may "
                f"see only pieces of the products (or noise); compare the classes and mask panels with the "
                f"frame, and the products' colours with the mask settings (docs/settings.md)",
            }
        )
    if not ins.detections:
        if c["components"]:
            why = (
                f"the mask has {c['components']} component(s) but none gave an object "
                f"({c['too_small']} under detect.min_area = {ins.config.detect.min_area:g} px^2, "
                f"{c['too_large']} over detect.max_area = {ins.config.detect.max_area:g} px^2)"
            )
        else:
            why = "the mask is empty: nothing on this frame differs enough from the belt"
        out.append(
            {
                "code": "nothing-found",
                "message": f"no object on frame {ins.frame_number}: {why}; if products are in view, try another "
                f"--frame, or set the products' colours by hand (--set mask.mode=threshold with "
                f"mask.object_space, object_lower and object_upper: docs/settings.md)",
            }
        )
    return out


# ----------------------------------------------------------------------------- the report


def report(ins: Inspection) -> dict:
    """inspect.json: every number of the inspection."""
    h, w = ins.frame.shape[:2]
    mh, mw = ins.mask.shape[:2]
    view = float(mh * mw)
    gain = ins.light_gain
    belt: dict = {"mode": ins.config.mask.mode}
    if ins.learnt:
        belt.update(ins.stats)
        belt["belt_bgr"] = list(_lab_to_bgr(ins.stats["belt_lab"]))
        belt["last_learning_frame"] = ins.last_learning_frame
        belt["limits"] = dict(LIMITS)
        belt["past_limits"] = [k for k in LIMITS if ins.bad(k)]
        if gain.size:
            belt["light_gain"] = {"min": round(float(gain.min()), 4), "max": round(float(gain.max()), 4)}
    else:
        belt["frames_learnt"] = int(ins.stats.get("frames_learnt", 0))
    return {
        "video": ins.source,
        "frame": ins.frame_number,
        "frame_requested": ins.requested,
        "frames_announced": ins.frame_count,
        "frame_size": [w, h],
        "mask_size": [mw, mh],
        "downscale": ins.scale,
        "belt_model": belt,
        "mask": {  # shares of the view, on this frame
            "product_colour_share": round(np.count_nonzero(ins.object_mask) / view, 4),
            "shadow_share": round(np.count_nonzero(ins.shadow_mask) / view, 4),
            "mask_share": round(np.count_nonzero(ins.mask) / view, 4),
        },
        "detect": {
            k: getattr(ins.config.detect, k)
            for k in ("min_area", "max_area", "split_solidity", "split_min_part", "group_gap")
        },
        "counts": ins.counts(),
        "components": ins.components,
        "detections": ins.detections,
        "warnings": ins.warnings,
        "config": ins.config.to_dict(),
    }


def summary_lines(ins: Inspection, out_dir: str | Path | None = None) -> list[str]:
    """The short summary ``inspect`` prints."""
    c = ins.counts()
    s = ins.stats
    of = f" of {ins.frame_count}" if ins.frame_count else ""
    lines = [f"frame {ins.frame_number}{of} of {ins.source} ({ins.frame.shape[1]}x{ins.frame.shape[0]})"]
    extra = []
    if c["split_components"]:
        extra.append(f"{c['split_components']} split into {c['split_detections']}")
    if c["too_small"]:
        extra.append(f"{c['too_small']} under detect.min_area {ins.config.detect.min_area:g}")
    if c["too_large"]:
        extra.append(f"{c['too_large']} over detect.max_area {ins.config.detect.max_area:g}")
    lines.append(
        f"{c['detections']} objects from {c['components']} mask components"
        + (f" ({', '.join(extra)})" if extra else "")
    )
    if ins.learnt:
        L, a, b = s["belt_lab"]
        sl, sa, sb = s["belt_sigma"]
        lines.append(
            f"belt: Lab {L:.0f} {a:.0f} {b:.0f}, noise sigma L {sl:.1f} a {sa:.1f} b {sb:.1f}, threshold "
            f"{s['threshold']:.1f} sigma, light range {s['light_range']:.2f}, learnt from {s['frames_learnt']} "
            f"frames"
        )
        lines.append(
            "belt region {} (at least {:.0%}), product share {} (at most {:.0%}), ambiguous {} (at most {:.0%})".format(
                _pct(s["belt_region"]),
                LIMITS["belt_region"],
                _pct(s["object_share"]),
                LIMITS["object_share"],
                _pct(s["ambiguous_share"]),
                LIMITS["ambiguous_share"],
            )
        )
    elif not ins.auto:
        lines.append(f"mask.mode = {ins.config.mask.mode}: no belt model (fixed colour ranges)")
    for w in ins.warnings:
        lines.append(f"warning: {w['message']}")
    if out_dir is not None:
        lines.append(f"-> {Path(out_dir) / 'inspect.png'}")
    return lines


# ----------------------------------------------------------------------------- drawing helpers


def _plain(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4)
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def _pct(v: float) -> str:
    v = float(v)
    return f"{v:.1%}" if 0 < v < 0.1 else f"{v:.0%}"


def _lab_to_bgr(lab) -> tuple[int, int, int]:
    px = np.array([[[min(255, max(0, round(float(x)))) for x in lab]]], np.uint8)
    b, g, r = cv2.cvtColor(px, cv2.COLOR_LAB2BGR)[0, 0]
    return int(b), int(g), int(r)


def _text(
    img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour=WHITE, thick: int = 1, outline: bool = True
) -> None:
    """Text with a dark outline, legible on any background."""
    org = (int(org[0]), int(org[1]))
    if outline:  # a dilated copy of the glyphs in black (a thicker stroke would also be wider)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        x0, y0 = max(0, org[0] - 3), max(0, org[1] - th - 3)
        x1, y1 = min(img.shape[1], org[0] + tw + 3), min(img.shape[0], org[1] + base + 3)
        if x1 > x0 and y1 > y0:
            glyphs = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.putText(glyphs, text, (org[0] - x0, org[1] - y0), FONT, scale, 255, thick, cv2.LINE_AA)
            halo = cv2.dilate(glyphs, np.ones((3, 3), np.uint8), iterations=1 + thick // 2)
            roi = img[y0:y1, x0:x1]
            roi[:] = (roi.astype(np.float32) * (1 - halo[..., None] / 255.0 * 0.85)).astype(np.uint8)
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def _text_size(text: str, scale: float, thick: int = 1) -> tuple[int, int]:
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    return tw, th + base


def _backdrop(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.65) -> None:
    """Darken a rectangle (for a legend over a picture)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = (img[y0:y1, x0:x1].astype(np.float32) * (1 - alpha)).astype(np.uint8)


def _legend(img: np.ndarray, items: Sequence[_LegendItem], scale: float) -> np.ndarray:
    """``img`` over a band of the same width holding coloured squares with words (on as
    many lines as the width needs)."""
    _h, w = img.shape[:2]
    _, th = _text_size("Ag", scale)
    pad = max(3, th // 3)
    square = th - 2
    placed: list[list[tuple[int, tuple[int, int, int] | None, str, tuple[int, int, int]]]] = [[]]
    x = pad
    for colour, words, text_colour in items:
        width = (square + pad if colour is not None else 0) + _text_size(words, scale)[0]
        if placed[-1] and x + width > w - pad:
            placed.append([])
            x = pad
        placed[-1].append((x, colour, words, text_colour))
        x += width + 3 * pad
    line_h = th + pad
    band = np.full((len(placed) * line_h + pad, w, 3), (34, 34, 34), np.uint8)
    for i, line in enumerate(placed):
        y = (i + 1) * line_h - max(1, th // 5)
        for x, colour, words, text_colour in line:
            if colour is not None:
                cv2.rectangle(band, (x, y - square + 1), (x + square, y), colour, -1)
                cv2.rectangle(band, (x, y - square + 1), (x + square, y), WHITE, 1)
                x += square + pad
            _text(band, words, (x, y - 1), scale, text_colour, outline=False)
    return np.vstack([img, band])


def _resize(img: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img.copy()
    shrink = size[0] < img.shape[1]
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.resize(img, size, interpolation=interp)


def _text_scale(size: tuple[int, int]) -> float:
    """Font scale for text drawn on a picture of ``size``: legible on the contact sheet's
    panels (about 560 px wide) and on full-size panels alike."""
    return float(min(1.4, max(0.42, size[0] / 1300)))


def _dim(small: np.ndarray, size: tuple[int, int], level: float = 0.45) -> np.ndarray:
    grey = cv2.cvtColor(_resize(small, size), cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor((grey * level).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _paint(img: np.ndarray, where: np.ndarray, colour, alpha: float = 1.0) -> None:
    if where.any():
        c = np.array(colour, np.float32)
        img[where] = (img[where].astype(np.float32) * (1 - alpha) + c * alpha).astype(np.uint8)


def _component_colours(n: int) -> np.ndarray:
    """A distinct, bright colour per component label (0: black), fixed by the label."""
    hues = (np.arange(n) * 0.618034 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 200, np.uint8), np.full(n, 235, np.uint8)], axis=1)[None]
    lut = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    lut[0] = 0
    return lut


# ----------------------------------------------------------------------------- panels


def panel_frame(ins: Inspection, size: tuple[int, int]) -> np.ndarray:
    return _legend(_resize(ins.frame, size), [(None, "as read from the video", WHITE)], _text_scale(size))


def panel_light(ins: Inspection, size: tuple[int, int]) -> np.ndarray:
    """The light field as a heat map (brightness against the brightest point) with its
    range, and the belt colour as a swatch with its Lab values, threshold and noise."""
    w, h = size
    fs = _text_scale(size)
    _, th = _text_size("Ag", fs)
    pad = max(4, th // 3)
    if not ins.learnt:
        img = np.full((h, w, 3), 40, np.uint8)
        m = ins.config.mask
        notes = (
            (
                [
                    f"mask.mode = {m.mode}: no belt model",
                    f"object: {m.object_space} {_range(m.object_lower)} .. {_range(m.object_upper)}",
                ]
                + (
                    [f"shadow: {m.shadow_space} {_range(m.shadow_lower)} .. {_range(m.shadow_upper)}"]
                    if m.shadow_enabled
                    else ["shadows: off"]
                )
            )
            if not ins.auto
            else ["the belt model has not learnt yet"]
        )
        for i, line in enumerate(notes):
            _text(img, line, (pad, pad + (i + 1) * (th + pad)), fs)
        return _legend(img, [(None, "", WHITE)], fs)
    gain = ins.light_gain.astype(np.float32)
    light = 1.0 / np.maximum(gain, 1e-6)  # brightness against the brightest point
    lo = float(light.min())
    span = 1.0 - lo
    norm = (light - lo) / span if span > 1e-3 else np.ones_like(light)
    heat = cv2.applyColorMap((norm * 200 + 40).clip(0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    img = _resize(heat, size)
    # Colour bar on the right: the brightest point at the top, the darkest at the bottom.
    bw = max(10, w // 40)
    bx0, by0, by1 = w - bw - pad, pad + th + pad, h // 2
    ramp = np.linspace(1.0, 0.0, by1 - by0)[:, None] * 200 + 40
    bar = cv2.applyColorMap(np.repeat(ramp, bw, axis=1).astype(np.uint8), cv2.COLORMAP_INFERNO)
    img[by0:by1, bx0 : bx0 + bw] = bar
    cv2.rectangle(img, (bx0 - 1, by0 - 1), (bx0 + bw, by1), WHITE, 1)
    top, bottom = "100%", f"{lo:.0%}" if span > 1e-3 else "100%"
    _text(img, top, (bx0 + bw - _text_size(top, fs)[0], by0 - pad), fs)
    _text(img, bottom, (bx0 + bw - _text_size(bottom, fs)[0], by1 + th + 2), fs)
    # The belt's colour and figures, bottom left.
    s = ins.stats
    L, a, b = s["belt_lab"]
    sl, sa, sb = s["belt_sigma"]
    lines = [
        (f"belt colour  Lab {L:.0f} {a:.0f} {b:.0f}", WHITE),
        (f"noise sigma L {sl:.1f} a {sa:.1f} b {sb:.1f}   threshold {s['threshold']:.1f} sigma", WHITE),
    ]
    sw = 2 * th + pad
    box_h = max(len(lines) * (th + pad), sw) + 2 * pad
    box_w = sw + 2 * pad + max(_text_size(t, fs)[0] for t, _ in lines) + 2 * pad
    y0 = h - box_h - pad
    _backdrop(img, pad, y0, pad + box_w, h - pad, 0.72)
    swatch = _lab_to_bgr(s["belt_lab"])
    cv2.rectangle(img, (2 * pad, y0 + pad), (2 * pad + sw, y0 + pad + sw), swatch, -1)
    cv2.rectangle(img, (2 * pad, y0 + pad), (2 * pad + sw, y0 + pad + sw), WHITE, 1)
    for i, (t, col) in enumerate(lines):
        x = 3 * pad + sw
        y = y0 + pad + (i + 1) * (th + pad) - pad // 2
        _text(img, t, (x, y), fs, col, outline=False)
    camera = "colour camera" if s.get("colour", True) else "monochrome camera"
    light_words = (
        f"light: darkest {lo:.0%} of the brightest (range {s['light_range']:.2f})"
        if span > 1e-3
        else "light even (range 1.00)"
    )
    return _legend(img, [(None, light_words, WHITE), (None, camera, WHITE)], fs)


def _range(v) -> str:
    return "(" + ", ".join(f"{float(x):g}" for x in v) + ")"


def panel_learnt(ins: Inspection, size: tuple[int, int]) -> np.ndarray:
    """The belt model's own first segmentation of its last learning frame."""
    w, h = size
    fs = _text_scale(size)
    labels = ins.learning_labels
    if not ins.learnt or labels.size == 0:
        img = np.full((h, w, 3), 40, np.uint8)
        _text(
            img,
            "no belt model" if not ins.auto else "the belt model has not learnt yet",
            (10, 10 + _text_size("Ag", fs)[1]),
            fs,
        )
        return _legend(img, [(None, "", WHITE)], fs)
    lut = np.zeros((256, 3), np.uint8)
    lut[1], lut[2], lut[3], lut[4] = BELT, RIM, PRODUCT, FIXTURE
    img = _resize(lut[labels], size, nearest=True)
    view = float(labels.size)
    share = {k: np.count_nonzero(labels == k) / view for k in (1, 2, 3, 4)}
    items = [
        (BELT, f"belt {_pct(share[1])}", BAD if ins.bad("belt_region") else WHITE),
        (RIM, f"rim {_pct(share[2])}", WHITE),
        (PRODUCT, f"product {_pct(share[3])}", BAD if ins.bad("object_share") else WHITE),
    ]
    if share[4] > 0:
        items.append((FIXTURE, f"fixture {_pct(share[4])}", WHITE))
    return _legend(img, items, fs)


def panel_classes(ins: Inspection, size: tuple[int, int]) -> np.ndarray:
    """Product colours and shadow colours on this frame, before morphology."""
    fs = _text_scale(size)
    img = _dim(ins.small, size)
    obj = _resize(ins.object_mask, size, nearest=True) > 0 if ins.object_mask.size else np.zeros(img.shape[:2], bool)
    sha = _resize(ins.shadow_mask, size, nearest=True) > 0 if ins.shadow_mask.size else np.zeros(img.shape[:2], bool)
    _paint(img, obj & ~sha, PRODUCT, 0.85)
    _paint(img, sha, SHADOW, 0.8)
    view = float(ins.mask.size)
    items: list[_LegendItem] = [
        (PRODUCT, f"product colour {_pct(np.count_nonzero(ins.object_mask) / view)}", WHITE),
        (SHADOW, f"shadow {_pct(np.count_nonzero(ins.shadow_mask) / view)}", WHITE),
    ]
    labels = ins.learning_labels
    if ins.learnt and labels.size and labels.shape == ins.mask.shape and (labels == 4).any():
        fix = _resize(((labels == 4) * 255).astype(np.uint8), size, nearest=True) > 0
        contours, _ = cv2.findContours(fix.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, FIXTURE, max(1, round(2 * fs)))
        items.append((FIXTURE, "fixture (kept out)", WHITE))
    if ins.learnt:
        items.append(
            (None, f"ambiguous {_pct(ins.stats['ambiguous_share'])}", BAD if ins.bad("ambiguous_share") else WHITE)
        )
    return _legend(img, items, fs)


def panel_mask(ins: Inspection, size: tuple[int, int]) -> np.ndarray:
    img = cv2.cvtColor(_resize(ins.mask, size), cv2.COLOR_GRAY2BGR)
    return _legend(img, [(WHITE, "object: what the detector reads (mask.png)", WHITE)], _text_scale(size))


def panel_components(ins: Inspection, size: tuple[int, int]) -> np.ndarray:
    """Each component of the mask in a colour of its own; components the detector cut into
    several objects outlined, with a dot per object and how many; those that gave no
    object in grey."""
    w, h = size
    fs = _text_scale(size)
    n = len(ins.components) + 1
    lut = _component_colours(n)
    for c in ins.components:
        if not c["detections"]:
            lut[c["id"]] = DROPPED
    img = _resize(lut[ins.labels], size, nearest=True)
    sx, sy = w / ins.mask.shape[1], h / ins.mask.shape[0]
    thick = max(2, round(3 * fs))
    dets = {d["number"]: d for d in ins.detections}
    R = ins.scale
    for c in ins.components:
        if c["status"] not in ("split", "kept whole"):
            continue
        split = c["status"] == "split"
        comp = (ins.labels == c["id"]).astype(np.uint8)
        contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        scaled = [np.round((cnt + 0.5) * [sx, sy] - 0.5).astype(np.int32) for cnt in contours]
        cv2.drawContours(img, scaled, -1, WHITE if split else RIM, thick if split else max(1, thick - 1), cv2.LINE_AA)
        solidity = f"s{c['solidity']:.2f}".replace("s0.", "s.")
        label = f"split x{len(c['detections'])} {solidity}" if split else f"whole {solidity}"
        for k in c["detections"] if split else ():
            cx, cy = dets[k]["centroid"]
            p = (int(((cx + 0.5) * R) * sx), int(((cy + 0.5) * R) * sy))
            cv2.circle(img, p, thick + 2, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(img, p, thick + 1, WHITE, -1, cv2.LINE_AA)
        bx, by, bw, bh = c["box"]
        tw, tht = _text_size(label, fs)
        x = int(min(max(0, (bx + bw / 2) * R * sx - tw / 2), w - tw))
        y = int(by * R * sy) - 4
        if y - tht < 0:
            y = int((by + bh) * R * sy) + tht + 2
        _text(img, label, (x, min(h - 2, y)), fs, WHITE if split else RIM, max(1, round(fs * 1.6)))
    c = ins.counts()
    items = [
        (None, f"{c['components']} components", WHITE),
        (WHITE, f"split {c['split_components']}", WHITE),
        (RIM, f"tried for a split, kept whole {c['kept_whole']}", WHITE),
        (DROPPED, f"no object {c['too_small'] + c['crumbs'] + c['too_large'] + c['dropped_other']}", WHITE),
    ]
    return _legend(img, items, fs)


def panel_boxes(ins: Inspection, size: tuple[int, int], legend_scale: float | None = None) -> np.ndarray:
    """The frame with every detection's box, number, area (full-resolution px²) and solidity;
    boxes from a split component in pink."""
    w, h = size
    img = _resize(ins.frame, size)
    fh, fw = ins.frame.shape[:2]
    sx, sy = w / fw, h / fh
    fs = _text_scale(size) * 0.95
    thick = max(1, round(2 * fs))
    for d in ins.detections:
        x, y, bw, bh = d["box"]
        p0 = (int(round(x * sx)), int(round(y * sy)))
        p1 = (int(round((x + bw) * sx)) - 1, int(round((y + bh) * sy)) - 1)
        colour = SPLIT if d["split"] else SINGLE
        cv2.rectangle(img, p0, p1, colour, thick)
    # Labels after every box, so that no box is drawn over a label.
    for d in ins.detections:
        x, y, bw, bh = d["box"]
        colour = SPLIT if d["split"] else SINGLE
        number = f"{d['number']}"
        figures = f"{d['area']:.0f} s{d['solidity']:.2f}".replace("s0.", "s.")
        tw1, th1 = _text_size(number, fs * 1.15, thick)
        tw2, th2 = _text_size(figures, fs * 0.7)
        bx = int(round(x * sx)) + thick + 1
        by = int(round(y * sy)) + thick + 1
        bx = min(max(0, bx), w - max(tw1, tw2) - 4)
        by = min(max(0, by), h - th1 - th2 - 6)
        _backdrop(img, bx, by, bx + max(tw1, tw2) + 4, by + th1 + th2 + 4, 0.6)
        _text(img, number, (bx + 2, by + th1 - 1), fs * 1.15, colour, thick, outline=False)
        _text(img, figures, (bx + 2, by + th1 + th2 + 1), fs * 0.7, WHITE, outline=False)
    c = ins.counts()
    return _legend(
        img,
        [
            (SINGLE, f"one object per component {c['single']}", WHITE),
            (SPLIT, f"from a split {c['split_detections']}", WHITE),
            (None, "label: number, area (px2), solidity", WHITE),
        ],
        legend_scale or 0.8 * _text_scale(size),
    )


def _title(ins: Inspection, name: str) -> tuple[str, bool]:
    """A panel's title on the sheet, and whether it shows a figure past its limit."""
    c = ins.counts()
    s = ins.stats
    view = float(ins.mask.size)
    if name == "frame":
        of = f" of {ins.frame_count}" if ins.frame_count else ""
        return f"frame {ins.frame_number}{of}  ({ins.frame.shape[1]}x{ins.frame.shape[0]})", False
    if name == "light":
        if not ins.auto:
            return f"mask settings (mask.mode {ins.config.mask.mode})", False
        return "belt model: light field and belt colour", False
    if name == "learnt":
        if not ins.learnt:
            return "what the belt model learnt from", False
        bad = ins.bad("belt_region") or ins.bad("object_share")
        return (
            f"learnt from frame {ins.last_learning_frame}: belt region {_pct(s['belt_region'])}, "
            f"product {_pct(s['object_share'])}"
        ), bad
    if name == "classes":
        return "product and shadow colours (before morphology)", ins.bad("ambiguous_share")
    if name == "mask":
        return f"final mask (after morphology): {_pct(np.count_nonzero(ins.mask) / view)} of the view", False
    if name == "components":
        return (f"components: {c['components']} -> {c['detections']} objects ({c['split_components']} split)"), False
    if name == "boxes":
        d = ins.config.detect
        return (
            f"detections: {c['detections']}  (min_area {d.min_area:g} px2, split below solidity {d.split_solidity:g})"
        ), not ins.detections
    return name, False


def render_panels(ins: Inspection) -> dict[str, np.ndarray]:
    """The panels one by one, at the resolution of what they show: ``frame`` and ``boxes``
    at the frame's size, ``mask`` the exact mask the detector saw (0/255, the mask's size),
    the others at the mask's size."""
    fh, fw = ins.frame.shape[:2]
    mh, mw = ins.mask.shape[:2]
    full = (fw, fh)
    # Small masks (a strong downscale) are drawn larger so that their words stay legible.
    k = max(1.0, 640 / mw)
    drawn = (int(round(mw * k)), int(round(mh * k)))
    return {
        "frame": ins.frame.copy(),
        "light": panel_light(ins, drawn),
        "classes": panel_classes(ins, drawn),
        "mask": ins.mask.copy(),
        "components": panel_components(ins, drawn),
        "boxes": panel_boxes(ins, full),
    }


# ----------------------------------------------------------------------------- the contact sheet

#: Width of a small panel on the sheet (the frame, the belt model...); the boxes panel is
#: two columns wide and two rows high.
CELL_WIDTH = 560
GAP = 10
MARGIN = 14


def _cell_size(frame_shape: tuple[int, ...]) -> tuple[int, int]:
    h, w = frame_shape[:2]
    aspect = h / w
    cw = CELL_WIDTH
    ch = int(round(cw * aspect))
    if ch > 560:  # a tall frame (a belt running top to bottom): narrower cells
        ch = 560
        cw = int(round(ch / aspect))
    return cw, max(120, ch)


def _titled(img: np.ndarray, title: str, bad: bool, width: int, title_h: int, fs: float) -> np.ndarray:
    h, w = img.shape[:2]
    out = np.full((h + title_h, width, 3), SHEET_BG, np.uint8)
    out[:title_h, :] = BAD if bad else TITLE_BG
    tw, th = _text_size(title, fs)
    while tw > width - 12 and fs > 0.3:
        fs *= 0.92
        tw, th = _text_size(title, fs)
    _text(out, title, (8, (title_h + th) // 2 - 2), fs, WHITE, outline=False)
    out[title_h:, (width - w) // 2 : (width - w) // 2 + w] = img
    if bad:
        cv2.rectangle(out, (0, 0), (width - 1, h + title_h - 1), BAD, 3)
    return out


def _text_panel(ins: Inspection, width: int, height: int, fs: float) -> np.ndarray:
    """The numbers: belt model, mask, detection settings, counts, warnings."""
    s = ins.stats
    m, d = ins.config.mask, ins.config.detect
    c = ins.counts()
    rows: list[tuple[str, tuple[int, int, int]] | None] = []

    chars = max(20, int(width / (_text_size("abcdefghij", fs)[0] / 10)) - 2)

    def row(text: str, colour=WHITE) -> None:
        for line in textwrap.wrap(text, chars, subsequent_indent="    ") or [""]:
            rows.append((line, colour))

    def head(text: str) -> None:
        if rows:
            rows.append(None)
        rows.append((text, (150, 200, 255)))

    head("video")
    row(f"{Path(ins.source).name}, frame {ins.frame_number}" + (f" of {ins.frame_count}" if ins.frame_count else ""))
    row(
        f"{ins.frame.shape[1]}x{ins.frame.shape[0]}, mask {ins.mask.shape[1]}x{ins.mask.shape[0]} "
        f"(track.downscale {ins.scale:g})"
    )
    head(f"belt model (mask.mode {m.mode})")
    if ins.learnt:
        L, a, b = s["belt_lab"]
        row(
            f"learnt from {s['frames_learnt']} frames (every {m.auto_learn_stride}), "
            f"{s['candidates']} candidate colours"
        )
        sl, sa, sb = s["belt_sigma"]
        row(f"belt Lab {L:.1f} {a:.1f} {b:.1f}, noise sigma L {sl:.2f} a {sa:.2f} b {sb:.2f}")
        row(f"threshold {s['threshold']:.1f} sigma (auto_threshold {m.auto_threshold:g} minimum)")
        row(f"light range {s['light_range']:.3f}" + ("" if s.get("colour", True) else ", monochrome camera"))
        for key, words, cmp in (
            ("belt_region", "belt region", "min"),
            ("object_share", "product share", "max"),
            ("ambiguous_share", "ambiguous colours", "max"),
        ):
            bad = ins.bad(key)
            row(
                f"{words} {float(s[key]):.1%}  ({cmp} {LIMITS[key]:.0%})" + ("  PAST THE LIMIT" if bad else ""),
                BAD if bad else WHITE,
            )
        row(f"{s['object_components']} product components while learning, typical {s['typical_area']:.0f} px")
    elif ins.auto:
        row("not learnt yet")
    else:
        row(f"none: object {m.object_space} {_range(m.object_lower)}..{_range(m.object_upper)}")
    head("mask")
    view = float(ins.mask.size)
    row(
        f"product colour {np.count_nonzero(ins.object_mask) / view:.1%}, shadow "
        f"{np.count_nonzero(ins.shadow_mask) / view:.1%}, final mask {np.count_nonzero(ins.mask) / view:.1%}"
    )
    row(
        f"blur {m.blur}, kernel {m.kernel_size}, open {m.open_iterations}, close {m.close_iterations}, "
        f"edges {'on' if m.edges_enabled else 'off'}, shadows {'on' if m.shadow_enabled else 'off'}"
    )
    head("detect")
    row(f"min_area {d.min_area:g} px2, max_area {d.max_area:g} px2")
    row(f"split_solidity {d.split_solidity:g}, split_min_part {d.split_min_part:g}")
    row(
        f"{c['components']} components: {c['single']} one object, {c['split_components']} split "
        f"into {c['split_detections']}"
    )
    row(
        f"  {c['too_small']} under min_area, {c['crumbs']} crumbs, {c['too_large']} over max_area, "
        f"{c['dropped_other']} other"
    )
    row(f"{c['detections']} detections", WHITE if ins.detections else BAD)
    if ins.detections:
        areas = np.array([x["area"] for x in ins.detections])
        sol = np.array([x["solidity"] for x in ins.detections])
        row(f"area {areas.min():.0f} .. median {np.median(areas):.0f} .. {areas.max():.0f} px2")
        row(f"solidity {sol.min():.2f} .. median {np.median(sol):.2f} .. {sol.max():.2f}")
    notes = _decisions(ins)
    if notes:
        head("components that were not simply one object")
        shown = notes[:DECISIONS_SHOWN] if len(notes) <= DECISIONS_SHOWN + 1 else notes[: DECISIONS_SHOWN - 1]
        for text in shown:
            row(text)
        if len(shown) < len(notes):
            row(f"... and {len(notes) - len(shown)} more (inspect.json)")
    head("warnings" if ins.warnings else "warnings: none")
    for w in ins.warnings:
        row("- " + w["message"], BAD)
    _, th = _text_size("Ag", fs)
    step = th + max(3, th // 3)
    need = MARGIN + step * len(rows) + MARGIN
    img = np.full((max(height, need), width, 3), (34, 34, 34), np.uint8)
    y = MARGIN // 2 + step
    for r in rows:
        if r is not None:
            _text(img, r[0], (10, y), fs, r[1], outline=False)
        y += step if r is not None else step // 2
    return img


#: Lines of the sheet's text panel given to components split, kept whole or dropped.
DECISIONS_SHOWN = 8


def _decisions(ins: Inspection) -> list[str]:
    """One line per component that was split, kept whole below split_solidity, grouped with
    another, or gave no object (the largest first), for the text panel: the core's own
    decision and the figures it decided by."""
    d = ins.config.detect
    split, whole, grouped, dropped = [], [], [], []
    for c in ins.components:
        objects = ", ".join(str(k) for k in c["detections"])
        why = f"solidity {c['solidity']:.2f}"
        if c["objects_by_area"]:
            why += f", {c['objects_by_area']} object{'s' if c['objects_by_area'] != 1 else ''} by area"
        if c["status"] == "split":
            split.append(f"{c['area']:.0f} px2, {why}, {c['peaks']} peaks: split into {objects}")
        elif c["status"] == "kept whole":
            whole.append(f"{c['area']:.0f} px2, {why}: kept whole as {objects}")
        elif c["status"] == "grouped":
            grouped.append(f"{c['area']:.0f} px2: a piece of {objects} (within group_gap {d.group_gap:g})")
        elif c["status"] == "too small":
            dropped.append((c["area"], f"{c['area']:.0f} px2 < min_area {d.min_area:g}: no object"))
        elif c["status"] == "crumb":
            dropped.append(
                (
                    c["area"],
                    f"{c['area']:.0f} px2, under a quarter of the typical object, "
                    "near no object to join: a crumb, no object",
                )
            )
        elif c["status"] == "too large":
            dropped.append((c["area"], f"{c['area']:.0f} px2 > max_area {d.max_area:g}: no object"))
        elif c["status"] == "dropped":
            dropped.append((c["area"], f"{c['area']:.0f} px2: cut by the detection strip's side"))
    return split + whole + grouped + [t for _, t in sorted(dropped, key=lambda x: -x[0])]


def render_sheet(ins: Inspection) -> np.ndarray:
    """inspect.png: three columns,

    frame       | belt model (light, colour) | what it learnt from
    classes     | final mask                 | components
    boxes (two columns, two rows)            | the numbers
    """
    cw, ch = _cell_size(ins.frame.shape)
    fs = 0.55
    title_h = 28
    big = (2 * cw + GAP, int(round((2 * cw + GAP) * ins.frame.shape[0] / ins.frame.shape[1])))
    cells = {
        "frame": panel_frame(ins, (cw, ch)),
        "light": panel_light(ins, (cw, ch)),
        "learnt": panel_learnt(ins, (cw, ch)),
        "classes": panel_classes(ins, (cw, ch)),
        "mask": panel_mask(ins, (cw, ch)),
        "components": panel_components(ins, (cw, ch)),
        "boxes": panel_boxes(ins, big, legend_scale=_text_scale((cw, ch))),
    }
    titled = {k: _titled(v, *_title(ins, k), width=v.shape[1], title_h=title_h, fs=fs) for k, v in cells.items()}
    text_w = max(cw, CELL_WIDTH)
    text = _text_panel(ins, text_w, titled["boxes"].shape[0] - title_h, 0.5)
    text = _titled(text, "the numbers", bool(ins.warnings), text_w, title_h, fs)
    header_h = 40
    width = 2 * MARGIN + max(3 * cw + 2 * GAP, big[0] + GAP + text_w)
    row_h = max(titled[k].shape[0] for k in ("frame", "light", "learnt", "classes", "mask", "components"))
    lower = max(titled["boxes"].shape[0], text.shape[0])
    height = header_h + 2 * (row_h + GAP) + lower + MARGIN
    sheet = np.full((height, width, 3), SHEET_BG, np.uint8)
    head = f"conveyor-qc inspect   {Path(ins.source).name}   frame {ins.frame_number}"
    _text(sheet, head, (MARGIN, 28), 0.75, WHITE, 2, outline=False)
    cols = [MARGIN + i * (cw + GAP) for i in range(3)]
    y0 = header_h
    for i, name in enumerate(("frame", "light", "learnt")):
        t = titled[name]
        sheet[y0 : y0 + t.shape[0], cols[i] : cols[i] + cw] = t
    y1 = y0 + row_h + GAP
    for i, name in enumerate(("classes", "mask", "components")):
        t = titled[name]
        sheet[y1 : y1 + t.shape[0], cols[i] : cols[i] + cw] = t
    y2 = y1 + row_h + GAP
    b = titled["boxes"]
    sheet[y2 : y2 + b.shape[0], cols[0] : cols[0] + b.shape[1]] = b
    tx = cols[0] + b.shape[1] + GAP
    sheet[y2 : y2 + text.shape[0], tx : tx + text_w] = text
    return sheet


# ----------------------------------------------------------------------------- writing


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise InspectError("PNG encoding failed")
    return buf.tobytes()


def write_inspection(ins: Inspection, out_dir: str | Path) -> list[Path]:
    """Write inspect.png, the panels and inspect.json (last) into ``out_dir`` (created),
    each atomically. Returns the paths written."""
    out = check_writable_directory(out_dir)
    written = []
    panels = render_panels(ins)
    for name in PANEL_FILES:
        path = out / f"{name}.png"
        atomic_write_bytes(path, _png(panels[name]))
        written.append(path)
    path = out / "inspect.png"
    atomic_write_bytes(path, _png(render_sheet(ins)))
    written.append(path)
    data = report(ins)
    data["files"] = [p.name for p in written] + ["inspect.json"]
    path = out / "inspect.json"
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    written.append(path)
    return written


def inspect_video(
    source: str | int,
    out_dir: str | Path,
    config: Config | None = None,
    frame: int | None = None,
    progress: Progress | None = None,
) -> Inspection:
    """The whole ``inspect`` job: :func:`inspect_frame`, then :func:`write_inspection`.
    Nothing is written when the input is bad."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InspectError(f"output folder {out} exists and is not a folder")
    ins = inspect_frame(source, config, frame, progress)
    write_inspection(ins, out)
    return ins
