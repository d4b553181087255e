"""Bad input to `conveyor-qc run`: corrupt, truncated, zero-length and non-video files,
frames of other colour formats, odd and tiny frame sizes. Each gets a clear error
(exit code 1, nothing written) or the frames that could be read (exit code 0, or 3 when
the input ended before it should, with complete outputs), never a crash or a hang.
Every run is a subprocess with a timeout, as a user runs it."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from conftest import read_mot, run_cli
from conveyor_qc.run.job import run_video
from conveyor_qc.run.video import VideoError, to_bgr8

OUTPUT_NAMES = {"summary.json", "objects.csv", "tracks.txt", "crops", "annotated.mp4", "report.html"}


def cli(*args):
    """`conveyor-qc ARGS`; a hang fails the test (subprocess.TimeoutExpired)."""
    return run_cli(*args, errors="replace", timeout=120)


def assert_error(r, out, *words):
    """Exit code 1, one line naming the problem, and nothing written."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("conveyor-qc run: error: "), last
    for w in words:
        assert w in last, (w, last)
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def assert_complete(r, out, frames: int | None = None) -> dict:
    """Exit code 0 or 3 and complete outputs that agree with each other; returns summary.json."""
    assert r.returncode in (0, 3), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert {p.name for p in out.iterdir()} <= OUTPUT_NAMES, sorted(p.name for p in out.iterdir())
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "objects.csv", newline="") as fh:
        objects = list(csv.DictReader(fh))
    assert len(objects) == summary["objects"]
    if (out / "tracks.txt").stat().st_size:
        tracks = read_mot(out / "tracks.txt")
        assert tracks[:, 0].max() <= summary["frames"]
        assert (tracks[:, 2] + tracks[:, 4] <= summary["width"] + 1).all()
        assert (tracks[:, 3] + tracks[:, 5] <= summary["height"] + 1).all()
    if frames is not None:
        assert summary["frames"] == frames
    if r.returncode == 3:
        assert not summary["complete"] and summary["stop_reason"]
        assert summary["stop_reason"] in r.stderr and "the outputs hold the frames that could be read" in r.stderr
    else:
        assert summary["complete"] and summary["stop_reason"] is None
    return summary


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("cookies", seed=5, seconds=4)


@pytest.fixture(scope="module")
def small_frames(clip):
    """The clip's first 24 frames at 640x360 (objects in view from the first frame)."""
    cap = cv2.VideoCapture(str(clip.video))
    frames = []
    while len(frames) < 24:
        ok, frame = cap.read()
        assert ok
        frames.append(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))
    return frames


@pytest.fixture(scope="module")
def avi(small_frames, tmp_path_factory):
    """A Motion-JPEG AVI of 24 frames: it can be read up to where it is cut (an MP4 written
    by OpenCV keeps its index at the end, so any cut loses every frame)."""
    path = tmp_path_factory.mktemp("avi") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
    for f in small_frames:
        writer.write(f)
    writer.release()
    return path


def write_sequence(folder, images) -> str:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"img_{i:04d}.png"), image)
    return str(folder / "img_%04d.png")


# --- files that are not videos -------------------------------------------------------------------


def test_zero_length_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_error(cli("run", empty, "--out", tmp_path / "o"), tmp_path / "o", "empty (0 bytes)", "empty.mp4")


def test_text_file_named_mp4(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 200)
    assert_error(
        cli("run", text, "--out", tmp_path / "o"),
        tmp_path / "o",
        "cannot open",
        "notes.mp4",
        "not a video OpenCV can decode",
    )


def test_random_bytes_named_mp4(tmp_path):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(7).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    assert_error(cli("run", noise, "--out", tmp_path / "o"), tmp_path / "o", "noise.mp4")


def test_folder_and_missing_pattern(tmp_path):
    assert_error(cli("run", tmp_path, "--out", tmp_path / "o"), tmp_path / "o", "is a folder")
    assert_error(
        cli("run", tmp_path / "img_%04d.png", "--out", tmp_path / "o"),
        tmp_path / "o",
        "no image matches the sequence pattern",
    )


def test_camera_that_does_not_exist(tmp_path):
    assert_error(cli("run", "97", "--out", tmp_path / "o"), tmp_path / "o", "cannot open 97", "a camera that answers")


def test_png_renamed_mp4_is_read_as_one_frame(small_frames, tmp_path):
    """FFmpeg recognises a PNG by its content, whatever its name: a 16-bit, 4-channel PNG
    named .mp4 is a one-frame video (converted to 8-bit BGR), not an error."""
    png = cv2.cvtColor(small_frames[0], cv2.COLOR_BGR2BGRA).astype(np.uint16) * 257
    fake = tmp_path / "photo.mp4"
    fake.write_bytes(cv2.imencode(".png", png)[1].tobytes())
    r = cli("run", fake, "--out", tmp_path / "o", "--no-video")
    assert r.returncode == 0, r.stderr
    summary = assert_complete(r, tmp_path / "o", frames=1)
    assert (summary["width"], summary["height"]) == (640, 360)


# --- damaged videos --------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.95])
def test_truncated_mp4_is_an_error(clip, tmp_path, fraction):
    """OpenCV's MP4 has its index (moov) at the end: cut anywhere, nothing can be read."""
    data = clip.video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert_error(cli("run", cut, "--out", tmp_path / "o"), tmp_path / "o", "cut.mp4", "damaged or truncated")


def test_truncated_avi_gives_the_frames_before_the_cut(avi, tmp_path):
    data = avi.read_bytes()
    read = []
    for fraction in (0.001, 0.2, 0.45, 0.7):  # a cut in the last 2 frames is within a header's slack
        cut = tmp_path / f"cut-{fraction}.avi"
        cut.write_bytes(data[: int(len(data) * fraction)])
        out = tmp_path / f"o-{fraction}"
        r = cli("run", cut, "--out", out, "--no-video")
        if fraction == 0.001:  # the header itself is cut
            assert_error(r, out, cut.name)
            continue
        assert r.returncode == 3, r.stderr
        summary = assert_complete(r, out)
        assert 0 < summary["frames"] < 24
        assert f"the video ended after {summary['frames']} of the 24 frames it announced" in r.stderr
        read.append(summary["frames"])
    assert read == sorted(read) and len(set(read)) == 3  # more of the file, more frames


@pytest.mark.parametrize("container", ["mp4", "avi"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_bytes(clip, avi, tmp_path, container, seed):
    """1000 random bytes of the file changed (fixed seed): decoding errors in the frames,
    the header or the index. An error naming the file, or the frames that could be read."""
    source = clip.video if container == "mp4" else avi
    data = np.frombuffer(source.read_bytes(), np.uint8).copy()
    rng = np.random.default_rng(seed)
    where = rng.integers(0, data.size, 1000)
    data[where] ^= rng.integers(1, 256, where.size).astype(np.uint8)
    damaged = tmp_path / f"damaged.{container}"
    damaged.write_bytes(data.tobytes())
    out = tmp_path / "o"
    r = cli("run", damaged, "--out", out, "--no-video")
    if r.returncode == 1:
        assert_error(r, out, "damaged")
    else:
        assert_complete(r, out)


# --- colour formats and frame sizes -----------------------------------------------------------------


def test_colour_formats_give_the_same_objects(small_frames, tmp_path):
    """Image sequences read as stored (OpenCV's image-sequence reader): 16-bit frames are
    the 8-bit ones to the last bit, alpha is dropped, grey is grey either way."""
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in small_frames]
    kinds = {
        "bgr8": small_frames,
        "bgr16": [f.astype(np.uint16) * 257 for f in small_frames],
        "bgra8": [cv2.cvtColor(f, cv2.COLOR_BGR2BGRA) for f in small_frames],
        "bgra16": [cv2.cvtColor(f, cv2.COLOR_BGR2BGRA).astype(np.uint16) * 257 for f in small_frames],
        "grey8": grey,
        "grey16": [g.astype(np.uint16) * 257 for g in grey],
    }
    tracks = {}
    for name, images in kinds.items():
        pattern = write_sequence(tmp_path / name, images)
        out = tmp_path / f"o-{name}"
        result = run_video(pattern, out, video=False, crops=False)
        assert result.summary["frames"] == len(images) and result.summary["source_kind"] == "sequence"
        tracks[name] = (out / "tracks.txt").read_text()
    assert tracks["bgr8"].count("\n") > 24  # objects found, so the comparison means something
    assert tracks["bgr16"] == tracks["bgra8"] == tracks["bgra16"] == tracks["bgr8"]
    assert tracks["grey16"] == tracks["grey8"]


def test_colour_format_through_the_cli(small_frames, tmp_path):
    pattern = write_sequence(
        tmp_path / "grey16", [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257 for f in small_frames[:8]]
    )
    r = cli("run", pattern, "--out", tmp_path / "o", "--no-video")
    assert r.returncode == 0, r.stderr
    assert_complete(r, tmp_path / "o", frames=8)


def test_odd_frame_size(small_frames, tmp_path):
    odd = [f[:-1, :-1] for f in small_frames]  # 639x359
    pattern = write_sequence(tmp_path / "odd", odd)
    r = cli("run", pattern, "--out", tmp_path / "o")
    summary = assert_complete(r, tmp_path / "o", frames=len(odd))
    assert r.returncode == 0 and (summary["width"], summary["height"]) == (639, 359)
    assert summary["objects"] > 0
    cap = cv2.VideoCapture(str(tmp_path / "o" / "annotated.mp4"))
    assert cap.isOpened() and cap.read()[0]


@pytest.mark.parametrize(
    "size, downscale, ok",
    [
        ((7, 5), None, True),  # R = 0.5: 4x2, small but workable
        ((1, 1), None, False),  # R = 0.5: 0x0
        ((3, 1), None, False),  # R = 0.5: 2x0
        ((1, 1), 1.0, True),  # R = 1: 1x1 (without the annotated video: MPEG-4 needs 2x2)
        ((9, 9), 0.05, False),  # 0x0
    ],
)
def test_tiny_frames(tmp_path, size, downscale, ok):
    """Frames smaller than the downscale allows are refused before anything is written (the
    core's resize would fail on them); any frame that keeps a pixel is processed."""
    w, h = size
    rng = np.random.default_rng(0)
    pattern = write_sequence(tmp_path / "tiny", [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(12)])
    extra = ["--set", f"track.downscale={downscale}"] if downscale else []
    if min(size) < 2 and ok:
        extra.append("--no-video")
    out = tmp_path / "o"
    r = cli("run", pattern, "--out", out, *extra)
    if ok:
        assert r.returncode == 0, r.stderr
        assert_complete(r, out, frames=12)
    else:
        assert_error(r, out, f"frames of {w}x{h} pixels are too small", "track.downscale")


def test_one_pixel_frames_and_the_annotated_video(tmp_path):
    pattern = write_sequence(tmp_path / "line", [np.full((1, 8, 3), 90, np.uint8)] * 4)
    assert_error(
        cli("run", pattern, "--out", tmp_path / "o", "--set", "track.downscale=1"),
        tmp_path / "o",
        "8x1 pixels are too small for annotated.mp4",
        "--no-video",
    )


def test_sequence_with_an_image_of_another_size(small_frames, tmp_path):
    images = list(small_frames[:8])
    images[5] = cv2.resize(images[5], (320, 180))
    pattern = write_sequence(tmp_path / "mixed", images)
    r = cli("run", pattern, "--out", tmp_path / "o", "--no-video")
    assert r.returncode == 3, r.stderr
    assert_complete(r, tmp_path / "o", frames=5)
    assert "frame 6 is 320x180 but the sequence started at 640x360" in r.stderr


def test_sequence_with_a_damaged_image(small_frames, tmp_path):
    pattern = write_sequence(tmp_path / "seq", small_frames[:8])
    (tmp_path / "seq" / "img_0004.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)  # cut after the signature
    r = cli("run", pattern, "--out", tmp_path / "o", "--no-video")
    assert r.returncode == 3, r.stderr
    assert_complete(r, tmp_path / "o", frames=4)
    assert "img_0004.png cannot be read" in r.stderr


def test_frames_made_bgr8():
    grey16 = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    bgr = to_bgr8(grey16)
    assert bgr.shape == (3, 4, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous
    assert (bgr[..., 0] == (grey16 >> 8)).all()
    assert (to_bgr8(np.full((2, 2, 1), 0.5, np.float32)) == 128).all()
    assert to_bgr8(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)
    with pytest.raises(VideoError, match="channels"):
        to_bgr8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(VideoError, match="not supported"):
        to_bgr8(np.zeros((2, 2, 3), np.uint32))
