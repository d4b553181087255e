"""A run of a synthetic clip, labelled from the clip's ground truth: what a person would click in
``conveyor-qc label``, for trying the whole loop (run, label, dataset, train) on ``synth`` footage.

``synth`` numbers its objects in ``gt.txt`` and labels them in ``labels.csv`` (``id,label,kind``);
``run`` numbers its tracks. A track is given the label of the ground-truth object it is paired
with (the pairing of ``conveyor-qc eval``: :func:`~conveyor_qc.evaluation.metrics.object_metrics`);
a track paired with none (a ghost, a duplicate) stays unlabelled, as an object a person skipped.
The result is the run's own ``labels.csv`` (``track_id,label``), the file the labelling page
writes, which ``dataset`` reads.

:func:`quality_truth` says by the same pairing which tracks truly have each flag of the dataset's
quality checks (blurred, cut, merged, duplicate): what ``tools/quality_table.py`` measures them by.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conveyor_qc.dataset.label_server import LABELS_FILE
from conveyor_qc.dataset.quality import FLAGS, QualityReport
from conveyor_qc.evaluation.metrics import EvalError, iou_matrix, object_metrics, read_labels, read_mot
from conveyor_qc.io.atomic import atomic_write_text

__all__ = ["TruthLabels", "label_from_truth", "quality_truth"]


@dataclass(frozen=True)
class TruthLabels:
    path: Path  # the run's labels.csv
    labelled: int  # tracks given a label
    anomalies: int  # of them, anomalies
    unpaired: int  # tracks paired with no ground-truth object (left unlabelled)


def label_from_truth(run_dir: str | Path, clip_dir: str | Path, *, replace: bool = False) -> TruthLabels:
    """Write ``run_dir/labels.csv`` from the synthetic clip in ``clip_dir`` (its ``gt.txt`` and
    ``labels.csv``). An existing ``labels.csv`` (perhaps a person's work) is replaced only with
    ``replace``."""
    run, clip = Path(run_dir), Path(clip_dir)
    for folder, what, names in (
        (run, "a run folder", ("tracks.txt",)),
        (clip, "a synth clip", ("gt.txt", "labels.csv")),
    ):
        if not folder.is_dir():
            raise EvalError(f"{folder}: no such folder (expected {what})")
        for name in names:
            if not (folder / name).is_file():
                raise EvalError(f"{folder}: no {name}, so not {what}")
    target = run / LABELS_FILE
    if target.exists() and not replace:
        raise EvalError(f"{target} exists (labels already made, perhaps by hand): give --force to replace it")
    report = object_metrics(clip / "gt.txt", run / "tracks.txt")
    truth = read_labels(clip / "labels.csv")
    pairs = sorted(report.pairs, key=lambda p: p[1])
    missing = sorted({gt for gt, _ in pairs if gt not in truth})
    if missing:
        raise EvalError(f"{clip / 'labels.csv'}: no label for ground-truth object(s) {missing[:5]}")
    atomic_write_text(target, "track_id,label\n" + "".join(f"{track},{truth[gt]}\n" for gt, track in pairs))
    return TruthLabels(
        path=target,
        labelled=len(pairs),
        anomalies=sum(1 for gt, _ in pairs if truth[gt] == "anomaly"),
        unpaired=report.tracks - len(pairs),
    )


#: A track's box covers an object when this share of the object's box is inside it (quality_truth).
COVER = 0.8


def quality_truth(run_dir: str | Path, clip_dir: str | Path, report: QualityReport) -> dict[str, set[str]]:
    """Which of a run's tracks truly have each flag of :mod:`conveyor_qc.dataset.quality`, from the
    synthetic clip's ground truth (``gt.txt``, ``conditions.csv``: written with a ``blur_share``):
    {flag: track ids as the report names them}. Each track's object is the one it is paired with
    (the pairing of ``eval`` and :func:`label_from_truth`), else, per frame, the object its box
    overlaps most (IoU at least 0.3: a fragment's, a ghost's). A track is truly

    - ``blurred`` when its object on a crop's frame was rendered blurred;
    - ``cut`` when its object is not wholly in view (visibility below 1) on a crop's frame; for a
      track without crops, on every frame it has a box that overlaps an object;
    - ``merged`` when on a crop's frame its box covers two objects or more (80% of each one's box
      inside it);
    - ``duplicate`` when its crops show an object an earlier track's crops show (its paired
      object, else the object 70% of its box lies on, of which it holds 30%: a fragment);
    - ``exposure``: never (synthetic clips have no exposure faults)."""
    run, clip = Path(run_dir), Path(clip_dir)
    object_of = object_metrics(clip / "gt.txt", run / "tracks.txt").object_of
    gt, tracks = read_mot(clip / "gt.txt"), read_mot(run / "tracks.txt")
    with open(clip / "conditions.csv", newline="") as fh:
        blurred = {int(r["id"]) for r in csv.DictReader(fh) if r["blur"]}
    by_frame: dict[int, np.ndarray] = {}
    for f in np.unique(gt[:, 0]).astype(int):
        by_frame[f] = gt[gt[:, 0] == f]
    boxes = {(int(r[0]), int(r[1])): r[2:6] for r in tracks}

    def covered(track: int, frame: int) -> list[tuple[int, float]]:
        """(object, visibility) of every object the track's box covers on the frame."""
        rows, box = by_frame.get(frame), boxes.get((frame, track))
        if rows is None or box is None:
            return []
        a = rows[:, 2:6]
        x0 = np.maximum(a[:, 0], box[0])
        y0 = np.maximum(a[:, 1], box[1])
        x1 = np.minimum(a[:, 0] + a[:, 2], box[0] + box[2])
        y1 = np.minimum(a[:, 1] + a[:, 3], box[1] + box[3])
        inside = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None) / np.maximum(a[:, 2] * a[:, 3], 1e-9)
        return [(int(rows[i, 1]), float(rows[i, 8])) for i in np.flatnonzero(inside >= COVER)]

    def shown(track: int, frame: int) -> tuple[int, float] | None:
        """(object, visibility) of the track's object on the frame (None: none there)."""
        rows, box = by_frame.get(frame), boxes.get((frame, track))
        if rows is None or box is None:
            return None
        paired = object_of.get(track)
        if paired is not None:
            mine = rows[rows[:, 1] == paired]
            return (paired, float(mine[0, 8])) if len(mine) else None
        iou = iou_matrix(np.array([box]), rows[:, 2:6])[0]
        i = int(np.argmax(iou))
        return (int(rows[i, 1]), float(rows[i, 8])) if iou[i] >= 0.3 else None

    def main_object(track: int, frames: list[int]) -> int | None:
        """The object most of the track's box lies on, over its crops' frames (a fragment's too)."""
        votes: dict[int, int] = {}
        for f in frames:
            rows, box = by_frame.get(f), boxes.get((f, track))
            if rows is None or box is None or box[2] * box[3] <= 0:
                continue
            a = rows[:, 2:6]
            w = np.minimum(a[:, 0] + a[:, 2], box[0] + box[2]) - np.maximum(a[:, 0], box[0])
            h = np.minimum(a[:, 1] + a[:, 3], box[1] + box[3]) - np.maximum(a[:, 1], box[1])
            inter = np.clip(w, 0, None) * np.clip(h, 0, None)
            share = inter / (box[2] * box[3])
            i = int(np.argmax(share))
            if share[i] >= 0.7 and inter[i] >= 0.3 * a[i, 2] * a[i, 3]:
                votes[int(rows[i, 1])] = votes.get(int(rows[i, 1]), 0) + 1
        return max(votes, key=lambda g: votes[g]) if votes else None

    truth: dict[str, set[str]] = {f: set() for f in FLAGS}
    shown_by: dict[int, list[tuple[int, str]]] = {}
    for name, o in report.objects.items():
        frames = [c.frame for c in o.crops if c.frame is not None]
        g = object_of.get(int(name), main_object(int(name), frames)) if frames else None
        if g is not None:
            shown_by.setdefault(g, []).append((int(tracks[tracks[:, 1] == int(name), 0].min()), name))
    for showing in shown_by.values():  # every track but the first whose crops show an object
        truth["duplicate"].update(name for _, name in sorted(showing)[1:])
    for name, o in report.objects.items():
        track = int(name)
        frames = [c.frame for c in o.crops if c.frame is not None]
        if frames:  # what its crops show
            seen = [s for s in (shown(track, f) for f in frames) if s is not None]
            if any(g in blurred for g, _ in seen):
                truth["blurred"].add(name)
            if any(v < 0.999 for _, v in seen):
                truth["cut"].add(name)
            if any(len(covered(track, f)) >= 2 for f in frames):
                truth["merged"].add(name)
        else:  # no crop: only ever cut, when the object it follows is never wholly in view
            seen = [s for s in (shown(track, int(f)) for f in tracks[tracks[:, 1] == track, 0]) if s is not None]
            if seen and all(v < 0.999 for _, v in seen):
                truth["cut"].add(name)
    return truth
