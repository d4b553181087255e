"""The peer our pipeline is benchmarked against: a plain-Python re-implementation
of the published case study's ("the seed's") multi-object detection + tracking
(../shared/seed/visual-quality-control-case-study.txt, "Preprocessing
pipeline"). Kept plain and readable like the seed's notebook; it is a peer to
compare with, not something to optimise.

The method, exactly:

- Every frame is downscaled by ``R`` (``cv2.resize`` with its default
  interpolation, bilinear, as plain code calls it; INTER_AREA would make the
  peer ~8 ms a frame slower at R = 0.4, where it leaves its fast path) and every
  active track's single-object tracker (one ``cv2.legacy`` KCF per object by
  default) is updated on the downscaled frame.
- Every ``X`` frames (frame index % X == 0) objects are detected on the
  full-resolution frame: grey threshold (objects darker than the light belt),
  minus a shadow colour range (HSV ``inRange``: the unsaturated greys of shadows,
  and of the rails), minus a dilated Canny edge mask (splits touching objects),
  then erode, then dilate; the outer contours (RETR_EXTERNAL) above an area
  bound give boxes, each grown by 10% (5% each side) and clipped to the frame.
- A detected box belongs to the first active track whose centre is nearer than
  a distance threshold; if it is 1.15x larger in area than that track's box the
  track's tracker is replaced by a new one initialised on the detected box
  (objects entering the frame grow). A detection matching no track starts a
  new track (ids 1, 2, 3, ...).
- A track is dropped after 2 failed updates (``tracker.update`` returned
  ``ok=False``; consecutive: a good update resets the count) or once its box
  has left the frame.
- Boxes are kept in full-resolution coordinates (tracker boxes divided by R).

What the seed also did and this peer does not: detect only in the leftmost
part of the frame (where objects enter). Detection here covers the whole frame.

    python bench/reference.py VIDEO --out TRACKS.txt [--downscale 0.4] [--detect-every 20] [--kind kcf]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["TRACKER_KINDS", "ReferenceParams", "ReferenceResult", "Track", "detect", "run_reference", "write_mot"]

# cv2.legacy factories: one single-object tracker per object.
TRACKER_KINDS = {
    "kcf": "TrackerKCF_create",
    "mosse": "TrackerMOSSE_create",
    "csrt": "TrackerCSRT_create",
    "medianflow": "TrackerMedianFlow_create",
}


@dataclass
class ReferenceParams:
    """Every constant of the reference. Defaults chosen for the synthetic ``cookies``
    preset (1280x720, light beige belt, grey rails, brown cookies with dark chips)
    by a small grid search of the detection alone (boxes vs ground truth every 15th
    frame of seeds 1 and 2, 10 s), then the distance threshold by the tracking's
    object F1 on the same clips. The shadow range also takes out the rails (grey,
    unsaturated) and the vignetted belt corners, which the grey threshold lets in."""

    # --- detection (on the full-resolution frame) --------------------------------
    gray_thresh: int = 180  # object pixels: grey < this (belt ~185-200, cookies ~130-170, chips ~40)
    shadow_lo: tuple = (0, 0, 60)  # HSV lower bound of the shadow colour range (subtracted from the mask)
    shadow_hi: tuple = (180, 80, 190)  # HSV upper bound: unsaturated greys (shadows on the belt, rails)
    canny_lo: int = 40  # Canny hysteresis thresholds on the grey frame
    canny_hi: int = 200
    edge_dilate: int = 1  # dilation iterations of the edge mask (3x3 kernel) before subtracting it
    kernel: int = 3  # side of the elliptical kernel of the erosion and dilation
    erode_iterations: int = 1  # erode the cleaned mask this many times ...
    dilate_iterations: int = 2  # ... then dilate it this many times
    min_area: float = 1200.0  # contours smaller than this (px^2, full resolution) are ignored
    grow: float = 1.10  # each detected box grown by this factor in width and height (5% each side)
    # --- matching and tracking ---------------------------------------------------
    max_distance: float = 60.0  # a detection belongs to a track whose centre is nearer (px, full resolution)
    replace_ratio: float = 1.15  # a matched detection this much larger in area replaces the track's tracker
    max_failures: int = 2  # a track is dropped after this many failed updates in a row


@dataclass
class Track:
    """One object followed by one single-object tracker."""

    track_id: int
    tracker: object
    box: tuple  # (x, y, w, h), full-resolution pixels
    failures: int = 0


@dataclass
class ReferenceResult:
    """What run_reference() measured and found."""

    frames: int  # frames processed
    seconds: float  # wall time of the whole loop (including decode when reading from the path)
    fps: float  # frames / seconds
    rows: list = field(default_factory=list)  # MOTChallenge rows (frame 1-based, id, x, y, w, h, 1, -1, -1, -1)
    tracks_started: int = 0  # ids handed out


def make_tracker(kind: str):
    """A new cv2.legacy single-object tracker of ``kind``."""
    try:
        return getattr(cv2.legacy, TRACKER_KINDS[kind])()
    except KeyError:
        raise ValueError(f"unknown tracker kind {kind!r}; known: {', '.join(TRACKER_KINDS)}") from None


def detect(frame: np.ndarray, p: ReferenceParams) -> list[tuple[int, int, int, int]]:
    """Object boxes (x, y, w, h) in a full-resolution BGR frame, grown and clipped."""
    height, width = frame.shape[:2]
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    # Objects: darker than the belt.
    _, objects = cv2.threshold(gray, p.gray_thresh - 1, 255, cv2.THRESH_BINARY_INV)
    # Shadows: a colour range (greys darker than the belt but not saturated like the cookies).
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    shadows = cv2.inRange(hsv, np.array(p.shadow_lo, np.uint8), np.array(p.shadow_hi, np.uint8))
    # Edges: where touching objects meet (and the outlines of every object).
    edges = cv2.Canny(gray, p.canny_lo, p.canny_hi)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=p.edge_dilate)
    mask = cv2.subtract(objects, shadows)
    mask = cv2.subtract(mask, edges)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (p.kernel, p.kernel))
    mask = cv2.erode(mask, kernel, iterations=p.erode_iterations)
    mask = cv2.dilate(mask, kernel, iterations=p.dilate_iterations)

    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        if cv2.contourArea(contour) < p.min_area:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        dx, dy = w * (p.grow - 1) / 2, h * (p.grow - 1) / 2
        x0, y0 = max(0, int(round(x - dx))), max(0, int(round(y - dy)))
        x1, y1 = min(width, int(round(x + w + dx))), min(height, int(round(y + h + dy)))
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    return boxes


def _centre(box) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


def _to_small(box, r: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return (int(round(x * r)), int(round(y * r)), max(1, int(round(w * r))), max(1, int(round(h * r))))


def _clip(box, width: int, height: int) -> tuple[float, float, float, float]:
    """The part of ``box`` inside the frame (w or h <= 0: none)."""
    x, y, w, h = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return x0, y0, x1 - x0, y1 - y0


def _frames_from(video_path) -> Iterable[np.ndarray]:
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise OSError(f"cannot open video {video_path}")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame
    finally:
        cap.release()


def run_reference(
    video_path=None,
    *,
    downscale: float = 0.4,
    detect_every: int = 20,
    kind: str = "kcf",
    params: ReferenceParams | None = None,
    frames: Iterable[np.ndarray] | None = None,
) -> ReferenceResult:
    """Detect and track the objects of a video the seed's way.

    Reads ``video_path`` unless ``frames`` (an iterable of BGR frames) is given,
    so decoding can be left out of the timing. Returns the MOT rows of every
    track on every frame it is active (its box clipped to the frame).
    """
    p = params or ReferenceParams()
    if not 0 < downscale <= 1:
        raise ValueError(f"downscale must be in (0, 1], not {downscale}")
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, not {detect_every}")
    make_tracker(kind)  # fail early on an unknown kind
    if frames is None:
        if video_path is None:
            raise ValueError("give a video_path or frames")
        frames = _frames_from(video_path)

    tracks: list[Track] = []
    rows: list[tuple] = []
    next_id = 1
    index = -1
    start = time.perf_counter()
    for index, frame in enumerate(frames):
        height, width = frame.shape[:2]
        small = frame if downscale == 1 else cv2.resize(frame, None, fx=downscale, fy=downscale)

        # 1. Every tracker follows its object on the downscaled frame.
        alive = []
        for t in tracks:
            ok, (x, y, w, h) = t.tracker.update(small)
            if ok:
                t.failures = 0
                t.box = (x / downscale, y / downscale, w / downscale, h / downscale)
            else:
                t.failures += 1
            inside = _clip(t.box, width, height)
            if t.failures < p.max_failures and inside[2] > 0 and inside[3] > 0:
                alive.append(t)
        tracks = alive

        # 2. Every X frames: detect, match to the tracks by centre distance, start new tracks.
        if index % detect_every == 0:
            for box in detect(frame, p):
                cx, cy = _centre(box)
                match = None
                for t in tracks:
                    tx, ty = _centre(t.box)
                    if np.hypot(cx - tx, cy - ty) < p.max_distance:
                        match = t
                        break
                if match is None:
                    tracker = make_tracker(kind)
                    tracker.init(small, _to_small(box, downscale))
                    tracks.append(Track(next_id, tracker, box))
                    next_id += 1
                elif box[2] * box[3] > p.replace_ratio * match.box[2] * match.box[3]:
                    match.tracker = make_tracker(kind)
                    match.tracker.init(small, _to_small(box, downscale))
                    match.box = box
                    match.failures = 0

        # 3. One row per active track (its box clipped to the frame).
        for t in tracks:
            x, y, w, h = _clip(t.box, width, height)
            rows.append((index + 1, t.track_id, x, y, w, h, 1, -1, -1, -1))
    seconds = time.perf_counter() - start
    count = index + 1
    rows.sort(key=lambda r: (r[0], r[1]))
    return ReferenceResult(
        frames=count,
        seconds=seconds,
        fps=count / seconds if seconds > 0 else 0.0,
        rows=rows,
        tracks_started=next_id - 1,
    )


def write_mot(rows, path) -> None:
    """Write MOT rows as comma-separated text, one per line, like a run's tracks.txt (atomically)."""
    from conveyor_qc.io.atomic import atomic_write_text
    from conveyor_qc.run.outputs import mot_line

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(mot_line(int(f), int(tid), x, y, w, h) + "\n" for f, tid, x, y, w, h, *_ in rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="reference.py",
        description="The seed's multi-object detection + tracking (the benchmark peer): detect every X "
        "frames on the full frame, track each object with its own cv2.legacy tracker on frames "
        "downscaled by R. Writes MOTChallenge tracks and prints the frames per second.",
    )
    ap.add_argument("video", help="input video")
    ap.add_argument("--out", required=True, metavar="TRACKS.txt", help="where to write the MOT rows")
    ap.add_argument("--downscale", type=float, default=0.4, metavar="R", help="tracking scale (default 0.4)")
    ap.add_argument("--detect-every", type=int, default=20, metavar="X", help="detect every X frames (default 20)")
    ap.add_argument("--kind", default="kcf", choices=sorted(TRACKER_KINDS), help="tracker (default kcf)")
    args = ap.parse_args(argv)
    if not Path(args.video).is_file():
        ap.error(f"no such video: {args.video}")
    try:
        result = run_reference(args.video, downscale=args.downscale, detect_every=args.detect_every, kind=args.kind)
    except (ValueError, OSError) as exc:
        ap.error(str(exc))
    write_mot(result.rows, args.out)
    print(
        f"{result.frames} frames in {result.seconds:.2f} s: {result.fps:.1f} fps "
        f"(decode included), {result.tracks_started} tracks -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
