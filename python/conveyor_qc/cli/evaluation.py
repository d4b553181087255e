"""``synth``, ``eval``, ``tune`` and ``inspect``: clips with ground truth, measuring against it, and looking."""

from __future__ import annotations

import argparse
import json
import math
import sys

from conveyor_qc.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from conveyor_qc.cli.progress import bar, progress_line
from conveyor_qc.config import Config
from conveyor_qc.evaluation.inspect import inspect_video, summary_lines
from conveyor_qc.evaluation.metrics import evaluate, format_report
from conveyor_qc.evaluation.synth import synthesize
from conveyor_qc.evaluation.synth.presets import with_anomaly_share, with_blur_share
from conveyor_qc.evaluation.tune import tune
from conveyor_qc.io.atomic import atomic_write_text
from conveyor_qc.run.video import quiet_decoder_logs


def cmd_synth(args: argparse.Namespace) -> int:
    line = progress_line(args.quiet)

    def progress(done: int, total: int) -> None:
        assert line is not None
        line.show(f"rendering {bar(done, total)} frames")

    preset = args.preset if args.anomaly_share is None else with_anomaly_share(args.preset, args.anomaly_share)
    if args.blur_share is not None:
        preset = with_blur_share(preset, args.blur_share)
    result = synthesize(
        args.out_dir,
        preset=preset,
        seed=args.seed,
        seconds=args.seconds,
        progress=None if line is None else progress,
        output_format=args.format,
        mono=True if args.mono else None,
        replace=args.force,
    )
    if line is not None:
        line.end()
    print(f"{result.objects} objects ({result.anomalies} anomalies), {result.frames} frames -> {result.video}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    res = evaluate(
        args.gt,
        args.tracks,
        args.labels,
        args.objects,
        min_iou=args.min_iou,
        min_share=args.min_share,
        judge_visibility=args.judge_visibility,
        min_visibility=args.min_visibility,
    )
    text = json.dumps(res, indent=None, separators=(", ", ": ")) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text if args.json else format_report(res) + "\n")
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    """``conveyor-qc tune`` (parser in cli.py). Exit 0, 1 on bad input, 130 after Ctrl-C (config written)."""

    start = Config.from_options(args.start, args.set)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
    label = str(args.start) if args.start else "defaults"
    if args.set:
        label += " with " + " ".join(f"--set {s}" for s in args.set)
    try:
        result = tune(
            args.video,
            args.gt,
            args.out,
            start=start,
            budget=args.budget,
            search=args.search,
            split=args.split,
            workers=args.workers,
            seed=args.seed,
            kinds=kinds,
            quiet=args.quiet,
            start_label=label,
        )
    except KeyboardInterrupt:
        print("conveyor-qc tune: interrupted before a config could be written: nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    s = result.scores
    line = f"object F1 {s.f1:.4f}, MOTA " + (f"{s.mota:.4f}" if math.isfinite(s.mota) else "n/a")
    # "found" (tracks on objects), not "counted": in `run`, counted means crossed the counting line.
    line += f", count error {100 * s.count_error:.2f}% ({s.counted} found / {s.objects} objects)"
    if result.heldout is not None:
        h = result.heldout
        line += (
            f"; held out: object F1 {h.f1:.4f}, MOTA "
            + (f"{h.mota:.4f}" if math.isfinite(h.mota) else "n/a")
            + f", count error {100 * h.count_error:.2f}% "
            f"({h.counted} found / {h.objects} objects)"
        )
    print(f"{line} -> {args.out}")
    if result.interrupted:
        print("interrupted: wrote the best config scored so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    config = Config.from_options(args.config, args.set)
    source = int(args.video) if args.video.isdigit() else args.video

    line = progress_line(args.quiet)

    def progress(done: int, total: int) -> None:
        assert line is not None
        line.show(f"reading {bar(done, total)} frames")

    quiet_decoder_logs()
    try:
        ins = inspect_video(source, args.out, config, frame=args.frame, progress=None if line is None else progress)
    finally:
        if line is not None:
            line.end()
    lines = summary_lines(ins, args.out)
    print("\n".join(lines if not args.quiet else [x for x in lines if x.startswith("warning:")] + lines[-1:]))
    return EXIT_OK
