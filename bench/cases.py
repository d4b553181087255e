"""What the throughput benchmarks run: one function per kind of row of the table.

Every function reads the clip from its file (decode included, in the
VideoReader's own thread, as `conveyor-qc run` does), so its frames per second
are comparable with the decode-only ceiling measured on the same clip in the
same run. Each returns a :class:`Row` with the frames per second and, where
there are tracks, the object-level F1 of `conveyor-qc eval`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc import Config, Pipeline
from conveyor_qc.evaluation.metrics import object_metrics
from conveyor_qc.run.outputs import mot_block
from conveyor_qc.run.video import VideoReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import run_reference


@dataclass
class Row:
    """One line of the table."""

    what: str  # "decode", "ours", "reference", "ours+run", ...
    kind: str  # tracker mode ("none", "kcf", ...) or "-"
    downscale: float | None
    detect_every: int | None
    frames: int
    seconds: float
    f1: float | None = None
    objects: int | None = None
    tracks: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = round(self.fps, 2)
        return d


def decode_only(video: Path) -> Row:
    """The ceiling: frames decoded by OpenCV's reader and nothing else."""
    cap = cv2.VideoCapture(str(video))
    start = time.perf_counter()
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    seconds = time.perf_counter() - start
    cap.release()
    return Row("decode", "-", None, None, n, seconds)


def _score(row: Row, gt: Path, mot: np.ndarray) -> Row:
    if mot.size == 0:
        row.f1, row.objects, row.tracks = 0.0, None, 0
        return row
    report = object_metrics(gt, mot)
    row.f1, row.objects, row.tracks = report.f1, report.objects, report.tracks
    return row


def ours(video: Path, gt: Path, kind: str, downscale: float, detect_every: int) -> Row:
    """The Python API over the core: decode thread, core, finished objects; no crops, no video."""
    config = Config()
    config.set("track.kind", kind)
    config.set("track.downscale", downscale)
    config.set("track.detect_every", detect_every)
    pipeline = Pipeline(config)
    blocks = []
    start = time.perf_counter()
    n = 0
    with VideoReader(video) as reader:
        for frame in reader:
            update = pipeline.process(frame)
            blocks += [mot_block(o.track_id, o.frames, o.boxes) for o in update.finished]
            n += 1
    blocks += [mot_block(o.track_id, o.frames, o.boxes) for o in pipeline.finish()]
    seconds = time.perf_counter() - start
    row = Row("ours", kind, downscale, detect_every, n, seconds)
    return _score(row, gt, np.concatenate(blocks) if blocks else np.zeros((0, 10)))


def reference(video: Path, gt: Path, kind: str, downscale: float, detect_every: int) -> Row:
    """The seed's approach in plain Python (bench/reference.py), decode included."""
    result = run_reference(video, downscale=downscale, detect_every=detect_every, kind=kind)
    row = Row("reference", kind, downscale, detect_every, result.frames, result.seconds)
    return _score(row, gt, np.asarray(result.rows, float).reshape(-1, 10))


def whole_run(
    video: Path,
    gt: Path,
    out: Path,
    *,
    model: Path | None = None,
    video_out: bool = False,
    crops: bool = True,
    kind: str = "none",
    video_scale: float | None = None,
    crop_spacing: float | None = None,
    video_codec: str | None = None,
    video_max_fps: float | None = None,
    video_max_pixels: int | None = None,
    line: bool = False,
) -> Row:
    """`conveyor-qc run` itself (run_video): crops, objects.csv, tracks.txt, summary; optionally the
    annotated video and the anomaly model. ``crop_spacing``, ``video_scale``, ``video_codec``
    (``output.video_codec``), ``video_max_fps`` and ``video_max_pixels`` other than the defaults are named in the row; with a video, its size
    in bytes is in ``extra["video_bytes"]``. ``line``: on the line as a plant runs it (docs/line.md),
    Prometheus metrics served and a reject line 300 px past the exit edge, its events to rejects.jsonl
    and a callback."""
    from conveyor_qc.run.job import run_video

    config = Config()
    config.set("track.kind", kind)
    if video_scale is not None:
        config.set("output.video_scale", video_scale)
    if crop_spacing is not None:
        config.set("output.crop_spacing", crop_spacing)
    if video_codec is not None:
        config.set("output.video_codec", video_codec)
    if video_max_fps is not None:
        config.set("output.video_max_fps", video_max_fps)
    if video_max_pixels is not None:
        config.set("output.video_max_pixels", video_max_pixels)
    line_args: dict = {}
    if line:
        config.set("reject.distance", 300.0)
        line_args = {"metrics_port": 0, "on_reject": lambda _event: None}
    start = time.perf_counter()
    result = run_video(video, out, config, video=video_out, crops=crops, model=model, **line_args)
    seconds = time.perf_counter() - start
    what = (
        "run"
        + ("+crops" if crops else "")
        + (f"(spacing {crop_spacing:g})" if crops and crop_spacing else "")
        + ("+video" if video_out else "")
        + (f"({video_scale:.3g})" if video_out and video_scale is not None else "")
        + (f"({video_codec})" if video_out and video_codec is not None else "")
        + (f"(at most {video_max_fps:g} fps)" if video_out and video_max_fps is not None else "")
        + ("(uncapped)" if video_out and video_max_pixels == 0 and video_scale is None else "")
        + ("+model" if model else "")
        + ("+metrics+reject" if line else "")
    )
    row = Row(what, kind, config.track.downscale, config.track.detect_every, result.summary["frames"], seconds)
    row.extra["summary_fps"] = result.summary["fps"]
    if video_out:
        row.extra["video_bytes"] = (out / "annotated.mp4").stat().st_size
    return _score(row, gt, np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2))


def train_model(base: Path, preset: str, seed: int, seconds: float) -> Path:
    """A local anomaly model in ``base/model``, trained as `make demo` does: a clip of ``preset``
    (another seed than the one measured), its run labelled from its ground truth, a dataset of up
    to 20 crops an object, `train`."""

    def qc(*args) -> None:
        subprocess.run([sys.executable, "-m", "conveyor_qc", *map(str, args)], check=True)

    qc("synth", base / "train", "--preset", preset, "--seed", seed, "--seconds", seconds, "-q")
    qc("run", base / "train" / "video.mp4", "--out", base / "run", "--no-video", "-q")
    qc("label", base / "run", "--from-truth", base / "train")
    qc("dataset", base / "run", "--out", base / "dataset", "--test-fraction", 0, "--per-object", 20, "-q")
    qc("train", base / "dataset" / "train.manifest", "--out", base / "model")
    return base / "model"


def median_round(video: Path, rounds: int, run: Callable[[int], Row]) -> Row:
    """``run(i)`` ``rounds`` times, each right after a decode-only pass of ``video``: the row of the
    round with the median ratio to its decode pass, with ``decode_fps`` and every round's ratio in
    ``ratios`` (single passes on this shared machine vary by 15 % from one minute to the next)."""
    done = []
    for i in range(rounds):
        decode = decode_only(video)
        done.append((decode.fps, run(i)))
    done.sort(key=lambda d: d[1].fps / d[0])
    decode_fps, row = done[len(done) // 2]
    row.extra["decode_fps"] = round(decode_fps, 2)
    row.extra["ratios"] = [round(r.fps / d, 3) for d, r in done]
    return row


def rss_mb() -> float:
    """Resident set size of this process, in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def stream_memory(frames: list[np.ndarray], total: int, every: int = 1000) -> dict:
    """Loops `frames` through one Pipeline for `total` frames (a long stream) and samples
    the resident size every `every` frames. At each wrap the objects in view vanish and new
    ones enter, so tracks keep being made and finished as on a real line."""
    pipeline = Pipeline(Config())
    samples = []
    start = time.perf_counter()
    for i in range(total):
        pipeline.process(frames[i % len(frames)])
        if i % every == 0:
            samples.append((i, round(rss_mb(), 2)))
    pipeline.finish()
    seconds = time.perf_counter() - start
    return {"frames": total, "seconds": round(seconds, 2), "samples": samples, "objects": pipeline.counted}
