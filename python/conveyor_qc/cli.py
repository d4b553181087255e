"""The ``conveyor-qc`` command line.

Exit codes: 0 success; 1 an error (bad input, bad config, unwritable output),
with a one-line message naming the problem; 2 wrong usage; 3 the video ended
before the frames it announced (results hold what could be read);
130 interrupted by Ctrl-C (results hold everything seen until then).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _config(path: str | None, overrides: list[str]):
    from .config import Config, ConfigError
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
    from .run import run_video, terminal_progress

    config = _config(args.config, args.set)
    source = int(args.video) if args.video.isdigit() else args.video
    progress = None if args.quiet else terminal_progress()
    result = run_video(
        source,
        args.out,
        config,
        video=False if args.no_video else None,
        crops=False if args.no_crops else None,
        max_frames=args.max_frames,
        progress=progress,
    )
    if progress is not None:
        sys.stderr.write("\n")
    s = result.summary
    print(
        f"{s['objects']} objects ({s['anomalies']} anomalies) in {s['frames']} frames, "
        f"{s['fps']:.1f} frames per second -> {args.out}"
    )
    if result.interrupted:
        print("interrupted: the outputs hold everything seen until then", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.ended_early:
        print("warning: the video ended before the frames it announced (truncated or damaged file); "
              "the outputs hold the frames that could be read", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import synthesize

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rrendering {done}/{total} frames ")
            sys.stderr.flush()

    result = synthesize(args.out_dir, preset=args.preset, seed=args.seed, seconds=args.seconds,
                        progress=None if args.quiet else progress)
    if sys.stderr.isatty() and not args.quiet:
        sys.stderr.write("\n")
    print(f"{result.objects} objects ({result.anomalies} anomalies), {result.frames} frames "
          f"-> {Path(args.out_dir) / 'video.mp4'}")
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
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 video ended early (partial results), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"conveyor-qc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="FILE", help="settings in TOML (see `conveyor-qc config`)")
        p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       help="override one setting, e.g. --set track.kind=kcf (repeatable)")

    p = sub.add_parser("run", help="detect, track and cut out the objects of a video",
                       description="Run the pipeline on a video file, a camera index or a stream URL and write "
                                   "tracks.txt, objects.csv, crops/, annotated.mp4 and summary.json into --out.")
    p.add_argument("video", help="video file, camera index (0) or stream URL (rtsp://, http://)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_config_args(p)
    p.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    p.add_argument("--no-crops", action="store_true", help="do not write crops/")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("synth", help="make a synthetic conveyor video with exact ground truth",
                       description="Write OUT_DIR/video.mp4, OUT_DIR/gt.txt (MOTChallenge ground truth) and "
                                   "OUT_DIR/labels.csv (id,label,kind).")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--preset", default="cookies", help="cookies (default), vertical, light-on-dark, hard")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    p.add_argument("--seconds", type=float, default=None, help="length in seconds (preset's default if omitted)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_synth)

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
    from .config import ConfigError
    from .outputs import OutputError
    from .video import VideoError

    try:
        return args.func(args)
    except (ConfigError, VideoError, OutputError, ValueError) as exc:
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
