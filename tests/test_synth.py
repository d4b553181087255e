"""The synthetic belt video generator: files and formats, ground truth that
matches the pixels, determinism, presets, and argument errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from conveyor_qc.evaluation import synth
from conveyor_qc.evaluation.synth import PRESETS, SynthError, SynthResult, synthesize

# ----------------------------------------------------------------------------- helpers


def read_gt(path: Path) -> np.ndarray:
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split(",")
        assert len(parts) == 9, line
        rows.append([float(v) for v in parts])
    return np.array(rows, dtype=float).reshape(-1, 9)


def read_labels(path: Path) -> dict[int, dict]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["id", "label", "kind"]
        return {int(r["id"]): r for r in reader}


def read_frames(video: Path, wanted: set[int] | None = None) -> tuple[int, dict[int, np.ndarray], tuple]:
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    n, frames, size = 0, {}, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = (frame.shape[1], frame.shape[0])
        if wanted is None or n in wanted:
            frames[n] = frame
    cap.release()
    return n, frames, size


class Run:
    def __init__(self, result: SynthResult):
        self.result = result
        self.gt = read_gt(result.gt)
        self.labels = read_labels(result.labels)

    def rows(self, oid: int) -> np.ndarray:
        return self.gt[self.gt[:, 1] == oid]


@pytest.fixture(scope="module")
def cookies(tmp_path_factory) -> Run:
    return Run(synthesize(tmp_path_factory.mktemp("cookies"), preset="cookies", seed=5, seconds=3))


@pytest.fixture(scope="module")
def vertical(tmp_path_factory) -> Run:
    return Run(synthesize(tmp_path_factory.mktemp("vertical"), preset="vertical", seed=6, seconds=3))


def photos_folder() -> Path:
    return synth.cookie_photos_dir()


# ----------------------------------------------------------------------------- files and formats


def test_presets_are_documented():
    assert {"cookies", "vertical", "light-on-dark", "hard"} <= set(PRESETS)
    for name, p in PRESETS.items():
        assert p.name == name and p.description
        assert p.fps == (60 if name == "seed-line" else 30)


def test_files_exist_and_parse(cookies):
    r = cookies.result
    for path in (r.video, r.gt, r.labels):
        assert path.is_file() and path.stat().st_size > 0
    # nothing temporary left behind
    assert sorted(p.name for p in r.out_dir.iterdir()) == ["gt.txt", "labels.csv", "video.mp4"]
    assert r.frames == 90 and r.fps == 30 and r.size == (1280, 720)
    assert r.objects == len(cookies.labels) > 5
    assert r.anomalies == sum(1 for v in cookies.labels.values() if v["label"] == "anomaly")
    for v in cookies.labels.values():
        assert v["label"] in ("normal", "anomaly")
        assert v["kind"] in ("normal", "broken", "stacked")
        assert (v["label"] == "normal") == (v["kind"] == "normal")
    assert (cookies.gt[:, 6:8] == 1).all()


def test_gt_frames_ids_and_boxes_in_range(cookies):
    gt, r = cookies.gt, cookies.result
    frames, ids = gt[:, 0], gt[:, 1]
    assert frames.min() == 1 and frames.max() <= r.frames
    assert (frames == np.round(frames)).all() and (ids == np.round(ids)).all()
    # sorted by frame, then id
    order = np.lexsort((ids, frames))
    assert (order == np.arange(len(gt))).all()
    assert len(set(zip(frames, ids, strict=True))) == len(gt)
    # boxes inside the frame, visibility in (0, 1]
    x, y, w, h, vis = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5], gt[:, 8]
    assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
    assert (x + w <= 1280).all() and (y + h <= 720).all()
    assert (vis > 0).all() and (vis <= 1).all()
    # ids are 1..N, numbered in order of entry, each seen on consecutive frames
    uniq = sorted(set(ids.astype(int)))
    assert uniq == list(range(1, len(uniq) + 1))
    first = [cookies.rows(i)[0, 0] for i in uniq]
    assert first == sorted(first)
    for i in uniq:
        f = cookies.rows(i)[:, 0]
        assert (np.diff(f) == 1).all()


def test_labels_and_gt_have_the_same_ids(cookies):
    assert set(cookies.labels) == set(cookies.gt[:, 1].astype(int))


def test_entering_objects_grow_from_the_left(cookies):
    last = cookies.result.frames - 20  # entered early enough to be fully in view before the end
    entering = [i for i in cookies.labels if 1 < cookies.rows(i)[0, 0] < last]
    assert len(entering) >= 3
    for i in entering:
        rows = cookies.rows(i)
        full = rows[rows[:, 8] >= 1.0]
        assert len(full), f"object {i} never fully in view"
        first = rows[:4]
        assert (first[:, 2] == 0).all(), "enters at the left edge"
        assert (np.diff(first[:, 4]) > 0).all(), "visible width grows"
        assert (np.diff(first[:, 8]) > 0).all(), "visibility grows"
        assert (first[:, 8] < 1).all()
        assert first[0, 4] < full[0, 4]
        # the full box keeps its size while the object crosses the view
        assert (full[:, 4] == full[0, 4]).all() and (full[:, 5] == full[0, 5]).all()
        # and moves right at constant speed (8 px/frame)
        assert set(np.diff(full[:, 2])) <= {8.0}


def test_objects_do_not_overlap(cookies):
    """Boxes of different objects are disjoint except for touching pairs (tiny overlap)."""
    for f in np.unique(cookies.gt[:, 0]):
        b = cookies.gt[cookies.gt[:, 0] == f][:, 2:6]
        x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        iw = np.clip(np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]), 0, None)
        ih = np.clip(np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]), 0, None)
        inter = iw * ih
        np.fill_diagonal(inter, 0)
        area = b[:, 2] * b[:, 3]
        iou = inter / (area[:, None] + area[None] - inter)
        assert iou.max() < 0.15, f"frame {f}"


def test_video_decodes_to_expected_frames_and_size(cookies):
    n, _, size = read_frames(cookies.result.video)
    assert n == cookies.result.frames == 90
    assert size == (1280, 720)


def _belt_lab(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Median Lab colour of the belt: pixels far from every box, away from the rails."""
    free = np.zeros(frame.shape[:2], bool)
    free[60:-60, 60:-60] = True  # away from the rails (top/bottom, or left/right when vertical)
    for x, y, w, h in boxes.astype(int):
        free[max(0, y - 25) : y + h + 25, max(0, x - 25) : x + w + 25] = False
    lab = cv2.cvtColor(frame, cv2.COLOR_BGR2LAB).astype(np.float32)
    return np.median(lab[free], axis=0)


def check_drawn_where_gt_says(run: Run, frame_numbers: list[int]):
    _, frames, _ = read_frames(run.result.video, set(frame_numbers))
    checked = 0
    for fn in frame_numbers:
        rows = run.gt[run.gt[:, 0] == fn]
        frame = frames[fn]
        belt = _belt_lab(frame, rows[:, 2:6])
        lab = cv2.cvtColor(frame, cv2.COLOR_BGR2LAB).astype(np.float32)
        for r in rows[rows[:, 8] >= 1.0]:
            x, y, w, h = r[2:6].astype(int)
            centre = lab[y + h * 3 // 8 : y + h * 5 // 8, x + w * 3 // 8 : x + w * 5 // 8].reshape(-1, 3)
            dist = np.linalg.norm(np.median(centre, axis=0) - belt)
            assert dist > 20, f"frame {fn}, object {int(r[1])}: looks like the belt (Lab distance {dist:.1f})"
            checked += 1
    assert checked >= 5


def test_objects_are_drawn_where_gt_says(cookies):
    check_drawn_where_gt_says(cookies, [1, 45, 90])


def test_box_edges_match_the_pixels(cookies):
    """The box is tight: the object reaches every side of its box, and above it lies the belt."""
    fn = 60
    _, frames, _ = read_frames(cookies.result.video, {fn})
    frame = frames[fn]
    rows = cookies.gt[cookies.gt[:, 0] == fn]
    belt = _belt_lab(frame, rows[:, 2:6])
    dist = np.linalg.norm(cv2.cvtColor(frame, cv2.COLOR_BGR2LAB).astype(np.float32) - belt, axis=2)
    obj = cv2.morphologyEx((dist > 25).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    checked = 0
    for r in rows[rows[:, 8] >= 1.0]:
        x, y, w, h = r[2:6].astype(int)
        m = obj[y : y + h, x : x + w]
        for side in (m[:3], m[-3:], m[:, :3], m[:, -3:]):
            assert side.any(), f"object {int(r[1])}: box larger than the drawn object"
        # a strip 3-5 px above the box (shadows fall down-right) is belt, unless a neighbour is there
        x0, x1, y0, y1 = x + w // 4, x + 3 * w // 4, y - 5, y - 3
        near = [
            o
            for o in rows[:, 2:6]
            if o[0] < x1 + 2
            and o[0] + o[2] > x0 - 2
            and o[1] < y1 + 2
            and o[1] + o[3] > y0 - 2
            and not (o == r[2:6]).all()
        ]
        if y0 >= 40 and not near:
            assert np.median(dist[y0:y1, x0:x1]) < 20, f"object {int(r[1])}: drawn above its box"
            checked += 1
    assert checked >= 3


# ----------------------------------------------------------------------------- determinism and content


def test_same_seed_same_gt_other_seed_different(cookies, tmp_path):
    again = synthesize(tmp_path / "again", preset="cookies", seed=5, seconds=3)
    assert again.gt.read_bytes() == cookies.result.gt.read_bytes()
    assert again.labels.read_bytes() == cookies.result.labels.read_bytes()
    other = synthesize(tmp_path / "other", preset="cookies", seed=6, seconds=3)
    assert other.gt.read_bytes() != cookies.result.gt.read_bytes()


def test_ten_seconds_of_cookies_hold_both_anomaly_kinds(cookies, tmp_path):
    calls = []
    r = synthesize(tmp_path, seed=5, seconds=10, progress=lambda done, total: calls.append((done, total)))
    # a longer video with the same seed starts exactly like the shorter one
    lines = r.gt.read_text().splitlines()
    assert [ln for ln in lines if int(ln.split(",")[0]) <= 90] == cookies.result.gt.read_text().splitlines()
    labels = read_labels(r.labels)
    kinds = [v["kind"] for v in labels.values()]
    assert "broken" in kinds and "stacked" in kinds
    assert r.kinds["broken"] + r.kinds["stacked"] == r.anomalies
    assert 0.15 <= r.anomalies / r.objects <= 0.35
    # about three per second enter the view
    gt = read_gt(r.gt)
    first = {}
    for row in gt:
        first.setdefault(int(row[1]), row[0])
    entered = sum(1 for f in first.values() if f > 1)
    assert 20 <= entered <= 40
    assert calls[-1] == (300, 300) and len(calls) == 300


def test_vertical_preset_moves_down(vertical):
    r = vertical.result
    assert r.size == (720, 1280)
    n, _, size = read_frames(r.video)
    assert (n, size) == (r.frames, (720, 1280))
    moved = 0
    for i in vertical.labels:
        rows = vertical.rows(i)
        full = rows[rows[:, 8] >= 1.0]
        if len(full) >= 5:
            assert (np.diff(full[:, 3]) == 8).all(), "moves down at 8 px/frame"
            assert (full[:, 2] == full[0, 2]).all(), "does not move sideways"
            moved += 1
        if 1 < rows[0, 0] < r.frames - 3:  # enters at the top, growing downwards
            assert rows[0, 3] == 0 and rows[0, 8] < 1
            assert rows[1, 5] > rows[0, 5]
    assert moved >= 3
    assert (vertical.gt[:, 3] + vertical.gt[:, 5] <= 1280).all()
    assert (vertical.gt[:, 2] + vertical.gt[:, 4] <= 720).all()


def test_vertical_objects_are_drawn_where_gt_says(vertical):
    check_drawn_where_gt_says(vertical, [1, 60])


def test_light_on_dark_uses_the_real_photos(tmp_path):
    folder = photos_folder()  # ship with the package: never missing
    classes = {}
    for line in (folder / "train.manifest").read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            classes[entry["source-ref"]] = entry["anomaly-label-metadata"]["class-name"]
    r = synthesize(tmp_path, preset="light-on-dark", seed=3, seconds=3)
    labels = read_labels(r.labels)
    assert len(r.sources) == r.objects == len(labels)
    from_anomaly_photos = 0
    for oid, source in enumerate(r.sources, start=1):
        assert source in classes, source
        assert labels[oid]["label"] == classes[source]
        assert labels[oid]["kind"] == ("broken" if classes[source] == "anomaly" else "normal")
        from_anomaly_photos += classes[source] == "anomaly"
    assert r.anomalies == from_anomaly_photos > 0
    run = Run(r)
    # light objects on a dark belt
    _, frames, _ = read_frames(r.video, {45})
    frame = frames[45]
    lum = cv2.cvtColor(frame, cv2.COLOR_BGR2LAB)[..., 0].astype(float)
    rows = run.gt[(run.gt[:, 0] == 45) & (run.gt[:, 8] >= 1)]
    belt = _belt_lab(frame, run.gt[run.gt[:, 0] == 45][:, 2:6])[0]
    assert belt < 90
    for x, y, w, h in rows[:, 2:6].astype(int):
        assert np.median(lum[y + h * 3 // 8 : y + h * 5 // 8, x + w * 3 // 8 : x + w * 5 // 8]) > belt + 50
    check_drawn_where_gt_says(run, [1, 45])


def test_missing_photos_name_the_folder_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(synth.SHARED_ENV, str(tmp_path / "nowhere"))
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        synthesize(out, preset="light-on-dark", seconds=1)
    assert str(tmp_path / "nowhere") in str(err.value) and synth.SHARED_ENV in str(err.value)
    assert not out.exists()


def test_missing_packaged_photos_say_the_install_is_incomplete(tmp_path, monkeypatch):
    from conveyor_qc import shared

    monkeypatch.delenv(synth.SHARED_ENV, raising=False)
    assert synth.cookie_photos_dir() == shared.PACKAGE_DATA / "aws-cookies"  # the default: the packaged copy
    monkeypatch.setattr(shared, "PACKAGE_DATA", tmp_path / "lost")
    with pytest.raises(synth.SynthDataError) as err:
        synthesize(tmp_path / "out", preset="light-on-dark", seconds=1)
    assert str(tmp_path / "lost" / "aws-cookies" / "train.manifest") in str(err.value)
    assert "reinstall conveyor-qc" in str(err.value) and synth.SHARED_ENV in str(err.value)


# ----------------------------------------------------------------------------- bad arguments


def test_unknown_preset_names_the_known_ones_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        synthesize(out, preset="biscuits", seconds=1)
    for name in PRESETS:
        assert name in str(err.value)
    assert "biscuits" in str(err.value)
    assert not out.exists()
    out.mkdir()
    with pytest.raises(ValueError):
        synthesize(out, preset="biscuits")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, "long"])
def test_bad_seconds(tmp_path, seconds):
    with pytest.raises(ValueError, match="seconds"):
        synthesize(tmp_path / "out", seconds=seconds)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, "x"])
def test_bad_seed(tmp_path, seed):
    with pytest.raises(ValueError, match="seed"):
        synthesize(tmp_path / "out", seed=seed, seconds=1)


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="out_dir"):
        synthesize(blocker, seconds=1)
    with pytest.raises(ValueError, match="out_dir"):
        synthesize(blocker / "sub", seconds=1)
    assert blocker.read_text() == "not a folder"


def test_short_clip_and_existing_outputs_replaced(tmp_path):
    (tmp_path / "gt.txt").write_text("old")
    with pytest.raises(SynthError, match="already holds a clip"):
        synthesize(tmp_path, preset="hard", seed=1, seconds=0.5)
    assert (tmp_path / "gt.txt").read_text() == "old"
    r = synthesize(tmp_path, preset="hard", seed=1, seconds=0.5, replace=True)
    assert r.frames == 15
    gt = read_gt(r.gt)
    assert gt[:, 0].max() <= 15 and len(gt) > 0
    n, _, size = read_frames(r.video)
    assert (n, size) == (15, (1280, 720))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.txt", "labels.csv", "video.mp4"]
