"""`conveyor-qc run` on a live stream: a synthetic clip served over HTTP as MJPEG by a
stand-in camera on loopback (mjpeg_standin.py), cut mid-clip and restored. The run
must not stop at the cut, must reconnect, and must count the objects of the frames
actually served; --duration, --max-frames and Ctrl-C stop it with complete files."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

from conftest import CLI, popen_interruptible, read_mot, run_cli
from conveyor_qc.evaluation.metrics import object_metrics
from conveyor_qc.run.video import ReconnectPolicy
from mjpeg_standin import Cut, MjpegStandIn, jpeg_frames

#: Objects first half in view this close to the clip's end may not be counted yet: an
#: object is counted once seen on track.min_hits frames and wholly in view.
END_GRACE = 10


def cli(*args, timeout: float = 120):
    return run_cli(*args, timeout=timeout)


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("cookies", seed=5, seconds=4)  # 120 frames, 1280x720, 26 objects


@pytest.fixture(scope="module")
def frames(clip):
    return jpeg_frames(clip.video)


def served_gt(gt: np.ndarray, served: list[int]) -> np.ndarray:
    """Ground truth of the frames a stream served (clip frame indices, 0-based, in order),
    renumbered as the run numbers them: the i-th frame received is frame i + 1."""
    position = {clip_index + 1: i + 1 for i, clip_index in enumerate(served)}
    rows = gt[np.isin(gt[:, 0].astype(int), list(position))].copy()
    rows[:, 0] = [position[int(f)] for f in rows[:, 0]]
    return rows


def must_count(gt: np.ndarray, grace: int = END_GRACE) -> set[int]:
    """Objects at least half in view on some frame before the last ``grace`` frames."""
    last = gt[:, 0].max()
    return {int(r[1]) for r in gt if r[8] >= 0.5 and r[0] <= last - grace}


def left_view(gt: np.ndarray) -> set[int]:
    """Objects seen leaving: their last row is before the last frame (count.line = 1.0
    counts an object as it leaves; one still in view at the end is not counted)."""
    last = gt[:, 0].max()
    last_row: dict[int, float] = {}
    for r in gt:
        last_row[int(r[1])] = max(last_row.get(int(r[1]), 0.0), r[0])
    return {g for g, f in last_row.items() if f < last}


def read_outputs(out):
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "objects.csv", newline="") as fh:
        objects = list(csv.DictReader(fh))
    tracks = read_mot(out / "tracks.txt") if (out / "tracks.txt").stat().st_size else np.zeros((0, 10))
    assert len(objects) == summary["objects"]
    assert {int(o["track_id"]) for o in objects} == set(np.unique(tracks[:, 1]).astype(int).tolist())
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return summary, objects, tracks


def test_cut_and_restored_stream_keeps_its_tracks(clip, frames, tmp_path):
    """The source goes away for 1.5 s after frame 50 and comes back where it was (a buffering
    camera): the run reconnects, keeps the open tracks (--max-gap above the outage) and
    counts every object once, as on the file."""
    out = tmp_path / "out"
    with MjpegStandIn(frames, fps=60, cuts=[Cut(at=50, seconds=1.5)]) as cam:
        r = cli(
            "run",
            cam.url,
            "--out",
            out,
            "--no-video",
            "--max-frames",
            len(frames),
            "--max-gap",
            30,
            "--reconnect-timeout",
            30,
        )
        served = list(cam.served)
        assert cam.refused >= 1 and cam.connections == 2
    assert r.returncode == 0, r.stderr
    assert "source lost after frame 50" in r.stderr and "source back" in r.stderr and "kept" in r.stderr
    assert served == list(range(len(frames)))
    summary, _objects, tracks = read_outputs(out)
    assert summary["frames"] == len(frames) and summary["complete"]
    assert summary["source_kind"] == "stream" and summary["reconnects"] == 1
    [gap] = summary["stream_gaps"]
    assert gap["after_frame"] == 50 and gap["tracks"] == "kept" and gap["attempts"] >= 2

    report = object_metrics(clip.gt, tracks)
    assert not must_count(clip.gt) - set(report.track_of), "objects never tracked"
    assert not (report.split or report.joined or report.duplicates or report.ghosts), report
    assert summary["counts"]["total"] == len(left_view(clip.gt))


def test_long_gap_ends_open_tracks_and_starts_afresh(clip, frames, tmp_path):
    """A live camera: 2 s without frames after frame 50, and the 45 frames of the outage lost.
    The gap is longer than --max-gap, so the open tracks end at it and detection starts
    afresh. Objects not in view at the gap are counted exactly once. Tolerance for the
    objects in view across it (as at the end and the start of two videos): each may be
    followed under two numbers, one each side, or be missed, and a fresh start may see two
    of them touching as one at first (joined)."""
    out = tmp_path / "out"
    skip = 45
    with MjpegStandIn(frames, fps=60, cuts=[Cut(at=50, seconds=2.0, skip=skip)]) as cam:
        r = cli("run", cam.url, "--out", out, "--no-video", "--max-frames", len(frames) - skip, "--max-gap", 0.2)
        served = list(cam.served)
    assert r.returncode == 0, r.stderr
    assert "ended (gap longer than 0.2 s)" in r.stderr
    assert served == list(range(50)) + list(range(50 + skip, len(frames)))
    summary, objects, tracks = read_outputs(out)
    assert summary["frames"] == len(served)
    [gap] = summary["stream_gaps"]
    assert gap["after_frame"] == 50 and gap["tracks"] == "ended"

    gt = served_gt(clip.gt, served)
    before, after = set(gt[gt[:, 0] <= 50, 1].astype(int)), set(gt[gt[:, 0] > 50, 1].astype(int))
    across = before & after
    assert across, "the cut must fall while objects are in view, or this test tests nothing"
    report = object_metrics(gt, tracks)
    assert not (must_count(gt) - across) - set(report.track_of), "objects not in view at the gap never tracked"
    assert not report.ghosts, report.ghosts
    assert {g for g, _ in report.split + report.duplicates} <= across, report
    assert {g for _, gs in report.joined for g in gs} <= across, report.joined
    # Numbers continue across the gap: no number is used twice.
    ids = [int(o["track_id"]) for o in objects]
    assert len(ids) == len(set(ids))
    # Counted at the line: the objects seen leaving; those that left during the outage were not.
    last_seen_at_cut = set(gt[gt[:, 0] == 50, 1].astype(int)) - after  # left during the outage: unseen
    leaving = left_view(gt) - last_seen_at_cut
    assert len(leaving - across) <= summary["counts"]["total"] <= len(leaving)


def test_source_gone_for_good_gives_up_with_complete_files(clip, frames, tmp_path):
    """The stream ends and never answers again: reconnecting gives up after
    --reconnect-timeout, exit code 3, the outputs hold every frame served."""
    out = tmp_path / "out"
    with MjpegStandIn(frames, fps=120) as cam:
        r = cli("run", cam.url, "--out", out, "--no-video", "--reconnect-timeout", 1.5)
        served = len(cam.served)
        assert cam.refused >= 2  # it tried more than once
    assert r.returncode == 3, r.stderr
    assert "did not come back" in r.stderr and "reconnect timeout is 1.5 s" in r.stderr
    summary, _objects, _tracks = read_outputs(out)
    assert summary["frames"] == served == len(frames)
    assert not summary["complete"] and "did not come back" in summary["stop_reason"]
    assert summary["counts"]["total"] == len(left_view(clip.gt))


def test_stream_back_at_another_size_ends_the_run(frames, tmp_path):
    """A camera reconfigured during an outage: the run keeps one frame size, so it ends
    at the gap with complete files and says why (exit code 3)."""
    small = [
        cv2.imencode(".jpg", cv2.resize(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), (640, 360)))[
            1
        ].tobytes()
        for j in frames[40:60]
    ]
    out = tmp_path / "out"
    with MjpegStandIn(frames[:40] + small, fps=120, cuts=[Cut(at=40, seconds=0.3)]) as cam:
        r = cli("run", cam.url, "--out", out, "--no-video")
    assert r.returncode == 3, r.stderr
    assert "came back at 640x360 after 1280x720" in r.stderr
    summary, _, tracks = read_outputs(out)
    assert summary["frames"] == 40 and summary["width"] == 1280 and not summary["complete"]
    assert tracks.shape[0] == 0 or tracks[:, 0].max() <= 40


def test_duration_stops_a_live_stream(frames, tmp_path):
    out = tmp_path / "out"
    with MjpegStandIn(frames, fps=30, loop=True) as cam:
        r = cli("run", cam.url, "--out", out, "--no-video", "--duration", 1.5, timeout=60)
        served = len(cam.served)
    assert r.returncode == 0, r.stderr
    summary, _, _ = read_outputs(out)
    assert summary["complete"] and not summary["interrupted"]
    assert 0 < summary["frames"] <= served


def test_ctrl_c_stops_a_live_stream_with_complete_files(frames, tmp_path):
    out = tmp_path / "out"
    with MjpegStandIn(frames, fps=30, loop=True) as cam:
        proc = popen_interruptible(
            [*CLI, "run", cam.url, "--out", str(out), "--no-video"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(lambda: len(cam.served) >= 60, proc)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130, stderr
    summary, _, _ = read_outputs(out)
    assert summary["interrupted"] and summary["frames"] >= 1


@pytest.fixture(scope="module")
def cookie_model(tmp_path_factory):
    """A local model of the real cookie photos (seconds to train): it judges the clip's crops."""
    from conveyor_qc.shared import cookie_photos_dir

    folder = tmp_path_factory.mktemp("model") / "model"
    r = cli("train", cookie_photos_dir() / "train.manifest", "--out", folder, timeout=300)
    assert r.returncode == 0, r.stderr
    return folder


def test_sigterm_stops_a_live_run_cleanly_and_loses_nothing(clip, frames, cookie_model, tmp_path):
    """systemd's, Docker's and Kubernetes' stop: every object in view finished and judged, the
    files complete, exit 143, as after Ctrl-C."""
    out = tmp_path / "out"
    with MjpegStandIn(frames, fps=30, loop=True) as cam:
        proc = subprocess.Popen(
            [*CLI, "run", cam.url, "--out", str(out), "--no-video", "--model", str(cookie_model)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(lambda: len(cam.served) >= 75, proc)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
        served = list(cam.served)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM: the outputs hold everything seen until then" in stderr and "Traceback" not in stderr
    summary, objects, tracks = read_outputs(out)
    assert summary["interrupted"] and summary["stopped_by"] == "SIGTERM" and summary["frames"] >= 60
    # every object seen is written, the ones in view at the stop too
    gt = served_gt(clip.gt, [i % len(frames) for i in served[: summary["frames"]]])
    report = object_metrics(gt, tracks)
    assert not set(report.missed) & must_count(gt), report.missed
    # and judged: every object with a crop (one wholly in view) has its verdict, none left waiting
    cropped = {int(p.name) for p in (out / "crops").iterdir()}
    assert cropped and all(o["label"] in ("normal", "anomaly") for o in objects if int(o["track_id"]) in cropped)
    assert summary["anomalies"] + summary["normal"] >= len(cropped)


def test_a_second_sigterm_while_stopping_is_ignored():
    import os

    from conveyor_qc.run.stopping import Terminated, stop_on_sigterm, terminated

    caught = 0
    with stop_on_sigterm():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except Terminated:
            caught += 1
            os.kill(os.getpid(), signal.SIGTERM)  # finishing: a second one changes nothing
            time.sleep(0.1)
        assert terminated()
    assert caught == 1 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_stop_during_a_step_waits_for_its_end():
    """A frame's step hands the tracker's finished objects to the judge and the writer: SIGTERM
    or Ctrl-C inside it takes effect as it ends, so nothing it held is lost (a SIGTERM landing
    between the two once lost an object that had just left the view)."""
    import os

    from conveyor_qc.run.stopping import Terminated, stop_on_sigterm, whole_step

    handed_on = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with stop_on_sigterm():
            with pytest.raises(KeyboardInterrupt) as ctrl_c, whole_step():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the handler has run by now, and held the stop
                handed_on.append("frame 1")
            with pytest.raises(Terminated), whole_step():
                with whole_step():  # nested: the outermost step's end raises
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)
                    handed_on.append("frame 2")
                handed_on.append("frame 2, rest")
            time.sleep(0.2)  # nothing held is raised twice
    finally:
        signal.signal(signal.SIGINT, previous)
    assert type(ctrl_c.value) is KeyboardInterrupt
    assert handed_on == ["frame 1", "frame 2", "frame 2, rest"]


def test_ctrl_c_while_reconnecting(frames, tmp_path):
    """Ctrl-C during an outage (the reader waiting between attempts) stops at once,
    with the frames seen before the outage in complete files."""
    out = tmp_path / "out"
    with MjpegStandIn(frames, fps=120, cuts=[Cut(at=30, seconds=600)]) as cam:
        proc = popen_interruptible(
            [*CLI, "run", cam.url, "--out", str(out), "--no-video", "--reconnect-timeout", "600"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(lambda: cam.refused >= 3, proc)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "reconnect attempt" in stderr
    summary, _, _ = read_outputs(out)
    assert summary["interrupted"] and summary["frames"] == 30 and summary["reconnects"] == 0


def test_file_never_reconnects_and_max_frames_is_no_early_end(clip, tmp_path):
    """A file's end is the end; stopping it with --max-frames is a complete run (exit 0),
    not a truncated file."""
    out = tmp_path / "out"
    r = cli("run", clip.video, "--out", out, "--no-video", "--no-crops", "--max-frames", 30, "--reconnect-timeout", 60)
    assert r.returncode == 0, r.stderr
    summary, _, _ = read_outputs(out)
    assert summary["frames"] == 30 and summary["complete"] and summary["stop_reason"] is None
    assert summary["source_kind"] == "file" and summary["reconnects"] == 0 and summary["stream_gaps"] == []


def test_video_file_served_over_http_is_read_like_a_file(clip, tmp_path):
    """A URL whose container announces its length (here an AVI on a plain HTTP server) is a
    file served over the network: read to its end, never reopened (the server would serve it
    again from the start), and the same result as the file itself."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    cap = cv2.VideoCapture(str(clip.video))
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
    for _ in range(30):
        writer.write(cv2.resize(cap.read()[1], (640, 360), interpolation=cv2.INTER_AREA))
    writer.release()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = cli(
            "run",
            f"http://127.0.0.1:{server.server_address[1]}/clip.avi",
            "--out",
            tmp_path / "url",
            "--no-video",
            "--reconnect-timeout",
            60,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stderr
    summary, _, _ = read_outputs(tmp_path / "url")
    assert summary["source_kind"] == "remote file" and summary["frames"] == 30 and summary["reconnects"] == 0
    assert cli("run", tmp_path / "clip.avi", "--out", tmp_path / "file", "--no-video").returncode == 0
    assert (tmp_path / "url" / "tracks.txt").read_text() == (tmp_path / "file" / "tracks.txt").read_text()
    assert summary["objects"] > 0


def test_stream_that_never_answers_fails_before_writing(tmp_path):
    import socket

    with socket.socket() as s:  # a port with nothing behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    r = cli("run", f"http://127.0.0.1:{port}/stream.mjpg", "--out", out)
    assert r.returncode == 1
    assert "cannot open" in r.stderr and "a stream that answers" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "args, words",
    [
        (["--duration", "0"], "more than 0"),
        (["--reconnect-timeout", "-1"], "at least 0"),
        (["--max-gap", "soon"], "number of seconds"),
        (["--max-frames", "0"], "at least 1"),
    ],
)
def test_bad_stream_options_are_usage_errors(tmp_path, args, words):
    r = cli("run", "http://127.0.0.1:9/x", "--out", tmp_path / "o", *args)
    assert r.returncode == 2 and words in r.stderr


def test_segments_continue_numbers_and_keep_the_direction(clip):
    """SegmentedPipeline.restart(): the open tracks end, the fresh core keeps the belt
    direction read before (so it confirms objects at once), and track and frame numbers
    go on from the previous segment."""
    from conveyor_qc import VideoReader
    from conveyor_qc.run.segments import SegmentedPipeline

    pipeline = SegmentedPipeline()
    ids_before, ended, ids_after, frame_indices = set(), [], set(), []
    with VideoReader(clip.video) as reader:
        for i, frame in enumerate(reader):
            if i == 40:
                assert pipeline.direction == "left_to_right"
                ended = pipeline.restart()
                assert pipeline.direction == "left_to_right" and pipeline.segments == 2
            update = pipeline.process(frame)
            frame_indices.append(update.tracks.frame_index)
            (ids_before if i < 40 else ids_after).update(update.tracks.ids.tolist())
            if i == 70:
                break
    assert frame_indices == list(range(71)) and pipeline.frames_processed == 71
    assert ended and {o.end for o in ended} == {"stream_end"} and {o.track_id for o in ended} <= ids_before
    assert ids_after and min(ids_after) > max(ids_before)
    last = pipeline.finish()
    assert all(o.first_frame >= 40 and o.frames.min() >= 40 and o.last_frame <= 70 for o in last)


def test_backoff_doubles_to_its_bound():
    waits = ReconnectPolicy(give_up_after=60).waits()
    assert [next(waits) for _ in range(8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    with pytest.raises(ValueError, match="give_up_after"):
        ReconnectPolicy(give_up_after=-1)


def _wait_for(condition, proc: subprocess.Popen, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("the stream was not read in time")
        time.sleep(0.05)


# --- a file whose frame size changes midway (issue 20, fault probe) ----------------------------------
#
# OpenCV's FFmpeg reader scales every frame to the first frame's size without a word, and its
# CAP_PROP_FRAME_WIDTH/HEIGHT keep the first size too: the change cannot be seen in what it returns.


def _first_frames(video, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    cap.release()
    return frames


def _joined(path, halves: list[list[np.ndarray]], codec: str, container: str) -> None:
    """One video stream made of two encodings of different sizes, their packets muxed one after
    the other as FFmpeg's concat demuxer (or a remux) joins files: the second half's size is in
    its own in-band headers, the container announces the first."""
    av = pytest.importorskip("av", reason="PyAV builds the joined file")
    from fractions import Fraction

    encoded = []
    for frames in halves:
        h, w = frames[0].shape[:2]
        cc = av.CodecContext.create(codec, "w")
        cc.width, cc.height, cc.pix_fmt, cc.time_base, cc.framerate = w, h, "yuv420p", Fraction(1, 30), 30
        if codec == "libx264":
            cc.options = {"preset": "ultrafast"}
        packets = []
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
            vf.pts, vf.time_base = i, cc.time_base
            packets += cc.encode(vf)
        encoded.append((cc, packets + cc.encode(None)))
    h, w = halves[0][0].shape[:2]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("h264" if codec == "libx264" else codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if encoded[0][0].extradata:
            stream.codec_context.extradata = encoded[0][0].extradata
        offset = 0
        for frames, (_cc, packets) in zip(halves, encoded, strict=True):
            for packet in packets:
                packet.stream, packet.time_base = stream, Fraction(1, 30)
                packet.pts += offset
                packet.dts += offset
                out.mux(packet)
            offset += len(frames)


@pytest.mark.parametrize(
    ("codec", "container", "suffix"),
    [("mpeg4", "mp4", ".mp4"), ("libx264", "matroska", ".mkv"), ("mpeg4", "avi", ".avi")],
)
def test_file_whose_frame_size_changes_midway_ends_the_run(clip, tmp_path, codec, container, suffix):
    """Two encodings joined in one file, 1280x720 then 640x360: OpenCV would scale the second
    half to 1280x720 and the run read it all as one video (exit 0, complete). It must stop at the
    first frame of the new size with exit code 3, complete files for the frames before, and say
    why (docs/streams.md)."""
    frames = _first_frames(clip.video, 60)
    video = tmp_path / f"joined{suffix}"
    _joined(
        video,
        [frames[:40], [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames[40:]]],
        codec,
        container,
    )
    out = tmp_path / "out"
    r = cli("run", video, "--out", out, "--no-video")
    assert r.returncode == 3, r.stderr
    assert "frame size changed" in r.stderr and "frame 41 is 640x360" in r.stderr, r.stderr
    summary, _objects, tracks = read_outputs(out)
    assert summary["frames"] == 40 and summary["width"] == 1280
    assert not summary["complete"] and summary["ended_early"]
    assert "frame size changed" in summary["stop_reason"]
    assert tracks.shape[0] == 0 or tracks[:, 0].max() <= 40


def test_second_mp4_appended_to_a_file_ends_as_incomplete(clip, tmp_path):
    """Two MP4 files of different sizes appended byte for byte (`cat a.mp4 b.mp4`): FFmpeg reads
    the first one's index and never sees the second, so the run read 40 of the 60 frames and
    called itself complete. The file holds more than was read: exit code 3, not complete."""
    frames = _first_frames(clip.video, 60)
    parts = []
    for i, (half, size) in enumerate(((frames[:40], (1280, 720)), (frames[40:], (640, 360)))):
        path = tmp_path / f"half{i}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
        for frame in half:
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        writer.release()
        parts.append(path.read_bytes())
    video = tmp_path / "appended.mp4"
    video.write_bytes(b"".join(parts))
    out = tmp_path / "out"
    r = cli("run", video, "--out", out, "--no-video")
    assert r.returncode == 3, r.stderr
    assert "appended" in r.stderr, r.stderr
    summary, _objects, _tracks = read_outputs(out)
    assert summary["frames"] == 40 and not summary["complete"] and "appended" in summary["stop_reason"]
