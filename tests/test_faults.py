"""An output folder that cannot be written, and a disk that fills up, for real (docs/faults.md):
a clear error (exit 1, one line naming the problem and the path) before any work where it can
be known, otherwise at the first failed write, with everything written before intact.

The disk fills up for real in two ways: the file size limit (RLIMIT_FSIZE: writes fail with
EFBIG, unprivileged, so it always runs) and, where the tests may mount file systems (root), a
tmpfs of a few hundred kilobytes (ENOSPC). As root, chmod does not stop writes: the child runs
without CAP_DAC_OVERRIDE (setpriv) so that permissions apply to it."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from run_folders import CLI, RUN_SETTINGS, Outputs, make_small_clip, run_cli

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_small_clip(tmp_path_factory.mktemp("small-clip"))


@pytest.fixture(scope="module")
def full(clip, tmp_path_factory) -> Outputs:
    out = tmp_path_factory.mktemp("full") / "out"
    r = run_cli("run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == 0, r.stderr
    return Outputs(out)


def assert_clear_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("conveyor-qc run: error: "), r.stderr
    for w in words:
        assert str(w) in r.stderr, (w, r.stderr)


@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False):
    """A small tmpfs mounted at ``where``; skips the test where mounting is not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if not ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def without_root_privileges() -> list[str]:
    """A command prefix under which permissions apply: none for a normal user; for root, setpriv
    dropping the capabilities that override them (skip if there is no setpriv)."""
    if not ROOT:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root, chmod does not stop writes, and setpriv is missing")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


# --- before any work ------------------------------------------------------------------------


def test_output_is_a_file(clip, tmp_path):
    out = tmp_path / "out"
    out.write_text("mine")
    r = run_cli("run", clip, "--out", out)
    assert_clear_error(r, out, "exists and is not a folder")
    assert out.read_text() == "mine"


def test_output_under_a_file(clip, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    r = run_cli("run", clip, "--out", blocker / "out")
    assert_clear_error(r, blocker / "out", "is a file, not a folder")
    assert blocker.read_text() == "mine"


def test_output_not_writable(clip, tmp_path):
    prefix = without_root_privileges()
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        r = subprocess.run(
            [*prefix, *CLI, "run", str(clip), "--out", str(out)], capture_output=True, text=True, timeout=300
        )
        assert_clear_error(r, out, "permission denied")
        assert nothing_written(out)
        # A missing folder inside it cannot be created either.
        r = subprocess.run(
            [*prefix, *CLI, "run", str(clip), "--out", str(out / "sub")], capture_output=True, text=True, timeout=300
        )
        assert_clear_error(r, out / "sub", "cannot create output folder", "permission denied")
    finally:
        out.chmod(0o755)
    assert nothing_written(out)


def test_read_only_file_system(clip, tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as mnt:
        r = run_cli("run", clip, "--out", mnt)
        assert_clear_error(r, mnt, "read-only file system")
        r = run_cli("run", clip, "--out", mnt / "sub")
        assert_clear_error(r, mnt / "sub", "read-only file system")


def test_disk_already_full(clip, tmp_path):
    """Known before any work: the start-up probe cannot write to a full disk."""
    with tmpfs(tmp_path / "full", "512k") as mnt:
        out = mnt / "out"
        out.mkdir()
        with open(mnt / "filler", "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        r = run_cli("run", clip, "--out", out)
        assert_clear_error(r, out, "no space left on the device")
        assert nothing_written(out)


# --- at the first failed write --------------------------------------------------------------


def _check_kept(out: Path, full: Outputs) -> int:
    """The objects written before the failure: whole rows, each exactly as in the full run, and
    the folder finished (summary.json) or finishable (`conveyor-qc recover`). Returns how many."""
    if (out / ".run.journal").exists():  # the failing run could not finish it: now there is room
        r = run_cli("recover", out)
        assert r.returncode == 0, r.stderr
    kept = Outputs(out)
    objects, tracks = full.subset(set(kept.objects))
    assert kept.objects_text == objects and kept.tracks_text == tracks
    full_crops = full.crops()
    for tid, crops in kept.crops().items():
        assert tid in kept.objects and crops == full_crops.get(tid), tid
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] == len(kept.objects)
    assert summary["recovered"] is True and summary["complete"] is False
    return len(kept.objects)


def test_file_size_limit_mid_run(clip, full, tmp_path):
    """RLIMIT_FSIZE (ulimit -f) of 64 KiB: tracks.txt (110 KB in a full run) cannot grow past it
    half-way through; Python ignores SIGXFSZ, so the write fails with EFBIG."""
    limit = 64 * 1024
    out = tmp_path / "out"

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = run_cli("run", clip, "--out", out, "-q", "--no-video", *RUN_SETTINGS, preexec_fn=limited)
    assert_clear_error(r, out / "tracks.txt", "file too large")
    k = _check_kept(out, full)
    assert 0 < k < len(full.objects)
    assert f"the {k} objects finished before" in r.stderr
    assert (out / "tracks.txt").stat().st_size <= limit


def test_disk_full_mid_run(clip, full, tmp_path):
    """A 1.5 MB tmpfs fills up with crops and video a few objects into the run (ENOSPC)."""
    with tmpfs(tmp_path / "small", "1500k") as mnt:
        out = mnt / "out"
        r = run_cli("run", clip, "--out", out, "-q", *RUN_SETTINGS)
        assert_clear_error(r, out, "no space left on the device")
        k = _check_kept(out, full)
        assert k < len(full.objects)
        assert not (out / ".annotated.partial.mp4").exists()


# --- when the clean-up fails too, and a disk full from the first byte (issue 20, fault probe) -------


def test_reason_of_a_failed_clean_up_survives_until_recover(clip, full, tmp_path):
    """The disk fills up with rows (no crops, no video: nothing whose removal would free room),
    and the clean-up, which writes the rows again sorted, fails too. A later `recover`, once
    there is room, must record the disk-full error as the reason, not "killed" (it did: the
    reason lived only in the failed process)."""
    with tmpfs(tmp_path / "small", "96k") as mnt:
        out = mnt / "out"
        r = run_cli("run", clip, "--out", out, "-q", "--no-video", "--no-crops", *RUN_SETTINGS)
        assert_clear_error(r, "no space left on the device", f"conveyor-qc recover {out}")
        assert (out / ".run.journal").exists() and not (out / "summary.json").exists()
        grown = subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], capture_output=True, text=True)
        assert grown.returncode == 0, grown.stderr
        r = run_cli("recover", out)
        assert r.returncode == 0, r.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert "no space left on the device" in summary["reason"], summary["reason"]
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
        _check_kept(out, full)


def test_a_run_that_cannot_write_its_first_byte_leaves_no_new_folder(clip, tmp_path):
    """RLIMIT_FSIZE of 8 KiB: the start-up probe (16 KiB) cannot be written. The folders the run
    created for --out are removed again (they were left behind, empty); one that existed stays."""
    limit = 8 * 1024

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "new" / "deeper" / "out"
    r = run_cli("run", clip, "--out", out, "-q", preexec_fn=limited)
    assert_clear_error(r, out, "file too large")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    r = run_cli("run", clip, "--out", existing, "-q", preexec_fn=limited)
    assert_clear_error(r, existing, "file too large")
    assert existing.is_dir() and not any(existing.iterdir())


def test_disk_already_full_leaves_no_new_folder(clip, tmp_path):
    """A full disk (a tmpfs filled before the run): a folder costs no block there, so --out was
    created and left behind, empty."""
    with tmpfs(tmp_path / "full", "512k") as mnt:
        with open(mnt / "filler", "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        out = mnt / "new" / "out"
        r = run_cli("run", clip, "--out", out)
        assert_clear_error(r, out, "no space left on the device")
        assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
