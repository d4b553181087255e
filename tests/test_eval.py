"""`conveyor-qc eval` and conveyor_qc.evaluation.metrics: hand-made sequences with their
metrics worked out here, agreement with TrackEval's own MotChallenge2DBox +
Evaluator path, a real run on a synthetic clip, bad input."""

from __future__ import annotations

import json
import math
import shutil
import time

import numpy as np
import pytest

from conveyor_qc import Config
from conveyor_qc.cli import main
from conveyor_qc.evaluation.metrics import (
    EvalError,
    anomaly_metrics,
    evaluate,
    mot_metrics,
    object_metrics,
    read_labels,
    read_mot,
    read_objects,
)
from conveyor_qc.run.job import run_video


def gt_rows(spec):
    """{gt id: [(frame, x, y, w, h[, visibility]), ...]} -> synth-style rows frame,id,x,y,w,h,1,1,vis."""
    rows = []
    for gid, boxes in spec.items():
        for b in boxes:
            f, x, y, w, h = b[:5]
            vis = b[5] if len(b) > 5 else 1.0
            rows.append([f, gid, x, y, w, h, 1, 1, vis])
    return np.array(sorted(rows), dtype=float)


def track_rows(spec):
    """{track id: [(frame, x, y, w, h), ...]} -> run-style rows frame,id,x,y,w,h,1,-1,-1,-1."""
    rows = [[f, tid, x, y, w, h, 1, -1, -1, -1] for tid, boxes in spec.items() for f, x, y, w, h in boxes]
    return np.array(sorted(rows), dtype=float)


def still(frames, x, y=0, w=10, h=10):
    return [(f, x, y, w, h) for f in frames]


# Sequence A, 5 frames, every box exact (IoU 1) or disjoint (IoU 0):
#   object 1 on frames 1-4, followed by track 10 (frames 1-2) then track 11 (3-4): one ID switch;
#   object 2 on frames 1-5, followed by track 20 on 1, 2, 4, 5: missed on frame 3, one fragmentation;
#   track 30 on frame 1 only, over nothing: a false positive.
GT_A = gt_rows({1: still(range(1, 5), 0), 2: still(range(1, 6), 100)})
TR_A = track_rows({10: still([1, 2], 0), 11: still([3, 4], 0), 20: still([1, 2, 4, 5], 100), 30: still([1], 200)})


def test_mot_metrics_by_hand():
    m = mot_metrics(GT_A, TR_A)
    # 9 ground-truth boxes, 9 tracker boxes; TP 8 (4 + 4), FN 1, FP 1, IDSW 1.
    assert (m["true_positives"], m["false_negatives"], m["false_positives"]) == (8, 1, 1)
    assert m["id_switches"] == 1
    assert m["fragmentations"] == 1  # object 2 is tracked, lost, tracked again
    assert m["mota"] == pytest.approx((8 - 1 - 1) / 9)
    assert m["motp"] == pytest.approx(1.0)
    # IDF1: best one-to-one identities 1<->10 (or 11, 2 boxes each) and 2<->20 (4 boxes):
    # IDTP 6, IDFP 9 - 6 = 3, IDFN 9 - 6 = 3 -> 2*6 / (2*6 + 3 + 3).
    assert m["idf1"] == pytest.approx(12 / 18)
    # HOTA: IoUs are 1, so every threshold alike. DetA = TP / (TP + FN + FP) = 8/10.
    # AssA = mean over the 8 TPs of TPA / (TPA + FNA + FPA): (1,10) and (1,11): 2 / (2 + 2 + 0)
    # for 2 TPs each; (2,20): 4 / (4 + 1 + 0) for 4 TPs -> (4 * 0.5 + 4 * 0.8) / 8 = 0.65.
    assert m["deta"] == pytest.approx(0.8)
    assert m["assa"] == pytest.approx(0.65)
    assert m["hota"] == pytest.approx(math.sqrt(0.8 * 0.65))
    assert (m["gt_ids"], m["tracker_ids"], m["frames"]) == (2, 4, 5)


def test_object_metrics_by_hand():
    rep = object_metrics(GT_A, TR_A)
    # Object 1 is paired with 10 or 11 (two good frames each), object 2 with 20; track 30 is a ghost.
    assert (rep.objects, rep.tracks, rep.paired) == (2, 4, 2)
    assert rep.track_of[2] == 20 and rep.track_of[1] in (10, 11)
    assert rep.precision == pytest.approx(2 / 4)
    assert rep.recall == pytest.approx(1.0)
    assert rep.f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert rep.split == [(1, [10, 11])]  # one after the other
    assert rep.ghosts == [30]
    assert rep.duplicates == [] and rep.joined == [] and rep.missed == []


def test_joined_duplicate_missed_and_unjudged():
    gt = gt_rows(
        {
            1: still(range(1, 5), 0),
            2: still(range(1, 5), 10),  # two touching objects...
            3: still(range(1, 5), 100),  # one followed twice at once
            4: [(f, 300, 0, 10, 10, 0.3) for f in range(1, 5)],  # one that never shows more than 30%
            5: still(range(1, 5), 500),  # one nobody follows
        }
    )
    tracks = track_rows(
        {
            5: still(range(1, 5), 0, w=21),  # ...under one box: IoU 100/210 with each, covers both
            7: still(range(1, 5), 100),
            8: still(range(1, 5), 101),
            9: still(range(1, 5), 300),
        }
    )
    rep = object_metrics(gt, tracks)
    assert rep.joined == [(5, [1, 2])]
    assert rep.duplicates == [(3, [7, 8])]
    assert rep.split == []
    assert rep.ghosts == []  # 5 is joined, 8 a duplicate, 9 follows object 4
    assert rep.objects == 4 and rep.gt_objects == 5  # object 4 is not judged...
    assert rep.object_of[9] == 4  # ...but its track is paired with it
    assert rep.missed == [1, 2, 5]
    assert rep.tracks == 4 and rep.paired == 2
    assert rep.precision == pytest.approx(2 / 4) and rep.recall == pytest.approx(1 / 4)
    # Judge every object, however little it shows: object 4 now counts and is found.
    assert object_metrics(gt, tracks, judge_visibility=0.0).recall == pytest.approx(2 / 5)


def test_pair_needs_most_shared_frames():
    # Track 1 is on object 1 for 3 of the 5 frames they share (60%: paired); track 2 for 2 of 5 (not).
    gt = gt_rows({1: still(range(1, 6), 0), 2: still(range(1, 6), 100)})
    tracks = track_rows({1: still([1, 2, 3], 0) + still([4, 5], 50), 2: still([1, 2], 100) + still([3, 4, 5], 150)})
    rep = object_metrics(gt, tracks)
    assert rep.pairs == [(1, 1)] and rep.missed == [2] and rep.ghosts == [2]
    assert object_metrics(gt, tracks, min_share=0.4).pairs == [(1, 1), (2, 2)]
    # "Shared" frames only: a track that starts late but is right on every frame is paired.
    late = track_rows({1: still([4, 5], 0)})
    assert object_metrics(gt_rows({1: still(range(1, 6), 0)}), late).pairs == [(1, 1)]


def test_ignored_ground_truth():
    # conf 0 rows are no objects; a track box on them is a false positive (as in TrackEval).
    gt = gt_rows({1: still(range(1, 5), 0)})
    gt = np.vstack([gt, [[f, 2, 100, 0, 10, 10, 0, 1, 1] for f in range(1, 5)]])
    tracks = track_rows({1: still(range(1, 5), 0), 2: still(range(1, 5), 100)})
    m = mot_metrics(gt, tracks)
    assert (m["true_positives"], m["false_positives"], m["false_negatives"]) == (4, 4, 0)
    assert object_metrics(gt, tracks).gt_objects == 1
    # --min-visibility: a box less visible than it is ignored with the track box on it.
    gt = gt_rows({1: [(1, 0, 0, 10, 10, 0.2), (2, 0, 0, 10, 10, 0.6), (3, 0, 0, 10, 10, 1.0)]})
    tracks = track_rows({1: still([1, 2, 3], 0)})
    assert mot_metrics(gt, tracks)["true_positives"] == 3
    m = mot_metrics(gt, tracks, min_visibility=0.5)
    assert (m["true_positives"], m["false_positives"], m["false_negatives"], m["gt_dets"]) == (2, 0, 0, 2)


def test_anomaly_metrics():
    pairs = [(1, 11), (2, 12), (3, 13), (4, 14), (5, 15), (6, 16)]
    labels = {1: "anomaly", 2: "anomaly", 3: "normal", 4: "normal", 5: "anomaly", 6: "normal"}
    objects = {11: "anomaly", 12: "normal", 13: "anomaly", 14: "normal", 15: "unknown"}  # 16 has no row
    a = anomaly_metrics(pairs, labels, objects)
    assert (a["anomaly_tp"], a["anomaly_fp"], a["anomaly_fn"], a["anomaly_tn"]) == (1, 1, 1, 1)
    assert (a["anomaly_unknown"], a["anomaly_judged"]) == (2, 4)
    assert a["anomaly_precision"] == a["anomaly_recall"] == a["anomaly_f1"] == pytest.approx(0.5)
    none = anomaly_metrics(pairs[:1], labels, {11: "unknown"})
    assert none["anomaly_precision"] is None and none["anomaly_unknown"] == 1


def test_empty_and_array_inputs():
    res = evaluate(GT_A, np.zeros((0, 10)))
    assert res["tracks"] == 0 and res["precision"] == 0.0 and res["recall"] == 0.0
    assert res["false_negatives"] == 9 and res["mota"] == 0.0
    json.dumps(res, allow_nan=False)
    with pytest.raises(EvalError, match="two boxes on frame 1"):
        object_metrics(GT_A, np.vstack([TR_A, TR_A[:1]]))


def test_object_metrics_is_fast():
    """900 frames, 100 objects, ~10 in view: what the tuner calls in a loop."""
    rng = np.random.default_rng(0)
    gspec, tspec = {}, {}
    for k in range(100):
        start = 1 + 8 * k
        frames = range(start, min(start + 90, 901))
        y = rng.uniform(0, 600)
        gspec[k + 1] = [(f, 10.0 * (f - start), y, 60, 60) for f in frames]
        tspec[k + 1] = [(f, 10.0 * (f - start) + rng.normal(0, 2), y + rng.normal(0, 2), 60, 60) for f in frames]
    gt, tracks = gt_rows(gspec), track_rows(tspec)
    object_metrics(gt, tracks)
    t0 = time.perf_counter()
    rep = object_metrics(gt, tracks)
    assert time.perf_counter() - t0 < 0.5
    assert rep.f1 == 1.0 and rep.exact


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def run_dir(make_clip, tmp_path_factory):
    clip = make_clip("cookies", seed=1, seconds=8)
    out = tmp_path_factory.mktemp("eval-run")
    run_video(clip.video, out, Config(), video=False, crops=False)
    return clip, out


def test_synthetic_run_counts_every_object(run_dir):
    clip, out = run_dir
    res = evaluate(clip.folder / "gt.txt", out / "tracks.txt", clip.folder / "labels.csv", out / "objects.csv")
    assert res["f1"] == 1.0 and res["precision"] == 1.0 and res["recall"] == 1.0
    # Every track paired; an object still entering at the end of the clip (never half in view) is
    # not judged, but the track on it is paired with it, not a ghost.
    assert res["tracks"] == res["paired"] >= res["objects"] > 20
    assert not (res["missed"] or res["ghosts"] or res["joined"] or res["split"] or res["duplicates"])
    assert res["mota"] > 0.9 and res["idf1"] > 0.9 and res["hota"] > 0.8 and res["id_switches"] == 0
    # No anomaly model yet: every verdict is unknown, so the anomaly figures are not measurable.
    assert res["anomaly_unknown"] == res["paired"] and res["anomaly_f1"] is None
    assert read_labels(clip.folder / "labels.csv") and set(read_objects(out / "objects.csv")) == set(
        read_mot(out / "tracks.txt")[:, 1].astype(int)
    )


def trackeval_full(tmp, gt: np.ndarray, tracks: np.ndarray, frames: int) -> dict:
    """MOTA, IDF1, HOTA by TrackEval's own path: a MOTChallenge folder read by
    MotChallenge2DBox and scored by its Evaluator."""
    import trackeval

    def write(path, rows, ints):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(
                ",".join(str(int(v)) if k in ints else repr(float(v)) for k, v in enumerate(r)) + "\n" for r in rows
            )
        )

    shutil.rmtree(tmp / "te", ignore_errors=True)
    write(tmp / "te/gt/seq/gt/gt.txt", gt, {0, 1, 6, 7})
    write(tmp / "te/trackers/mine/data/seq.txt", tracks, {0, 1})
    dataset = trackeval.datasets.MotChallenge2DBox(
        {
            "GT_FOLDER": str(tmp / "te/gt"),
            "TRACKERS_FOLDER": str(tmp / "te/trackers"),
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {"seq": frames},
            "TRACKERS_TO_EVAL": ["mine"],
            "PRINT_CONFIG": False,
        }
    )
    evaluator = trackeval.Evaluator(
        {
            "USE_PARALLEL": False,
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "LOG_ON_ERROR": None,
        }
    )
    metrics = [
        trackeval.metrics.HOTA(),
        trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
        trackeval.metrics.Identity({"PRINT_CONFIG": False}),
    ]
    res, msg = evaluator.evaluate([dataset], metrics)
    assert msg["MotChallenge2DBox"]["mine"] == "Success", msg
    r = res["MotChallenge2DBox"]["mine"]["seq"]["pedestrian"]
    return {
        "mota": r["CLEAR"]["MOTA"],
        "idf1": r["Identity"]["IDF1"],
        "hota": float(np.mean(r["HOTA"]["HOTA"])),
        "id_switches": r["CLEAR"]["IDSW"],
    }


def test_agrees_with_trackeval(run_dir, tmp_path):
    clip, out = run_dir
    gt = read_mot(clip.folder / "gt.txt")
    tracks = read_mot(out / "tracks.txt")
    # Make the run worse so every term counts: ID switches half-way, lost boxes, false positives,
    # and ground truth marked to ignore (conf 0).
    rng = np.random.default_rng(1)
    bad = tracks.copy()
    mid = np.median(bad[:, 0])
    swap = (bad[:, 1] % 3 == 0) & (bad[:, 0] > mid)
    bad[swap, 1] += 1000
    bad = bad[rng.random(len(bad)) > 0.1]
    fp = bad[rng.choice(len(bad), 40, replace=False)].copy()
    fp[:, 1] += 5000
    fp[:, 2] += rng.uniform(-30, 30, 40)
    bad = np.vstack([bad, fp])
    gt = gt.copy()
    gt[rng.random(len(gt)) < 0.05, 6] = 0
    frames = int(max(gt[:, 0].max(), bad[:, 0].max()))
    for trk in (tracks, bad):
        ours = mot_metrics(gt, trk, num_frames=frames)
        theirs = trackeval_full(tmp_path, gt, trk, frames)
        for key in ("mota", "idf1", "hota"):
            assert abs(ours[key] - theirs[key]) < 1e-6, (key, ours[key], theirs[key])
        assert ours["id_switches"] == theirs["id_switches"]
    assert ours["id_switches"] > 0
    # --min-visibility is TrackEval's distractor handling: the same boxes written as class 8.
    ours = mot_metrics(gt, bad, min_visibility=0.5, num_frames=frames)
    marked = gt.copy()
    marked[(marked[:, 8] < 0.5) & (marked[:, 6] != 0), 7] = 8
    theirs = trackeval_full(tmp_path, marked, bad, frames)
    for key in ("mota", "idf1", "hota"):
        assert abs(ours[key] - theirs[key]) < 1e-6, (key, ours[key], theirs[key])


# --------------------------------------------------------------------------- command line


def test_cli_report_json_and_out(run_dir, tmp_path, capsys):
    clip, out = run_dir
    args = [
        "eval",
        "--gt",
        str(clip.folder / "gt.txt"),
        "--tracks",
        str(out / "tracks.txt"),
        "--labels",
        str(clip.folder / "labels.csv"),
        "--objects",
        str(out / "objects.csv"),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "precision 1.000, recall 1.000, F1 1.000" in text and "MOTA" in text and "anomaly" in text
    assert main(args + ["--json", "--out", str(tmp_path / "eval.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "eval.json").read_text())
    for key in (
        "precision",
        "recall",
        "f1",
        "objects",
        "tracks",
        "mota",
        "motp",
        "idf1",
        "hota",
        "id_switches",
        "anomaly_precision",
        "anomaly_recall",
        "anomaly_f1",
    ):
        assert key in printed
    assert not any(isinstance(v, dict) for v in printed.values())  # flat


def test_cli_bad_input(tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text("1,1,0,0,10,10,1,1,1\n")
    cases = {
        "missing.txt": None,
        "letters.txt": "1,1,0,0,10,10,1,1,1\n2,1,a,0,10,10,1,1,1\n",
        "short.txt": "1,1,0,0\n",
        "frame0.txt": "0,1,0,0,10,10,1,1,1\n",
        "twice.txt": "1,1,0,0,10,10,1,1,1\n\n1,1,5,5,10,10,1,1,1\n",
    }
    expect = {
        "missing.txt": "tracks not found: ",
        "letters.txt": "letters.txt:2:",
        "short.txt": "short.txt:1:",
        "frame0.txt": "frame0.txt:1:",
        "twice.txt": "twice.txt:3: id 1 has a second box on frame 1",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_text(content)
        assert main(["eval", "--gt", str(good), "--tracks", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("conveyor-qc eval: error:") and expect[name] in err and "Traceback" not in err
    assert main(["eval", "--gt", str(tmp_path / "nosuch"), "--tracks", str(good)]) == 1
    assert f"ground truth not found: {tmp_path / 'nosuch'}" in capsys.readouterr().err
    assert main(["eval", "--gt", str(tmp_path), "--tracks", str(good)]) == 1
    assert "ground truth is a folder, not a file" in capsys.readouterr().err
    assert main(["eval", "--gt", str(good), "--tracks", str(good), "--labels", str(good)]) == 1
    assert "give both" in capsys.readouterr().err
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label,kind\n1,broken,chunk\n")
    objects = tmp_path / "objects.csv"
    objects.write_text("track_id,label\n1,unknown\n")
    assert (
        main(["eval", "--gt", str(good), "--tracks", str(good), "--labels", str(labels), "--objects", str(objects)])
        == 1
    )
    assert "labels.csv:2: label 'broken'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0 and "--min-visibility" in capsys.readouterr().out


def test_mota_alone_equals_the_full_report(make_clip, tmp_path):
    """`mota` (what tune calls in its loop) is the MOTA of mot_metrics."""
    from conveyor_qc.evaluation.metrics import mot_metrics, mota, read_mot
    from conveyor_qc.run.job import run_video

    clip = make_clip("cookies", seed=5, seconds=4)
    run_video(clip.video, tmp_path / "r", video=False, crops=False)
    gt, tracks = read_mot(clip.folder / "gt.txt"), read_mot(tmp_path / "r" / "tracks.txt")
    tracks = tracks[tracks[:, 0] % 3 != 0]  # some misses, so MOTA is not 1
    assert abs(mota(gt, tracks) - mot_metrics(gt, tracks)["mota"]) < 1e-12
    assert mota(gt, tracks) < 0.9


def test_scoring_on_two_threads_leaves_stdout_alone():
    """`tune` scores candidates on two threads: sys.stdout is still the process's afterwards (each
    score used to swap it for a buffer and put back what it found, so overlapping scores left the
    buffer in place, and `conveyor-qc tune` printed no result)."""
    import sys
    import threading

    from conveyor_qc.evaluation.metrics import mota

    before = sys.stdout
    threads = [threading.Thread(target=lambda: [mota(GT_A, TR_A) for _ in range(200)]) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.stdout is before
