"""`conveyor-qc tune`: a bad start is repaired, the written config loads and
carries its scores, Ctrl-C keeps the best so far, --split reports held-out
scores, and bad input fails clearly. Small budgets on a 4-second clip."""

from __future__ import annotations

import signal
import subprocess
import time
import typing

import pytest

from conftest import CLI, popen_interruptible, run_cli
from conveyor_qc.config import Config
from conveyor_qc.evaluation.tune import tune


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("cookies", seed=5, seconds=4)


def bad_start() -> Config:
    config = Config()
    config.set("mask.auto_threshold", 40.0)  # most of every cookie is taken for belt
    return config


def test_bad_start_is_repaired_and_written(clip, tmp_path):
    out = tmp_path / "best.toml"
    result = tune(clip.video, clip.video.parent / "gt.txt", out, start=bad_start(), budget=30, quiet=True)
    assert result.start_scores.f1 < 0.9, result.start_scores
    assert result.scores.f1 >= 0.95, result.header
    assert result.scores.rank() >= result.start_scores.rank()
    assert not result.interrupted

    loaded = Config.load(out)
    assert loaded.to_dict() == result.config.to_dict()
    assert loaded.mask.auto_threshold != 40.0 or loaded.mask.mode != "auto"
    text = out.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    joined = "\n".join(header)
    for needle in (
        "object F1",
        "precision",
        "recall",
        "MOTA",
        "count error",
        "budget 30 s",
        str(clip.video),
        "start config on the whole clip",
    ):
        assert needle in joined, needle
    assert f"object F1 {result.scores.f1:.4f}" in joined


def test_grid_search_never_returns_worse_than_start(clip, tmp_path):
    start = Config()
    result = tune(
        clip.video,
        clip.video.parent / "gt.txt",
        tmp_path / "grid.toml",
        start=start,
        budget=12,
        search="grid",
        quiet=True,
    )
    assert result.scores.rank() >= result.start_scores.rank()
    assert "search: grid" in result.header


def test_split_reports_held_out_scores(clip, tmp_path):
    out = tmp_path / "split.toml"
    result = tune(clip.video, clip.video.parent / "gt.txt", out, budget=12, split=0.55, quiet=True)
    assert result.heldout is not None
    assert result.heldout.frames == 120 - 66
    assert 0.0 <= result.heldout.f1 <= 1.0 and result.heldout.objects > 0
    text = out.read_text()
    assert "split 0.55: tuned on frames 1-66, held out frames 67-120" in text
    assert "held-out frames: object F1" in text


def test_ctrl_c_writes_best_so_far(clip, tmp_path):
    out = tmp_path / "interrupted.toml"
    proc = popen_interruptible(
        [
            *CLI,
            "tune",
            str(clip.video),
            "--gt",
            str(clip.video.parent / "gt.txt"),
            "--out",
            str(out),
            "--budget",
            "120",
            "--start",
            str(_write(tmp_path / "start.toml", bad_start())),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the start config has been scored, then search a little longer.
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "] best:" in line:
                break
            assert time.monotonic() < deadline, "no candidate scored within 60 s"
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert out.exists()
    config = Config.load(out)
    assert config.mask.mode in ("auto", "threshold")
    text = out.read_text()
    assert "INTERRUPTED" in text and "object F1" in text
    assert str(out) in stdout


def _write(path, config: Config):
    config.save(path)
    return path


@pytest.mark.parametrize("what", ["video", "gt"])
def test_missing_input_is_a_clear_error(clip, tmp_path, what):
    video = tmp_path / "nope.mp4" if what == "video" else clip.video
    gt = tmp_path / "nope.txt" if what == "gt" else clip.video.parent / "gt.txt"
    out = tmp_path / "out.toml"
    r = run_cli("tune", video, "--gt", gt, "--out", out, "--budget", "5", timeout=120)
    assert r.returncode == 1, r.stderr
    message = r.stderr.strip().splitlines()[-1]
    assert message.startswith("conveyor-qc tune: error:")
    assert ("video not found" if what == "video" else "ground truth not found") in message
    assert "nope" in message
    assert not out.exists()


def test_bad_split_is_a_clear_error(clip, tmp_path):
    r = run_cli(
        "tune",
        clip.video,
        "--gt",
        clip.video.parent / "gt.txt",
        "--out",
        tmp_path / "o.toml",
        "--split",
        "1.5",
        timeout=120,
    )
    assert r.returncode == 1 and "--split" in r.stderr


def test_final_choice_keeps_the_start_against_noise():
    """A candidate that ties the start on F1 and count needs MIN_MOTA_GAIN more MOTA to win."""
    from conveyor_qc.evaluation import tune

    def entry(f1, mota, counted, start=False):
        e = tune._Entry.__new__(tune._Entry)
        e.changes = {} if start else {"mask.blur": 1}
        e.det_f1 = float("nan")
        e.scores = tune.Scores(f1=f1, precision=f1, recall=f1, counted=counted, objects=79, mota=mota)
        return e

    class T:
        entries: typing.ClassVar[list] = []

    start = entry(1.0, 0.976, 79, start=True)
    T.entries = [start, entry(1.0, 0.980, 79)]
    assert tune._final_choice(T, start) is start  # +0.004 MOTA: noise
    better = entry(1.0, 0.982, 79)
    T.entries = [start, better]
    assert tune._final_choice(T, start) is better  # +0.006 MOTA
    more_f1 = entry(1.0, 0.970, 79)
    start_low = entry(0.99, 0.976, 80, start=True)
    T.entries = [start_low, more_f1]
    assert tune._final_choice(T, start_low) is more_f1  # a better F1 always wins
