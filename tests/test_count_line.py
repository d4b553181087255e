"""The counting line: on a synthetic clip with exact ground truth, every object
counts once when it crosses the line (the exit edge by default, or mid-belt),
and summary.json carries the counts and their time series."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conveyor_qc import Config, ConfigError
from conveyor_qc.run.counts import LineCounts, bin_seconds_for
from conveyor_qc.run.job import run_video
from conveyor_qc.run.outputs import count_line_segment, draw_tracks
from conveyor_qc.run.pipeline import Tracks


def expected_count(gt: np.ndarray, line_x: float | None) -> int:
    """Ground-truth objects the line must count (left-to-right belt).

    An object counts when it leaves the frame during the clip (its last
    ground-truth row is before the clip's last frame: on its way out it crossed
    any line), or when the centre of its visible box is at or past ``line_x`` on
    some frame (which includes objects already past the line when the clip
    starts, and those that reach it before the clip ends). ``line_x=None`` is
    the exit edge: only leaving counts."""
    last_frame = gt[:, 0].max()
    last_row: dict[int, float] = {}
    reach: dict[int, float] = {}
    for r in gt:
        g = int(r[1])
        last_row[g] = max(last_row.get(g, 0.0), r[0])
        reach[g] = max(reach.get(g, -1.0), r[2] + r[4] / 2)
    return sum(1 for g in last_row if last_row[g] < last_frame or (line_x is not None and reach[g] >= line_x))


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("cookies", seed=1, seconds=8)


@pytest.fixture(scope="module")
def gt(clip):
    return np.loadtxt(clip.folder / "gt.txt", delimiter=",", ndmin=2)


def run(clip, out, line: float | None = None) -> dict:
    config = Config()
    if line is not None:
        config.set("count.line", line)
    run_video(clip.video, out, config, video=False, crops=False)
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def exit_summary(clip, tmp_path_factory):
    return run(clip, tmp_path_factory.mktemp("count-exit") / "out")


def test_exit_edge_counts_each_object_that_leaves(exit_summary, gt):
    s = exit_summary
    assert s["config"]["count"] == {"line": 1.0}
    counts = s["counts"]
    assert set(counts) == {"total", "normal", "anomaly", "unknown"}
    assert counts["total"] == expected_count(gt, None)
    # No anomaly model yet: every counted object is unknown.
    assert counts["unknown"] == counts["total"] and counts["normal"] == counts["anomaly"] == 0
    # Objects still in view at the end are tracked, not counted.
    assert 0 < counts["total"] < s["objects"]


def test_mid_line_counts_each_object_whose_centre_reaches_it(clip, gt, tmp_path):
    s = run(clip, tmp_path / "out", line=0.5)
    assert s["config"]["count"] == {"line": 0.5}
    assert s["counts"]["total"] == expected_count(gt, 0.5 * s["width"])
    assert s["counts"]["total"] > expected_count(gt, None)  # more than leave: a real mid line


def test_counts_over_time_per_second_sum_to_the_total(exit_summary):
    s = exit_summary
    series = s["counts_over_time"]
    assert series["bin_seconds"] == 1  # an 8 s clip
    bins = series["bins"]
    assert [b["start_s"] for b in bins] == list(range(8))
    for key in ("total", "normal", "anomaly", "unknown"):
        assert sum(b[key] for b in bins) == s["counts"][key]
    assert all(b["total"] == b["normal"] + b["anomaly"] + b["unknown"] for b in bins)
    assert sum(1 for b in bins if b["total"]) >= 4  # objects leave all along the clip


def test_line_counts_labels_and_bins():
    c = LineCounts(fps=30.0)
    c.add_crossed([1, 2], frame=0)
    c.add_crossed([2, 3], frame=45)  # 2 again: ignored
    c.set_label(1, "anomaly")  # after crossing: moves from unknown
    c.set_label(4, "normal")  # labelled before crossing
    c.add_crossed([4], frame=89)
    c.set_label(3, "scratched")  # not a count label: unknown
    assert c.counts() == {"total": 4, "normal": 1, "anomaly": 1, "unknown": 2}
    assert c.running() == {"total": 4, "normal": 1, "anomaly": 1}
    t = c.over_time(frames=90)
    assert t["bin_seconds"] == 1
    assert [(b["start_s"], b["total"], b["anomaly"], b["normal"]) for b in t["bins"]] == [
        (0, 2, 1, 0),
        (1, 1, 0, 0),
        (2, 1, 0, 1),
    ]
    # Two minutes or more: per minute.
    assert bin_seconds_for(119.9) == 1 and bin_seconds_for(120.0) == 60
    long = LineCounts(fps=10.0)
    long.add_crossed([1], frame=0)
    long.add_crossed([2], frame=650)  # 65 s
    long.add_crossed([3], frame=1499)  # last frame of 150 s
    t = long.over_time(frames=1500)
    assert t["bin_seconds"] == 60
    assert [(b["start_s"], b["total"]) for b in t["bins"]] == [(0, 1), (60, 1), (120, 1)]
    # Nothing read: one empty bin.
    assert LineCounts(fps=25.0).over_time(0)["bins"] == [
        {"start_s": 0, "total": 0, "normal": 0, "anomaly": 0, "unknown": 0}
    ]


def test_count_line_setting_is_validated():
    config = Config()
    assert config.count.line == 1.0
    assert "line" in config.to_dict()["count"]
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"count\.line must be in \(0, 1\]"):
            Config.from_dict({"count": {"line": bad}})
    with pytest.raises(ConfigError, match="count.lines"):
        config.set("count.lines", 0.5)
    assert Config.from_dict({"count": {"line": 0.25}}).count.line == 0.25


@pytest.mark.parametrize(
    "direction, line, segment",
    [
        ("left_to_right", 1.0, ((99, 0), (99, 49))),
        ("left_to_right", 0.5, ((50, 0), (50, 49))),
        ("right_to_left", 1.0, ((0, 0), (0, 49))),
        ("right_to_left", 0.25, ((74, 0), (74, 49))),
        ("top_to_bottom", 1.0, ((0, 49), (99, 49))),
        ("bottom_to_top", 0.5, ((0, 24), (99, 24))),
    ],
)
def test_count_line_segment(direction, line, segment):
    assert count_line_segment((100, 50), line, direction) == segment


def test_annotated_frame_shows_the_line_and_the_counts():
    frame = np.zeros((360, 640, 3), np.uint8)
    tracks = Tracks(
        frame_index=0,
        ids=np.array([7], np.int32),
        boxes=np.array([[100, 100, 50, 50]], np.float32),
        whole=np.array([True]),
        count=1,
    )
    segment = count_line_segment((640, 360), 0.5, "left_to_right")
    draw_tracks(frame, tracks, {}, {"total": 3, "normal": 1, "anomaly": 2}, line=segment)
    assert tuple(frame[300, 320]) == (255, 0, 255)  # the line, below the counts' banner
    assert frame[8:30, 8:200].any()  # the counts
