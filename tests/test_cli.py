"""`conveyor-qc` end to end: outputs and their formats, and bad input that
gets a clear error with nothing written half-way."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from conftest import read_mot
from conftest import run_cli as cli


@pytest.fixture(scope="module")
def short_clip(make_clip):
    return make_clip("cookies", seed=5, seconds=4)


@pytest.fixture(scope="module")
def full_run(short_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "out"
    r = cli("run", short_clip.video, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_run_writes_every_output(full_run, short_clip):
    out, r = full_run
    for name in ("tracks.txt", "objects.csv", "annotated.mp4", "summary.json", "crops"):
        assert (out / name).exists(), name
    assert not list(out.glob(".*partial*")), "temporary files left behind"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] > 0 and summary["frames"] == 120
    assert summary["complete"] is True
    assert summary["config"]["track"]["kind"] == "none"
    assert f"{summary['objects']} objects" in r.stdout

    tracks = read_mot(out / "tracks.txt")
    assert tracks.shape[1] == 10
    assert tracks[:, 0].min() >= 1 and tracks[:, 0].max() <= 120
    assert set(tracks[:, 6]) == {1.0} and set(tracks[:, 7]) == {-1.0}
    with open(out / "objects.csv", newline="") as fh:
        objects = list(csv.DictReader(fh))
    assert list(objects[0]) == ["track_id", "first_frame", "last_frame", "frames", "x", "y", "w", "h", "label", "score"]
    assert len(objects) == summary["objects"] == len(np.unique(tracks[:, 1]))
    assert {o["label"] for o in objects} == {"unknown"}

    crops = sorted((out / "crops").glob("*/*.jpg"))  # JPEG by default (output.crop_format)
    assert crops and summary["crops_written"] == len(crops)
    assert sorted(p for p in (out / "crops").rglob("*") if p.is_file()) == crops
    assert summary["config"]["output"]["crop_format"] == "jpg" and summary["config"]["output"]["crop_quality"] == 95
    ids = {int(o["track_id"]) for o in objects}
    for p in crops[:20]:
        assert int(p.parent.name) in ids
        assert p.read_bytes()[:3] == b"\xff\xd8\xff"
        img = cv2.imread(str(p))
        assert img.shape == (384, 384, 3)
        frame = int(p.stem)
        assert 1 <= frame <= 120

    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    ok, img = cap.read()
    assert ok and img.shape == (360, 640, 3)  # output.video_scale 0.5


def test_video_scale(full_run, short_clip, tmp_path):
    """annotated.mp4 is at half the input's size by default (output.video_scale 0.5) and at its
    size with 1 and no cap on its pixels (output.video_max_pixels 0): the input's frames under
    boxes, numbers and counts drawn at the video's own size, every frame encoded by the encoder
    thread before the file takes its name. With the cap, a chosen scale it overrules is said."""
    capped = cli("run", short_clip.video, "--out", tmp_path / "capped", "--no-crops", "--set", "output.video_scale=1")
    assert capped.returncode == 0, capped.stderr
    assert "annotated.mp4 is 640x360, less than output.video_scale 1 makes" in capped.stderr
    assert "video_max_pixels" not in cli("run", short_clip.video, "--out", tmp_path / "default", "--no-crops").stderr
    out = tmp_path / "fullsize"
    r = cli(
        "run",
        short_clip.video,
        "--out",
        out,
        "--no-crops",
        "-q",
        "--set",
        "output.video_scale=1",
        "--set",
        "output.video_max_pixels=0",
    )
    assert r.returncode == 0, r.stderr
    source = cv2.VideoCapture(str(short_clip.video))
    half, full = cv2.VideoCapture(str(full_run[0] / "annotated.mp4")), cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(half.get(cv2.CAP_PROP_FRAME_COUNT)) == int(full.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    for _ in range(60):
        ok_s, img_s = source.read()
        ok_h, img_h = half.read()
        ok_f, img_f = full.read()
    assert ok_s and ok_h and ok_f and img_h.shape == (360, 640, 3) and img_f.shape == (720, 1280, 3)
    for img in (img_h, img_f):
        under = cv2.resize(img_s, img.shape[1::-1], interpolation=cv2.INTER_AREA)
        changed = np.abs(under.astype(int) - img.astype(int)).max(axis=2) > 40
        assert 0.01 < changed.mean() < 0.15, changed.mean()  # the drawing, not a different picture
    bad = cli("run", short_clip.video, "--out", tmp_path / "bad", "-q", "--set", "output.video_scale=0")
    assert bad.returncode != 0 and "output.video_scale" in bad.stderr


def test_no_video_no_crops(short_clip, tmp_path):
    out = tmp_path / "o"
    r = cli("run", short_clip.video, "--out", out, "--no-video", "--no-crops", "-q")
    assert r.returncode == 0, r.stderr
    assert not (out / "annotated.mp4").exists() and not (out / "crops").exists()
    assert (out / "tracks.txt").stat().st_size > 0


@pytest.mark.parametrize("command", ["", "run", "synth", "config"])
def test_help(command):
    r = cli(*([command] if command else []), "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def _no_output(out):
    return not out.exists() or not any(out.iterdir())


def test_missing_video(tmp_path):
    out = tmp_path / "o"
    r = cli("run", tmp_path / "nope.mp4", "--out", out)
    assert r.returncode == 1
    assert "video not found" in r.stderr and "nope.mp4" in r.stderr
    assert "Traceback" not in r.stderr
    assert _no_output(out)


def test_empty_and_non_video_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    for path, words in ((empty, "empty"), (text, "notes.mp4")):
        out = tmp_path / f"o-{path.stem}"
        r = cli("run", path, "--out", out)
        assert r.returncode == 1, r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr
        assert _no_output(out)


def test_truncated_video(short_clip, tmp_path):
    data = short_clip.video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    r = cli("run", cut, "--out", out, "--no-video")
    assert "Traceback" not in r.stderr
    if r.returncode == 1:  # the container's index was lost: nothing readable, nothing written
        assert "cut.mp4" in r.stderr
        assert _no_output(out)
    else:  # the frames that could be read, and the exit code that says so
        assert r.returncode == 3, r.stderr
        assert "ended before" in r.stderr
        assert (out / "summary.json").exists()


def test_png_crops_on_request(short_clip, full_run, tmp_path):
    """--set output.crop_format=png: the same crops, lossless, as .png files."""
    out = tmp_path / "o"
    r = cli("run", short_clip.video, "--out", out, "--no-video", "-q", "--set", "output.crop_format=png")
    assert r.returncode == 0, r.stderr
    pngs = sorted((out / "crops").rglob("*.png"))
    assert pngs and sorted(p for p in (out / "crops").rglob("*") if p.is_file()) == pngs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["crops_written"] == len(pngs) and summary["config"]["output"]["crop_format"] == "png"
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # the same objects and frames as the JPEG run; PNG is lossless, JPEG at quality 95 close to it
    jpgs = sorted((full_run[0] / "crops").rglob("*.jpg"))
    rel = lambda ps, root: [p.relative_to(root).with_suffix("").as_posix() for p in ps]  # noqa: E731
    assert rel(pngs, out / "crops") == rel(jpgs, full_run[0] / "crops")
    a, b = cv2.imread(str(pngs[0])), cv2.imread(str(jpgs[0]))
    assert a.shape == b.shape == (384, 384, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0
    assert sum(p.stat().st_size for p in jpgs) < 0.5 * sum(p.stat().st_size for p in pngs)


@pytest.mark.parametrize(
    "setting, words",
    [
        ("output.crop_format=gif", ["output.crop_format", "jpg, png", "'gif'"]),
        ("output.crop_format=jpeg", ["output.crop_format", "jpg, png", "'jpeg'"]),
        ("output.crop_format=1", ["output.crop_format", "a string"]),
        ("output.crop_quality=49", ["output.crop_quality", "[50, 100]", "49"]),
        ("output.crop_quality=101", ["output.crop_quality", "[50, 100]", "101"]),
        ("output.crop_quality=90.5", ["output.crop_quality", "integer"]),
    ],
)
def test_bad_crop_setting_names_the_key(short_clip, tmp_path, capsys, setting, words):
    from conveyor_qc.cli import main

    out = tmp_path / "o"
    assert main(["run", str(short_clip.video), "--out", str(out), "-q", "--set", setting]) == 1
    err = capsys.readouterr().err
    assert err.startswith("conveyor-qc run: error: --set: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    assert _no_output(out)


def test_bad_config_writes_nothing(short_clip, tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("[track]\ndownscale = 3\n")
    out = tmp_path / "o"
    r = cli("run", short_clip.video, "--out", out, "--config", conf)
    assert r.returncode == 1
    assert "track.downscale" in r.stderr and "Traceback" not in r.stderr
    assert _no_output(out)
    r = cli("run", short_clip.video, "--out", out, "--set", "track.kind=kfc")
    assert r.returncode == 1 and "track.kind" in r.stderr


def test_unwritable_output(short_clip, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("run", short_clip.video, "--out", blocker / "sub")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "output folder" in r.stderr or "sub" in r.stderr


def test_config_command_round_trip(tmp_path):
    out = tmp_path / "c.toml"
    r = cli("config", "--set", "track.kind=csrt", "--set", "track.downscale=0.4", "--out", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert 'kind = "csrt"' in text and "downscale = 0.4" in text
    r = cli("config", "--config", out)
    assert r.returncode == 0 and 'kind = "csrt"' in r.stdout


def test_synth_cli(tmp_path):
    r = cli("synth", tmp_path / "s", "--seconds", "1", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s" / "video.mp4").exists()
    r = cli("synth", tmp_path / "t", "--preset", "nope")
    assert r.returncode == 1 and "cookies" in r.stderr


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_closed_stdout_ends_quietly(unbuffered):
    """`conveyor-qc quality RUN | head`: output nobody reads any more ends the command quietly with
    141 (as a shell reports SIGPIPE), not with "error: Broken pipe" nor a traceback at exit, whether
    the output is buffered (it fails at the end) or not (at the first print). The pipe's reader is
    closed before the command starts, so its first write fails."""
    import os
    import subprocess

    from conftest import CLI

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run([*CLI, "config"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    finally:
        os.close(write_end)
    assert (r.returncode, r.stderr) == (141, "")
