"""How well reject events are timed: predicted against true crossing times on synthetic clips.

    python tools/reject_timing.py                          # the default grid, a table
    python tools/reject_timing.py --presets cookies toys --seeds 11 12 --distances 0 300 1000 --json

For every object the core finishes (not only anomalies: the prediction does not depend on the
verdict), the run's own reject line (conveyor_qc.line.reject.RejectLine, the core's speed and
``predict_crossing``) predicts when its centre crosses a line ``distance`` px past the exit edge.
The truth comes from the clip's ground truth: the object's centre along the belt, fitted against
the frame over the frames it is wholly in view (the synthetic belt moves every object at its
constant speed), extrapolated to the line. The error is predicted - true, in milliseconds of video.
Objects are matched to ground truth by the largest IoU on their best frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from conveyor_qc.config import Config
from conveyor_qc.evaluation.metrics import iou_matrix, read_mot
from conveyor_qc.evaluation.synth import synthesize
from conveyor_qc.line.reject import RejectLine
from conveyor_qc.run.pipeline import Pipeline
from conveyor_qc.run.video import VideoReader

DEFAULT_PRESETS = ["cookies", "vertical", "toys", "parts", "seed-line", "uneven-light"]


def _along(direction: str, boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centres of (N, 4) x, y, w, h boxes along the belt, from the entry edge."""
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    return {
        "left_to_right": cx,
        "right_to_left": size[0] - cx,
        "top_to_bottom": cy,
        "bottom_to_top": size[1] - cy,
    }[direction]


def true_crossing(gt: np.ndarray, gt_id: int, direction: str, size: tuple[int, int], beyond: float) -> float | None:
    """The frame at which ground-truth object ``gt_id``'s centre reaches ``beyond`` px past the exit edge."""
    rows = gt[(gt[:, 1] == gt_id) & (gt[:, 8] >= 1.0)] if gt.shape[1] > 8 else gt[gt[:, 1] == gt_id]
    if len(rows) < 3:
        return None
    centre = _along(direction, rows[:, 2:6], size)
    speed, c0 = np.polyfit(rows[:, 0], centre, 1)
    if speed <= 0:
        return None
    length = size[0] if direction in ("left_to_right", "right_to_left") else size[1]
    return float((length + beyond - c0) / speed)


def clip_errors(folder: Path, distances: list[float]) -> dict[float, list[float]]:
    """Predicted - true crossing, in frames, of every matched object of one clip, per distance."""
    gt = read_mot(folder / "gt.txt")
    config = Config()
    pipeline = Pipeline(config)
    reader = VideoReader(folder / "video.mp4")
    size = (reader.info.width, reader.info.height)
    finished = []
    for frame in reader:
        finished += pipeline.process(frame).finished
    finished += pipeline.finish()
    reader.close()
    direction = pipeline.direction
    errors: dict[float, list[float]] = {d: [] for d in distances}
    lines = {}
    for d in distances:
        config.reject.distance = d if d > 0 else 1e-9  # a line at the exit edge itself
        lines[d] = RejectLine(config.reject, reader.info.fps, size, lambda: direction, False)
    fps = reader.info.fps
    for obj in finished:
        if obj.end != "exited":
            continue
        at = gt[gt[:, 0] == obj.best_frame + 1]  # MOT frames are 1-based
        if not len(at):
            continue
        ious = iou_matrix(np.asarray([obj.best_box], float), at[:, 2:6])[0]
        best = int(np.argmax(ious))
        if ious[best] < 0.5:
            continue
        gt_id = int(at[best, 1])
        for d, line in lines.items():
            event = line.event(obj, 0.0, 0.0, 0.0)
            truth = true_crossing(gt, gt_id, direction, size, d)
            if event.crossing_s is None or truth is None:
                continue
            # MOT frame f is index f - 1: the true crossing as a 0-based frame index
            errors[d].append(event.crossing_s * fps - (truth - 1))
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[51, 52])
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--distances", nargs="+", type=float, default=[0.0, 300.0, 1000.0], help="px past the exit edge")
    ap.add_argument("--clips", type=Path, help="folder to keep the clips in (default: a temporary one)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.clips or Path(tmp)
        for preset in args.presets:
            per: dict[float, list[float]] = {d: [] for d in args.distances}
            fps = 30.0
            for seed in args.seeds:
                folder = root / f"{preset}-{seed}"
                if not (folder / "gt.txt").is_file():
                    synthesize(folder, preset=preset, seed=seed, seconds=args.seconds)
                fps = VideoReader(folder / "video.mp4").info.fps
                for d, e in clip_errors(folder, args.distances).items():
                    per[d] += e
                print(f"{preset} seed {seed}: done", file=sys.stderr)
            for d, e in per.items():
                a = np.abs(np.asarray(e)) * 1000 / fps
                rows.append(
                    {
                        "preset": preset,
                        "distance_px": d,
                        "objects": len(e),
                        "median_ms": round(float(np.median(a)), 1) if len(a) else None,
                        "p90_ms": round(float(np.percentile(a, 90)), 1) if len(a) else None,
                        "worst_ms": round(float(a.max()), 1) if len(a) else None,
                        "bias_ms": round(float(np.mean(e)) * 1000 / fps, 1) if len(a) else None,
                    }
                )
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("| preset | line past exit (px) | objects | median error (ms) | 90th pct (ms) | worst (ms) | bias (ms) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['preset']} | {r['distance_px']:g} | {r['objects']} | {r['median_ms']} | {r['p90_ms']} "
                f"| {r['worst_ms']} | {r['bias_ms']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
