"""Small things a newcomer trips on in the first hour (issue 19, point 8): bad input on a common
command says so in one line of ours, with no OpenCV or FFmpeg warning before it; ``recover`` on
a missing folder says it does not exist; ``batch`` counts its videos in words ("1 video") and
tells no speed when it ran nothing; ``Config.set`` refuses a value out of range at once.

OpenCV's C++ code writes its warnings to file descriptor 2 itself, past ``sys.stderr``: what a
user sees is checked on commands run as subprocesses."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from conveyor_qc.anomaly.base import ImageError, read_image
from conveyor_qc.cli.exit_codes import EXIT_ERROR, EXIT_OK
from conveyor_qc.config import Config, ConfigError
from conveyor_qc.run.outputs import RecoverError, recover_run
from conveyor_qc.run.video import VideoError, quiet_decoder_logs, quiet_opencv_log

#: What OpenCV's and FFmpeg's own lines look like: "[ WARN:0@0.3] global ...", "[ERROR:0@0.1] ...",
#: "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55...] moov atom not found".
NOISE = ("[ WARN", "[ERROR", "[ INFO", " @ 0x", "moov atom")


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_cli(*args, errors="replace", timeout=timeout)


def assert_one_line(r: subprocess.CompletedProcess, command: str, *words: str) -> str:
    """Exit code 1 and stderr exactly one line of ours, naming the problem; returns it."""
    assert r.returncode == EXIT_ERROR, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"conveyor-qc {command}: error: "), lines[0]
    for noise in NOISE:
        assert noise not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# --- 1. OpenCV's warnings before our one-line errors ----------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A local anomaly model (one-class) of eight drawn biscuits: a second to train."""
    from conveyor_qc.anomaly.model import train_model
    from conveyor_qc.dataset.manifest import ManifestEntry, write_manifest

    tmp = tmp_path_factory.mktemp("first-hour-model")
    rng = np.random.default_rng(0)
    entries = []
    for i in range(8):
        image = np.full((128, 128, 3), 60, np.uint8)
        cv2.circle(image, (64, 64), int(rng.integers(35, 45)), (190, 170, 140), -1)
        cv2.imwrite(str(tmp / f"c{i}.png"), image)
        entries.append(ManifestEntry(str(tmp / f"c{i}.png"), "normal"))
    write_manifest(tmp / "normal.manifest", entries)
    train_model(tmp / "normal.manifest", tmp / "model")
    return tmp / "model"


def _not_images(folder: Path) -> dict[str, Path]:
    """Files that are no image OpenCV can read, each of a kind that made OpenCV print a line."""
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    files = {
        "text": ("notes.png", b"shift notes, not an image\n"),
        "damaged png": ("damaged.png", png[:8] + b"garbage" * 10),  # [ WARN] and [ERROR] of the PNG reader
        "damaged bmp": ("damaged.bmp", b"BM" + b"\xff" * 60),  # [ERROR] imread_ ... can't read header
        "damaged tiff": ("damaged.tif", b"II*\x00" + b"garbage" * 10),  # [ERROR] TIFF_Error
        "empty": ("empty.jpg", b""),
    }
    out = {}
    for kind, (name, data) in files.items():
        (folder / name).write_bytes(data)
        out[kind] = folder / name
    return out


def test_predict_on_a_missing_image_is_one_line(model, tmp_path):
    r = cli("predict", model, tmp_path / "missing.jpg")
    assert_one_line(r, "predict", "no such image", "missing.jpg")


@pytest.mark.parametrize("kind", ["text", "damaged png", "damaged bmp", "damaged tiff", "empty"])
def test_predict_on_a_file_that_is_not_an_image_is_one_line(model, tmp_path, kind):
    """Was a traceback (a bare ValueError), after OpenCV's own lines about the file."""
    path = _not_images(tmp_path)[kind]
    r = cli("predict", model, path)
    assert_one_line(r, "predict", str(path), "not an image that can be read")


def test_predict_on_a_folder_is_one_line(model, tmp_path):
    (tmp_path / "crops").mkdir()
    r = cli("predict", model, tmp_path / "crops")
    assert_one_line(r, "predict", "a folder, not an image")


def test_train_on_a_manifest_naming_a_non_image_is_one_line(tmp_path):
    from conveyor_qc.dataset.manifest import ManifestEntry, write_manifest

    notes = _not_images(tmp_path)["text"]
    write_manifest(tmp_path / "m.manifest", [ManifestEntry(str(notes), "normal")])
    r = cli("train", tmp_path / "m.manifest", "--out", tmp_path / "model")
    assert_one_line(r, "train", str(notes), "not an image that can be read")


def test_read_image_errors(tmp_path):
    files = _not_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such image"):
        read_image(tmp_path / "missing.png")
    for path in files.values():
        with pytest.raises(ImageError, match="not an image that can be read"):
            read_image(path)
    with pytest.raises(ImageError, match="a folder"):
        read_image(tmp_path)
    assert issubclass(ImageError, ValueError)  # callers that caught the ValueError it was still do
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((10, 12, 3), 7, np.uint8))
    image = read_image(tmp_path / "ok.png")
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8 and int(image[0, 0, 0]) == 7


@pytest.mark.parametrize("name", ["clip.mp4", "clip.avi", "clip.mkv"])
def test_run_on_a_file_that_is_not_a_video_is_one_line(tmp_path, name):
    (tmp_path / name).write_text("shift notes, not a video\n")
    r = cli("run", tmp_path / name, "--out", tmp_path / "out")
    assert_one_line(r, "run", name, "not a video")
    r = cli("inspect", tmp_path / name, "--out", tmp_path / "inspect")
    assert_one_line(r, "inspect", name, "not a video")


def test_run_on_a_missing_video_is_one_line(tmp_path):
    r = cli("run", tmp_path / "missing.mp4", "--out", tmp_path / "out")
    assert_one_line(r, "run", "video not found", "missing.mp4")


def test_video_reader_keeps_opencv_warnings_off_stderr(tmp_path):
    """The reader of the Python API too, and OpenCV's log level is the caller's again after."""
    (tmp_path / "clip.mp4").write_text("shift notes, not a video\n")
    code = (
        "import sys, cv2\n"
        "from conveyor_qc.run.video import VideoError, VideoReader\n"
        "level = cv2.utils.logging.getLogLevel()\n"
        "try:\n"
        "    VideoReader(sys.argv[1])\n"
        "except VideoError as exc:\n"
        "    print(exc)\n"
        "assert cv2.utils.logging.getLogLevel() == level, cv2.utils.logging.getLogLevel()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "clip.mp4")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "not a video OpenCV can decode" in r.stdout
    assert "[ WARN" not in r.stderr, r.stderr  # FFmpeg's own line stays: quiet_decoder_logs() is the caller's


def test_quiet_opencv_log_restores_the_level_across_overlapping_blocks():
    logging = cv2.utils.logging
    before = logging.getLogLevel()
    try:
        logging.setLogLevel(logging.LOG_LEVEL_WARNING)
        inside = threading.Event()
        leave = threading.Event()

        def other() -> None:
            with quiet_opencv_log():
                inside.set()
                leave.wait(5)

        t = threading.Thread(target=other)
        t.start()
        assert inside.wait(5)
        with quiet_opencv_log():
            assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT
        assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT  # the other thread's block is still open
        leave.set()
        t.join(5)
        assert logging.getLogLevel() == logging.LOG_LEVEL_WARNING
        with pytest.raises(VideoError), quiet_opencv_log():
            raise VideoError("an error inside the block")
        assert logging.getLogLevel() == logging.LOG_LEVEL_WARNING
        # quiet_decoder_logs inside a block: silent after the block too (the command line's choice)
        with quiet_opencv_log():
            quiet_decoder_logs()
        assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT
    finally:
        logging.setLogLevel(before)


# --- 2. recover on a folder that does not exist ---------------------------------------------------


def test_recover_a_missing_folder_says_it_does_not_exist(tmp_path):
    with pytest.raises(RecoverError, match="does not exist"):
        recover_run(tmp_path / "nosuch")
    r = cli("recover", tmp_path / "nosuch")
    line = assert_one_line(r, "recover", "nosuch", "does not exist")
    assert "holds no run" not in line


def test_recover_a_folder_without_a_journal_holds_no_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecoverError, match=r"holds no run to recover \(no \.run\.journal\)"):
        recover_run(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("not a run\n")
    with pytest.raises(RecoverError, match="is a file, not a run folder"):
        recover_run(tmp_path / "notes.txt")


# --- 3. batch's last line: "1 video", and no speed when nothing ran -------------------------------


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory) -> Path:
    """videos/a.mp4 and videos/b.mp4: one tiny synthetic clip (1 s at 320x180), twice."""
    from conveyor_qc.evaluation.synth import PRESETS, synthesize

    tiny = dataclasses.replace(
        PRESETS["cookies"], name="tiny-cookies", width=320, height=180, radius=(11.0, 14.0), belt_speed=4.0, rail_px=9
    )
    root = tmp_path_factory.mktemp("first-hour-batch")
    synthesize(root / "clip", preset=tiny, seed=1, seconds=1.0)
    (root / "videos").mkdir()
    for name in ("a", "b"):
        shutil.copy2(root / "clip" / "video.mp4", root / "videos" / f"{name}.mp4")
    return root / "videos"


def _last_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == EXIT_OK, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_batch_counts_videos_in_words_and_tells_no_speed_when_all_were_skipped(two_clips, tmp_path):
    out = tmp_path / "out"
    first = _last_line(cli("batch", two_clips / "*.mp4", "--out", out, "--workers", "2", "-q", timeout=300))
    assert first.startswith("2 videos: 2 done, 0 skipped, 0 failed; "), first
    assert "frames per second across the cluster" in first

    again = cli("batch", two_clips / "*.mp4", "--out", out, "--workers", "2")
    line = _last_line(again)
    assert line.startswith("all 2 videos skipped (already done); "), line
    assert "frames per second" not in line and line.endswith(f" -> {out / 'batch.json'}"), line
    assert "2 of 2 videos already have complete results: skipped (--force redoes them)" in again.stderr

    one = cli("batch", two_clips / "a.mp4", "--out", out)
    line = _last_line(one)
    assert line.startswith("1 video skipped (already done); "), line
    assert "videos" not in line.split(";")[0] and "frames per second" not in line, line
    assert "1 of 1 video already has complete results: skipped (--force redoes it)" in one.stderr


def test_batch_of_a_file_that_is_not_a_video(tmp_path):
    """One failed video: "1 video", no speed (nothing was processed), and the worker's OpenCV and
    FFmpeg lines about the file stay off the terminal: the failure is told once, in our words."""
    (tmp_path / "notes.mp4").write_text("shift notes, not a video\n")
    r = cli("batch", tmp_path / "notes.mp4", "--out", tmp_path / "out", "--workers", "1", "--retries", "0", "-q")
    assert r.returncode == EXIT_ERROR, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("1 video: 0 done, 0 skipped, 1 failed; "), line
    assert "frames per second" not in line, line
    assert r.stderr.splitlines() == [
        f"failed: {tmp_path / 'notes.mp4'}: cannot open '{tmp_path / 'notes.mp4'}': not a video OpenCV can decode "
        "(another kind of file, or damaged or truncated)"
    ], r.stderr


# --- 4. Config.set refuses a value out of range at once --------------------------------------------


def test_set_refuses_a_value_out_of_range_at_once():
    config = Config()
    with pytest.raises(ConfigError) as err:
        config.set("track.downscale", 5)
    assert str(err.value) == "config: track.downscale must be in (0, 1], got 5"  # the loader's words
    assert config.track.downscale == Config().track.downscale  # left as it was
    config.validate()
    with pytest.raises(ConfigError, match=r"--set: mask\.blur must be odd in \[1, 15\], got 4"):
        config.set("mask.blur", 4, source="--set")
    with pytest.raises(ConfigError, match=r"output\.crop_size must be in \[16, 4096\], got 2"):
        config.set("output.crop_size", 2)
    with pytest.raises(ConfigError, match=r"count\.line must be in \(0, 1\]"):
        config.set("count.line", 0)


def test_set_takes_a_value_in_range():
    config = Config()
    config.set("track.downscale", 0.4)
    config.set("output.crop_size", 128)
    config.set("mask.object_upper", [90, 255, 255])
    assert (config.track.downscale, config.output.crop_size) == (pytest.approx(0.4), 128)
    assert config.mask.object_upper == [90.0, 255.0, 255.0]
    config.validate()


def test_set_refuses_the_value_that_breaks_a_bound_of_another_setting():
    """canny_low is in [0, canny_high]: whichever of the two is set to break it is refused, when it
    is set, and named; moved past each other in the right order, or together by update(), both go."""
    config = Config()
    low, high = config.mask.canny_low, config.mask.canny_high
    with pytest.raises(ConfigError, match=rf"mask\.canny_low must be in \[0, canny_high={high:g}\], got 200"):
        config.set("mask.canny_low", 200)
    with pytest.raises(ConfigError) as err:
        config.set("mask.canny_high", 50)
    assert str(err.value).startswith(f"config: mask.canny_low must be in [0, canny_high=50], got {low:g}")
    assert "mask.canny_high = 50" in str(err.value)  # the value refused is named too
    assert (config.mask.canny_low, config.mask.canny_high) == (low, high)
    with pytest.raises(ConfigError, match=r"detect\.min_area .*detect\.max_area = 10"):
        config.set("detect.max_area", 10.0)

    config.set("mask.canny_high", 300)  # room first, then the other
    config.set("mask.canny_low", 200)
    assert (config.mask.canny_low, config.mask.canny_high) == (200, 300)

    config.update({"mask.canny_low": 500, "mask.canny_high": 600})  # together, in any order
    assert (config.mask.canny_low, config.mask.canny_high) == (500, 600)
    with pytest.raises(ConfigError, match="canny_low"):
        config.update({"track.downscale": 0.25, "mask.canny_low": 700, "mask.canny_high": 650})
    assert (config.mask.canny_low, config.mask.canny_high) == (500, 600)  # nothing changed
    assert config.track.downscale == Config().track.downscale


def test_set_does_not_blame_a_value_for_an_earlier_wrong_one():
    config = Config()
    config.track.downscale = 5  # past set(): the pipeline's own check names it
    config.set("track.kind", "kcf")
    assert config.track.kind == "kcf"
    with pytest.raises(ConfigError, match="track.downscale"):
        config.validate()


def test_files_and_set_options_check_pairs_once_all_values_are_in(tmp_path):
    """A file, or --set options, may move a pair past its defaults in any order."""
    path = tmp_path / "c.toml"
    path.write_text("[mask]\ncanny_low = 200.0\ncanny_high = 300.0\n[detect]\nmax_area = 300.0\nmin_area = 100.0\n")
    config = Config.load(path)
    assert (config.mask.canny_low, config.mask.canny_high, config.detect.min_area) == (200, 300, 100)
    assert Config.from_dict(config.to_dict()).to_dict() == config.to_dict()  # copy() of such a config
    config = Config.from_options(None, ["mask.canny_low=200", "mask.canny_high=300"])
    assert (config.mask.canny_low, config.mask.canny_high) == (200, 300)
    with pytest.raises(ConfigError, match=r"--set: track\.downscale must be in \(0, 1\], got 5"):
        Config.from_options(None, ["track.downscale=5"])
    path.write_text("[track]\ndownscale = 5\n")
    with pytest.raises(ConfigError, match=r"track\.downscale must be in \(0, 1\], got 5"):
        Config.load(path)


@pytest.mark.parametrize("kind", ["damaged png", "damaged bmp"])
def test_placing_a_damaged_image_in_a_dataset_is_one_line(tmp_path, kind, capfd):
    """dataset (and augment, and Lookout's upload) read images through read_image: our one line,
    never OpenCV's own [ WARN] / [ERROR] before it."""
    from conveyor_qc.dataset.export import DatasetError, place_image

    path = _not_images(tmp_path)[kind]
    with pytest.raises(DatasetError, match="not a readable image"):
        place_image(path, tmp_path / "out.png")
    err = capfd.readouterr().err
    assert "[ WARN" not in err and "[ERROR" not in err, err
    assert not (tmp_path / "out.png").exists()
