"""A real `conveyor-qc run` killed with SIGKILL at several moments: what is on disk parses, holds
exactly the objects that had finished before the kill (whole rows, the same as a full run's),
and `conveyor-qc recover` (or the next run into the folder) finishes it (docs/outputs.md).

The clip is a small synthetic one (640x360, 6 s, 46 objects) so that each run takes a few
seconds; every run keeps crops and the annotated video on, so that all outputs are exercised."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor_qc.io.journal import read_journal
from run_folders import CLI, RUN_SETTINGS, Outputs, make_small_clip, run_cli


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_small_clip(tmp_path_factory.mktemp("small-clip"))


@pytest.fixture(scope="module")
def full(clip, tmp_path_factory):
    """A run left alone, and the order in which its objects finished (from the live objects.csv,
    which grows in that order, read just before close() sorts it)."""
    out = tmp_path_factory.mktemp("full") / "out"
    r = killed_at("synced", "run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == -signal.SIGKILL, r.stderr
    order = [int(line.split(b",", 1)[0]) for line in (out / "objects.csv").read_bytes().splitlines()[1:]]
    r = run_cli("run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == 0, r.stderr
    result = Outputs(out)
    assert sorted(order) == sorted(result.objects) and len(order) >= 40
    assert list(result.objects) == sorted(result.objects), "final objects.csv is sorted by number"
    assert not (out / ".run.journal").exists()
    # The killed first run was kept by the second, finished, in interrupted-<start time>/.
    kept = [d for d in out.iterdir() if d.name.startswith("interrupted-")]
    assert len(kept) == 1 and Outputs(kept[0]).objects_text == result.objects_text
    return result, order


def killed_at(step: str, *args) -> subprocess.CompletedProcess:
    """`conveyor-qc ARGS` killed with SIGKILL right after the named step of close() (tests/kill_at.py)."""
    cmd = [sys.executable, str(Path(__file__).with_name("kill_at.py")), step, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def kill_after(clip: Path, out: Path, objects: int) -> None:
    """Start a run and SIGKILL it once its journal has committed ``objects`` rows (0: once the
    run has started writing). Rows are in objects.csv a moment before their commit; a kill in
    that moment is cut back to the commit before, which is what recovery does, not what this
    waits for."""
    proc = subprocess.Popen(
        [*CLI, "run", str(clip), "--out", str(out), "-q", *RUN_SETTINGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if (out / ".run.journal").exists() and committed(out) >= objects:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err.decode()}"


def committed(out: Path) -> int:
    """Objects committed in a live run's journal so far (0 while its header is being written)."""
    try:
        journal = read_journal(out / ".run.journal")
    except ValueError:
        return 0
    return journal.commits[-1][1] if journal.commits else 0


@pytest.mark.parametrize("finished", [0, 6, 25])
def test_kill_during_the_run(clip, full, tmp_path, finished):
    full_out, order = full
    out = tmp_path / "out"
    kill_after(clip, out, finished)
    assert not (out / "summary.json").exists()

    # Straight after the kill, up to the journal's last commit: whole rows, exactly the first
    # objects to finish, in that order.
    journal = read_journal(out / ".run.journal")
    lengths, k = journal.commits[-1]
    live = Outputs(out, dict(zip(journal.files, lengths)))
    assert len(live.objects) == k >= finished
    assert list(live.objects) == order[:k]
    for tid, row in live.objects.items():
        assert row == full_out.objects[tid]
        assert sorted(live.tracks[tid]) == sorted(full_out.tracks[tid])
    assert set(live.tracks) == set(live.objects)
    # Past it, if the kill landed inside a write() (Linux cuts a write between pages on SIGKILL):
    # the start of the next objects' rows, never anything else. Recovery cuts it off.
    assert b"".join(line + b"\n" for tid in order[k:] for line in full_out.tracks[tid]).startswith(live.tracks_tail)
    assert b"".join(full_out.object_lines[tid] for tid in order[k:]).startswith(live.objects_tail)
    # Every crop of a finished object was on disk before its row (one writer, in order).
    partial = live.crops(".crops.partial")
    for tid in live.objects:
        assert partial.get(tid, {}) == full_out.crops().get(tid, {}), tid

    r = run_cli("recover", out)
    assert r.returncode == 0, r.stderr
    assert f"{k} objects" in r.stdout
    done = Outputs(out)
    objects, tracks = full_out.subset(set(live.objects))
    assert done.objects_text == objects and done.tracks_text == tracks
    assert done.crops() == {tid: c for tid, c in full_out.crops().items() if tid in live.objects}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] == k and summary["recovered"] is True and summary["complete"] is False
    assert summary["crops_written"] == sum(len(c) for c in done.crops().values())
    assert summary["config"]["detect"]["min_area"] == 100
    # and the page a person reads, for what was recovered
    assert sorted(p.name for p in out.iterdir()) == [
        "crops",
        "objects.csv",
        "report.html",
        "summary.json",
        "tracks.txt",
    ]

    # Recovering twice is an error that says why, and changes nothing.
    r = run_cli("recover", out)
    assert r.returncode == 1 and "finished run" in r.stderr
    assert Outputs(out).objects_text == objects


def video_frames(path: Path) -> int:
    """Frames that can be decoded from a video, one by one (0: it cannot be opened)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


#: The steps of close() after which the annotated video is finished (docs/outputs.md).
VIDEO_FINISHED = ("encoded", "video", "tracks", "objects", "crops", "summary")


@pytest.mark.parametrize("stage", VIDEO_FINISHED)
def test_kill_while_closing(clip, full, tmp_path, stage):
    """Killed between the steps of close() once the video is finished: every object had been
    committed, so recovery gives the full run's files exactly, the summary known before the
    kill, and the annotated video, whole (recover renames a finished video into place; it used
    to delete it: `video_lost: true` for a kill at any step before the last)."""
    full_out, _ = full
    out = tmp_path / "out"
    r = killed_at(stage, "run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == -signal.SIGKILL, r.stderr
    before = Outputs(out)  # whole rows of every object, sorted or not yet
    assert sorted(before.objects) == sorted(full_out.objects)
    assert (out / "annotated.mp4").exists() == (stage != "encoded")
    assert (out / ".annotated.done.mp4").exists() == (stage == "encoded")

    r = run_cli("recover", out)
    assert r.returncode == 0, r.stderr
    assert not (out / ".run.journal").exists() and not (out / ".summary.pending.json").exists()
    done = Outputs(out)
    assert done.objects_text == full_out.objects_text and done.tracks_text == full_out.tracks_text
    assert done.crops() == full_out.crops()
    summary = json.loads((out / "summary.json").read_text())
    full_summary = json.loads((full_out.folder / "summary.json").read_text())
    assert summary["objects"] == full_summary["objects"] and summary["frames"] == full_summary["frames"]
    assert summary["counts"] == full_summary["counts"]
    assert summary.get("recovered", False) is (stage != "summary")
    assert "video_lost" not in summary
    assert video_frames(out / "annotated.mp4") == video_frames(full_out.folder / "annotated.mp4") > 0
    assert sorted(p.name for p in out.iterdir()) == [
        "annotated.mp4",
        "crops",
        "objects.csv",
        "report.html",
        "summary.json",
        "tracks.txt",
    ]


def test_kill_before_the_video_is_finished_loses_it_and_batch_runs_it_again(clip, full, tmp_path):
    """Killed once every row is on disk but before the encoder finished the video (the frames it
    still had queued die with the process): recovery keeps every row and the summary it was about
    to write, says `video_lost: true`, and `batch` does not count the folder as done (it used to
    skip such a video for ever): a run into it keeps the recovered files and writes them anew."""
    from conveyor_qc.config import Config
    from conveyor_qc.run.batch import VideoJob, completed_figures
    from conveyor_qc.run.provenance import source_identity

    full_out, _ = full
    out = tmp_path / "out"
    r = killed_at("synced", "run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == -signal.SIGKILL, r.stderr
    r = run_cli("recover", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["video_lost"] is True and summary["objects"] == len(full_out.objects)
    assert not (out / "annotated.mp4").exists()
    assert Outputs(out).objects_text == full_out.objects_text

    config = Config.from_options(None, RUN_SETTINGS[1:])
    job = VideoJob(video=clip.absolute(), name="clip", out=out, identity=source_identity(clip.absolute()))
    assert summary["source"] == str(clip.absolute()) and summary["input"] == job.identity
    assert completed_figures(job, json.loads(json.dumps(config.to_dict())), None) is None
    # Once run again, the folder is done, and what the killed run recovered is kept.
    r = run_cli("run", clip.absolute(), "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == 0, r.stderr
    assert completed_figures(job, json.loads(json.dumps(config.to_dict())), None) is not None
    kept = [d for d in out.iterdir() if d.name.startswith("interrupted-")]
    assert len(kept) == 1 and Outputs(kept[0]).objects_text == full_out.objects_text


def test_next_run_keeps_a_killed_runs_video(clip, full, tmp_path):
    """A run into the folder of a run killed while closing keeps its recovered files, the video
    too, in interrupted-<start time>/ (the video used to be deleted as a stale output)."""
    out = tmp_path / "out"
    r = killed_at("tracks", "run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == -signal.SIGKILL, r.stderr
    r = run_cli("run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == 0, r.stderr
    kept = [d for d in out.iterdir() if d.name.startswith("interrupted-")]
    assert len(kept) == 1 and video_frames(kept[0] / "annotated.mp4") > 0
    assert video_frames(out / "annotated.mp4") == video_frames(kept[0] / "annotated.mp4")


def test_next_run_keeps_a_killed_run(clip, full, tmp_path):
    """A run into the folder of a killed one (a service restarted after a power cut) finishes
    the killed run's files into interrupted-<start time>/ and then writes its own."""
    full_out, order = full
    out = tmp_path / "out"
    kill_after(clip, out, 4)
    # The objects the journal committed: a row on disk a moment before its commit is cut back by
    # recovery (counting rows on disk raced with that moment).
    commits = read_journal(out / ".run.journal").commits
    k = commits[-1][1] if commits else 0
    r = run_cli("run", clip, "--out", out, "-q", *RUN_SETTINGS)
    assert r.returncode == 0, r.stderr
    assert Outputs(out).objects_text == full_out.objects_text
    kept = [d for d in out.iterdir() if d.name.startswith("interrupted-")]
    assert len(kept) == 1
    old = Outputs(kept[0])
    assert list(old.objects) == sorted(order[:k])
    assert json.loads((kept[0] / "summary.json").read_text())["recovered"] is True


def test_recover_refuses_a_live_run(clip, tmp_path):
    """While a run writes into a folder, `recover` and a second `run` into it are refused (the
    writer holds a lock on its journal), and the live run is not disturbed. The live run is
    stopped (SIGSTOP) while the others try, so that it cannot finish first."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*CLI, "run", str(clip), "--out", str(out), "-q", *RUN_SETTINGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / ".run.journal").exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGSTOP)
        r = run_cli("recover", out)
        r2 = run_cli("run", clip, "--out", out, "-q", *RUN_SETTINGS)
    finally:
        proc.send_signal(signal.SIGCONT)
        _stdout, stderr = proc.communicate(timeout=120)
    assert r.returncode == 1 and "still writing" in r.stderr, r.stderr
    assert r2.returncode == 1 and "another conveyor-qc run" in r2.stderr, r2.stderr
    assert proc.returncode == 0, stderr
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    assert Outputs(out).objects


def test_journal_ignores_torn_lines(tmp_path):
    """What a kill inside write() or a power cut can leave: rows past the last commit, a journal
    line cut short, a commit whose rows the disk did not keep. Recovery takes the last commit
    the files hold in full and cuts the rest."""
    from conveyor_qc.io.journal import AppendJournal, _record, recover_journal

    j = AppendJournal(tmp_path, ".j", {"a.txt": b"head\n", "b.txt": b""}, meta={"x": 1})
    j.append([b"1\n2\n", b"one\n"], 1)
    j.append([b"3\n", b"two\nthree\n"], 2)
    j.close()
    with open(tmp_path / "a.txt", "ab") as fh:
        fh.write(b"4\n5")  # a batch cut short
    with open(tmp_path / ".j", "ab") as fh:
        # a commit the files do not hold (written, its rows lost in a power cut), a damaged
        # commit, and a line cut short
        fh.write(_record([20, 14], 4) + b"13 14 4 0badc0de\n12 1")
    state, lengths, items = recover_journal(tmp_path / ".j")
    assert state.meta == {"x": 1} and items == 3 and lengths == [11, 14]
    assert (tmp_path / "a.txt").read_bytes() == b"head\n1\n2\n3\n"
    assert (tmp_path / "b.txt").read_bytes() == b"one\ntwo\nthree\n"
    # a commit whose rows were lost (the file is shorter than it says): the one before is taken
    with open(tmp_path / "b.txt", "r+b") as fh:
        fh.truncate(7)
    state, lengths, items = recover_journal(tmp_path / ".j")
    assert lengths == [9, 4] and items == 1
    assert (tmp_path / "a.txt").read_bytes() == b"head\n1\n2\n" and (tmp_path / "b.txt").read_bytes() == b"one\n"
