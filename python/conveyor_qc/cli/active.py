"""``conveyor-qc simulate-labelling``: the labelling page's order measured with true labels
(:mod:`conveyor_qc.dataset.active`)."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from conveyor_qc.cli.exit_codes import EXIT_OK
from conveyor_qc.cli.progress import bar, progress_line
from conveyor_qc.dataset.active import run_features, simulate_labelling
from conveyor_qc.dataset.label_server import LabelError, LabelStore


def cmd_simulate_labelling(args: argparse.Namespace) -> int:
    store = LabelStore(args.run_dir)  # a missing or broken run folder: a LabelError naming it
    truth = read_truth(args.truth)
    named = {t: v for t, v in truth.items() if t in store.objects}
    if not named:
        raise LabelError(f"{args.truth}: names no object of {args.run_dir} (the truth of another run?)")
    line = progress_line(args.quiet)
    if line is not None:
        line.show("reading the objects' crops")
    features = run_features(args.run_dir)

    def progress(done: int, total: int) -> None:
        assert line is not None
        line.show(f"labelling {bar(done, total)}")

    sim = simulate_labelling(
        features,
        named,
        args.order,
        target_f1=args.target_f1,
        seed=args.seed,
        batch=args.batch,
        progress=None if line is None else progress,
    )
    if line is not None:
        line.end()
    if args.json:
        sys.stdout.write(json.dumps(sim.to_json()) + "\n")
        return EXIT_OK
    reached = "never"
    if sim.labels_to_target is not None:
        left = sim.anomalies_left_at_target
        then = (
            "by finding every anomaly"
            if left == 0
            else f"with {left} {'anomaly' if left == 1 else 'anomalies'} not labelled yet"
        )
        reached = f"after {sim.labels_to_target} labels, {then}"
    print(
        f"{args.order}: anomaly F1 {sim.target_f1} on the objects left reached {reached} "
        f"({sim.objects} objects, {sim.anomalies} anomalies)"
    )
    return EXIT_OK


def read_truth(path: str) -> dict[int, str]:
    """track id -> "normal" | "anomaly" from a labels.csv (track_id,label); other labels skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"track_id", "label"} <= set(reader.fieldnames or ()):
                raise LabelError(f"{path}: expected the columns track_id,label")
            out: dict[int, str] = {}
            for line, row in enumerate(reader, start=2):
                label = (row["label"] or "").strip().lower()
                if label not in ("normal", "anomaly"):
                    continue
                try:
                    out[int(row["track_id"])] = label
                except (TypeError, ValueError):
                    raise LabelError(f"{path}, line {line}: track_id {row['track_id']!r} is not a number") from None
    except FileNotFoundError:
        raise LabelError(f"{path}: no such truth file") from None
    except UnicodeDecodeError:
        raise LabelError(f"{path}: not a labels.csv (not text)") from None
    return out
