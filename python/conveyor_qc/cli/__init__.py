"""The ``conveyor-qc`` command line.

Exit codes: 0 success; 1 an error (bad input, bad config, unwritable output),
with a one-line message naming the problem; 2 wrong usage; 3 the input ended
early: a video before the frames it announced, a frame of another size, a live
stream lost for longer than --reconnect-timeout (results hold what could be read);
130 interrupted by Ctrl-C (results hold everything seen until then).
"""

from __future__ import annotations

import argparse
import json
import sys

from conveyor_qc.version import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _count(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(positive: bool = False):
    """argparse type: seconds, >= 0 (> 0 when ``positive``); "inf" allowed."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
        if value != value or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be {'more than' if positive else 'at least'} 0 seconds, "
                                             f"got {text}")
        return value

    return parse


def _config(path: str | None, overrides: list[str]):
    from conveyor_qc.config import Config, ConfigError
    import tomllib

    config = Config.load(path) if path else Config()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: a string
        config.set(key.strip(), value, source="--set")
    config.validate("--set" if overrides else (path or "defaults"))
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from conveyor_qc.run.job import run_video, terminal_progress

    from conveyor_qc.run.video import quiet_decoder_logs

    config = _config(args.config, args.set)
    source = int(args.video) if args.video.isdigit() else args.video
    progress = None if args.quiet else terminal_progress()
    quiet_decoder_logs()  # the reader names every input problem in one line of its own

    def stream_status(text: str) -> None:  # losses and reconnections of a live source, always told
        sys.stderr.write(("\n" if progress is not None else "") + f"conveyor-qc run: {text}\n")
        sys.stderr.flush()

    result = run_video(
        source,
        args.out,
        config,
        video=False if args.no_video else None,
        crops=False if args.no_crops else None,
        max_frames=args.max_frames,
        progress=progress,
        model=args.model,
        duration=args.duration,
        reconnect_timeout=args.reconnect_timeout,
        max_gap=args.max_gap,
        stream_status=stream_status,
    )
    if progress is not None:
        sys.stderr.write("\n")
    s = result.summary
    print(
        f"{s['objects']} objects ({s['anomalies']} anomalies), {s['counts']['total']} counted at the line, "
        f"in {s['frames']} frames, "
        f"{s['fps']:.1f} frames per second -> {args.out}"
    )
    if result.interrupted:
        print("interrupted: the outputs hold everything seen until then", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.ended_early:
        print(f"warning: {result.stop_reason or 'the video ended before the frames it announced'}; "
              "the outputs hold the frames that could be read", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from conveyor_qc.evaluation.inspect import inspect_video, summary_lines
    from conveyor_qc.run.video import quiet_decoder_logs

    config = _config(args.config, args.set)
    source = int(args.video) if args.video.isdigit() else args.video

    def counter(done: int, total: int) -> None:  # one line on a terminal, as run's progress
        sys.stderr.write(f"\rreading frame {done}/{total} ")
        sys.stderr.flush()

    progress = counter if not args.quiet and sys.stderr.isatty() else None
    quiet_decoder_logs()
    try:
        ins = inspect_video(source, args.out, config, frame=args.frame, progress=progress)
    finally:
        if progress is not None:
            sys.stderr.write("\n")
    lines = summary_lines(ins, args.out)
    print("\n".join(lines if not args.quiet else [x for x in lines if x.startswith("warning:")] + lines[-1:]))
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    from conveyor_qc.io.outputs import recover_run

    s = recover_run(args.run_dir)
    print(f"{s['objects']} objects ({s['anomalies']} anomalies), {s.get('crops_written', 0)} crops recovered "
          f"-> {args.run_dir} (summary.json: complete {str(s.get('complete')).lower()}, recovered true)")
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from conveyor_qc.evaluation.synth import synthesize

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rrendering {done}/{total} frames ")
            sys.stderr.flush()

    result = synthesize(args.out_dir, preset=args.preset, seed=args.seed, seconds=args.seconds,
                        progress=None if args.quiet else progress, output_format=args.format,
                        mono=True if args.mono else None)
    if sys.stderr.isatty() and not args.quiet:
        sys.stderr.write("\n")
    print(f"{result.objects} objects ({result.anomalies} anomalies), {result.frames} frames "
          f"-> {result.video}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from conveyor_qc.io.atomic import atomic_write_text
    from conveyor_qc.evaluation.metrics import evaluate, format_report

    res = evaluate(args.gt, args.tracks, args.labels, args.objects, min_iou=args.min_iou,
                   min_share=args.min_share, judge_visibility=args.judge_visibility,
                   min_visibility=args.min_visibility)
    text = json.dumps(res, indent=None, separators=(", ", ": ")) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text if args.json else format_report(res) + "\n")
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from conveyor_qc.evaluation.tune import cli_main

    return cli_main(args)


def cmd_batch(args: argparse.Namespace) -> int:
    from conveyor_qc.run.batch import cli_main

    return cli_main(args)


def cmd_label(args: argparse.Namespace) -> int:
    from conveyor_qc.dataset.label_server import LabelError, serve

    try:
        serve(args.run_dir, host=args.host, port=args.port)
    except LabelError as exc:
        print(f"conveyor-qc label: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK  # Ctrl-C is the way to stop it


def cmd_dataset(args: argparse.Namespace) -> int:
    from conveyor_qc.dataset.export import export_dataset, format_report, terminal_progress

    report = export_dataset(args.inputs, args.out, test_fraction=args.test_fraction, seed=args.seed,
                            per_object=args.per_object, s3=args.s3, s3_endpoint=args.s3_endpoint,
                            progress=None if args.quiet else terminal_progress())
    print(format_report(report))
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK


def cmd_augment(args: argparse.Namespace) -> int:
    from conveyor_qc.dataset.augment import augment_dataset
    from conveyor_qc.dataset.export import terminal_progress

    r = augment_dataset(args.dataset_dir, args.out, factor=args.factor, seed=args.seed, s3=args.s3,
                        s3_endpoint=args.s3_endpoint, progress=None if args.quiet else terminal_progress())
    print(f"{r.new_images} new train images ({r.by_class.get('normal', 0)} normal, "
          f"{r.by_class.get('anomaly', 0)} anomaly) from {r.train_images}; test side ({r.test_images} images) "
          f"unchanged -> {args.out}")
    if r.upload:
        u = r.upload
        print(f"uploaded {u['uploaded']} file(s) ({u['bytes']} bytes), {u['skipped']} already there -> {u['url']}")
    return EXIT_OK


def _print_evaluation(r: dict) -> None:
    print(f"{r['images']} images: precision {r['precision']:.3f}  recall {r['recall']:.3f}  F1 {r['f1']:.3f}  "
          f"(tp {r['tp']}, fp {r['fp']}, fn {r['fn']}, tn {r['tn']}; anomaly is positive)")


def cmd_train(args: argparse.Namespace) -> int:
    from conveyor_qc.anomaly.model import train_model

    options = {"one_class": True} if args.one_class else {}
    if args.backend == "lookout":
        lookout = {"s3": args.s3, "project": args.project, "region": args.region,
                   "endpoint_url": args.endpoint_url, "s3_endpoint": args.s3_endpoint}
        options.update({k: v for k, v in lookout.items() if v is not None})
    elif any(v is not None for v in (args.s3, args.project, args.region, args.endpoint_url, args.s3_endpoint)):
        raise ValueError("--s3, --project, --region, --endpoint-url and --s3-endpoint are for --backend lookout")
    meta = train_model(args.manifest, args.out, backend=args.backend, test_manifest=args.test_manifest, **options)
    t = meta.get("trained_on", {})
    extra = f" ({meta['mode']}, {t.get('normal', '?')} normal, {t.get('anomaly', '?')} anomaly images)" \
        if "mode" in meta else ""
    print(f"model ({meta.get('backend', args.backend)}){extra} -> {args.out}")
    if isinstance(meta.get("test"), dict) and "tp" in meta["test"]:
        _print_evaluation(meta["test"])
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from conveyor_qc.anomaly.model import load_model, read_image

    with load_model(args.model) as model:
        for path in args.images:
            v = model.predict([read_image(path)])[0]
            if args.json:
                print(json.dumps({"path": path, "label": v.label, "score": round(v.score, 4)}))
            else:
                print(f"{path}\t{v.label}\t{v.score:.4f}")
    return EXIT_OK


def cmd_evaluate_model(args: argparse.Namespace) -> int:
    import json

    from conveyor_qc.anomaly.model import evaluate_model

    r = evaluate_model(args.model, args.manifest)
    print(json.dumps(r, indent=2) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        _print_evaluation(r)
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    config = _config(args.config, args.set)
    text = config.to_toml()
    if args.out:
        config.save(args.out)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor-qc",
        description="Visual quality control for products on conveyor belts: find, track, count and cut out "
                    "every object of a video.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 input ended early (partial results), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"conveyor-qc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="FILE", help="settings in TOML (see `conveyor-qc config`)")
        p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       help="override one setting, e.g. --set track.kind=kcf (repeatable)")

    p = sub.add_parser("run", help="detect, track and cut out the objects of a video",
                       description="Run the pipeline on a video file, a camera index or a stream URL and write "
                                   "tracks.txt, objects.csv, crops/ (<track_id>/<frame>.jpg; .png with --set "
                                   "output.crop_format=png), annotated.mp4 and summary.json into --out.")
    p.add_argument("video", help="video file, image sequence (frames/img_%%04d.png), camera index (0) or stream URL "
                                 "(rtsp://, http://)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_config_args(p)
    p.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    p.add_argument("--no-crops", action="store_true", help="do not write crops/")
    p.add_argument("--max-frames", type=_count, metavar="N", help="stop after N frames")
    # Live sources (docs/streams.md)
    p.add_argument("--duration", type=_seconds(positive=True), metavar="SECONDS",
                   help="stop after SECONDS of wall-clock time (how long to watch a camera or stream)")
    p.add_argument("--reconnect-timeout", type=_seconds(), default=60.0, metavar="SECONDS",
                   help="a camera or stream that drops is reconnected (at once, then every 0.5 s doubling to "
                        "8 s) for up to SECONDS before the run ends with exit code 3 (default 60; 0: never "
                        "reconnect; inf: never give up). A file never reconnects")
    p.add_argument("--max-gap", type=_seconds(), default=0.25, metavar="SECONDS",
                   help="a stream back within SECONDS keeps its open tracks; after a longer gap they end "
                        "first and detection starts afresh (default 0.25)")
    p.add_argument("--model", metavar="MODEL_DIR", help="anomaly model (`conveyor-qc train`): label and score every "
                   "object in objects.csv from its crops, colour the video by verdict")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("inspect", help="what the detector sees on one frame, as pictures with the numbers "
                                       "(docs/inspect.md)",
                       description="Read VIDEO up to frame N through the mask and the detector exactly as `run` "
                                   "does, and write into DIR: inspect.png (one sheet: the frame, the learnt belt "
                                   "model, product and shadow colours, the final mask, its components with the "
                                   "split ones marked, the boxes with area and solidity, and the figures), each "
                                   "panel as a PNG of its own and inspect.json with every number. For a first "
                                   "run that finds nothing, or too much. See docs/inspect.md.")
    p.add_argument("video", help="video file, image sequence (frames/img_%%05d.png), camera index (0) or stream URL")
    p.add_argument("--frame", type=_count, metavar="N",
                   help="the frame to inspect, 1-based (default: the first frame after the belt model has "
                        "learnt, (mask.auto_learn_frames - 1) x mask.auto_learn_stride + 1 = 29 with the "
                        "defaults; the last frame of a shorter video)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing; earlier "
                   "inspect files in it are replaced)")
    add_config_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress; print only warnings and where the "
                   "sheet is")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("recover", help="finish the output folder of a run that was killed",
                       description="Finish the files of a `run` killed by a crash, a power cut or SIGKILL (or "
                                   "stopped by a full disk): objects.csv and tracks.txt cut back to the last "
                                   "whole rows committed and sorted, the crops of those objects in crops/, "
                                   "summary.json with complete false and recovered true. A new `run` into the "
                                   "folder does this by itself and keeps the result in interrupted-<time>/. "
                                   "See docs/outputs.md.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of the killed run")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("batch", help="run many videos on a Dask cluster (local worker processes, or an existing "
                                     "scheduler)",
                       description="Run `run` on each video as a task on Dask distributed: into DIR/<video name>/ "
                                   "exactly as `run` writes it, with DIR/batch.json summing them up. Videos whose "
                                   "results are complete and current are skipped (--force redoes them); a failed "
                                   "video is retried, then reported, and the others finish. Exit code 0 all done, "
                                   "1 a video failed, 3 a video ended early, 130 interrupted. See docs/batch.md.")
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_GLOB",
                   help="video files or quoted glob patterns ('footage/*.mp4', 'day*/**/*.mkv'), expanded here")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_config_args(p)
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing cluster's scheduler (tcp://HOST:8786); "
                   "default: a local cluster of worker processes on 127.0.0.1")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster "
                   "(default: the CPU count), one video at a time each")
    p.add_argument("--model", metavar="MODEL_DIR", help="anomaly model, as for `run --model`")
    p.add_argument("--retries", type=int, default=2, metavar="K",
                   help="run a failed video again up to K times, and again up to K times after losing "
                        "its worker process (default 2)")
    p.add_argument("--force", action="store_true", help="run every video again, even those with complete results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_batch)

    import textwrap

    from conveyor_qc.evaluation.synth.presets import FORMATS
    from conveyor_qc.evaluation.synth.presets import PRESETS as SYNTH_PRESETS

    presets_text = "\n".join(
        textwrap.fill(q.description, width=100, initial_indent=f"  {n:<14}", subsequent_indent=" " * 16)
        for n, q in SYNTH_PRESETS.items())
    p = sub.add_parser("synth", help="make a synthetic conveyor video with exact ground truth",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=textwrap.fill(
                           "Write OUT_DIR/video.mp4 (or OUT_DIR/frames/img_NNNNN.png with --format png8|png16), "
                           "OUT_DIR/gt.txt (MOTChallenge ground truth) and OUT_DIR/labels.csv (id,label,kind). "
                           "Every preset and scene option: docs/synth.md.", width=100)
                       + "\n\npresets:\n" + presets_text)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--preset", default="cookies", metavar="PRESET",
                   help="one of " + ", ".join(SYNTH_PRESETS) + " (default: cookies)")
    p.add_argument("--format", default=None, choices=list(FORMATS),
                   help="mp4: video.mp4 (default, the preset's); png8 / png16: frames/img_%%05d.png, 8- or 16-bit "
                        "grey (a monochrome camera)")
    p.add_argument("--mono", action="store_true", help="a monochrome camera: grey frames (B = G = R)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    p.add_argument("--seconds", type=float, default=None, help="length in seconds (preset's default if omitted)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("eval", help="compare tracks with ground truth: counting, MOT metrics, anomaly verdicts",
                       description="Compare a run's tracks.txt with MOTChallenge ground truth (as `synth` writes it): "
                                   "objects paired one to one (precision, recall, F1; missed, ghost, joined, split "
                                   "and duplicate tracks listed), MOTA/MOTP/IDF1/HOTA by TrackEval, and with "
                                   "--labels and --objects the anomaly verdicts. See docs/evaluation.md.")
    p.add_argument("--gt", required=True, metavar="GT.txt", help="ground truth, MOTChallenge rows "
                   "frame,id,x,y,w,h,conf,class,visibility (conf 0: ignored)")
    p.add_argument("--tracks", required=True, metavar="TRACKS.txt", help="the run's tracks.txt")
    p.add_argument("--labels", metavar="LABELS.csv", help="ground-truth labels (id,label,kind); needs --objects")
    p.add_argument("--objects", metavar="OBJECTS.csv", help="the run's objects.csv; needs --labels")
    p.add_argument("--json", action="store_true", help="print one flat JSON object instead of the report")
    p.add_argument("--out", metavar="FILE", help="also write the JSON object to FILE (atomically)")
    p.add_argument("--min-iou", type=float, default=0.5, metavar="F",
                   help="IoU that makes a frame of an object-track pair good (default 0.5)")
    p.add_argument("--min-share", type=float, default=0.5, metavar="F",
                   help="share of the frames an object and a track share that must be good to pair them "
                        "(default 0.5)")
    p.add_argument("--judge-visibility", type=float, default=0.4, metavar="F",
                   help="an object is judged (must be counted) if one of its boxes is at least this visible "
                        "(default 0.4: a row cut by a side of the view counts where 40%% of each object is seen)")
    p.add_argument("--min-visibility", type=float, default=0.0, metavar="F",
                   help="MOT metrics: ignore ground-truth boxes less visible than this, with the track box "
                        "matched to them (default 0: all are evaluated)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("tune", help="search the settings for the best object F1, then MOTA, on a clip with ground truth",
                       description="Search mask, detection and tracker settings for the best object-level F1 "
                                   "(then MOTA) on VIDEO against GT.txt and write the best as TOML with its "
                                   "scores in a comment. Ctrl-C stops and keeps the best found. See docs/tuning.md.")
    p.add_argument("video", help="video file with ground truth")
    p.add_argument("--gt", required=True, metavar="GT.txt", help="MOTChallenge ground truth (as `synth` writes it)")
    p.add_argument("--out", required=True, metavar="CONFIG.toml", help="where to write the best config")
    p.add_argument("--start", metavar="CONFIG.toml", help="config to start from (default: the defaults); "
                   "the result never scores worse than it")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one setting of the start config, e.g. --set track.direction=top_to_bottom")
    p.add_argument("--budget", type=float, default=240.0, metavar="SECONDS",
                   help="wall time for the whole job, decoding included (default 240)")
    p.add_argument("--search", choices=("halving", "random", "grid"), default="halving",
                   help="halving: random candidates raced by successive halving (default); random: each "
                        "candidate on all sampled frames; grid: every combination of a few values, as the seed")
    p.add_argument("--split", type=float, metavar="F",
                   help="tune on the first F of the frames (e.g. 0.55) and report the held-out rest")
    p.add_argument("--kinds", metavar="K1,K2", help="tracker kinds to try (default: the start config's), "
                   "e.g. none,kcf")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="candidates run at once (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the search")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("label", help="label the objects of a run as normal or anomaly in a local web page",
                       description="Serve a web page for the objects of a `run` output folder: each object as a "
                                   "strip of its crops; keys or clicks mark it normal or anomaly. Every change is "
                                   "saved at once, atomically, to RUN_DIR/labels.csv (track_id,label). "
                                   "See docs/labelling.md.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `conveyor-qc run`")
    p.add_argument("--port", type=int, default=8765, metavar="N", help="port to listen on (default 8765; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; anything else lets others "
                        "see the crops and change the labels)")
    p.set_defaults(func=cmd_label)

    def add_s3_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--s3", metavar="s3://BUCKET/PREFIX",
                       help="also upload images and manifests there (unchanged files are skipped), and write "
                            "train.s3.manifest/test.s3.manifest with s3:// paths (uploaded as train.manifest, "
                            "test.manifest)")
        p.add_argument("--s3-endpoint", metavar="URL",
                       help="another S3 API (MinIO, on-premises); default AWS, or $AWS_ENDPOINT_URL_S3")

    p = sub.add_parser("dataset", help="make a train/test image dataset (Lookout for Vision manifests) from labelled runs",
                       description="Collect the labelled objects of run folders (each with labels.csv: "
                                   "track_id,label) and of existing Ground Truth manifests into DATASET_DIR: "
                                   "images/<video>/<track_id>/<frame>.jpg (384x384; .png for PNG crops: each "
                                   "image keeps its crop's format), train.manifest and "
                                   "test.manifest, split by object and stratified by class, and report.json. "
                                   "See docs/dataset.md.")
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR", help="run folder with labels.csv, or a .manifest file")
    p.add_argument("--out", required=True, metavar="DATASET_DIR",
                   help="dataset folder (created, or replaced if it holds an earlier dataset)")
    p.add_argument("--test-fraction", type=float, default=0.3, metavar="F",
                   help="share of each class's objects on the test side (default 0.3; 0: a single dataset, "
                        "train.manifest only)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the split (default 0)")
    p.add_argument("--per-object", type=int, default=5, metavar="K",
                   help="at most K crops per object, spread over its frames (default 5)")
    add_s3_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("augment", help="add augmented train images (lighting, blur, noise, JPEG, rotation, ...) "
                                       "to a dataset",
                       description="Write DIR: the dataset DATASET_DIR plus N new images per train image that "
                                   "simulate a production line's changes (lighting and white balance, blur and "
                                   "motion blur, noise, JPEG loss, flips and rotation, small shifts and scale "
                                   "changes). The test side is copied unchanged. See docs/dataset.md.")
    p.add_argument("dataset_dir", metavar="DATASET_DIR", help="a folder with train.manifest (and test.manifest)")
    p.add_argument("--out", required=True, metavar="DIR", help="new dataset folder (replaced if it holds one)")
    p.add_argument("--factor", type=int, required=True, metavar="N", help="new images per train image")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    add_s3_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("train", help="train an anomaly model from a labelled manifest (docs/anomaly.md)",
                       description="Train an anomaly model from a Ground Truth classification manifest into "
                                   "MODEL_DIR. The local backend is embedded (no download); with no anomalies "
                                   "in the manifest, or --one-class, it learns the normal objects only.")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder (created if missing)")
    p.add_argument("--backend", choices=("local", "lookout"), default="local", help="default: local")
    p.add_argument("--test-manifest", metavar="MANIFEST", help="evaluate on this labelled manifest after training")
    p.add_argument("--one-class", action="store_true", help="local: learn from the normal images only")
    lk = p.add_argument_group("lookout backend (docs/lookout.md; environment variables work too)")
    lk.add_argument("--s3", metavar="s3://BUCKET/PREFIX", help="where images and manifests go "
                    "(or CONVEYOR_QC_LOOKOUT_S3)")
    lk.add_argument("--project", help="Lookout for Vision project (or CONVEYOR_QC_LOOKOUT_PROJECT)")
    lk.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    lk.add_argument("--endpoint-url", metavar="URL", help="Lookout for Vision endpoint (or AWS_ENDPOINT_URL_LOOKOUTVISION)")
    lk.add_argument("--s3-endpoint", metavar="URL", help="S3 endpoint (or AWS_ENDPOINT_URL_S3)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="label images with an anomaly model",
                       description="One line per image: path, label (normal|anomaly), score in [0, 1].")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per line: path, label, score")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate-model", help="precision, recall, F1 and confusion counts of a model on a manifest",
                       description="Image-level precision, recall and F1 of the anomaly class, and the "
                                   "confusion counts, on a labelled manifest.")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_evaluate_model)

    from conveyor_qc.anomaly.lookout import add_parser as add_lookout_parser  # conveyor-qc lookout STEP (docs/lookout.md)

    add_lookout_parser(sub)

    p = sub.add_parser("config", help="print or save the settings (defaults, or a file with overrides)",
                       description="Print the full settings as TOML: the defaults, or --config FILE with --set "
                                   "overrides applied and validated.")
    add_config_args(p)
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from conveyor_qc.config import ConfigError
    from conveyor_qc.io.atomic import WriteError
    from conveyor_qc.io.outputs import OutputError
    from conveyor_qc.run.video import VideoError

    try:
        return args.func(args)
    except (ConfigError, VideoError, OutputError, WriteError, ValueError) as exc:
        print(f"conveyor-qc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"conveyor-qc {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"conveyor-qc {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
