"""`conveyor-qc inspect`: the pictures and numbers of what the detector sees on one frame
are written, agree with the core's own mask and detections and with the ground truth,
and bad input gets one clear line with nothing written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import run_cli as cli
from conveyor_qc import _core
from conveyor_qc.config import Config
from conveyor_qc.evaluation.metrics import iou_matrix
from conveyor_qc.run.video import VideoReader

FILES = (
    "inspect.png",
    "inspect.json",
    "frame.png",
    "light.png",
    "classes.png",
    "mask.png",
    "components.png",
    "boxes.png",
)


@pytest.fixture(scope="module")
def cookies(make_clip):
    return make_clip("cookies", seed=3, seconds=2)


@pytest.fixture(scope="module")
def inspected(cookies, tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect") / "out"
    r = cli("inspect", cookies.video, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r, json.loads((out / "inspect.json").read_text())


def core_view(video, frame: int, config: Config | None = None):
    """The mask and detections of frame ``frame`` (1-based), computed here as a run does:
    every frame through the core's MaskBuilder and Detector."""
    config = config or Config()
    R = config.track.downscale
    builder, detector = _core.MaskBuilder(config.core.mask), _core.Detector(config.core.detect)
    with VideoReader(video) as reader:
        for i, image in enumerate(reader, 1):
            mask = builder.build(_core.downscale(image, R))
            dets = detector.detect(mask, [], R)
            if i == frame:
                return image, mask, dets
    raise AssertionError(f"the clip has fewer than {frame} frames")


def judged_recall(gt: np.ndarray, frame: int, boxes: list) -> tuple[int, int]:
    """(judged objects with a detection at IoU >= 0.5, judged objects) on one frame;
    judged: at least half visible."""
    rows = gt[(gt[:, 0] == frame) & (gt[:, 8] >= 0.5)]
    hit = int((iou_matrix(rows[:, 2:6], np.asarray(boxes, float).reshape(-1, 4)) >= 0.5).any(axis=1).sum())
    return hit, len(rows)


def test_writes_every_file(inspected):
    out, r, data = inspected
    for name in FILES:
        assert (out / name).is_file(), name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    assert sorted(data["files"]) == sorted(FILES)
    # The default frame: the first after the belt model has learnt, (8 - 1) * 4 + 1.
    assert data["frame"] == 29 and data["frame_requested"] is None
    assert data["frame_size"] == [1280, 720] and data["mask_size"] == [640, 360]
    belt = data["belt_model"]
    assert belt["frames_learnt"] == 8 and belt["past_limits"] == [] and belt["colour"] is True
    for key in (
        "belt_lab",
        "belt_sigma",
        "threshold",
        "belt_region",
        "light_range",
        "object_share",
        "ambiguous_share",
        "typical_area",
        "limits",
    ):
        assert key in belt, key
    assert data["detect"]["min_area"] == 400 and data["detect"]["split_solidity"] == pytest.approx(0.93)
    assert data["config"]["track"]["downscale"] == 0.5
    assert data["warnings"] == []
    # stdout: the frame, the objects, the belt's figures.
    assert "frame 29 of 60" in r.stdout
    assert f"{len(data['detections'])} objects from {len(data['components'])} mask components" in r.stdout
    assert "belt: Lab" in r.stdout and "belt region" in r.stdout and "inspect.png" in r.stdout
    # The pictures: the sheet holds every panel (three columns of at least 560 px), the frame is
    # the frame, the mask is the exact 0/255 mask at the mask's size.
    sheet = cv2.imread(str(out / "inspect.png"))
    assert sheet.shape[1] >= 3 * 560 and sheet.shape[0] > 2 * 315
    assert cv2.imread(str(out / "frame.png")).shape == (720, 1280, 3)
    assert cv2.imread(str(out / "boxes.png")).shape[1] == 1280
    mask = cv2.imread(str(out / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (360, 640) and set(np.unique(mask)) <= {0, 255}
    for name in ("light.png", "classes.png", "components.png"):
        assert cv2.imread(str(out / name)).shape[1] == 640, name


def test_detections_are_the_cores(inspected, cookies):
    """inspect.json's mask and detections are what the core's MaskBuilder and Detector give on
    that frame, and they find the clip's objects there."""
    out, _, data = inspected
    image, mask, dets = core_view(cookies.video, data["frame"])
    assert np.array_equal(cv2.imread(str(out / "mask.png"), cv2.IMREAD_UNCHANGED), mask)
    assert np.array_equal(cv2.imread(str(out / "frame.png")), image)
    got = data["detections"]
    assert len(got) == len(dets.boxes) > 0
    for d, box, area, solidity in zip(got, dets.boxes, dets.area, dets.solidity):
        assert d["box"] == pytest.approx(box.tolist(), abs=0.06)
        assert d["area"] == pytest.approx(float(area), abs=0.06)
        assert d["solidity"] == pytest.approx(float(solidity), abs=1e-4)
    # Components (OpenCV's, on the same mask) own every detection once; a split one owns several.
    n, _ = cv2.connectedComponents(mask, connectivity=8)
    assert len(data["components"]) == n - 1
    # Every detection has one owner (a component grouped into another lists the group's, as a piece).
    owned = sorted(k for c in data["components"] if c["status"] != "grouped" for k in c["detections"])
    assert owned == list(range(1, len(got) + 1))
    for c in data["components"]:
        # The core's own decision (Detector.components()), and the figures it took it by.
        assert c["status"] in ("object", "kept whole", "split", "grouped", "crumb", "too small", "too large", "dropped")
        assert (c["status"] == "split") == (c["status"] != "grouped" and len(c["detections"]) > 1)
        if not c["detections"]:
            assert c["status"] in ("crumb", "too small", "too large", "dropped")
        elif c["status"] in ("object", "kept whole"):
            assert c["solidity"] == pytest.approx(got[c["detections"][0] - 1]["solidity"], abs=2e-4)
        if c["status"] == "object":
            assert c["solidity"] >= data["detect"]["split_solidity"]
    assert data["counts"]["detections"] == len(got)
    assert all(d["split"] == (data["components"][d["component"] - 1]["status"] == "split") for d in got)
    # Against the ground truth of that frame: the judged objects are found.
    hit, judged = judged_recall(cookies.gt, data["frame"], [d["box"] for d in got])
    assert judged >= 5 and hit >= 0.9 * judged, (hit, judged)
    assert abs(len(got) - judged) <= max(2, judged // 5)


def test_mono_camera(make_clip, tmp_path):
    clip = make_clip("mono", seed=2, seconds=2)
    out = tmp_path / "mono"
    r = cli("inspect", clip.video, "--out", out, "--frame", 40, "-q")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "inspect.json").read_text())
    assert data["frame"] == 40 and data["frame_requested"] == 40
    assert data["belt_model"]["colour"] is False
    hit, judged = judged_recall(clip.gt, 40, [d["box"] for d in data["detections"]])
    assert judged >= 5 and hit >= 0.9 * judged, (hit, judged)
    assert r.stdout.strip().endswith("inspect.png")  # -q: no summary, no progress
    assert r.stderr == ""


def test_settings_and_nothing_found(cookies, tmp_path):
    """--config and --set reach the detector; a frame where nothing is found says so, with advice."""
    config = tmp_path / "c.toml"
    config.write_text("[detect]\nmin_area = 100000.0\n")
    out = tmp_path / "big"
    r = cli("inspect", cookies.video, "--out", out, "--config", config, "--set", "detect.split_solidity=0.5")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "inspect.json").read_text())
    assert data["detect"]["min_area"] == 100000 and data["detect"]["split_solidity"] == 0.5
    assert data["detections"] == [] and data["counts"]["too_small"] == len(data["components"]) > 0
    assert [w["code"] for w in data["warnings"]] == ["nothing-found"]
    assert "warning: no object on frame 29" in r.stdout and "mask.mode=threshold" in r.stdout


def test_threshold_mode(cookies, tmp_path):
    """No belt model: the sheet says so instead of drawing one."""
    out = tmp_path / "thr"
    r = cli("inspect", cookies.video, "--out", out, "--set", 'mask.mode="threshold"', "--frame", 3)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "inspect.json").read_text())
    assert data["belt_model"] == {"mode": "threshold", "frames_learnt": 0}
    assert all((out / name).is_file() for name in FILES)
    assert "no belt model" in r.stdout


def test_short_video_inspects_its_last_frame(make_clip, tmp_path):
    clip = make_clip("cookies", seed=4, seconds=0.5)  # 15 frames: the model learns from frames 1, 5, 9, 13
    out = tmp_path / "short"
    r = cli("inspect", clip.video, "--out", out)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "inspect.json").read_text())
    assert data["frame"] == 15
    assert data["belt_model"]["frames_learnt"] == 4
    assert "still-learning" in [w["code"] for w in data["warnings"]]
    assert "learnt from 4 of its 8 frames" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.mp4"], "video not found: missing.mp4"),
        (["{video}", "--frame", "500"], "--frame 500 is past the end of {video}: it has 60 frames"),
        (["{video}", "--frame", "62"], "--frame 62 is past the end of {video}: it has 60 frames"),
        (["{video}", "--set", "detect.min_area=-5"], "detect.min_area must be in"),
        (["{video}", "--set", "mask.nope=1"], "unknown key 'mask.nope'"),
        (["{video}", "--set", "novalue"], "--set expects KEY=VALUE"),
    ],
)
def test_bad_input(cookies, tmp_path, args, message):
    out = tmp_path / "out"
    r = cli("inspect", *(a.format(video=cookies.video) for a in args), "--out", out)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("conveyor-qc inspect: error: ")
    assert message.format(video=cookies.video) in line
    assert not out.exists() and r.stdout == ""


def test_bad_output_folder(cookies, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    r = cli("inspect", cookies.video, "--out", target)
    assert r.returncode == 1 and "exists and is not a folder" in r.stderr
    assert target.read_text() == "x"


@pytest.mark.parametrize(
    "args", [["{video}"], ["{video}", "--out", "x", "--frame", "0"], ["{video}", "--out", "x", "--frame", "two"]]
)
def test_usage(cookies, tmp_path, args):
    r = cli("inspect", *(a.format(video=cookies.video) for a in args), cwd=tmp_path)
    assert r.returncode == 2 and "usage: conveyor-qc inspect" in r.stderr
    assert not (tmp_path / "x").exists()


def test_help():
    r = cli("inspect", "--help")
    assert r.returncode == 0
    for option in ("--frame N", "--out DIR", "--config FILE", "--set KEY=VALUE", "-q, --quiet", "docs/inspect.md"):
        assert option in r.stdout, option
    top = cli("--help")
    assert "inspect" in top.stdout
