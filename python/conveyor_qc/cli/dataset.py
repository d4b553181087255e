"""``label``, ``dataset`` and ``augment``: from labelled objects to a dataset."""

from __future__ import annotations

import argparse
import contextlib
import sys

import numpy as np

from conveyor_qc.anomaly.base import AnomalyModel, ModelError
from conveyor_qc.anomaly.heatmap import overlay_png
from conveyor_qc.anomaly.model import load_model
from conveyor_qc.cli.exit_codes import EXIT_ERROR, EXIT_OK
from conveyor_qc.cli.progress import ProgressLine, progress_line
from conveyor_qc.dataset.asking import Asker
from conveyor_qc.dataset.augment import augment_dataset
from conveyor_qc.dataset.export import export_dataset, format_report
from conveyor_qc.dataset.label_server import Explain, Explanation, LabelError, serve
from conveyor_qc.evaluation.truth_labels import label_from_truth


def model_explainer(model: AnomalyModel) -> Explain:
    """What the labelling page shows of a model: each crop's score and label, and the crop with
    the model's heat map over it (anomaly/heatmap.py) as a PNG; the crop itself when the model
    says only whether, not where."""

    def explain(image: np.ndarray) -> Explanation:
        verdict, heat = model.explain([image])[0]
        return Explanation(verdict.score, verdict.label, overlay_png(image, heat), where=heat is not None)

    return explain


def cmd_label(args: argparse.Namespace) -> int:
    if args.from_truth is not None:
        return _label_from_truth(args)
    if args.force:
        print(
            "conveyor-qc label: error: --force goes with --from-truth (the page never replaces labels)", file=sys.stderr
        )
        return EXIT_ERROR
    with contextlib.ExitStack() as stack:
        explain = None
        if args.model is not None:  # a bad model folder: its ModelError, exit 1 (cli.main)
            model = stack.enter_context(load_model(args.model))
            if not model.has_heat_maps:  # and a Lookout model would start hosting (billed) on a click
                raise ModelError(
                    f"{args.model}: this model says only whether, not where (--model needs a local model "
                    "of format 2, trained again with this release, or an ONNX model whose output is a map)"
                )
            explain = model_explainer(model)
        try:
            serve(args.run_dir, host=args.host, port=args.port, explain=explain, order=args.order, asker=Asker)
        except LabelError as exc:
            print(f"conveyor-qc label: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_OK  # Ctrl-C is the way to stop it


def _label_from_truth(args: argparse.Namespace) -> int:
    if args.model is not None:
        print("conveyor-qc label: error: --model is for the page; --from-truth serves none", file=sys.stderr)
        return EXIT_ERROR
    done = label_from_truth(args.run_dir, args.from_truth, replace=args.force)  # EvalError: exit 1 (cli.main)
    unpaired = f"; {done.unpaired} track(s) follow no object of the clip, left unlabelled" if done.unpaired else ""
    print(
        f"labelled {done.labelled} objects ({done.anomalies} anomalies) from {args.from_truth}{unpaired} -> {done.path}"
    )
    return EXIT_OK


def cmd_dataset(args: argparse.Namespace) -> int:
    report = export_dataset(
        args.inputs,
        args.out,
        test_fraction=args.test_fraction,
        seed=args.seed,
        per_object=args.per_object,
        s3=args.s3,
        s3_endpoint=args.s3_endpoint,
        progress=_steps(progress_line(args.quiet)),
        flagged=args.flagged,
    )
    print(format_report(report))
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK


def cmd_augment(args: argparse.Namespace) -> int:
    r = augment_dataset(
        args.dataset_dir,
        args.out,
        factor=args.factor,
        seed=args.seed,
        s3=args.s3,
        s3_endpoint=args.s3_endpoint,
        progress=_steps(progress_line(args.quiet)),
    )
    print(
        f"{r.new_images} new train images ({r.by_class.get('normal', 0)} normal, "
        f"{r.by_class.get('anomaly', 0)} anomaly) from {r.train_images}; test side ({r.test_images} images) "
        f"unchanged -> {args.out}"
    )
    if r.upload:
        u = r.upload
        print(f"uploaded {u['uploaded']} file(s) ({u['bytes']} bytes), {u['skipped']} already there -> {u['url']}")
    return EXIT_OK


def _steps(line: ProgressLine | None):
    """``what: done/total`` for each step of a dataset's making (images read, written, uploaded)."""
    if line is None:
        return None

    def show(done: int, total: int, what: str) -> None:
        line.show(f"{what}: {done}/{total}")
        if done >= total:
            line.end()

    return show
