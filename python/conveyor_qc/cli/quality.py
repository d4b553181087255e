"""``quality``: a run's crops that would mislead a model, on stdout (docs/dataset.md)."""

from __future__ import annotations

import argparse
import json

from conveyor_qc.cli.exit_codes import EXIT_OK
from conveyor_qc.cli.progress import bar, progress_line
from conveyor_qc.dataset.quality import FLAGS, check_run, format_counts, quality_page
from conveyor_qc.io.atomic import atomic_write_text


def cmd_quality(args: argparse.Namespace) -> int:
    line = progress_line(args.quiet)

    def progress(done: int, total: int) -> None:
        assert line is not None
        line.show(f"checking {bar(done, total)} crops")

    report = check_run(args.run_dir, progress=None if line is None else progress)  # QualityError: exit 1
    if line is not None:
        line.end()
    if args.html:
        atomic_write_text(args.html, quality_page([("", report)], title=f"Crops that mislead a model: {args.run_dir}"))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return EXIT_OK
    print(format_counts([report]))
    for flag in FLAGS:
        for o in report.flagged(flag):
            print(f"  {flag:9} #{o.name}: {o.reasons[flag]}")
    for note in report.notes:
        print(f"note: {note}")
    return EXIT_OK
