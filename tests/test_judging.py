"""The anomaly model judges beside the loop over frames (judging.py): the same verdicts, in the
same order, as judging each object from its crops one by one; its errors reach the caller."""

from __future__ import annotations

import csv
import threading
import time

import numpy as np
import pytest

from conveyor_qc import Config, Pipeline
from conveyor_qc.anomaly.base import Verdict, combine_verdicts
from conveyor_qc.run.job import OBJECT_CROPS, judge_every, run_video
from conveyor_qc.run.judging import Judge
from conveyor_qc.run.video import VideoReader


class DarkShare:
    """A stand-in model whose score is the share of dark pixels in the crop's middle: it differs
    from crop to crop and object to object, so a verdict given to the wrong object shows. It can
    be slowed down, and it notes the threads it ran on."""

    def __init__(self, delay: float = 0.0, fail_on_call: int | None = None):
        self.delay, self.fail_on_call = delay, fail_on_call
        self.calls = 0
        self.threads: set[str] = set()

    def predict(self, images):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("the model's service is down")
        time.sleep(self.delay)
        out = []
        for im in images:
            h, w = im.shape[:2]
            middle = im[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
            score = min(1.0, 4.0 * float(np.mean(middle.mean(axis=2) < 80)))  # about half above 0.5
            out.append(Verdict("anomaly" if score >= 0.5 else "normal", score))
        return out


def _objects(folder):
    with open(folder / "objects.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _one_by_one(clip_video, model) -> dict[int, tuple[str, float]]:
    """Each object's verdict judged on the loop, from the crops the pipeline kept for it."""
    config = Config()
    pipeline = Pipeline(config, object_crops=OBJECT_CROPS, judge_every=judge_every(config.output.crop_spacing))
    events = []
    with VideoReader(str(clip_video)) as reader:
        for frame in reader:
            events += pipeline.process(frame).finished
    events += pipeline.finish()
    verdicts = {}
    for obj in events:
        views = list(obj.crops)  # the letterboxed images
        if not views and obj.ever_whole and obj.best_crop is not None:
            views = [obj.best_crop]
        v = combine_verdicts(model.predict(views)) if views else None
        verdicts[obj.track_id] = (v.label, v.score) if v else ("unknown", float("nan"))
    return verdicts


def test_a_slow_model_gives_what_judging_one_by_one_gives(make_clip, tmp_path):
    clip = make_clip("cookies", seed=4, seconds=5.0)
    fast, slow = DarkShare(), DarkShare(delay=0.03)  # slow: ~5 crops a second behind the video
    run_video(clip.video, tmp_path / "fast", video=True, crops=False, model=fast)
    result = run_video(clip.video, tmp_path / "slow", video=True, crops=False, model=slow)
    # The model never ran on the loop over frames.
    assert fast.threads and slow.threads and not (fast.threads | slow.threads) & {threading.main_thread().name}
    # However far behind the judge was, the rows are the same, in the same order.
    rows = _objects(tmp_path / "slow")
    assert rows == _objects(tmp_path / "fast")
    expected = _one_by_one(clip.video, DarkShare())
    judged = [r for r in rows if r["label"] != "unknown"]
    assert len(judged) >= 0.8 * len(rows) and {r["label"] for r in judged} == {"normal", "anomaly"}
    for r in rows:
        label, score = expected[int(r["track_id"])]
        assert r["label"] == label
        if label != "unknown":
            assert float(r["score"]) == round(score, 4)  # objects.csv gives 4 decimals
    # The counts by label are final: every object crossed the line labelled as in objects.csv.
    s = result.summary
    by_label = {k: sum(1 for r in rows if r["label"] == k) for k in ("normal", "anomaly")}
    assert s["normal"] == by_label["normal"] and s["anomalies"] == by_label["anomaly"]
    c = s["counts"]
    assert c["normal"] + c["anomaly"] + c["unknown"] == c["total"] > 0
    assert not [t for t in threading.enumerate() if t.name.startswith("judge")]


def test_a_model_error_ends_the_run_with_that_error(make_clip, tmp_path):
    clip = make_clip("cookies", seed=4, seconds=5.0)
    with pytest.raises(RuntimeError, match="service is down"):
        run_video(clip.video, tmp_path / "run", video=False, crops=False, model=DarkShare(fail_on_call=3))
    assert not [t for t in threading.enumerate() if t.name.startswith("judge")]
    # What was written is finished as a recovered run, as for any failed run (docs/outputs.md).
    assert (tmp_path / "run" / "objects.csv").exists()


class _Held:
    """A model that waits for the test's word before each answer."""

    def __init__(self):
        self.go = threading.Event()

    def predict(self, images):
        self.go.wait(10)
        return [Verdict("normal", 0.1) for _ in images]


class _Crop:
    def __init__(self, tid):
        self.track_id, self.image = tid, np.zeros((4, 4, 3), np.uint8)


def test_the_loop_waits_only_when_the_judge_is_too_far_behind():
    model = _Held()
    with Judge(model, max_behind=3) as judge:
        for tid in range(3):
            judge.crops([_Crop(tid)])
        assert list(judge.done()) == []  # 3 behind: the loop goes on without waiting
        judge.crops([_Crop(3)])
        got = []
        waiting = threading.Thread(target=lambda: got.extend(judge.done()))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive() and not got  # 4 behind: the loop waits for the oldest
        model.go.set()
        waiting.join(10)
        assert not waiting.is_alive()
        assert next(j.labels for j in got) == ((0, "normal"),)
        rest = list(judge.done(wait=True))
        assert [j.labels[0][0] for j in got + rest] == [0, 1, 2, 3]  # in the order given
