"""The README's picture of the annotated video: docs/annotated.png.

    python tools/annotated_picture.py [--run DIR] [--video V] [--model M] [--out docs/annotated.png]

By default it runs the demo clip with the demo model as `make demo` makes them
(out/demo-video/video.mp4, out/demo-model: run `make demo` once first) into a temporary folder,
with the default settings: the annotated video at half the input's size (output.video_scale 0.5)
and the counting line at the exit edge (count.line 1.0). ``--run DIR`` takes the annotated.mp4 of
a run already made instead. The picture is one frame of annotated.mp4 as written (encoded, at its
own size): the frame where the most boxes overlap (then the most anomalies, then the most
objects in view), read from the run's tracks.txt and objects.csv. The model judges on a thread of
its own, so a box's colour on a given frame can differ between two runs by the few frames a verdict
takes to arrive (a busy machine: more).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.evaluation.metrics import read_mot
from conveyor_qc.io.atomic import atomic_write_bytes


def overlaps(boxes: np.ndarray) -> int:
    """Pairs of boxes (x, y, w, h rows) that overlap."""
    n = 0
    for a, b in itertools.combinations(boxes, 2):
        if a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]:
            n += 1
    return n


def best_frame(run: Path) -> int:
    """The 1-based frame with the most overlapping boxes, then anomalies, then objects in view."""
    tracks = read_mot(run / "tracks.txt")
    with open(run / "objects.csv", newline="") as fh:
        anomalous = {int(r["track_id"]) for r in csv.DictReader(fh) if r["label"] == "anomaly"}
    best, best_key = 1, (-1, -1, -1)
    for frame in np.unique(tracks[:, 0]).astype(int):
        rows = tracks[tracks[:, 0] == frame]
        key = (overlaps(rows[:, 2:6]), sum(int(t) in anomalous for t in rows[:, 1]), len(rows))
        if key > best_key:
            best, best_key = frame, key
    return best


def read_frame(video: Path, n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    try:
        for _ in range(n):
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"{video} has fewer than {n} frames")
    finally:
        cap.release()
    return frame


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a run folder with annotated.mp4 (default: run the demo clip)")
    ap.add_argument("--video", type=Path, default=Path("out/demo-video/video.mp4"))
    ap.add_argument("--model", type=Path, default=Path("out/demo-model"))
    ap.add_argument("--out", type=Path, default=Path("docs/annotated.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            from conveyor_qc.run.job import run_video

            run = Path(tmp) / "run"
            run_video(args.video, run, crops=False, video=True, model=args.model)
        frame = best_frame(run)
        image = read_frame(run / "annotated.mp4", frame)
    ok, png = cv2.imencode(".png", image)
    assert ok, "PNG encoding failed"
    atomic_write_bytes(args.out, png.tobytes())
    print(f"frame {frame} of {run / 'annotated.mp4'} ({image.shape[1]}x{image.shape[0]}) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
