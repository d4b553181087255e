"""The Python API, used the way another program embeds it (no CLI)."""

from __future__ import annotations

import itertools

import numpy as np

from conveyor_qc import Config, ObjectEvent, Pipeline, VideoReader


def test_embed_without_cli(make_clip):
    clip = make_clip("cookies", seed=1, seconds=8)
    pipeline = Pipeline(Config())
    finished: list[ObjectEvent] = []
    ids_seen: set[int] = set()
    with VideoReader(str(clip.video)) as reader:
        for frame in reader:
            update = pipeline.process(frame)
            assert update.tracks.boxes.shape == (len(update.tracks), 4)
            ids_seen.update(tid for tid, _ in update.tracks)
            finished.extend(update.finished)
    finished.extend(pipeline.finish())
    assert finished
    finished_ids = {o.track_id for o in finished}
    assert ids_seen <= finished_ids
    # Objects never wholly in view are counted only as they leave or the stream ends.
    for obj in finished:
        if obj.track_id not in ids_seen:
            assert not obj.ever_whole and obj.end in ("stream_end", "exited")
    assert len({o.track_id for o in finished}) == len(finished)  # each object reported once
    for obj in finished:
        assert obj.frames.shape[0] == obj.boxes.shape[0] == obj.frame_count
        assert obj.first_frame == obj.frames[0] and obj.last_frame == obj.frames[-1]
        assert np.all(np.diff(obj.frames) == 1)
        if obj.ever_whole:
            assert obj.best_crop is not None and obj.best_crop.shape == (384, 384, 3)
            assert obj.shape.area > 0
    last = pipeline.frames_processed - 1
    assert any(o.end == "exited" for o in finished)
    for obj in finished:  # objects in view at the end are reported as such, and only those
        assert (obj.end == "stream_end") == (obj.last_frame == last), obj.end


def test_demo_steps(make_clip, tmp_path, capsys):
    """The steps of `make demo` in Python: labels from the ground truth, then the summary."""
    import csv

    from conveyor_qc import demo
    from conveyor_qc.evaluation.truth_labels import label_from_truth
    from conveyor_qc.run.job import run_video

    clip = make_clip("cookies", seed=5, seconds=4)
    run = tmp_path / "run"
    run_video(clip.video, run, video=False, crops=False)
    assert label_from_truth(run, clip.folder).labelled > 0
    with open(run / "labels.csv", newline="") as fh:
        labels = list(csv.DictReader(fh))
    with open(run / "objects.csv", newline="") as fh:
        tracks = {r["track_id"] for r in csv.DictReader(fh)}
    assert labels and {r["track_id"] for r in labels} <= tracks
    assert {r["label"] for r in labels} <= {"normal", "anomaly"}
    assert demo.main(["summary", str(run), str(clip.folder)]) == 0
    out = capsys.readouterr().out
    # The clip's last object comes into view on its last frame, which X = 2 does not detect on.
    import re

    m = re.search(
        r"objects counted : (\d+) \(ground truth: (\d+); object F1 ([0-9.]+), each counted once: (yes|no)\)", out
    )
    assert m, out
    assert int(m.group(2)) - 1 <= int(m.group(1)) <= int(m.group(2)) and float(m.group(3)) >= 0.95
    assert demo.main(["nonsense"]) == 2


def test_judge_crops_are_few_and_spread_over_the_path(make_clip):
    """Pipeline(object_crops=N, judge_every=K): an object is judged from its first periodic crop
    (output.crop_spacing of the view apart, while wholly in view) and then every K-th, at most N
    times; the crops written (keep_crops) are still every periodic one."""
    import pytest

    clip = make_clip("cookies", seed=1, seconds=8)
    config = Config()
    config.set("output.crop_spacing", 0.06)  # denser than the default: an object has 3 judge_every spans
    pipeline = Pipeline(config, keep_crops=True, object_crops=2, judge_every=3)
    judged: dict[int, list[int]] = {}
    written: dict[int, list[int]] = {}
    finished: dict[int, ObjectEvent] = {}
    with VideoReader(str(clip.video)) as reader:
        for frame in reader:
            update = pipeline.process(frame)
            for c in update.judge_crops:
                judged.setdefault(c.track_id, []).append(c.frame_index)
            for c in update.crops:
                written.setdefault(c.track_id, []).append(c.frame_index)
            finished.update((o.track_id, o) for o in update.finished)
    finished.update((o.track_id, o) for o in pipeline.finish())
    assert judged and max(len(f) for f in judged.values()) == 2
    for tid, frames in judged.items():
        w = written[tid]
        assert frames[0] == w[0] and set(frames) <= set(w)  # judged from its first whole view on
        assert frames == w[::3][:2]
        assert len(finished[tid].crops) == len(frames)
    # objects in view long enough have more crops written than judged
    assert any(len(written[t]) > 2 * 3 for t in judged)
    with pytest.raises(ValueError, match="judge_every"):
        Pipeline(Config(), object_crops=3, judge_every=0)


def test_crops_are_spaced_by_travel_whatever_the_frame_rate(make_clip, tmp_path):
    """The same belt filmed at 60 fps (each frame of the 30 fps clip twice, as a camera twice as
    fast sees an object move half as far) gives the same crops, at the same places, as at 30 fps,
    not twice as many: crops are output.crop_spacing of the view apart, and each of an object's
    crops is that far from its previous one."""
    clip = make_clip("cookies", seed=3, seconds=6)
    spacing = Config().output.crop_spacing

    def crops(repeat: int) -> dict[int, list[tuple[int, tuple]]]:
        pipeline = Pipeline(Config(), keep_crops=True)
        out: dict[int, list[tuple[int, tuple]]] = {}
        with VideoReader(str(clip.video)) as reader:
            for frame in reader:
                for _ in range(repeat):
                    update = pipeline.process(frame)
                    boxes = dict(update.tracks)
                    for c in update.crops:
                        out.setdefault(c.track_id, []).append((c.frame_index // repeat, tuple(boxes[c.track_id])))
        return out

    at_30, at_60 = crops(1), crops(2)
    n_30, n_60 = sum(map(len, at_30.values())), sum(map(len, at_60.values()))
    assert n_30 >= 20
    # An object is confirmed after as many frames at either rate, so half as far at 60 fps: its
    # first crop may come one spacing earlier. Never twice as many.
    assert n_30 <= n_60 <= n_30 + len(at_60)
    for views in (*at_30.values(), *at_60.values()):
        assert 1 <= len(views) <= round(1 / spacing)
        for (_, a), (_, b) in itertools.pairwise(views):
            moved = np.hypot((b[0] + b[2] / 2 - a[0] - a[2] / 2) / 1280, (b[1] + b[3] / 2 - a[1] - a[3] / 2) / 720)
            assert spacing <= moved < spacing + 0.02  # the first frame past the spacing (8 px a frame)


def test_run_judges_views_the_same_distance_apart_whatever_crop_spacing():
    """run's model judges crops JUDGE_TRAVEL (0.3 of the view) apart, whichever
    output.crop_spacing spaces the crops written: the default 0.15 and denser 0.06 or 0.1 judge
    about the same views."""
    from conveyor_qc.run.job import JUDGE_TRAVEL, judge_every

    assert JUDGE_TRAVEL == 0.3
    assert [judge_every(s) for s in (0.06, 0.1, 0.15, 0.3, 0.5, 0.01)] == [5, 3, 2, 1, 1, 30]


def test_a_config_with_crop_every_says_what_replaced_it():
    import pytest

    from conveyor_qc.config import ConfigError

    with pytest.raises(ConfigError, match=r"'output.crop_every' is no more: .*output.crop_spacing"):
        Config().set("output.crop_every", 25)


def test_crops_are_letterboxed_where_first_read(make_clip):
    """The pipeline's crops hold the object's region and letterbox it on first read (run's writer
    thread): the pixels are those of cutting and letterboxing at once, from any thread, and a
    crop renumbered for a later stream segment stays lazy."""
    import threading

    import pytest

    from conveyor_qc.crops import cut_out
    from conveyor_qc.run.pipeline import Crop

    clip = make_clip("cookies", seed=2, seconds=3)
    pipeline = Pipeline(Config(), keep_crops=True)
    frames, crops, finished = {}, [], set()
    with VideoReader(str(clip.video)) as reader:
        for frame in reader:
            update = pipeline.process(frame)
            frames[update.tracks.frame_index] = (frame, dict(update.tracks))
            crops += update.crops
            finished |= {o.track_id for o in update.finished}
    # Nothing letterboxed on the loop, but the best crop of an object that finished on it
    # (its ObjectEvent carries the image), which may be one of its periodic crops.
    assert crops and all(c._image is None for c in crops if c.track_id not in finished)
    assert any(c.track_id not in finished for c in crops)
    half = len(crops) // 2
    worker = threading.Thread(target=lambda: [c.image for c in crops[:half]])
    worker.start()
    worker.join()
    for c in crops:
        frame, boxes = frames[c.frame_index]
        expected = cut_out(frame, boxes[c.track_id], 384, Config().output.crop_margin)
        assert c.image.shape == (384, 384, 3) and np.array_equal(c.image, expected)
    later = Crop(3, 5, region=np.zeros((10, 20, 3), np.uint8), size=64).renumbered(100, 1000)
    assert (later.track_id, later.frame_index, later._image) == (103, 1005, None)
    assert later.image.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="either its image or the region"):
        Crop(1, 1)


def test_a_run_keeps_opencv_and_blas_to_one_thread_and_puts_them_back():
    """run_video sets OpenCV's own pool and BLAS's to one thread while runs go on (nested runs
    too), and puts back what the process had; BLAS's limit holds on other threads (the judge's)."""
    import threading

    import cv2
    from threadpoolctl import threadpool_info, threadpool_limits

    from conveyor_qc.run.job import libraries_single_threaded

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            assert blas_threads() == {2}
            with libraries_single_threaded():
                assert (cv2.getNumThreads(), blas_threads()) == (1, {1})
                with libraries_single_threaded():
                    seen = []
                    judge = threading.Thread(target=lambda: seen.append(blas_threads()))
                    judge.start()
                    judge.join()
                    assert seen == [{1}]
                assert (cv2.getNumThreads(), blas_threads()) == (1, {1})
            assert (cv2.getNumThreads(), blas_threads()) == (2, {2})
    finally:
        cv2.setNumThreads(before)


def test_the_reader_reuses_only_the_frames_nobody_holds(make_clip):
    """The decoder decodes into buffers it made before once nothing else holds them: the frames
    (and views of them) a consumer keeps stay exactly as decoded, the others' memory comes round
    again instead of a new array a frame."""
    import cv2

    clip = make_clip("cookies", seed=2, seconds=3)
    cap = cv2.VideoCapture(str(clip.video))
    truth = []
    while (got := cap.read())[0]:
        truth.append(got[1])
    cap.release()

    kept, views, addresses = {}, {}, set()
    with VideoReader(str(clip.video)) as reader:
        for i, frame in enumerate(reader):
            addresses.add(frame.ctypes.data)
            if i % 7 == 0:
                kept[i] = frame
            elif i % 7 == 3:
                views[i] = frame[100:200, 50:]  # a view holds its frame too
            assert np.array_equal(frame, truth[i])
    assert len(truth) == i + 1 == 90
    assert all(np.array_equal(f, truth[i]) for i, f in kept.items())
    assert all(np.array_equal(v, truth[i][100:200, 50:]) for i, v in views.items())
    # 26 frames held; the other 64 came out of a few buffers
    assert len(addresses) <= len(kept) + len(views) + 10


def test_the_decoder_leaves_two_cores_to_the_run(make_clip, monkeypatch):
    """FFmpeg decodes on the cores the process may use less two (the loop and the threads beside
    it), on one at least; the frames are the same as from OpenCV's own reader (the test above)."""
    import os

    import cv2

    from conveyor_qc.run.video import decoder_threads

    for cores, threads in [(1, 1), (2, 1), (3, 1), (4, 2), (8, 6)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False)
        assert decoder_threads() == threads
    clip = make_clip("cookies", seed=2, seconds=3)
    for cores in (2, 4):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False)
        with VideoReader(str(clip.video)) as reader:
            assert reader._cap.get(cv2.CAP_PROP_N_THREADS) == max(1, cores - 2)
            assert sum(1 for _ in reader) == 90
