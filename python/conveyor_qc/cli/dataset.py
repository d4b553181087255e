"""``label``, ``dataset`` and ``augment``: from labelled objects to a dataset."""

from __future__ import annotations

import argparse
import sys

from conveyor_qc.cli.exit_codes import EXIT_ERROR, EXIT_OK
from conveyor_qc.cli.progress import ProgressLine, progress_line
from conveyor_qc.dataset.augment import augment_dataset
from conveyor_qc.dataset.export import export_dataset, format_report
from conveyor_qc.dataset.label_server import LabelError, serve


def cmd_label(args: argparse.Namespace) -> int:
    try:
        serve(args.run_dir, host=args.host, port=args.port)
    except LabelError as exc:
        print(f"conveyor-qc label: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK  # Ctrl-C is the way to stop it


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
