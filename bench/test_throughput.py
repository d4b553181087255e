"""Throughput on a 1280x720 synthetic clip: decode-only ceiling, our pipeline over
R x X x tracker mode, the seed's approach in plain Python (bench/reference.py) over
the same grid, and `conveyor-qc run` as users run it.

    make bench                      # runs these, then bench/report.py writes bench/results/
    BENCH_QUICK=1 make bench        # a reduced grid (a few minutes; the full one took 47 here)

Every row is one run (pytest-benchmark, rounds=1): the figures are meant as ratios
against the decode-only row of the same session, never as absolute targets. Frames
per second include decoding (the reader's own thread) and exclude the annotated video
unless the row says so. No test here asserts a timing.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

import cases
from conveyor_qc.evaluation.synth import PRESETS, synthesize

QUICK = os.environ.get("BENCH_QUICK") == "1"
#: Cookies entering the view per second on the bench clip.
CLIP_RATE = 3.75
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
DOWNSCALES = [1.0, 0.4] if QUICK else [1.0, 0.6, 0.4, 0.25]
# The X; X = 2 (the default) is measured for the default mode only.
DETECT_EVERY = [1, 20] if QUICK else [1, 5, 10, 20, 40]
DEFAULT_X = 2
#: Rounds of each `run` row (test_run), each after its own decode-only pass.
RUN_ROUNDS = 3
KINDS = ["none", "kcf", "mosse"] if QUICK else ["none", "kcf", "mosse", "csrt"]  # CSRT: minutes a row
# A long stream for the memory check: one hour at 30 fps unless told otherwise.
STREAM_FRAMES = int(os.environ.get("BENCH_STREAM_FRAMES", str(1000 * 30 if QUICK else 3600 * 30)))


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """The cookies preset at 1280x720 with 3.75 cookies/s entering (the preset's 3 left 11-19 in
    view), crossing in ~6 s: 16-22 objects in view on every frame (issue 6 asks for 15-25)."""
    folder = tmp_path_factory.mktemp("bench-clip")
    synthesize(folder, preset=dataclasses.replace(PRESETS["cookies"], rate=CLIP_RATE), seed=11, seconds=SECONDS)
    return folder / "video.mp4", folder / "gt.txt"


def _record(benchmark, fn):
    rows = []
    benchmark.pedantic(lambda: rows.append(fn()), rounds=1, iterations=1)
    row = rows[0]
    benchmark.extra_info["row"] = row.as_dict()
    return row


def test_decode_only(benchmark, clip):
    row = _record(benchmark, lambda: cases.decode_only(clip[0]))
    assert row.frames > 0


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A local anomaly model trained on another seed of the same preset, as `make demo` does."""
    return cases.train_model(tmp_path_factory.mktemp("bench-model"), "cookies", 12, 20)


@pytest.mark.parametrize(
    "variant",
    [
        "crops",
        "crops(spacing 0.06)",
        "crops+video+model",
        "crops+video(mp4v)+model",
        "crops+video(1)+model",
        "crops+video+model+line",
    ],
)
def test_run(benchmark, clip, tmp_path, model_dir, variant):
    """`run` as users run it. Measured before the long grid, RUN_ROUNDS times, each right after a
    decode-only pass of its own; the row is the round with the median ratio to its decode pass
    (``decode_fps``; every round's ratio in ``ratios``). Single passes on this shared machine
    varied by 15 % from one minute to the next. "video" is H.264 (the default), "video(mp4v)" the
    MPEG-4 Part 2 it replaced, at the same half size."""
    with_all = "video" in variant
    scale = 1.0 if "video(1)" in variant else None  # None: the default, half size
    spacing = 0.06 if "spacing 0.06" in variant else None  # about the former 10 frames
    codec = "mp4v" if "mp4v" in variant else None  # None: the default, H.264
    line = "line" in variant  # metrics served and reject events on (docs/line.md)

    def rounds():
        return cases.median_round(
            clip[0],
            RUN_ROUNDS,
            lambda i: cases.whole_run(
                clip[0],
                clip[1],
                tmp_path / f"out{i}",
                model=model_dir if with_all else None,
                video_out=with_all,
                video_scale=scale,
                video_max_pixels=0 if scale is not None else None,  # the input's size: no cap on its pixels
                crop_spacing=spacing,
                video_codec=codec,
                line=line,
            ),
        )

    row = _record(benchmark, rounds)
    assert row.frames > 0


def _grid():
    for kind in KINDS:
        for r in DOWNSCALES:
            for x in sorted(DETECT_EVERY + ([DEFAULT_X] if kind == "none" else [])):
                yield kind, r, x


@pytest.mark.parametrize("kind,downscale,detect_every", list(_grid()))
def test_ours(benchmark, clip, kind, downscale, detect_every):
    row = _record(benchmark, lambda: cases.ours(clip[0], clip[1], kind, downscale, detect_every))
    assert row.frames > 0


@pytest.mark.parametrize("downscale,detect_every", [(r, x) for r in DOWNSCALES for x in DETECT_EVERY])
def test_reference(benchmark, clip, downscale, detect_every):
    row = _record(benchmark, lambda: cases.reference(clip[0], clip[1], "kcf", downscale, detect_every))
    assert row.frames > 0


def test_stream_memory(benchmark, clip):
    import cv2

    cap = cv2.VideoCapture(str(clip[0]))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    result = {}
    benchmark.pedantic(lambda: result.update(cases.stream_memory(frames, STREAM_FRAMES)), rounds=1, iterations=1)
    benchmark.extra_info["memory"] = result
    assert result["frames"] == STREAM_FRAMES
