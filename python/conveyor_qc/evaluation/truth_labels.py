"""A run of a synthetic clip, labelled from the clip's ground truth: what a person would click in
``conveyor-qc label``, for trying the whole loop (run, label, dataset, train) on ``synth`` footage.

``synth`` numbers its objects in ``gt.txt`` and labels them in ``labels.csv`` (``id,label,kind``);
``run`` numbers its tracks. A track is given the label of the ground-truth object it is paired
with (the pairing of ``conveyor-qc eval``: :func:`~conveyor_qc.evaluation.metrics.object_metrics`);
a track paired with none (a ghost, a duplicate) stays unlabelled, as an object a person skipped.
The result is the run's own ``labels.csv`` (``track_id,label``), the file the labelling page
writes, which ``dataset`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor_qc.dataset.label_server import LABELS_FILE
from conveyor_qc.evaluation.metrics import EvalError, object_metrics, read_labels
from conveyor_qc.io.atomic import atomic_write_text

__all__ = ["TruthLabels", "label_from_truth"]


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
