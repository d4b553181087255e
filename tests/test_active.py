"""The labelling page's order (conveyor_qc.dataset.active) and `conveyor-qc simulate-labelling`, on
a run of a synthetic clip labelled from its ground truth."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from conveyor_qc.anomaly.features import FEATURE_NAMES
from conveyor_qc.dataset.active import ORDERS, RunFeatures, ask_order, run_features, simulate_labelling


class Run:
    def __init__(self, folder: Path, truth: Path):
        self.folder, self.truth = folder, truth
        with open(truth, newline="") as fh:
            self.labels = {int(r["track_id"]): r["label"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def run(make_clip, tmp_path_factory) -> Run:
    """A run of an 8 s cookies clip (25% anomalies), its true labels moved out of the run folder
    (as the measurement keeps them: the page would show them as labelled)."""
    from conveyor_qc.evaluation.truth_labels import label_from_truth
    from conveyor_qc.run.job import run_video

    clip = make_clip("cookies", seed=3, seconds=8)
    base = tmp_path_factory.mktemp("active")
    run_video(clip.video, base / "run", video=False)
    made = label_from_truth(base / "run", clip.folder)
    shutil.move(made.path, base / "truth.csv")
    return Run(base / "run", base / "truth.csv")


def test_orders_are_permutations_of_the_objects(run):
    features = run_features(run.folder)
    ids = sorted(int(t) for t in features.track_ids)
    assert len(ids) >= 15
    for order in ORDERS:
        asked, guesses = ask_order(features, {}, order, seed=4)
        assert sorted(asked) == ids, order
        assert guesses is None  # no labels: nothing to learn from yet
    assert ask_order(features, {}, "passage")[0] == ids
    assert ask_order(features, {}, "random", seed=4)[0] == ask_order(features, {}, "random", seed=4)[0]
    assert ask_order(features, {}, "random", seed=4)[0] != ask_order(features, {}, "random", seed=5)[0]


def test_active_asks_the_unusual_first(run):
    features = run_features(run.folder)
    asked = [t for t in ask_order(features, {}, "active")[0] if t in run.labels]
    share = sum(run.labels[t] == "anomaly" for t in asked) / len(asked)
    first = asked[: max(1, len(asked) // 5)]
    early = sum(run.labels[t] == "anomaly" for t in first) / len(first)
    assert early > share, (early, share)


def test_with_labels_it_guesses_and_asks_only_what_is_left(run):
    features = run_features(run.folder)
    given: dict[int, str] = {}
    for kind in ("anomaly", "normal"):
        given.update(dict([(t, v) for t, v in run.labels.items() if v == kind][:3]))
    asked, guesses = ask_order(features, given, "active", spread=5)
    assert guesses is not None and guesses.labelled == 6
    assert len(guesses.probability) == len(features.track_ids)
    assert ((guesses.probability >= 0) & (guesses.probability <= 1)).all()
    assert set(guesses.labels) <= {"normal", "anomaly"}
    assert sorted(asked) == sorted(set(map(int, features.track_ids)) - set(given))


def test_simulation_is_deterministic(run):
    features = run_features(run.folder)
    a = simulate_labelling(features, run.labels, "random", seed=7, batch=4)
    b = simulate_labelling(features, run.labels, "random", seed=7, batch=4)
    assert a == b
    assert a.objects == len([t for t in run.labels if t in set(features.track_ids.tolist())])


def _figures(n: int, anomalies: int, first: bool) -> tuple[RunFeatures, dict[int, str]]:
    """``n`` objects of random figures, ``anomalies`` of them anomalies whose figures stand far
    apart (any model learns them): the first to pass (``first``), or spread evenly over the passage."""
    X = np.random.default_rng(1).normal(size=(n, len(FEATURE_NAMES)))
    at = np.arange(n)
    anomalous = at < anomalies if first else at % (n // anomalies) == n // anomalies - 1
    X[anomalous] += 8.0
    ids = at + 1
    return RunFeatures(ids, X), {int(t): "anomaly" if a else "normal" for t, a in zip(ids, anomalous)}


def test_it_says_whether_the_target_was_learnt_or_every_anomaly_found():
    """Anomalies spread over the passage: the model tells them with some still to find. Anomalies
    that all pass first: the target is reached only once all are labelled (0 left; the F1 on what
    is left then counts a model that flags nothing as right)."""
    learnt = simulate_labelling(*_figures(200, 20, first=False), "passage", batch=5)
    assert learnt.labels_to_target is not None and learnt.anomalies_left_at_target > 0
    found = simulate_labelling(*_figures(200, 20, first=True), "passage", batch=5)
    assert found.labels_to_target is not None and found.anomalies_left_at_target == 0
    assert found.to_json()["anomalies_left_at_target"] == 0
    never = simulate_labelling(*_figures(200, 20, first=False), "passage", target_f1=1.01, batch=50)
    assert never.labels_to_target is None and never.anomalies_left_at_target is None


def test_cli_json(run):
    out = run_cli("simulate-labelling", run.folder, "--truth", run.truth, "--batch", "4", "--json", "--seed", "2")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["order"] == "active"
    assert res["labels_to_target"] is None or isinstance(res["labels_to_target"], int)
    left = res["anomalies_left_at_target"]
    assert (left is None) == (res["labels_to_target"] is None) and (left is None or 0 <= left <= res["anomalies"])
    counts = [n for n, _ in res["curve"]]
    assert counts[0] == 0 and counts == sorted(set(counts))
    assert all(0.0 <= f <= 1.0 for _, f in res["curve"])
    if res["labels_to_target"] is not None:
        assert dict(map(tuple, res["curve"]))[res["labels_to_target"]] >= 0.9
    again = run_cli("simulate-labelling", run.folder, "--truth", run.truth, "--batch", "4", "--json", "--seed", "2")
    assert again.stdout == out.stdout


def test_cli_one_line_errors(run, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("track_id,label\n99999,normal\n")
    cases = [
        (("simulate-labelling", tmp_path / "nope", "--truth", run.truth), "does not exist"),
        (("simulate-labelling", run.folder, "--truth", tmp_path / "none.csv"), "no such truth file"),
        (("simulate-labelling", run.folder, "--truth", other), "names no object"),
    ]
    for args, words in cases:
        out = run_cli(*args)
        assert out.returncode == 1, out
        assert out.stderr.count("\n") == 1 and words in out.stderr, out.stderr


def test_rare_anomaly_share():
    from conveyor_qc.evaluation.synth.presets import PRESETS, with_anomaly_share
    from conveyor_qc.evaluation.synth.scene import _Factory

    for share, expected in ((0.02, 10), (0.04, 20), (0.25, 125)):
        factory = _Factory(np.random.default_rng(0), with_anomaly_share("cookies", share), None, None)
        assert sum(factory._kind() != "normal" for _ in range(500)) == expected
    assert PRESETS["cookies"].anomaly_share == 0.25  # the preset itself unchanged
