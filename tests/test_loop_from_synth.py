"""From a `synth` clip to a labelled run, dataset and model without a person (`label --from-truth`),
which track followed which object (`eval`'s pairs), and no silent overwrite on the way: `synth`
into a clip, `label --from-truth` over labels, `run` into a labelled folder."""

from __future__ import annotations

import csv
import json

import pytest

from run_folders import RUN_SETTINGS, make_small_clip, run_cli


@pytest.fixture(scope="module")
def clip_and_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("loop")
    make_small_clip(base / "clip")
    r = run_cli("run", base / "clip" / "video.mp4", "--out", base / "run", "-q", "--no-video", *RUN_SETTINGS)
    assert r.returncode == 0, r.stderr
    return base / "clip", base / "run"


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_synth_run_labelled_from_the_truth_makes_a_dataset(clip_and_run, tmp_path):
    clip, run = clip_and_run
    r = run_cli("eval", "--gt", clip / "gt.txt", "--tracks", run / "tracks.txt", "--json")
    assert r.returncode == 0, r.stderr
    pairs = {p["track"]: p["object"] for p in json.loads(r.stdout)["pairs"]}
    truth = {int(row["id"]): row["label"] for row in _rows(clip / "labels.csv")}
    text = run_cli("eval", "--gt", clip / "gt.txt", "--tracks", run / "tracks.txt").stdout
    first = min(pairs)
    assert f"{pairs[first]}->{first}" in text.split("pairs", 1)[1]

    (run / "labels.csv").unlink(missing_ok=True)
    r = run_cli("label", run, "--from-truth", clip)
    assert r.returncode == 0, r.stderr
    labels = {int(row["track_id"]): row["label"] for row in _rows(run / "labels.csv")}
    # every paired track has its object's label, and nothing else is labelled
    assert labels == {t: truth[g] for t, g in pairs.items()}
    anomalies = sum(1 for v in labels.values() if v == "anomaly")
    assert f"labelled {len(labels)} objects ({anomalies} anomalies)" in r.stdout and 0 < anomalies < len(labels)

    # the labels are the run's own: dataset takes them (it refuses the clip's)
    r = run_cli("dataset", run, "--out", tmp_path / "dataset", "--per-object", "1", "--test-fraction", "0", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "dataset" / "report.json").read_text())
    counts = report["counts"]["train"]
    # each labelled object is in the dataset with its label, or left out for a reason given
    assert counts["anomaly"]["objects"] <= anomalies and len(report["left_out"]) <= 2
    assert counts["normal"]["objects"] + counts["anomaly"]["objects"] + len(report["left_out"]) == len(labels)


def test_labels_are_replaced_only_when_asked(clip_and_run):
    clip, run = clip_and_run
    (run / "labels.csv").write_text("track_id,label\n1,anomaly\n")  # a person's work
    r = run_cli("label", run, "--from-truth", clip)
    assert r.returncode == 1 and "give --force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (run / "labels.csv").read_text() == "track_id,label\n1,anomaly\n"
    assert run_cli("label", run, "--from-truth", clip, "--force").returncode == 0
    assert (run / "labels.csv").read_text() != "track_id,label\n1,anomaly\n"
    # not a run, not a clip: one line each
    for args, words in (((clip, "--from-truth", clip), "no tracks.txt"), ((run, "--from-truth", run), "no gt.txt")):
        r = run_cli("label", *args, "--force")
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr


def test_synth_does_not_replace_a_clip_without_force(tmp_path):
    folder = tmp_path / "clip"
    r = run_cli("synth", folder, "--seconds", "1", "-q")
    assert r.returncode == 0, r.stderr
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    r = run_cli("synth", folder, "--seconds", "1", "--seed", "5", "-q")
    assert r.returncode == 1 and "already holds a clip" in r.stderr and "--force" in r.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    r = run_cli("synth", folder, "--seconds", "1", "--seed", "5", "-q", "--force")
    assert r.returncode == 0, r.stderr
    assert (folder / "gt.txt").read_bytes() != before["gt.txt"]


def test_a_new_run_keeps_labels_only_for_the_same_tracks(clip_and_run, tmp_path):
    clip, _ = clip_and_run
    run = tmp_path / "run"
    args = ("run", clip / "video.mp4", "--out", run, "-q", "--no-video", *RUN_SETTINGS)
    assert run_cli(*args).returncode == 0
    assert run_cli("label", run, "--from-truth", clip).returncode == 0
    labels = (run / "labels.csv").read_bytes()
    # the same video and settings: the same tracks, the labels still name them
    r = run_cli(*args)
    assert r.returncode == 0 and "labels" not in r.stderr
    assert (run / "labels.csv").read_bytes() == labels
    # other settings, other tracks: the labels are moved aside, with a word
    r = run_cli(*args[:-2], "--set", "detect.min_area=100", "--set", "track.detect_every=1", "--max-frames", "90")
    assert r.returncode == 0, r.stderr
    assert not (run / "labels.csv").exists() and (run / "labels.earlier-1.csv").read_bytes() == labels
    assert "labels.earlier-1.csv" in r.stderr
