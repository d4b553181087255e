"""Everything on at 1080p60 (issue 22): a real line's camera, with crops, video and the model.

The clip is the `seed-line` preset (the seed's own footage as our renderer draws it: 1920x1080 at
60 fps, square cookies covering ~45 % of the view from the first frame, light falling off towards
the corners, crumbs). Rows, each a ratio to a decode-only pass of the same clip right before it:

- ``1080p decode``: OpenCV's reader alone (the ceiling);
- ``1080p run`` without outputs (``--no-video --no-crops``), with the default outputs (crops and
  the 640x360 H.264 video at 30 fps, every other frame of the camera), the same with the video at
  the camera's 60 fps (``output.video_max_fps = 60``: what the default saves), with the model as
  well (the product as users run it), and that with the video at half the camera's size, 960x540
  (``output.video_max_pixels = 0``: what the default cap saves);
- ``1080p xN``: N runs of the clip at once (N cameras on one machine), each a process of its own as
  a service would be: the slowest one's frames per second, and whether every one kept up with the
  camera's 60 fps.

    .venv/bin/python -m pytest bench/test_1080p.py --benchmark-only -q -p no:cacheprovider \
        --benchmark-json F            # about 6 minutes on this 2-core machine
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import cases
from conveyor_qc.evaluation.synth import synthesize

#: Seconds of the bench clip: 840 frames at 60 fps (the seed's real clip has 836).
SECONDS_1080 = 14.0
#: Rounds of each run row, each after its own decode-only pass (the median ratio is the row).
ROUNDS_1080 = 2
CAMERA_FPS = 60.0


@pytest.fixture(scope="session")
def clip_1080(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-1080p")
    synthesize(folder, preset="seed-line", seed=31, seconds=SECONDS_1080)
    return folder / "video.mp4", folder / "gt.txt"


@pytest.fixture(scope="session")
def model_1080(tmp_path_factory):
    """A local model trained on another seed of the same preset, labelled from its ground truth."""
    return cases.train_model(tmp_path_factory.mktemp("bench-1080p-model"), "seed-line", 32, 10)


def _record(benchmark, fn):
    rows = []
    benchmark.pedantic(lambda: rows.append(fn()), rounds=1, iterations=1)
    benchmark.extra_info["row"] = rows[0].as_dict()
    return rows[0]


def test_1080p_decode(benchmark, clip_1080):
    row = _record(benchmark, lambda: cases.decode_only(clip_1080[0]))
    row.what = "1080p decode"
    benchmark.extra_info["row"] = row.as_dict()
    assert row.frames > 0


@pytest.mark.parametrize(
    "variant", ["bare", "crops+video", "crops+video@60fps", "crops+video+model", "crops+video(half)+model"]
)
def test_1080p_run(benchmark, clip_1080, model_1080, tmp_path, variant):
    def rounds():
        row = cases.median_round(
            clip_1080[0],
            ROUNDS_1080,
            lambda i: cases.whole_run(
                clip_1080[0],
                clip_1080[1],
                tmp_path / f"out{i}",
                model=model_1080 if "model" in variant else None,
                video_out="video" in variant,
                crops="crops" in variant,
                # the annotated video's rate: 30 fps by default (output.video_max_fps); "@60fps":
                # every frame of the camera, what the default saves
                video_max_fps=60.0 if "@60fps" in variant else None,
                # "(half)": the video at half the camera's size, 960x540, instead of the default
                # 640x360 (output.video_max_pixels = 0: no cap on its pixels)
                video_max_pixels=0 if "(half)" in variant else None,
            ),
        )
        row.what = "1080p " + row.what
        return row

    row = _record(benchmark, rounds)
    assert row.frames > 0


@pytest.mark.parametrize("cameras", [2, 3])
def test_1080p_cameras(benchmark, clip_1080, model_1080, tmp_path, cameras):
    """``cameras`` runs of the clip at once, each `conveyor-qc run` with its default outputs and the
    model, as separate services would be."""

    def together():
        decode = cases.decode_only(clip_1080[0])
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "conveyor_qc", "run", str(clip_1080[0]), "--out", str(tmp_path / f"cam{i}")]
                + ["--model", str(model_1080), "-q"],
                stdout=subprocess.DEVNULL,
            )
            for i in range(cameras)
        ]
        for p in procs:
            assert p.wait() == 0
        seconds = time.perf_counter() - start
        fps = [json.loads((tmp_path / f"cam{i}" / "summary.json").read_text())["fps"] for i in range(cameras)]
        frames = json.loads((tmp_path / "cam0" / "summary.json").read_text())["frames"]
        row = cases.Row(f"1080p x{cameras}", "none", None, None, frames, seconds / cameras)
        row.extra.update(
            {
                "decode_fps": round(decode.fps, 2),
                "each_fps": fps,
                "slowest_fps": min(fps),
                "real_time": all(f >= CAMERA_FPS for f in fps),
                "margin": round(min(fps) / CAMERA_FPS, 2),
            }
        )
        return row

    row = _record(benchmark, together)
    assert row.frames > 0
