"""``report``: report.html of a run folder (or of a batch folder) made again (docs/report.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conveyor_qc.cli.exit_codes import EXIT_OK, EXIT_USAGE
from conveyor_qc.io.atomic import check_writable_directory
from conveyor_qc.report import write_batch_report, write_run_report


def cmd_report(args: argparse.Namespace) -> int:
    if args.limit < 0:
        print(f"conveyor-qc report: error: --limit must be 0 or more, got {args.limit}", file=sys.stderr)
        return EXIT_USAGE
    folder = Path(args.run_dir)
    if args.out is not None:
        check_writable_directory(Path(args.out).absolute().parent, "folder of --out")
    if (folder / "batch.json").is_file() and not (folder / "summary.json").is_file():
        if args.model is not None:
            print(
                "conveyor-qc report: error: --model goes with a run folder: a batch's page draws no heat maps "
                f"(each video's does: conveyor-qc report {folder / 'NAME'} --model {args.model})",
                file=sys.stderr,
            )
            return EXIT_USAGE
        path = write_batch_report(folder, out=args.out)
    else:
        path = write_run_report(folder, args.model, out=args.out, limit=args.limit)
    print(f"report -> {path}")
    return EXIT_OK
