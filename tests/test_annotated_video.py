"""What a run tells of its verdicts (issue 19, "the first hour"): without a model its objects are
"not judged", never "0 anomalies"; and what the annotated video shows: readable numbers on labels,
a counting line that can be seen at count.line = 1.0, boxes in the documented colours."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from conftest import REPO
from conftest import run_cli as cli
from conveyor_qc.cli.run import verdicts
from conveyor_qc.evaluation.tune import Scores
from conveyor_qc.run.outputs import LABEL_COLOURS, LINE_COLOUR, count_line_segment, draw_tracks
from conveyor_qc.run.pipeline import Tracks
from test_model import photo_model  # noqa: F401  (the fixture: a model trained on the real cookie photos)

#: The documented colours (docs/anomaly.md, docs/outputs.md), RGB: Okabe and Ito's blue,
#: vermillion and yellow.
DOCUMENTED = {"normal": (0, 114, 178), "anomaly": (213, 94, 0), "unknown": (240, 228, 66)}
BGR = {k: v[::-1] for k, v in DOCUMENTED.items()}


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("cookies", seed=5, seconds=4)


def near(image: np.ndarray, bgr, tolerance: int = 0) -> np.ndarray:
    """Where ``image`` has the colour ``bgr`` (within ``tolerance`` per channel, for encoded video)."""
    return (np.abs(image.astype(int) - np.array(bgr)) <= tolerance).all(axis=2)


def video_frames(path, every: int = 10) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def banner(frame: np.ndarray) -> np.ndarray:
    """The running counts' corner of a 640x360 frame."""
    return frame[8:40, 8:420]


# --- point 3: "not judged" without a model --------------------------------------------------------


def test_a_run_without_a_model_says_its_objects_were_not_judged(clip, tmp_path):
    out = tmp_path / "run"
    r = cli("run", clip.video, "--out", out, "--no-crops", "-q")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["objects"] > 0
    assert f"{s['objects']} objects (not judged: no --model), {s['counts']['total']} counted at the line" in r.stdout
    assert "anomalies" not in r.stdout
    # summary.json keeps its keys and says it: no model, every object unknown
    assert s["model"] is None
    assert (s["anomalies"], s["normal"], s["unknown"]) == (0, 0, s["objects"])
    assert s["counts"]["unknown"] == s["counts"]["total"] > 0
    assert s["counts"]["normal"] == s["counts"]["anomaly"] == 0
    # the video's banner: the yellow square of "not judged", never the colours of normal or anomaly
    frames = video_frames(out / "annotated.mp4")
    assert all(near(banner(f), BGR["unknown"], 40).sum() >= 50 for f in frames)
    assert not any(near(banner(f), BGR[k], 40).sum() >= 20 for f in frames for k in ("normal", "anomaly"))


def test_a_run_with_a_model_tells_its_anomalies_as_before(clip, photo_model, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    r = cli("run", clip.video, "--out", out, "--no-crops", "-q", "--model", photo_model[0])
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] is not None and s["anomalies"] + s["normal"] > 0
    unknown = f", {s['unknown']} unknown" if s["unknown"] else ""  # objects never wholly in view
    assert f"{s['objects']} objects ({s['anomalies']} anomalies{unknown}), {s['counts']['total']} counted" in r.stdout
    assert "not judged" not in r.stdout
    # the banner, once objects are counted, shows normal and anomaly with their colours
    last = video_frames(out / "annotated.mp4")[-1]
    assert near(banner(last), BGR["normal"], 40).sum() >= 50
    assert near(banner(last), BGR["anomaly"], 40).sum() >= 50


def test_summary_lines_of_recovered_and_judged_runs():
    # recover: a summary rebuilt from a killed run's journal has no "model"; its labels tell
    assert verdicts({"objects": 4, "anomalies": 0, "normal": 0, "unknown": 4}) == "(not judged: no --model)"
    assert verdicts({"objects": 4, "anomalies": 1, "normal": 3, "unknown": 0}) == "(1 anomalies)"
    judged = {"model": {"path": "m"}, "objects": 5, "anomalies": 2, "normal": 2, "unknown": 1}
    assert verdicts(judged) == "(2 anomalies, 1 unknown)"
    assert verdicts({**judged, "model": None, "anomalies": 0, "normal": 0, "unknown": 5}) == "(not judged: no --model)"


def test_a_batch_without_a_model_says_not_judged(clip, tmp_path):
    r = cli("batch", clip.video, "--out", tmp_path / "b", "--workers", 1)
    assert r.returncode == 0, r.stderr
    assert re.search(r"; \d+ objects \(not judged: no --model\) in \d+ frames", r.stdout), r.stdout
    # and the line of each video as it finishes
    assert re.search(r"\[1/1\] \S+: \d+ objects \(not judged\), \d+ frames at", r.stderr + r.stdout), r.stderr


def test_tune_says_found_not_counted():
    """In `run`, "counted" means crossed the counting line; tune's tracks on objects are "found"."""
    text = Scores(f1=0.9, precision=0.9, recall=0.9, counted=38, objects=40).describe()
    assert "(38 found / 40 objects)" in text and "counted" not in text


# --- point 4: the annotated video ----------------------------------------------------------------


def draw(direction: str = "left_to_right", labels=None, judged=True) -> np.ndarray:
    """A 640x360 canvas (the default half-size video of a 1280x720 input) drawn as run draws it:
    two overlapping boxes (ids 7 and 12), one at the frame's top edge (id 30) and one under the
    running counts (id 40), the counting line at 1.0."""
    frame = np.full((360, 640, 3), 128, np.uint8)
    tracks = Tracks(
        frame_index=0,
        ids=np.array([7, 12, 30, 40], np.int32),
        boxes=np.array(
            [[400, 300, 100, 140], [480, 360, 160, 140], [1100, 0, 120, 100], [100, 0, 120, 100]], np.float32
        ),
        whole=np.array([True, True, False, False]),
        count=4,
    )
    line = count_line_segment((1280, 720), 1.0, direction)
    labels = {7: "anomaly", 12: "normal"} if labels is None else labels
    counts = {"total": 9, "normal": 5, "anomaly": 3}
    draw_tracks(frame, tracks, labels, counts, line=line, scale=0.5, judged=judged)
    return frame


def test_the_colours_are_the_documented_ones():
    assert {k: tuple(v) for k, v in LABEL_COLOURS.items()} == BGR
    said = {
        "docs/anomaly.md": ("drawn blue (normal) or vermillion", "yellow (unknown)"),
        "docs/outputs.md": ("**blue** normal", "**vermillion** anomaly", "**yellow** unknown"),
    }
    for doc, words in said.items():
        text = " ".join((REPO / doc).read_text(encoding="utf-8").split())
        for w in words:
            assert w in text, (doc, w)


@pytest.mark.parametrize(
    ("direction", "where"),
    [
        ("left_to_right", (slice(None), slice(-4, None))),  # the last columns
        ("right_to_left", (slice(None), slice(0, 4))),  # the first columns
        ("top_to_bottom", (slice(-4, None), slice(None))),  # the last rows
    ],
)
def test_the_counting_line_at_the_exit_edge_is_seen(direction, where):
    frame = draw(direction)
    on_line = near(frame[where], LINE_COLOUR)
    along = on_line.any(axis=1 if direction != "top_to_bottom" else 0)
    assert along.mean() > 0.8, along.mean()  # over most of the frame's height (width)
    assert on_line.sum(axis=1 if direction != "top_to_bottom" else 0).max() >= 3  # a few pixels thick
    # and its "count" tag: a block of the line's colour away from the edge
    assert near(frame, LINE_COLOUR).sum() > on_line.sum() + 300


def test_boxes_and_numbers_on_labels_where_boxes_overlap():
    frame = draw()
    # box 7 (anomaly) from (200, 150) to (250, 220), box 12 (normal) from (240, 180) to (320, 250)
    anomaly, normal = near(frame, BGR["anomaly"]), near(frame, BGR["normal"])
    assert anomaly[150:222, 196:204].sum() > 200  # box 7's left edge, in the anomaly colour, thick
    assert normal[200:250, 318:323].sum() > 40  # box 12's right edge
    # each number on a filled label of its box's colour, above the box's top-left corner
    for (x, y), colour, ink in (((200, 150), "anomaly", (0, 0, 0)), ((240, 180), "normal", (255, 255, 255))):
        label = frame[y - 26 : y, x - 4 : x + 30]
        fill = near(label, BGR[colour])
        assert fill.sum() > 150, (colour, fill.sum())
        rows = np.flatnonzero(near(label, ink, 60).any(axis=1))
        assert rows.size and rows[-1] - rows[0] + 1 >= 12, rows  # digits at least 12 px high
    # box 30 touches the top edge: its label is inside the frame, just under the box's top
    assert near(frame[0:24, 546:585], BGR["unknown"]).sum() > 150
    # box 40 is under the running counts (8 px from the top, 32 high): its label just below them
    assert near(frame[41:64, 46:80], BGR["unknown"]).sum() > 150
    # the label of box 12 lies across box 7's right edge (x 250): drawn after every box, it hides it
    assert near(frame[185:215, 249:252], BGR["anomaly"]).all()  # the edge, below the label
    assert near(frame[160:176, 242:262], BGR["normal"]).sum() > 150
    assert not near(frame[160:176, 248:253], BGR["anomaly"]).any()


def test_the_banner_without_verdicts_says_not_judged():
    judged = banner(draw())
    assert near(judged, BGR["normal"]).sum() > 50 and near(judged, BGR["anomaly"]).sum() > 50
    assert near(judged, BGR["unknown"]).sum() > 50  # 9 counted, 8 with a verdict: "unknown: 1"
    unjudged = banner(draw(labels={}, judged=False))
    assert near(unjudged, BGR["unknown"]).sum() > 50
    assert not near(unjudged, BGR["normal"]).any() and not near(unjudged, BGR["anomaly"]).any()
    # nothing in view, nothing judged yet: the same banner
    guessed = np.full((360, 640, 3), 128, np.uint8)
    empty = Tracks(
        frame_index=0, ids=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32), whole=np.zeros(0, bool), count=0
    )
    draw_tracks(guessed, empty, {}, {"total": 9, "normal": 0, "anomaly": 0}, scale=0.5, judged=False)
    assert np.array_equal(banner(guessed), unjudged)
