"""``run``, ``recover``, ``batch`` and ``config``: a video (or many) through the pipeline, and its settings."""

from __future__ import annotations

import argparse
import sys

from conveyor_qc.cli.exit_codes import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from conveyor_qc.cli.progress import bar, progress_line
from conveyor_qc.config import Config
from conveyor_qc.line.sinks import RejectTargets
from conveyor_qc.run.batch import BATCH_FILE, run_batch
from conveyor_qc.run.job import judged, run_video
from conveyor_qc.run.outputs import recover_run
from conveyor_qc.run.stopping import terminated
from conveyor_qc.run.video import quiet_decoder_logs

#: What the summary lines say of verdicts when no anomaly model judged the objects.
NOT_JUDGED = "not judged: no --model"


def verdicts(summary: dict) -> str:
    """``(N anomalies)``, with the objects left ``unknown`` if any (never wholly in view, so never
    judged); ``(not judged: no --model)`` when no model judged them: 0 anomalies would read as "all good"."""
    if not judged(summary):
        return f"({NOT_JUDGED})"
    unknown = summary.get("unknown", 0)
    return f"({summary['anomalies']} anomalies" + (f", {unknown} unknown" if unknown else "") + ")"


def cmd_run(args: argparse.Namespace) -> int:
    config = Config.from_options(args.config, args.set)
    targets = RejectTargets(events=args.reject_events, webhook=args.reject_webhook, mqtt=args.reject_mqtt)
    asked = [o for o, v in zip(("--reject-events", "--reject-webhook", "--reject-mqtt"), vars(targets).values()) if v]
    if asked and not config.reject.enabled:
        print(
            f"conveyor-qc run: error: {asked[0]} sends reject events, which need a reject line: "
            "set reject.distance (--set reject.distance=300, in px past the exit edge; docs/line.md)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Events on stdout: every other line goes to stderr, so that stdout is JSON lines only.
    out = sys.stderr if args.reject_events == "-" else sys.stdout
    source = int(args.video) if args.video.isdigit() else args.video
    line = progress_line(args.quiet)
    quiet_decoder_logs()  # the reader names every input problem in one line of its own

    def progress(done: int, total: int, count: int, fps: float) -> None:
        assert line is not None
        frames = f"{bar(done, total)} frames" if total else f"{done} frames"
        line.show(f"{frames}  {count} objects  {fps:.0f} fps")

    def stream_status(text: str) -> None:  # losses and reconnections of a live source, always told
        if line is not None:
            line.end()
        print(f"conveyor-qc run: {text}", file=sys.stderr, flush=True)

    result = run_video(
        source,
        args.out,
        config,
        video=False if args.no_video else None,
        crops=False if args.no_crops else None,
        max_frames=args.max_frames,
        progress=None if line is None else progress,
        model=args.model,
        duration=args.duration,
        reconnect_timeout=args.reconnect_timeout,
        max_gap=args.max_gap,
        stream_status=stream_status,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        reject_to=targets,
        realtime=args.realtime,
    )
    if line is not None:
        line.end()
    s = result.summary
    print(
        f"{s['objects']} objects {verdicts(s)}, {s['counts']['total']} counted at the line, "
        f"in {s['frames']} frames, "
        f"{s['fps']:.1f} frames per second -> {args.out}",
        file=out,
    )
    if s.get("reject"):
        r = s["reject"]
        print(
            f"{r['events']} reject events ({r['late']} late) for a gate {r['line_px']:g} px past the exit edge "
            f"-> {args.out}/rejects.jsonl",
            file=out,
        )
    if result.interrupted:
        what = "stopped by SIGTERM" if terminated() else "interrupted"
        print(f"{what}: the outputs hold everything seen until then", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.ended_early:
        print(
            f"warning: {result.stop_reason or 'the video ended before the frames it announced'}; "
            "the outputs hold the frames that could be read",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    s = recover_run(args.run_dir)
    print(
        f"{s['objects']} objects {verdicts(s)}, {s.get('crops_written', 0)} crops recovered "
        f"-> {args.run_dir} (summary.json: complete {str(s.get('complete')).lower()}, recovered true)"
    )
    try:  # the page a person reads, for what was recovered; the recovered files are what matters
        from conveyor_qc.report import write_run_report

        write_run_report(args.run_dir)
    except Exception as exc:  # noqa: BLE001  said, never fatal: `conveyor-qc report DIR` makes it again
        print(f"warning: report.html not written: {exc}", file=sys.stderr)
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    if args.scheduler and args.workers is not None:
        print(
            "conveyor-qc batch: error: --workers sizes the local cluster; an existing cluster (--scheduler) "
            "has its own workers",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = Config.from_options(args.config, args.set)

    def show(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = run_batch(
        args.videos,
        args.out,
        config,
        scheduler=args.scheduler,
        workers=args.workers,
        model=args.model,
        retries=args.retries,
        force=args.force,
        progress=None if args.quiet else show,
    )
    t = report.totals()
    batch_verdicts = f"({t['anomalies']} anomalies)" if args.model is not None else f"({NOT_JUDGED})"
    videos = f"{t['videos']} video{'' if t['videos'] == 1 else 's'}"
    if t["skipped"] == t["videos"]:  # nothing to run: no speed to tell
        head = f"{'' if t['videos'] == 1 else 'all '}{videos} skipped (already done)"
    else:
        head = f"{videos}: {t['done']} done, {t['skipped']} skipped, {t['failed']} failed"
    print(
        head
        + (f", {t['interrupted']} not finished" if t["interrupted"] else "")
        + f"; {t['objects']} objects {batch_verdicts} in {t['frames']} frames"
        + (f"; {t['fps']:.1f} frames per second across the cluster" if t["frames_processed"] else "")
        + f" -> {report.out_dir / BATCH_FILE}"
    )
    for job in report.failed:
        print(f"failed: {job.video}: {job.error}", file=sys.stderr)
    if report.interrupted:
        what = "stopped by SIGTERM" if terminated() else "interrupted"
        print(f"{what}: batch.json holds the videos that finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.failed:
        return EXIT_ERROR
    if report.ended_early:
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    config = Config.from_options(args.config, args.set)
    text = config.to_toml()
    if args.out:
        config.save(args.out)
    else:
        sys.stdout.write(text)
    return EXIT_OK
