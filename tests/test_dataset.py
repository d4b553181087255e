"""Dataset export: manifests (ours and foreign), split by object, K spread crops, 384x384 images.

Real inputs: the AWS cookie photos' manifest, and runs of the pipeline on
synthetic clips whose ground-truth labels are mapped onto track ids with the
evaluation module's one-to-one pairing.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
from pathlib import Path

import cv2
import pytest

from conveyor_qc.cli import main
from conveyor_qc.config import Config
from conveyor_qc.crops import image_header
from conveyor_qc.dataset.export import (
    LOOKOUT_MINIMUMS,
    MIN_FRAME_GAP,
    DatasetError,
    SourceObject,
    check_minimums,
    export_dataset,
    pick_frames,
    place_image,
    read_run_labels,
    split_objects,
)
from conveyor_qc.dataset.manifest import (
    CLASSIFICATION_TYPE,
    ManifestEntry,
    ManifestError,
    read_manifest,
    write_manifest,
)
from conveyor_qc.evaluation.metrics import object_metrics
from conveyor_qc.run.job import run_video

PER_OBJECT = 4


def label_run(clip, run_dir: Path, drop: int = 0, unknown: int = 0) -> dict[int, str]:
    """Write run_dir/labels.csv (track_id,label) from the clip's ground truth, paired
    to tracks by the evaluation module; the first ``drop`` paired tracks are left
    unlabelled and the next ``unknown`` ones labelled unknown."""
    report = object_metrics(clip.gt, run_dir / "tracks.txt")
    labels = {t: clip.labels[g]["label"] for g, t in report.pairs}
    tracks = sorted(labels)
    for t in tracks[:drop]:
        del labels[t]
    written = dict(labels)
    for t in tracks[drop : drop + unknown]:
        written[t] = "unknown"
    with open(run_dir / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "label"])
        for t, lab in sorted(written.items()):
            w.writerow([t, lab])
    return {t: lab for t, lab in written.items() if lab != "unknown"}


@pytest.fixture(scope="module")
def runs(make_clip, tmp_path_factory):
    """Two labelled runs of two clips, in folders that share a name ("line3")."""
    base = tmp_path_factory.mktemp("runs")
    out = []
    for i, seed in enumerate((1, 2)):
        clip = make_clip("cookies", seed, 8.0)
        run_dir = base / f"day{i}" / "line3"
        run_video(str(clip.video), run_dir, Config(), video=False)
        labels = label_run(clip, run_dir, drop=1 if i == 0 else 0, unknown=1 if i == 0 else 0)
        out.append((run_dir, labels))
    return out


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "dataset"
    report = export_dataset([r for r, _ in runs], out, test_fraction=0.3, seed=5, per_object=PER_OBJECT)
    return out, report


def _objects(entries) -> set[str]:
    return {e.object_id for e in entries}


# --------------------------------------------------------------------------- manifests


def test_reads_the_aws_sample_manifest(cookies_dir):
    entries = read_manifest(cookies_dir / "train.manifest", check_files=True)
    assert len(entries) == 63
    assert sum(e.label == "normal" for e in entries) == 31
    assert sum(e.label == "anomaly" for e in entries) == 32
    assert {e.label_key for e in entries} == {"anomaly-label"}
    for e in entries:
        assert e.path == cookies_dir.resolve() / e.source_ref and e.path.is_file()
        assert (e.label == "anomaly") == e.path.name.startswith("anomaly")


def test_reads_any_label_key_and_round_trips(tmp_path, cookies_dir):
    img = next((cookies_dir / "images").glob("*.jpg"))
    line = {
        "source-ref": str(img),
        "my-job": 0,
        "my-job-metadata": {
            "class-name": "Normal",
            "human-annotated": "no",
            "creation-date": "2024-01-02T03:04:05.678Z",
            "type": CLASSIFICATION_TYPE,
            "confidence": 0.93,
        },
        "other": {"a": 1},
    }
    (tmp_path / "m.manifest").write_text(json.dumps(line) + "\n\n")
    (e,) = read_manifest(tmp_path / "m.manifest", check_files=True)
    assert (e.label, e.label_key, e.human_annotated, e.path) == ("normal", "my-job", "no", img)
    write_manifest(tmp_path / "again.manifest", [e])
    (back,) = read_manifest(tmp_path / "again.manifest")
    assert back.to_dict() == e.to_dict()
    assert back.to_dict()["my-job-metadata"]["confidence"] == 0.93 and back.extra == {"other": {"a": 1}}


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "not JSON"),
        ('["a list"]', "JSON object"),
        ('{"x-metadata": {}}', "source-ref"),
        ('{"source-ref": "a.png", "k": 1}', "no image-classification label"),
        (
            f'{{"source-ref": "a.png", "k": 1, "k-metadata": {{"class-name": "cracked", "type": "{CLASSIFICATION_TYPE}"}}}}',
            "class-name 'cracked'",
        ),
        (
            f'{{"source-ref": "a.png", "k": 0, "k-metadata": {{"class-name": "anomaly", "type": "{CLASSIFICATION_TYPE}"}}}}',
            "but class-name",
        ),
    ],
)
def test_manifest_errors_name_the_line(tmp_path, bad, message):
    good = ManifestEntry(source_ref="a.png", label="normal").to_json()
    (tmp_path / "m.manifest").write_text(good + "\n" + bad + "\n")
    with pytest.raises(ManifestError, match=rf"m\.manifest:2: .*{message}"):
        read_manifest(tmp_path / "m.manifest")


def test_missing_image_is_named(tmp_path):
    (tmp_path / "m.manifest").write_text(ManifestEntry(source_ref="gone.png", label="anomaly").to_json() + "\n")
    with pytest.raises(ManifestError, match=r"m\.manifest:1: image gone\.png not found"):
        read_manifest(tmp_path / "m.manifest", check_files=True)


# --------------------------------------------------------------------------- pieces


def test_pick_frames_spreads_and_skips_neighbours():
    frames = [10, 11, 12, 20, 21, 30, 40, 50, 51, 60, 70, 80, 90, 100]
    pos = pick_frames(frames, 4)
    chosen = [frames[i] for i in pos]
    assert len(chosen) == 4 and chosen[0] == 10 and chosen[-1] == 100
    assert all(b - a >= 20 for a, b in itertools.pairwise(chosen))
    short = [5, 6, 7, 9, 15]
    few = [short[i] for i in pick_frames(short, 10)]
    assert few == [5, 9, 15]  # all, minus near-duplicates
    assert pick_frames([], 3) == [] and pick_frames([4], 3) == [0]


def test_split_is_by_object_and_stratified():
    for seed in range(30):
        rng = random.Random(seed)
        objs = [
            SourceObject("v", str(i), rng.choice(["normal", "anomaly"]), [(Path("x"), i)])
            for i in range(rng.randint(2, 40))
        ]
        train, test = split_objects(objs, 0.3, seed)
        assert not {o.key for o in train} & {o.key for o in test}
        assert len(train) + len(test) == len(objs)
        for cls in ("normal", "anomaly"):
            n = sum(o.label == cls for o in objs)
            if n >= 2:
                assert any(o.label == cls for o in train) and any(o.label == cls for o in test)
    with pytest.raises(DatasetError):
        split_objects([], 1.0, 0)


def test_a_broken_track_goes_to_the_side_of_the_object_it_is():
    """The quality checks' duplicates (a later track of the same physical object) are never graded
    on what the model was trained on: each goes where the first of its chain went, and without
    duplicates the split is as before."""
    for seed in range(20):
        objs = [SourceObject("v", str(i), "anomaly" if i % 4 == 0 else "normal", [(Path("x"), i)]) for i in range(30)]
        same_as = {"v/7": "v/6", "v/8": "v/7", "v/21": "v/3", "v/22": "v/99"}  # a chain; one to an unknown object
        train, test = split_objects(objs, 0.3, seed, same_as)
        side = {o.key: "test" for o in test} | {o.key: "train" for o in train}
        assert len(side) == 30 and len(train) + len(test) == 30
        assert side["v/6"] == side["v/7"] == side["v/8"] and side["v/21"] == side["v/3"]
        plain_train, plain_test = split_objects(objs, 0.3, seed)
        leaders = {o.key for o in objs} - {"v/7", "v/8", "v/21"}
        # the others are drawn as the split draws them without the followers
        _, drawn_test = split_objects([o for o in objs if o.key in leaders], 0.3, seed)
        assert {o.key for o in test} & leaders == {o.key for o in drawn_test}
        assert split_objects(objs, 0.3, seed, {}) == (plain_train, plain_test)


def test_minimum_warnings():
    def counts(**kw):
        return {
            side: {c: {"images": kw.get(f"{side}_{c}", 0)} for c in ("normal", "anomaly")} for side in ("train", "test")
        }

    assert check_minimums(counts(train_normal=20, train_anomaly=10), single=True) == []
    assert len(check_minimums(counts(train_normal=19, train_anomaly=10), single=True)) == 1
    ok = counts(train_normal=10, test_normal=10, test_anomaly=10)
    assert check_minimums(ok, single=False) == []
    warns = check_minimums(counts(train_normal=10, test_normal=10, test_anomaly=9), single=False)
    assert len(warns) == 1 and "test has 9 anomaly" in warns[0]
    assert LOOKOUT_MINIMUMS["separate"]["train"] == {"normal": 10}


def test_run_labels_errors(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("id,label,kind\n1,normal,normal\n")
    with pytest.raises(DatasetError, match="track_id,label.*ground truth"):
        read_run_labels(p)
    p.write_text("track_id,label\n1,normal\n2,cracked\n")
    with pytest.raises(DatasetError, match=r"labels\.csv:3: label 'cracked'"):
        read_run_labels(p)
    p.write_text("track_id,label,note\n1,Normal,x\n2,,\n3,anomaly,\n")
    assert read_run_labels(p) == {1: "normal", 2: "unknown", 3: "anomaly"}


# --------------------------------------------------------------------------- export of real runs


def test_export_splits_by_object_with_both_classes(exported, runs):
    out, report = exported
    train = read_manifest(out / "train.manifest", check_files=True)
    test = read_manifest(out / "test.manifest", check_files=True)
    # No object on both sides, whether told by the object key or by the image's folder.
    assert not _objects(train) & _objects(test)
    folders = lambda es: {e.path.parent.relative_to(out / "images").as_posix() for e in es}  # noqa: E731
    assert not folders(train) & folders(test)
    assert _objects(train) == folders(train)
    # Stratified: both classes on both sides.
    for entries in (train, test):
        assert {e.label for e in entries} == {"normal", "anomaly"}
    # Every labelled object of both runs, with its label, under unique video names.
    assert set(report.videos) == {"line3", "line3-2"}
    # (An object that was never wholly in view has no crops: it is left out and listed.)
    expected, no_crops = {}, set()
    for video, (run_dir, labels) in zip(("line3", "line3-2"), runs):
        for t, lab in labels.items():
            if (run_dir / "crops" / str(t)).is_dir():
                expected[f"{video}/{t}"] = lab
            else:
                no_crops.add(f"{video}/{t}")
    got = {e.object_id: e.label for e in train + test}
    assert got == expected and len(expected) >= 40
    assert no_crops == {f"{r['video']}/{r['object']}" for r in report.left_out if "no crops" in r["reason"]}
    # The report counts what the manifests hold.
    for side, entries in (("train", train), ("test", test)):
        for cls in ("normal", "anomaly"):
            assert report.counts[side][cls]["images"] == sum(e.label == cls for e in entries)
            assert report.counts[side][cls]["objects"] == len({e.object_id for e in entries if e.label == cls})
    saved = json.loads((out / "report.json").read_text())
    assert saved["counts"] == report.counts
    # The unlabelled and the unknown object are left out and listed.
    reasons = sorted(r["reason"] for r in report.left_out)
    assert "not labelled" in reasons and "labelled unknown" in reasons


def test_export_images_are_384_spread_crops(exported, runs):
    out, _ = exported
    entries = read_manifest(out / "train.manifest") + read_manifest(out / "test.manifest")
    files = {p for p in (out / "images").rglob("*") if p.is_file()}
    assert files == {e.path for e in entries}  # nothing more, nothing less
    by_object: dict[str, list[int]] = {}
    for e in entries:
        img = cv2.imread(str(e.path))
        assert img is not None and img.shape == (384, 384, 3)
        by_object.setdefault(e.object_id, []).append(int(e.path.stem))
    run_dir = runs[0][0]
    spread = 0
    for key, frames in by_object.items():
        frames.sort()
        assert 1 <= len(frames) <= PER_OBJECT
        assert all(b - a >= MIN_FRAME_GAP for a, b in itertools.pairwise(frames)), (key, frames)
        video, track = key.split("/")
        if video == "line3":
            available = sorted(int(p.stem) for p in (run_dir / "crops" / track).glob("*.jpg"))
            if len(available) > PER_OBJECT:
                assert len(frames) == PER_OBJECT
                # spread over the object's crops: covers most of their span
                assert frames[-1] - frames[0] >= 0.6 * (available[-1] - available[0]), (key, frames, available)
                spread += 1
    assert spread >= 5


def test_rerun_replaces_the_dataset(runs, tmp_path):
    out = tmp_path / "ds"
    export_dataset([runs[0][0]], out, per_object=2, seed=1)
    stale = read_manifest(out / "train.manifest")
    export_dataset([runs[1][0]], out, per_object=3, seed=2)
    entries = read_manifest(out / "train.manifest") + read_manifest(out / "test.manifest")
    files = {p for p in (out / "images").rglob("*") if p.is_file()}
    assert files == {e.path for e in entries}
    kept = {e.path for e in entries}
    assert not any(e.path.exists() for e in stale if e.path not in kept)
    assert any(e.path not in kept for e in stale)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary sibling left


def test_single_dataset_and_foreign_manifest_via_cli(cookies_dir, tmp_path, capsys):
    out = tmp_path / "single"
    assert main(["dataset", str(cookies_dir / "train.manifest"), "--out", str(out), "--test-fraction", "0", "-q"]) == 0
    assert not (out / "test.manifest").exists()
    entries = read_manifest(out / "train.manifest", check_files=True)
    assert len(entries) == 63 and sum(e.label == "anomaly" for e in entries) == 32
    for e in entries[:5]:
        assert cv2.imread(str(e.path)).shape == (384, 384, 3)  # 288x384 photos letterboxed
    printed = capsys.readouterr()
    assert "single dataset" in printed.out and "warning" not in printed.err  # 31 normal >= 20, 32 anomaly >= 10


def test_cli_errors_are_one_line(runs, tmp_path, capsys):
    bare = tmp_path / "bare-run"
    bare.mkdir()
    assert main(["dataset", str(bare), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "bare-run: no labels.csv" in err and "Traceback" not in err and err.count("\n") == 1
    # A folder that is not an earlier dataset is never replaced.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["dataset", str(runs[0][0]), "--out", str(mine)]) == 1
    assert "not a dataset written by conveyor-qc" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"
    assert main(["dataset", str(runs[0][0]), "--out", str(tmp_path / "y"), "--test-fraction", "1"]) == 1
    assert "--test-fraction" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # The run's folders are left as they were: no hidden temporary folders.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_warns_below_lookout_minimums(runs, tmp_path, capsys):
    assert main(["dataset", str(runs[0][0]), "--out", str(tmp_path / "ds"), "--per-object", "1", "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: test has" in err and "Lookout for Vision needs at least 10" in err
    assert os.path.exists(tmp_path / "ds" / "report.json")


# --------------------------------------------------------------------------- image formats


def _png_copy(run_dir: Path, dst: Path) -> Path:
    """A copy of a run whose crops are PNGs, as runs wrote them before output.crop_format."""
    import shutil

    shutil.copytree(run_dir, dst)
    for p in sorted((dst / "crops").rglob("*.jpg")):
        assert cv2.imwrite(str(p.with_suffix(".png")), cv2.imread(str(p)))
        p.unlink()
    return dst


def test_dataset_keeps_the_format_of_jpg_and_png_crops(runs, tmp_path):
    """From a run with JPEG crops (the default) and from one with PNG crops: the same objects and
    frames, each image in its crop's format, hard-linked (never re-encoded), named so by the manifests."""
    jpg_run = runs[0][0]
    png_run = _png_copy(jpg_run, tmp_path / "old" / "line3")
    refs = {}
    for kind, run_dir in (("jpg", jpg_run), ("png", png_run)):
        out = tmp_path / f"ds-{kind}"
        assert main(["dataset", str(run_dir), "--out", str(out), "--per-object", "3", "--seed", "4", "-q"]) == 0
        entries = read_manifest(out / "train.manifest", check_files=True) + read_manifest(
            out / "test.manifest", check_files=True
        )
        assert entries and all(e.source_ref.endswith(f".{kind}") for e in entries)
        assert {p for p in (out / "images").rglob("*") if p.is_file()} == {e.path for e in entries}
        for e in entries:
            video, track, name = Path(e.source_ref).parts[1:]
            crop = run_dir / "crops" / track / name
            assert e.object_id == f"{video}/{track}" and os.path.samefile(e.path, crop)  # linked as it is
            assert image_header(e.path) == (kind, 384, 384)
        refs[kind] = sorted(e.source_ref.rsplit(".", 1)[0] for e in entries)
    assert refs["jpg"] == refs["png"]
    # Both runs in one dataset: each image keeps its own format.
    both = tmp_path / "ds-both"
    export_dataset([jpg_run, png_run], both, per_object=2, seed=4)
    entries = read_manifest(both / "train.manifest", check_files=True) + read_manifest(
        both / "test.manifest", check_files=True
    )
    suffixes = {e.object_id.split("/")[0]: Path(e.source_ref).suffix for e in entries}
    assert suffixes == {"line3": ".jpg", "line3-2": ".png"}


def test_place_image_reencodes_in_the_source_format(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)
    square = rng.integers(0, 255, (384, 384, 3), dtype=np.uint8)
    for name, img in (
        ("small.jpg", small),
        ("small.jpeg", small),
        ("small.png", small),
        ("small.bmp", small),
        ("square.jpg", square),
        ("square.png", square),
    ):
        cv2.imwrite(str(tmp_path / name), img)
    # A crop of another size is letterboxed and re-encoded in its own format.
    for src, dst, fmt in (("small.jpg", "a.jpg", "jpg"), ("small.png", "a.png", "png")):
        place_image(tmp_path / src, tmp_path / "ds" / dst)
        assert image_header(tmp_path / "ds" / dst) == (fmt, 384, 384)
        assert not os.path.samefile(tmp_path / src, tmp_path / "ds" / dst)
    # A 384x384 image in the format its name says is linked as it is.
    for name in ("square.jpg", "square.png"):
        place_image(tmp_path / name, tmp_path / "ds" / name)
        assert os.path.samefile(tmp_path / name, tmp_path / "ds" / name)
    # A file whose bytes are not what its new name says is re-encoded to match the name.
    place_image(tmp_path / "square.jpg", tmp_path / "ds" / "b.png")
    assert image_header(tmp_path / "ds" / "b.png") == ("png", 384, 384)
    # Names in a dataset: .jpeg -> .jpg, a format Lookout for Vision does not take -> .png.
    from conveyor_qc.dataset.export import image_suffix

    assert [image_suffix(Path(n)) for n in ("a.jpg", "a.JPEG", "a.png", "a.bmp")] == [".jpg", ".jpg", ".png", ".png"]
    place_image(tmp_path / "small.bmp", tmp_path / "ds" / "c.png")
    assert image_header(tmp_path / "ds" / "c.png") == ("png", 384, 384)
