"""Every file the package writes is written atomically (conveyor_qc.io.atomic; the audit is in
docs/faults.md): the helpers themselves, and the writers that were not (synth's outputs were
readable by their owner only and not flushed before their rename; a dataset folder was renamed
aside before the new one took its place, so a kill between left no dataset at all)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor_qc.io.atomic import (
    WriteError,
    atomic_write_text,
    check_writable_directory,
    replace_directory,
    temporary_sibling,
)
from run_folders import CLI, RUN_SETTINGS, make_small_clip, run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_get_the_usual_permissions(tmp_path):
    """mkstemp makes 0600 files; an output must be as readable as any file its user makes."""
    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain"
        plain.write_text("x")
        atomic_write_text(tmp_path / "a.txt", "hello\n")
        assert mode(tmp_path / "a.txt") == mode(plain) == 0o644
        # Replacing a file keeps its permissions.
        (tmp_path / "a.txt").chmod(0o640)
        atomic_write_text(tmp_path / "a.txt", "again\n")
        assert mode(tmp_path / "a.txt") == 0o640 and (tmp_path / "a.txt").read_text() == "again\n"
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "plain"], "no temporary file left"
    assert temporary_sibling(tmp_path / "b").name.startswith(".b.")


def test_a_failed_write_leaves_the_old_file_and_names_the_path(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old\n")
    big = "x" * 200_000
    code = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536));"
        f"from conveyor_qc.io.atomic import atomic_write_text, WriteError\n"
        f"try:\n atomic_write_text({str(target)!r}, 'x' * {len(big)})\n"
        f"except WriteError as e:\n print(e); sys.exit(3)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert f"cannot write {target}: file too large" in r.stdout
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_check_writable_directory(tmp_path):
    assert check_writable_directory(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert list((tmp_path / "new" / "deep").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="exists and is not a folder"):
        check_writable_directory(tmp_path / "file")
    with pytest.raises(WriteError, match="is a file, not a folder"):
        check_writable_directory(tmp_path / "file" / "sub")


def test_replace_directory(tmp_path):
    dest, new = tmp_path / "data", tmp_path / ".data.tmp"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    replace_directory(new, dest)
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    # into a missing destination
    other = tmp_path / ".other.tmp"
    other.mkdir()
    replace_directory(other, tmp_path / "fresh")
    assert (tmp_path / "fresh").is_dir() and not other.exists()


def test_synth_outputs_are_readable_by_all(tmp_path):
    from conveyor_qc.evaluation.synth import synthesize
    from run_folders import small_preset

    old = os.umask(0o022)
    try:
        synthesize(tmp_path, preset=small_preset(), seed=1, seconds=0.5)
    finally:
        os.umask(old)
    for name in ("video.mp4", "gt.txt", "labels.csv"):
        assert mode(tmp_path / name) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.txt", "labels.csv", "video.mp4"]


def test_dataset_killed_while_rebuilding_keeps_the_old_one(tmp_path):
    """SIGKILL of `conveyor-qc dataset` while it builds over an earlier dataset: the folder is
    still the earlier dataset, whole."""
    clip_dir = tmp_path / "clip"
    make_small_clip(clip_dir)
    run = tmp_path / "run"
    assert run_cli("run", clip_dir / "video.mp4", "--out", run, "-q", "--no-video", *RUN_SETTINGS).returncode == 0
    r = run_cli("label", run, "--from-truth", clip_dir)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "dataset"
    r = run_cli("dataset", run, "--out", out, "--per-object", "1", "-q")
    assert r.returncode == 0, r.stderr
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert Path("train.manifest") in before and Path("report.json") in before

    proc = subprocess.Popen(
        [*CLI, "dataset", str(run), "--out", str(out), "--per-object", "20", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    building = None
    while time.monotonic() < deadline and proc.poll() is None:
        building = next((p for p in tmp_path.glob(".dataset.tmp-*") if any(p.rglob("*.jpg"))), None)
        if building is not None:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the dataset was built before it could be killed")
    assert building is not None
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert json.loads((out / "report.json").read_text())
