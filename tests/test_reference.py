"""The benchmark peer (bench/reference.py, the seed's detect-every-X + one KCF per
object) is a real tracker: on a short synthetic cookies clip it finds and
follows the objects with stable ids."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import REPO
from conveyor_qc.evaluation.metrics import object_metrics, read_mot


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("bench_reference", REPO / "bench" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(make_clip, reference, tmp_path_factory):
    clip = make_clip("cookies", seed=5, seconds=3)  # 90 frames, 22 objects
    result = reference.run_reference(clip.video)  # R=0.4, X=20, KCF
    path = tmp_path_factory.mktemp("reference") / "tracks.txt"
    reference.write_mot(result.rows, path)
    return clip, result, path


def test_finds_and_follows_the_objects(run):
    clip, result, path = run
    assert result.frames == 90 and result.fps > 0 and result.seconds > 0
    rows = read_mot(path)  # the written file is valid MOT text (no id twice on a frame)
    assert len(rows) == len(result.rows)
    np.testing.assert_allclose(rows[:, :6], np.array(result.rows)[:, :6], atol=0.006)
    report = object_metrics(clip.gt, rows)
    # Measured: 21 tracks, 18 paired, precision 0.857, recall 0.818, F1 0.837. The
    # misses are inherent to X=20 on a short clip: objects that enter after the last
    # detection (frame 81) or are only partly in view at it, and one touching pair
    # found as one box.
    assert report.f1 >= 0.78, report
    assert report.precision >= 0.80, report
    assert report.recall >= 0.75, report


def test_ids_are_stable(run):
    clip, _result, path = run
    rows = read_mot(path)
    report = object_metrics(clip.gt, rows)
    assert not report.split and not report.duplicates, report
    ids = np.unique(rows[:, 1]).astype(int)
    assert ids.tolist() == list(range(1, len(ids) + 1))  # 1, 2, 3, ... in order of appearance
    for tid in ids:
        frames = np.sort(rows[rows[:, 1] == tid, 0])
        assert np.all(np.diff(frames) == 1), f"track {tid} has gaps: an id is never reused"
    # Once its track has started (at a detection, every 20 frames), a paired object
    # stays under that one track on (nearly) every frame it is fully visible.
    gt = clip.gt
    for g, t in report.pairs:
        tracked = rows[rows[:, 1] == t, 0]
        seen = gt[(gt[:, 1] == g) & (gt[:, 8] >= 0.99) & (gt[:, 0] >= tracked.min()), 0]
        if len(seen) >= 10:
            assert np.isin(seen, tracked).mean() >= 0.9, (g, t)


def test_mot_id_switches(run):
    pytest.importorskip("trackeval")
    from conveyor_qc.evaluation.metrics import mot_metrics

    clip, _, path = run
    mot = mot_metrics(clip.gt, path)
    assert mot["id_switches"] <= 1, mot  # measured 0
    assert mot["mota"] >= 0.7, mot  # measured 0.802


def test_frames_instead_of_path(run, reference):
    """Frames given as an iterable (decode left out of the timing) give the same tracks."""
    import cv2

    clip, result, _ = run
    cap = cv2.VideoCapture(str(clip.video))
    frames = []
    while len(frames) < 25:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    short = reference.run_reference(frames=frames)
    assert short.frames == 25
    assert short.rows == [r for r in result.rows if r[0] <= 25]
    with pytest.raises(ValueError, match="unknown tracker kind"):
        reference.run_reference(frames=frames, kind="nope")
