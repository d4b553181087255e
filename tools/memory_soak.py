"""Resident memory of one long run, sampled every few seconds: a leak or allocator warm-up?

Feeds a clip, looped, to one process for a given wall time and samples the process's resident
set size (psutil) every --interval seconds. Two ways to feed it:

- ``pipeline`` (default): one :class:`conveyor_qc.run.pipeline.Pipeline` over the clip played
  again and again, as one endless video: the tracks of each pass end and new ones begin, so the
  core creates and drops a tracker per object all along (with ``track.kind = "kcf"``, one
  OpenCV TrackerKCF each);
- ``run``: ``run_video`` on the clip again and again in this process (no video, no crops, a new
  output folder each time, removed after), as a server running many runs would.

Writes one CSV row per sample (elapsed seconds, RSS in MB, frames processed, objects finished)
and prints the curve's summary: RSS at the start, after the first fifth of the time (allocator
warm-up) and at the end, and the slope over the last four fifths in MB per hour (a leak grows
linearly; warm-up levels off).

    conveyor-qc synth /tmp/soak-clip --preset cookies --seconds 60 -q
    python tools/memory_soak.py /tmp/soak-clip/video.mp4 --minutes 25 --set track.kind=kcf \\
        --csv /tmp/soak-kcf.csv
"""

from __future__ import annotations

import argparse
import csv
import gc
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import psutil

from conveyor_qc.config import Config
from conveyor_qc.run.pipeline import Pipeline


def looped_frames(path: str):
    """The clip's frames, from the start again at its end, for ever."""
    while True:
        cap = cv2.VideoCapture(path)
        try:
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"memory_soak: cannot read a frame of {path}")
            while ok:
                yield frame
                ok, frame = cap.read()
        finally:
            cap.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", help="the clip to loop (e.g. from `conveyor-qc synth DIR --seconds 60`)")
    parser.add_argument("--minutes", type=float, default=20.0, help="wall time to run (default 20)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting, as `run --set` (repeatable)"
    )
    parser.add_argument(
        "--mode", choices=("pipeline", "run"), default="pipeline", help="how to feed it (above; default pipeline)"
    )
    parser.add_argument("--csv", help="write the samples here (elapsed_s,rss_mb,frames,objects)")
    args = parser.parse_args(argv)

    config = Config.from_options(None, args.set)
    process = psutil.Process()
    samples: list[tuple[float, float, int, int]] = []
    progress = {"frames": 0, "objects": 0}
    stop = threading.Event()
    start = time.monotonic()
    deadline = start + args.minutes * 60.0

    def sample() -> None:
        row = (
            round(time.monotonic() - start, 1),
            round(process.memory_info().rss / 2**20, 1),
            progress["frames"],
            progress["objects"],
        )
        samples.append(row)
        print(f"{row[0]:8.1f} s  rss {row[1]:7.1f} MB  frames {row[2]:8d}  objects {row[3]:6d}", flush=True)

    def sampler() -> None:
        while not stop.wait(args.interval):
            sample()

    sample()
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        if args.mode == "pipeline":
            pipeline = Pipeline(config)
            for frame in looped_frames(args.video):
                update = pipeline.process(frame)
                progress["frames"] += 1
                progress["objects"] += len(update.finished)
                if time.monotonic() >= deadline:
                    break
            progress["objects"] += len(pipeline.finish())
        else:
            from conveyor_qc.run.job import run_video

            while time.monotonic() < deadline:
                out = Path(tempfile.mkdtemp(prefix="memory-soak-"))
                try:
                    result = run_video(
                        args.video, out / "run", config.copy(), video=False, crops=False, warn=lambda _t: None
                    )
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                progress["frames"] += int(result.summary.get("frames", 0))
                progress["objects"] += int(result.summary.get("objects", 0))
                gc.collect()
    finally:
        stop.set()
        thread.join()
        sample()

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("elapsed_s", "rss_mb", "frames", "objects"))
            writer.writerows(samples)
    summarise(samples)
    return 0


def summarise(samples: list[tuple[float, float, int, int]]) -> None:
    """RSS at the start, after warm-up (a fifth of the time) and at the end; the later slope."""
    if len(samples) < 3:
        return
    end = samples[-1][0]
    later = [s for s in samples if s[0] >= end / 5]
    t0, r0 = later[0][0], later[0][1]
    # Least squares over the later samples: MB per hour.
    n = len(later)
    mt = sum(s[0] for s in later) / n
    mr = sum(s[1] for s in later) / n
    var = sum((s[0] - mt) ** 2 for s in later)
    slope = sum((s[0] - mt) * (s[1] - mr) for s in later) / var * 3600 if var else 0.0
    print(
        f"rss: {samples[0][1]:.1f} MB at the start, {r0:.1f} MB at {t0:.0f} s, {samples[-1][1]:.1f} MB at "
        f"{end:.0f} s (peak {max(s[1] for s in samples):.1f}); after {t0:.0f} s: {slope:+.1f} MB/hour; "
        f"{samples[-1][2]} frames, {samples[-1][3]} objects",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
