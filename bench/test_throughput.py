"""Frames per second of the core on a 1280x720 synthetic clip, decoded
frames held in memory (decode excluded here; see issue 6 for the full table).

    make bench        # or: .venv/bin/python -m pytest bench --benchmark-only
"""

from __future__ import annotations

import cv2
import pytest

from conveyor_qc import Config, _core
from conveyor_qc.synth import synthesize


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-clip")
    synthesize(folder, preset="cookies", seed=11, seconds=5)
    cap = cv2.VideoCapture(str(folder / "video.mp4"))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    return out


@pytest.mark.parametrize("kind", ["none", "kcf", "mosse"])
@pytest.mark.parametrize("downscale", [1.0, 0.5, 0.4])
def test_core_fps(benchmark, frames, kind, downscale):
    config = Config()
    config.set("track.kind", kind)
    config.set("track.downscale", downscale)

    def run():
        core = _core.Pipeline(config.core)
        for f in frames:
            core.process(f)
        core.finish()

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["fps"] = len(frames) / benchmark.stats.stats.mean
