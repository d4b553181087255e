"""`conveyor-qc batch` on Dask distributed: clusters of 2 worker processes on loopback, three
short synthetic clips, and the results compared file by file with a plain `run` of each clip.

Also: a file that is not a video fails with its error while the others finish; a worker killed
part-way through a video (the test hook CONVEYOR_QC_TEST_KILL_WORKER) is replaced and the video
run again to the same results; a re-run skips what is complete and current, --force redoes it;
an existing cluster given by its scheduler's address; Ctrl-C; inputs that match nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import pytest
from distributed import LocalCluster

from conftest import CLI, popen_interruptible, run_cli
from conveyor_qc.evaluation.synth import PRESETS, synthesize
from conveyor_qc.run.batch import BatchError, VideoJob, completed_figures, output_names, run_batch
from conveyor_qc.run.job import run_video

#: The cookies scene at 640x360: 2.5 s clips of ~15 objects that render and run in about a second.
SMALL = dataclasses.replace(
    PRESETS["cookies"], name="small-cookies", width=640, height=360, radius=(22.0, 28.0), belt_speed=6.0, rail_px=17
)
SECONDS = 2.5
FRAMES = 75
CLIPS = {"a": 1, "b": 2, "c": 3}  # name -> seed


def cli(*args, env=None, timeout=300):
    return run_cli(*args, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """videos/a.mp4, b.mp4, c.mp4 (synthetic clips) and notes.mp4 (text, not a video)."""
    root = tmp_path_factory.mktemp("batch-input")
    folder = root / "videos"
    folder.mkdir()
    for name, seed in CLIPS.items():
        synthesize(root / f"clip-{name}", preset=SMALL, seed=seed, seconds=SECONDS)
        shutil.move(root / f"clip-{name}" / "video.mp4", folder / f"{name}.mp4")
    (folder / "notes.mp4").write_text("shift notes, not a video\n")
    return folder


@pytest.fixture(scope="module")
def plain_runs(videos, tmp_path_factory) -> dict[str, Path]:
    """Each clip run alone, as `conveyor-qc run` does (same path, default settings)."""
    root = tmp_path_factory.mktemp("plain")
    runs = {}
    for name in CLIPS:
        run_video(str(videos / f"{name}.mp4"), root / name)
        runs[name] = root / name
    return runs


def assert_same_results(batch_dir: Path, plain_dir: Path) -> None:
    for name in ("tracks.txt", "objects.csv"):
        assert (batch_dir / name).read_bytes() == (plain_dir / name).read_bytes(), name
    got = json.loads((batch_dir / "summary.json").read_text())
    want = json.loads((plain_dir / "summary.json").read_text())
    for key in (
        "objects",
        "anomalies",
        "normal",
        "unknown",
        "counts",
        "counts_over_time",
        "frames",
        "crops_written",
        "complete",
        "config",
    ):
        assert got[key] == want[key], key
    assert got["objects"] > 5 and got["frames"] == FRAMES
    crops = sorted(p.relative_to(batch_dir) for p in (batch_dir / "crops").rglob("*.jpg"))
    assert crops and crops == sorted(p.relative_to(plain_dir) for p in (plain_dir / "crops").rglob("*.jpg"))
    for p in crops:
        assert (batch_dir / p).read_bytes() == (plain_dir / p).read_bytes(), p
    assert (batch_dir / "annotated.mp4").stat().st_size > 0


def by_name(batch: dict) -> dict[str, dict]:
    return {v["name"]: v for v in batch["videos"]}


@pytest.fixture(scope="module")
def first_batch(videos, tmp_path_factory):
    """`batch 'videos/*.mp4'` on a local cluster of 2 worker processes; the worker running b is
    killed after 30 of its 75 frames on the first attempt."""
    root = tmp_path_factory.mktemp("first-batch")
    marker = root / "b-killed-once"
    out = root / "out"
    # tests/kill_worker.py, preloaded by every worker of the local cluster, kills the one running b
    kill = {
        "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([str(Path(__file__).with_name("kill_worker.py"))]),
        "CQC_TEST_KILL_WORKER": f"b:{marker}",
    }
    r = cli("batch", str(videos / "*.mp4"), "--out", out, "--workers", 2, env=kill)
    return out, r, marker


def test_results_equal_plain_runs(first_batch, plain_runs):
    out, r, _ = first_batch
    batch = json.loads((out / "batch.json").read_text())
    videos = by_name(batch)
    assert sorted(videos) == ["a", "b", "c", "notes"]
    for name in CLIPS:
        assert videos[name]["status"] == "done", (videos[name], r.stderr)
        assert_same_results(out / name, plain_runs[name])
        assert (
            json.loads((out / name / "summary.json").read_text())["input"]
            == json.loads((plain_runs[name] / "summary.json").read_text())["input"]
        )
    assert batch["state"] == "finished"
    assert batch["cluster"]["local"] is True and batch["cluster"]["workers"] == 2
    assert batch["cluster"]["scheduler"].startswith("tcp://127.0.0.1:")
    assert all(videos[n]["worker"].startswith("tcp://127.0.0.1:") for n in CLIPS)


def test_a_file_that_is_not_a_video_fails_with_its_error_and_the_others_finish(first_batch, videos):
    out, r, _ = first_batch
    notes = by_name(json.loads((out / "batch.json").read_text()))["notes"]
    assert notes["status"] == "failed"
    assert notes["error_type"] == "VideoError"
    assert "notes.mp4" in notes["error"] and "not a video" in notes["error"]
    assert notes["objects"] is None and notes["frames"] is None
    assert not (out / "notes" / "summary.json").exists()
    assert r.returncode == 1, r.stderr  # not everything succeeded
    assert f"failed: {videos / 'notes.mp4'}: " in r.stderr
    assert "4 videos: 3 done, 0 skipped, 1 failed" in r.stdout


def test_a_killed_worker_is_replaced_and_its_video_run_again(first_batch):
    out, r, marker = first_batch
    assert marker.exists(), "the kill hook never fired: the test would prove nothing"
    b = by_name(json.loads((out / "batch.json").read_text()))["b"]
    assert b["status"] == "done" and b["worker_losses"] == 1 and b["error"] is None
    assert "b: its worker process died" in r.stderr and "running it again (1 of 2)" in r.stderr
    # the run that was killed left no partial files behind in the final results
    assert not list((out / "b").glob(".*partial*"))


def test_batch_json_totals_are_the_sums_of_its_videos(first_batch):
    out, _r, _ = first_batch
    batch = json.loads((out / "batch.json").read_text())
    videos, total = batch["videos"], batch["total"]
    for key in ("objects", "anomalies", "counted", "frames"):
        assert total[key] == sum(v[key] or 0 for v in videos), key
    assert total["frames"] == total["frames_processed"] == 3 * FRAMES
    assert (total["videos"], total["done"], total["skipped"], total["failed"]) == (4, 3, 0, 1)
    assert total["fps"] > 0 and total["wall_seconds"] > 0
    for v in videos:
        if v["status"] == "done":
            summary = json.loads((out / v["out"] / "summary.json").read_text())
            assert (v["objects"], v["anomalies"], v["counted"], v["frames"], v["fps"]) == (
                summary["objects"],
                summary["anomalies"],
                summary["counts"]["total"],
                summary["frames"],
                summary["fps"],
            )
    assert not list(out.glob(".batch.json*")), "temporary file left behind"


def test_progress_shows_videos_done_and_the_cluster_speed(first_batch):
    _, r, _ = first_batch
    lines = r.stderr.splitlines()
    assert "4 videos to run on a local cluster of 2 worker processes" in lines
    done_lines = [ln for ln in lines if re.match(r"\[\d+/\d+\] ", ln)]  # (FFmpeg's own lines start with "[" too)
    assert [ln.split("]")[0] for ln in done_lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert sum("fps; cluster " in ln for ln in done_lines) == 3  # the three clips; notes.mp4 failed


def test_a_rerun_skips_complete_results_and_force_redoes_them(first_batch, videos, plain_runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_batch[0], out)
    clips = [str(videos / f"{n}.mp4") for n in CLIPS]
    stamp = {n: (out / n / "summary.json").stat().st_mtime_ns for n in CLIPS}

    # Everything complete and current: nothing runs, no cluster is started.
    lines: list[str] = []
    report = run_batch(clips, out, workers=2, progress=lines.append)
    assert [j.status for j in report.jobs] == ["skipped"] * 3 and report.cluster == {}
    assert "3 of 3 videos already have complete results: skipped (--force redoes them)" in lines
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in CLIPS} == stamp
    batch = json.loads((out / "batch.json").read_text())
    assert batch["total"]["skipped"] == 3 and batch["total"]["frames_processed"] == 0
    assert batch["total"]["frames"] == 3 * FRAMES  # a skipped video's figures still count

    # c's file changed (its modification time): it alone is run again. --force redoes a.
    st = os.stat(videos / "c.mp4")
    os.utime(videos / "c.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        report = run_batch(clips, out, workers=2)
        assert [j.status for j in report.jobs] == ["skipped", "skipped", "done"]
        report = run_batch([clips[0]], out, workers=2, force=True)
        assert [j.status for j in report.jobs] == ["done"]
    finally:
        os.utime(videos / "c.mp4", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (out / "a" / "summary.json").stat().st_mtime_ns != stamp["a"]
    assert (out / "b" / "summary.json").stat().st_mtime_ns == stamp["b"]
    assert (out / "c" / "summary.json").stat().st_mtime_ns != stamp["c"]
    for name in ("a", "c"):
        assert_same_results(out / name, plain_runs[name])

    # Other settings are not the same results: everything runs again.
    from conveyor_qc.config import Config

    config = Config()
    config.set("output.video", False)
    report = run_batch([clips[1]], out, config, workers=1)
    assert [j.status for j in report.jobs] == ["done"]


def test_an_existing_cluster_by_its_scheduler_address(videos, plain_runs, tmp_path):
    # Two videos of the same name in different folders: x/a.mp4 (clip a) and y/a.mp4 (clip b).
    for folder, clip in (("x", "a"), ("y", "b")):
        (tmp_path / folder).mkdir()
        shutil.copy2(videos / f"{clip}.mp4", tmp_path / folder / "a.mp4")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        lines: list[str] = []
        report = run_batch(
            [str(tmp_path / "[xy]" / "a.mp4")],
            tmp_path / "out",
            scheduler=cluster.scheduler_address,
            progress=lines.append,
        )
    assert [(j.name, j.status) for j in report.jobs] == [("x__a", "done"), ("y__a", "done")]
    assert f"2 videos to run on the cluster at {cluster.scheduler_address}" in lines
    batch = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert batch["cluster"] == {"scheduler": cluster.scheduler_address, "local": False}
    for name, clip in (("x__a", "a"), ("y__a", "b")):
        got, want = tmp_path / "out" / name, plain_runs[clip]
        assert (got / "tracks.txt").read_bytes() == (want / "tracks.txt").read_bytes()
        assert (got / "objects.csv").read_bytes() == (want / "objects.csv").read_bytes()


def test_ctrl_c_stops_the_batch_and_closes_the_cluster(videos, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        shutil.copy2(videos / "a.mp4", folder / f"a{i}.mp4")
    out = tmp_path / "out"
    proc = popen_interruptible(
        [*CLI, "batch", str(folder / "*.mp4"), "--out", str(out), "--workers", "1"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        children = []
        for line in proc.stderr:
            if "videos to run on a local cluster of 1 worker process" in line:
                children = psutil.Process(proc.pid).children(recursive=True)
            if line.startswith("[1/6]"):
                break
        assert children, "the local cluster's worker process was not seen"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: batch.json holds the videos that finished" in err
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left running: {alive}"
    batch = json.loads((out / "batch.json").read_text())
    assert batch["state"] == "interrupted"
    statuses = [v["status"] for v in batch["videos"]]
    assert statuses.count("done") >= 1 and statuses.count("interrupted") >= 1
    assert set(statuses) <= {"done", "interrupted"}
    for v in batch["videos"]:
        if v["status"] == "done":
            assert json.loads((out / v["out"] / "summary.json").read_text())["frames"] == FRAMES
        # done exactly when its folder holds complete results (a worker may finish one the client
        # had not collected when Ctrl-C came): never "interrupted" over a finished run
        summary = out / v["out"] / "summary.json"
        complete = summary.is_file() and json.loads(summary.read_text()).get("interrupted") is False
        assert (v["status"] == "done") == complete, v
    assert batch["total"]["done"] == statuses.count("done")


def test_inputs_that_match_nothing_are_a_clear_error(videos, tmp_path):
    out = tmp_path / "out"
    r = cli("batch", str(videos / "*.mkv"), "--out", out)
    assert r.returncode == 1 and "no video file matches" in r.stderr and "*.mkv" in r.stderr
    r = cli("batch", str(videos / "missing.mp4"), "--out", out)
    assert r.returncode == 1 and "video not found" in r.stderr
    r = cli("batch", videos, "--out", out)
    assert r.returncode == 1 and "is a folder" in r.stderr
    r = cli("batch", videos / "a.mp4", "--out", out, "--scheduler", "tcp://127.0.0.1:9", "--workers", "2")
    assert r.returncode == 2 and "--workers" in r.stderr
    r = cli("batch", videos / "a.mp4", "--out", out, "--scheduler", "nonsense::")
    assert r.returncode == 1 and "not a scheduler address: 'nonsense::'" in r.stderr
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BatchError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        run_batch([str(videos / "a.mp4")], out, scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=2)
    assert not out.exists(), "nothing may be written for bad input"


def test_output_names_tell_videos_of_the_same_name_apart():
    names = output_names(
        [
            Path("/data/day1/line3.mp4"),
            Path("/data/day2/line3.mp4"),
            Path("/data/day2/line4.mp4"),
            Path("/data/x/cam.mp4"),
            Path("/data/x/cam.avi"),
            Path("/data/batch.json.mp4"),
        ]
    )
    assert names == ["day1__line3", "day2__line3", "line4", "cam.mp4", "cam.avi", "batch.json~2"]
    assert output_names([Path("/a/Clip.mp4"), Path("/b/clip.mp4")]) == ["a__Clip", "b__clip"]


def test_results_are_current_only_for_the_same_video_settings_and_model(plain_runs, videos):
    from conveyor_qc.config import Config
    from conveyor_qc.run.provenance import source_identity

    video = videos / "a.mp4"
    config_json = json.loads(json.dumps(Config().to_dict()))
    job = VideoJob(video=video, name="a", out=plain_runs["a"], identity=source_identity(video))
    figures = completed_figures(job, config_json, None)
    summary = json.loads((plain_runs["a"] / "summary.json").read_text())
    assert figures["objects"] == summary["objects"] and figures["frames"] == FRAMES
    assert completed_figures(job, config_json, {"path": "/models/m", "sha256": "0" * 64}) is None
    other = json.loads(json.dumps(config_json))
    other["detect"]["min_area"] += 1
    assert completed_figures(job, other, None) is None
    bigger = VideoJob(
        video=video, name="a", out=plain_runs["a"], identity={**job.identity, "bytes": job.identity["bytes"] + 1}
    )
    assert completed_figures(bigger, config_json, None) is None
    elsewhere = VideoJob(video=videos / "b.mp4", name="a", out=plain_runs["a"], identity=job.identity)
    assert completed_figures(elsewhere, config_json, None) is None


def test_a_video_finished_but_not_collected_when_ctrl_c_came_is_done(videos, tmp_path, monkeypatch):
    """Ctrl-C while a worker had just finished a video whose result the client had not collected:
    batch.json says done for it (its folder holds complete results), not interrupted, and the next
    batch skips it."""
    import conveyor_qc.run.batch as batch_module

    def finish_one_then_ctrl_c(cluster, todo, report, config_json, model_path, retries, emit, save, start):
        job = todo[0]
        batch_module.run_one(job.name, str(job.video), str(job.out), config_json, model_path)
        raise KeyboardInterrupt  # before the client collected that video's future

    monkeypatch.setattr(batch_module, "_run_jobs", finish_one_then_ctrl_c)
    out = tmp_path / "out"
    report = run_batch([str(videos / "a.mp4"), str(videos / "b.mp4")], out, workers=1)
    assert report.interrupted
    statuses = {v["name"]: v["status"] for v in json.loads((out / "batch.json").read_text())["videos"]}
    assert statuses == {"a": "done", "b": "interrupted"}
    monkeypatch.undo()
    again = run_batch([str(videos / "a.mp4")], out, workers=1)
    assert [j.status for j in again.jobs] == ["skipped"]


def test_a_folder_whose_video_was_lost_is_not_done(plain_runs, videos, tmp_path):
    """A run killed after its rows were on disk but before its video was finished is recovered
    with every row and `video_lost: true` (docs/outputs.md); its folder is not done, or batch
    would skip the video for ever without its annotated.mp4. Neither is one whose annotated.mp4
    is missing while the settings write one."""
    from conveyor_qc.config import Config
    from conveyor_qc.run.provenance import source_identity

    video = videos / "a.mp4"
    config_json = json.loads(json.dumps(Config().to_dict()))
    out = tmp_path / "a"
    shutil.copytree(plain_runs["a"], out)
    job = VideoJob(video=video, name="a", out=out, identity=source_identity(video))
    assert completed_figures(job, config_json, None) is not None
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "recovered": True, "video_lost": True}))
    (out / "annotated.mp4").unlink()
    assert completed_figures(job, config_json, None) is None
    (out / "summary.json").write_text(json.dumps(summary))
    assert completed_figures(job, config_json, None) is None  # no video, and the settings write one
    no_video = json.loads(json.dumps(config_json))
    no_video["output"]["video"] = False
    (out / "summary.json").write_text(json.dumps({**summary, "config": no_video}))
    assert completed_figures(job, no_video, None) is not None
