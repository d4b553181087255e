"""The command line's parser: every command, its arguments and their help.

Each command names its handler as ``"module:function"`` of ``conveyor_qc.cli`` (``set_defaults(
handler=...)``), imported only when that command runs (:func:`conveyor_qc.cli.main`), so that
``--help`` and light commands do not load what heavy ones need (SciPy and TrackEval for ``eval``
and ``tune``, Dask for ``batch``).
"""

from __future__ import annotations

import argparse
import textwrap

from conveyor_qc.anomaly.lookout import DEFAULT_IMAGE_SIZE, DEFAULT_POLL
from conveyor_qc.evaluation.synth.presets import FORMATS
from conveyor_qc.evaluation.synth.presets import PRESETS as SYNTH_PRESETS
from conveyor_qc.version import __version__


def _count(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 1-65535, got {value}")
    return value


def _seconds(positive: bool = False):
    """argparse type: seconds, >= 0 (> 0 when ``positive``); "inf" allowed."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
        if value != value or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be {'more than' if positive else 'at least'} 0 seconds, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor-qc",
        description="Visual quality control for products on conveyor belts: find, track, count and cut out "
        "every object of a video.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 input ended early (partial results), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"conveyor-qc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_inspect(sub)
    _add_recover(sub)
    _add_batch(sub)
    _add_report(sub)  # report.html of a run or batch folder (docs/report.md)
    _add_synth(sub)
    _add_eval(sub)
    _add_tune(sub)
    _add_label(sub)
    _add_dataset(sub)
    _add_quality(sub)  # crops that would mislead a model (docs/dataset.md)
    _add_augment(sub)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate_model(sub)
    _add_import_onnx(sub)  # a model trained elsewhere, exported to ONNX (docs/anomaly.md)
    _add_simulate_labelling(sub)  # how many labels the page's order needs (docs/labelling.md)
    add_lookout(sub)  # conveyor-qc lookout STEP (docs/lookout.md)
    _add_config(sub)
    return parser


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="settings in TOML (see `conveyor-qc config`)")
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one setting, e.g. --set track.kind=kcf (repeatable)",
    )


def _add_s3_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--s3",
        metavar="s3://BUCKET/PREFIX",
        help="also upload images and manifests there (unchanged files are skipped), and write "
        "train.s3.manifest/test.s3.manifest with s3:// paths (uploaded as train.manifest, "
        "test.manifest)",
    )
    p.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="another S3 API (MinIO, on-premises); default AWS, or $AWS_ENDPOINT_URL_S3",
    )


def _add_run(sub) -> None:
    """``conveyor-qc run``."""
    p = sub.add_parser(
        "run",
        help="detect, track and cut out the objects of a video",
        description="Run the pipeline on a video file, a camera index or a stream URL and write "
        "tracks.txt, objects.csv, crops/ (<track_id>/<frame>.jpg; .png with --set "
        "output.crop_format=png), annotated.mp4 and summary.json into --out.",
    )
    p.add_argument(
        "video",
        help="video file, image sequence (frames/img_%%04d.png), camera index (0) or stream URL (rtsp://, http://)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    _add_config_args(p)
    p.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    p.add_argument("--no-crops", action="store_true", help="do not write crops/")
    p.add_argument("--max-frames", type=_count, metavar="N", help="stop after N frames")
    # Live sources (docs/streams.md)
    p.add_argument(
        "--duration",
        type=_seconds(positive=True),
        metavar="SECONDS",
        help="stop after SECONDS of wall-clock time (how long to watch a camera or stream)",
    )
    p.add_argument(
        "--reconnect-timeout",
        type=_seconds(),
        default=60.0,
        metavar="SECONDS",
        help="a camera or stream that drops is reconnected (at once, then every 0.5 s doubling to "
        "8 s) for up to SECONDS before the run ends with exit code 3 (default 60; 0: never "
        "reconnect; inf: never give up). A file never reconnects",
    )
    p.add_argument(
        "--max-gap",
        type=_seconds(),
        default=0.25,
        metavar="SECONDS",
        help="a stream back within SECONDS keeps its open tracks; after a longer gap they end "
        "first and detection starts afresh (default 0.25)",
    )
    p.add_argument(
        "--model",
        metavar="MODEL_DIR",
        help="anomaly model (`conveyor-qc train`): label and score every "
        "object in objects.csv from its crops, colour the video by verdict",
    )
    # On the line (docs/line.md)
    line = p.add_argument_group("on the line (docs/line.md)")
    line.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics while the run goes on (frames, fps, lag, "
        "counts by label, anomalies, reconnects, the model's queue, reject events)",
    )
    line.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics are served on (default 127.0.0.1; 0.0.0.0 for a Prometheus on another machine)",
    )
    line.add_argument(
        "--reject-events",
        metavar="FILE",
        help="with a reject line (--set reject.distance=...), also write each anomaly's event to FILE as a JSON "
        "line (- for stdout); they are always in rejects.jsonl in --out",
    )
    line.add_argument("--reject-webhook", metavar="URL", help="POST each reject event as JSON to URL (http, https)")
    line.add_argument(
        "--reject-mqtt",
        metavar="URL",
        help="publish each reject event as JSON to mqtt://HOST[:PORT]/TOPIC (QoS 1)",
    )
    line.add_argument(
        "--realtime",
        action="store_true",
        help="read a file no faster than its frame rate, as a camera gives frames (rehearse the line with a "
        "recording: lag and reject timing as live)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler="run:cmd_run")


def _add_inspect(sub) -> None:
    """``conveyor-qc inspect``."""
    p = sub.add_parser(
        "inspect",
        help="what the detector sees on one frame, as pictures with the numbers (docs/inspect.md)",
        description="Read VIDEO up to frame N through the mask and the detector exactly as `run` "
        "does, and write into DIR: inspect.png (one sheet: the frame, the learnt belt "
        "model, product and shadow colours, the final mask, its components with the "
        "split ones marked, the boxes with area and solidity, and the figures), each "
        "panel as a PNG of its own and inspect.json with every number. For a first "
        "run that finds nothing, or too much. See docs/inspect.md.",
    )
    p.add_argument("video", help="video file, image sequence (frames/img_%%05d.png), camera index (0) or stream URL")
    p.add_argument(
        "--frame",
        type=_count,
        metavar="N",
        help="the frame to inspect, 1-based (default: the first frame after the belt model has "
        "learnt, (mask.auto_learn_frames - 1) x mask.auto_learn_stride + 1 = 29 with the "
        "defaults; the last frame of a shorter video)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created if missing; earlier inspect files in it are replaced)",
    )
    _add_config_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress; print only warnings and where the sheet is")
    p.set_defaults(handler="evaluation:cmd_inspect")


def _add_recover(sub) -> None:
    """``conveyor-qc recover``."""
    p = sub.add_parser(
        "recover",
        help="finish the output folder of a run that was killed",
        description="Finish the files of a `run` killed by a crash, a power cut or SIGKILL (or "
        "stopped by a full disk): objects.csv and tracks.txt cut back to the last "
        "whole rows committed and sorted, the crops of those objects in crops/, "
        "summary.json with complete false and recovered true. A new `run` into the "
        "folder does this by itself and keeps the result in interrupted-<time>/. "
        "See docs/outputs.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of the killed run")
    p.set_defaults(handler="run:cmd_recover")


def _add_batch(sub) -> None:
    """``conveyor-qc batch``."""
    p = sub.add_parser(
        "batch",
        help="run many videos on a Dask cluster (local worker processes, or an existing scheduler)",
        description="Run `run` on each video as a task on Dask distributed: into DIR/<video name>/ "
        "exactly as `run` writes it, with DIR/batch.json summing them up. Videos whose "
        "results are complete and current are skipped (--force redoes them); a failed "
        "video is retried, then reported, and the others finish. Exit code 0 all done, "
        "1 a video failed, 3 a video ended early, 130 interrupted. See docs/batch.md.",
    )
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO_OR_GLOB",
        help="video files or quoted glob patterns ('footage/*.mp4', 'day*/**/*.mkv'), expanded here",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    _add_config_args(p)
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing cluster's scheduler (tcp://HOST:8786); "
        "default: a local cluster of worker processes on 127.0.0.1",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: the CPU count), one video at a time each",
    )
    p.add_argument("--model", metavar="MODEL_DIR", help="anomaly model, as for `run --model`")
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="K",
        help="run a failed video again up to K times, and again up to K times after losing "
        "its worker process (default 2)",
    )
    p.add_argument("--force", action="store_true", help="run every video again, even those with complete results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler="run:cmd_batch")


def _add_report(sub) -> None:
    """``conveyor-qc report``."""
    p = sub.add_parser(
        "report",
        help="make report.html again: a run's figures, charts and anomalies, or a batch's videos",
        description="Write report.html into a `run` output folder (or a `batch` folder): one page that "
        "opens offline with the run's figures, the counts and the anomaly rate over time, the anomalies "
        "(highest scores first) each with the model's heat map, the annotated video and the settings. "
        "`run` and `batch` write it themselves; this makes it again, e.g. for a recovered run, an older "
        "folder or another model's heat maps. See docs/report.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `conveyor-qc run` (or of `batch`)")
    p.add_argument(
        "--model",
        metavar="DIR",
        help="anomaly model that draws the heat maps (default: the run's own, if its folder is still there)",
    )
    p.add_argument("--out", metavar="FILE", help="write the page there (default RUN_DIR/report.html)")
    p.add_argument(
        "--limit",
        type=int,
        default=60,
        metavar="N",
        help="show at most N anomalies, the highest scores first (default 60)",
    )
    p.set_defaults(handler="report:cmd_report")


def _add_synth(sub) -> None:
    """``conveyor-qc synth``."""
    presets_text = "\n".join(
        textwrap.fill(q.description, width=100, initial_indent=f"  {n:<14}", subsequent_indent=" " * 16)
        for n, q in SYNTH_PRESETS.items()
    )
    p = sub.add_parser(
        "synth",
        help="make a synthetic conveyor video with exact ground truth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Write OUT_DIR/video.mp4 (or OUT_DIR/frames/img_NNNNN.png with --format png8|png16), "
            "OUT_DIR/gt.txt (MOTChallenge ground truth) and OUT_DIR/labels.csv (id,label,kind). "
            "Every preset and scene option: docs/synth.md.",
            width=100,
        )
        + "\n\npresets:\n"
        + presets_text,
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument(
        "--preset",
        default="cookies",
        metavar="PRESET",
        help="one of " + ", ".join(SYNTH_PRESETS) + " (default: cookies)",
    )
    p.add_argument(
        "--format",
        default=None,
        choices=list(FORMATS),
        help="mp4: video.mp4 (default, the preset's); png8 / png16: frames/img_%%05d.png, 8- or 16-bit "
        "grey (a monochrome camera)",
    )
    p.add_argument("--mono", action="store_true", help="a monochrome camera: grey frames (B = G = R)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    p.add_argument("--seconds", type=float, default=None, help="length in seconds (preset's default if omitted)")
    p.add_argument(
        "--anomaly-share", type=float, metavar="F", help="share of anomalies, e.g. 0.03 for a rare-anomaly line"
    )
    p.add_argument(
        "--blur-share",
        type=float,
        metavar="F",
        help="share of objects rendered blurred (out of focus or smeared), listed in conditions.csv: "
        "known bad crops for `conveyor-qc quality` (docs/dataset.md)",
    )
    p.add_argument("--force", action="store_true", help="replace the clip OUT_DIR already holds (refused without)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(handler="evaluation:cmd_synth")


def _add_eval(sub) -> None:
    """``conveyor-qc eval``."""
    p = sub.add_parser(
        "eval",
        help="compare tracks with ground truth: counting, MOT metrics, anomaly verdicts",
        description="Compare a run's tracks.txt with MOTChallenge ground truth (as `synth` writes it): "
        "objects paired one to one (precision, recall, F1; missed, ghost, joined, split "
        "and duplicate tracks listed), MOTA/MOTP/IDF1/HOTA by TrackEval, and with "
        "--labels and --objects the anomaly verdicts. See docs/evaluation.md.",
    )
    p.add_argument(
        "--gt",
        required=True,
        metavar="GT.txt",
        help="ground truth, MOTChallenge rows frame,id,x,y,w,h,conf,class,visibility (conf 0: ignored)",
    )
    p.add_argument("--tracks", required=True, metavar="TRACKS.txt", help="the run's tracks.txt")
    p.add_argument("--labels", metavar="LABELS.csv", help="ground-truth labels (id,label,kind); needs --objects")
    p.add_argument("--objects", metavar="OBJECTS.csv", help="the run's objects.csv; needs --labels")
    p.add_argument("--json", action="store_true", help="print one flat JSON object instead of the report")
    p.add_argument("--out", metavar="FILE", help="also write the JSON object to FILE (atomically)")
    p.add_argument(
        "--min-iou",
        type=float,
        default=0.5,
        metavar="F",
        help="IoU that makes a frame of an object-track pair good (default 0.5)",
    )
    p.add_argument(
        "--min-share",
        type=float,
        default=0.5,
        metavar="F",
        help="share of the frames an object and a track share that must be good to pair them (default 0.5)",
    )
    p.add_argument(
        "--judge-visibility",
        type=float,
        default=0.4,
        metavar="F",
        help="an object is judged (must be counted) if one of its boxes is at least this visible "
        "(default 0.4: a row cut by a side of the view counts where 40%% of each object is seen)",
    )
    p.add_argument(
        "--min-visibility",
        type=float,
        default=0.0,
        metavar="F",
        help="MOT metrics: ignore ground-truth boxes less visible than this, with the track box "
        "matched to them (default 0: all are evaluated)",
    )
    p.set_defaults(handler="evaluation:cmd_eval")


def _add_tune(sub) -> None:
    """``conveyor-qc tune``."""
    p = sub.add_parser(
        "tune",
        help="search the settings for the best object F1, then MOTA, on a clip with ground truth",
        description="Search mask, detection and tracker settings for the best object-level F1 "
        "(then MOTA) on VIDEO against GT.txt and write the best as TOML with its "
        "scores in a comment. Ctrl-C stops and keeps the best found. See docs/tuning.md.",
    )
    p.add_argument("video", help="video file with ground truth")
    p.add_argument("--gt", required=True, metavar="GT.txt", help="MOTChallenge ground truth (as `synth` writes it)")
    p.add_argument("--out", required=True, metavar="CONFIG.toml", help="where to write the best config")
    p.add_argument(
        "--start",
        metavar="CONFIG.toml",
        help="config to start from (default: the defaults); the result never scores worse than it",
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one setting of the start config, e.g. --set track.direction=top_to_bottom",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=240.0,
        metavar="SECONDS",
        help="wall time for the whole job, decoding included (default 240)",
    )
    p.add_argument(
        "--search",
        choices=("halving", "random", "grid"),
        default="halving",
        help="halving: random candidates raced by successive halving (default); random: each "
        "candidate on all sampled frames; grid: every combination of a few values, as the seed",
    )
    p.add_argument(
        "--split",
        type=float,
        metavar="F",
        help="tune on the first F of the frames (e.g. 0.55) and report the held-out rest",
    )
    p.add_argument("--kinds", metavar="K1,K2", help="tracker kinds to try (default: the start config's), e.g. none,kcf")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="candidates run at once (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the search")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler="evaluation:cmd_tune")


def _add_label(sub) -> None:
    """``conveyor-qc label``."""
    p = sub.add_parser(
        "label",
        help="label the objects of a run as normal or anomaly in a local web page",
        description="Serve a web page for the objects of a `run` output folder: each object as a "
        "strip of its crops; keys or clicks mark it normal or anomaly. Every change is "
        "saved at once, atomically, to RUN_DIR/labels.csv (track_id,label). "
        "With --from-truth, no page: a run of a `synth` clip is labelled from the clip's ground "
        "truth, as a person would label it. See docs/labelling.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `conveyor-qc run`")
    p.add_argument(
        "--from-truth",
        metavar="CLIP_DIR",
        help="label RUN_DIR (a run of the clip `conveyor-qc synth` wrote into CLIP_DIR) from the "
        "clip's ground truth instead of serving the page: each track gets the label of the object it "
        "follows (the pairing of `conveyor-qc eval`); a track that follows none stays unlabelled",
    )
    p.add_argument("--force", action="store_true", help="with --from-truth: replace an existing RUN_DIR/labels.csv")
    p.add_argument(
        "--port", type=int, default=8765, metavar="N", help="port to listen on (default 8765; 0: any free one)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; anything else lets others "
        "see the crops and change the labels)",
    )
    p.add_argument(
        "--model",
        metavar="DIR",
        help="anomaly model (`conveyor-qc train`): the page can then show, for each crop, where the "
        "model sees the anomaly (a heat map over the crop) and its score (button or H key)",
    )
    p.add_argument(
        "--order",
        choices=("active", "passage"),  # label_server.ORDERS (not imported: --help stays quick)
        default="active",
        help="the order the page shows the objects in (the page can switch, O key): active (default) asks the "
        "most useful question first, the most unusual objects while there are few labels, then those the "
        "model, retrained in the background after every label, is least sure of; passage: as they passed",
    )
    p.set_defaults(handler="dataset:cmd_label")


def _add_dataset(sub) -> None:
    """``conveyor-qc dataset``."""
    p = sub.add_parser(
        "dataset",
        help="make a train/test image dataset (Lookout for Vision manifests) from labelled runs",
        description="Collect the labelled objects of run folders (each with labels.csv: "
        "track_id,label) and of existing Ground Truth manifests into DATASET_DIR: "
        "images/<video>/<track_id>/<frame>.jpg (384x384; .png for PNG crops: each "
        "image keeps its crop's format), train.manifest and "
        "test.manifest, split by object and stratified by class, and report.json. Each run's crops "
        "are checked first (blurred, cut, merged, duplicate, exposure): quality.csv and quality.html "
        "list those that would mislead a model (--flagged says what to do with them). "
        "See docs/dataset.md.",
    )
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR", help="run folder with labels.csv, or a .manifest file")
    p.add_argument(
        "--out",
        required=True,
        metavar="DATASET_DIR",
        help="dataset folder (created, or replaced if it holds an earlier dataset)",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        metavar="F",
        help="share of each class's objects on the test side (default 0.3; 0: a single dataset, train.manifest only)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the split (default 0)")
    p.add_argument(
        "--per-object",
        type=int,
        default=5,
        metavar="K",
        help="at most K crops per object, spread over its frames (default 5)",
    )
    p.add_argument(
        "--flagged",
        choices=("keep", "exclude", "review"),
        default="keep",
        help="the crops the quality checks flag (quality.csv): keep them (default; the summary says how "
        "many), exclude them from train and test, or review: exclude them and list them in "
        "review.manifest (their images under review/) for a person to look at",
    )
    _add_s3_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(handler="dataset:cmd_dataset")


def _add_quality(sub) -> None:
    """``conveyor-qc quality``."""
    p = sub.add_parser(
        "quality",
        help="list a run's crops that would mislead a model: blurred, cut, merged, duplicate, exposure",
        description="Check the crops of a `run` folder and print, per flag, how many objects have it and "
        "which: blurred (much softer than the run's typical object), cut (never wholly in view, or a crop "
        "whose box is much smaller than the object's others), merged "
        "(two objects in one box), duplicate (the same object as an earlier track: it would leak between "
        "train and test), exposure (too dark, too bright or clipped). Writes nothing but stdout, or the "
        "page with --html. `dataset` does the same for every run it reads. See docs/dataset.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `conveyor-qc run`")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--html", metavar="FILE", help="also write a page of the flagged crops, grouped by flag (opens offline)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(handler="quality:cmd_quality")


def _add_augment(sub) -> None:
    """``conveyor-qc augment``."""
    p = sub.add_parser(
        "augment",
        help="add augmented train images (lighting, blur, noise, JPEG, rotation, ...) to a dataset",
        description="Write DIR: the dataset DATASET_DIR plus N new images per train image that "
        "simulate a production line's changes (lighting and white balance, blur and "
        "motion blur, noise, JPEG loss, flips and rotation, small shifts and scale "
        "changes). The test side is copied unchanged. See docs/dataset.md.",
    )
    p.add_argument("dataset_dir", metavar="DATASET_DIR", help="a folder with train.manifest (and test.manifest)")
    p.add_argument("--out", required=True, metavar="DIR", help="new dataset folder (replaced if it holds one)")
    p.add_argument("--factor", type=int, required=True, metavar="N", help="new images per train image")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    _add_s3_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(handler="dataset:cmd_augment")


def _add_train(sub) -> None:
    """``conveyor-qc train``."""
    p = sub.add_parser(
        "train",
        help="train an anomaly model from a labelled manifest (docs/anomaly.md)",
        description="Train an anomaly model from a Ground Truth classification manifest into "
        "MODEL_DIR. The local backend is embedded (no download); with no anomalies "
        "in the manifest, or --one-class, it learns the normal objects only.",
    )
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder (created if missing)")
    p.add_argument(
        "--backend",
        choices=("local", "lookout", "onnx"),
        default="local",
        help="default: local (onnx: a model trained elsewhere, whose folder import-onnx makes; train says how)",
    )
    p.add_argument("--test-manifest", metavar="MANIFEST", help="evaluate on this labelled manifest after training")
    p.add_argument("--one-class", action="store_true", help="local: learn from the normal images only")
    lk = p.add_argument_group("lookout backend (docs/lookout.md; environment variables work too)")
    lk.add_argument(
        "--s3", metavar="s3://BUCKET/PREFIX", help="where images and manifests go (or CONVEYOR_QC_LOOKOUT_S3)"
    )
    lk.add_argument("--project", help="Lookout for Vision project (or CONVEYOR_QC_LOOKOUT_PROJECT)")
    lk.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    lk.add_argument(
        "--endpoint-url", metavar="URL", help="Lookout for Vision endpoint (or AWS_ENDPOINT_URL_LOOKOUTVISION)"
    )
    lk.add_argument("--s3-endpoint", metavar="URL", help="S3 endpoint (or AWS_ENDPOINT_URL_S3)")
    p.set_defaults(handler="anomaly:cmd_train")


def _add_predict(sub) -> None:
    """``conveyor-qc predict``."""
    p = sub.add_parser(
        "predict",
        help="label images with an anomaly model",
        description="One line per image: path, label (normal|anomaly), score in [0, 1]. With "
        "--heatmap, also where: a picture per image of the model's evidence over it (docs/anomaly.md).",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per line: path, label, score")
    p.add_argument(
        "--heatmap",
        metavar="DIR",
        help="write DIR/NAME-heat.png per image: the image under the model's heat map (faint from half "
        "the edge of normal the model learnt, full colour at twice it); the line gains the map's "
        "peak (x,y). Local models of format 2 only",
    )
    p.set_defaults(handler="anomaly:cmd_predict")


def _add_evaluate_model(sub) -> None:
    """``conveyor-qc evaluate-model``."""
    p = sub.add_parser(
        "evaluate-model",
        help="precision, recall, F1 and confusion counts of a model on a manifest",
        description="Image-level precision, recall and F1 of the anomaly class, and the "
        "confusion counts, on a labelled manifest.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(handler="anomaly:cmd_evaluate_model")


def _add_simulate_labelling(sub) -> None:
    """``conveyor-qc simulate-labelling``: the labelling page's order, measured with true labels."""

    def share(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
        if not 0 < value <= 1:
            raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
        return value

    p = sub.add_parser(
        "simulate-labelling",
        help="measure how many labels the labelling page's order needs to reach a model quality",
        description="Play a person who labels the objects of RUN_DIR with their true labels (LABELS.csv: "
        "track_id,label, as `label --from-truth` writes it; objects it does not name are never asked about) in "
        "the order the labelling page asks, retrain the model after every --batch labels, score it on the objects "
        "not yet labelled (anomaly F1), and report how many labels it took to reach --target-f1. "
        "See docs/labelling.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `conveyor-qc run` --out folder with crops")
    p.add_argument("--truth", required=True, metavar="LABELS.csv", help="the true labels (track_id,label)")
    p.add_argument("--target-f1", type=share, default=0.9, help="the anomaly F1 to reach (default 0.9)")
    p.add_argument(
        "--order",
        choices=("active", "passage", "random"),
        default="active",
        help="active: the most unusual first, then what would teach the model most (default); passage: "
        "track id order; random: shuffled by --seed",
    )
    p.add_argument("--seed", type=int, default=0, help="the random order's seed (default 0)")
    p.add_argument("--batch", type=_count, default=1, help="labels between two retrainings (default 1)")
    p.add_argument("--json", action="store_true", help='print {"order", "labels_to_target", "curve", ...} as JSON')
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(handler="active:cmd_simulate_labelling")


def _add_import_onnx(sub) -> None:
    """``conveyor-qc import-onnx``: a model folder from an ONNX graph trained elsewhere."""

    def size(text: str) -> tuple[int, int]:
        parts = text.lower().split("x")
        if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
            return (int(parts[0]), int(parts[-1]))
        raise argparse.ArgumentTypeError(f"expected N or HEIGHTxWIDTH in pixels, got {text!r}")

    p = sub.add_parser(
        "import-onnx",
        help="make a model folder from an ONNX graph trained elsewhere (anomalib, a classifier)",
        description="Check MODEL.onnx with onnxruntime and write MODEL_DIR (model.onnx and model.json) for "
        "`predict`, `evaluate-model` and `run --model`: how a crop becomes the graph's input, what its output "
        "means and from which raw value an object is an anomaly (--threshold, or --calibrate on a labelled "
        'manifest). Needs onnxruntime (pip install "conveyor-qc[onnx]"). See docs/anomaly.md.',
    )
    p.add_argument("onnx_file", metavar="MODEL.onnx")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder (created if missing)")
    p.add_argument(
        "--output-kind",
        required=True,
        choices=("score", "probability", "map"),
        help="what the output is: an anomaly score per image, class probabilities, or a score map per image",
    )
    p.add_argument("--output", metavar="NAME|INDEX", help="the graph's output to read (default: its first)")
    p.add_argument("--anomaly-class", type=int, metavar="K", help="probability: the anomaly class's index (default 1)")
    p.add_argument("--reduce", metavar="max|mean|pNN", help="map: how a map becomes one value, e.g. p99 (default max)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="the raw value from which an object is an anomaly (score 0.5; a probability's default: 0.5)",
    )
    how.add_argument(
        "--calibrate",
        metavar="MANIFEST",
        help="set the threshold to the raw value that maximises anomaly F1 on this labelled manifest",
    )
    p.add_argument(
        "--range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="the raw values scored 0 and 1 (default 0 and twice the threshold; a probability's 0 and 1)",
    )
    inp = p.add_argument_group("input (default: the graph's size, RGB, divided by 255, NCHW, letterboxed)")
    inp.add_argument("--input-size", type=size, metavar="N|HxW", help="the graph's input size, if not fixed in it")
    inp.add_argument("--colour", choices=("rgb", "bgr", "grey"), default="rgb", help="channel order (default rgb)")
    inp.add_argument("--divide-by", type=float, default=255.0, metavar="X", help="pixels divided by X (default 255)")
    inp.add_argument("--mean", type=float, nargs="+", metavar="M", help="subtracted after dividing, per channel")
    inp.add_argument("--std", type=float, nargs="+", metavar="S", help="then divided by, per channel")
    inp.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW", help="default NCHW")
    inp.add_argument(
        "--resize",
        choices=("letterbox", "stretch"),
        default="letterbox",
        help="letterbox keeps the aspect on black, as crops are (default); stretch fills the input",
    )
    inp.add_argument("--input-name", metavar="NAME", help="the graph's input (default: its only one)")
    p.set_defaults(handler="onnx_model:cmd_import_onnx")


def _add_config(sub) -> None:
    """``conveyor-qc config``."""
    p = sub.add_parser(
        "config",
        help="print or save the settings (defaults, or a file with overrides)",
        description="Print the full settings as TOML: the defaults, or --config FILE with --set "
        "overrides applied and validated.",
    )
    _add_config_args(p)
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")
    p.set_defaults(handler="run:cmd_config")


def add_lookout(sub) -> None:
    """``conveyor-qc lookout create-project|upload|create-datasets|train|start|detect|stop|status``."""
    lp = sub.add_parser(
        "lookout",
        help="AWS Lookout for Vision: project, upload, datasets, training, hosting, "
        "detection (discontinued by AWS on 2025-10-31; see docs/lookout.md)",
        description="Each step of the Lookout for Vision lifecycle as a command. The "
        "lookoutvision API description that botocore dropped ships with conveyor-qc (docs/lookout.md). Hosting is "
        "billed by the hour: `detect --start` stops it again whatever happens.",
    )
    steps = lp.add_subparsers(dest="lookout_command", metavar="STEP")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION / the profile's)")
    common.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="another Lookout for Vision endpoint (default AWS, or $AWS_ENDPOINT_URL_LOOKOUTVISION)",
    )
    common.add_argument(
        "--retry-mode",
        choices=("standard", "adaptive"),
        default="standard",
        help="botocore retry mode for throttling and transient errors (default standard; adaptive "
        "also rate-limits on the client)",
    )
    common.add_argument(
        "--poll",
        type=float,
        default=DEFAULT_POLL,
        metavar="SECONDS",
        help=f"seconds between status checks while waiting (default {DEFAULT_POLL:g})",
    )
    common.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up waiting after this long (defaults: datasets 30 min, training 24 h, start 1 h, stop 30 min); "
        "also the most each request waits to connect and to hear back (default 10 s and 60 s)",
    )
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    proj = argparse.ArgumentParser(add_help=False)
    proj.add_argument("--project", required=True, help="Lookout for Vision project name")
    version = argparse.ArgumentParser(add_help=False)
    version.add_argument("--model-version", required=True, metavar="V", help="model version (1, 2, ...)")
    s3ep = argparse.ArgumentParser(add_help=False)
    s3ep.add_argument("--s3-endpoint", metavar="URL", help="another S3 API (default AWS, or $AWS_ENDPOINT_URL_S3)")

    p = steps.add_parser("create-project", parents=[common, proj], help="create the project (nothing if it exists)")
    p = steps.add_parser(
        "upload",
        parents=[common, s3ep],
        help="upload a dataset's images and manifests to S3",
        description="Upload the images of DATASET_DIR/train.manifest (and test.manifest) and the "
        "manifests with s3:// paths as PREFIX/train.manifest, PREFIX/test.manifest. "
        "Unchanged files are skipped.",
    )
    p.add_argument("dataset", metavar="DATASET_DIR", help="a `conveyor-qc dataset` folder, or a train .manifest")
    p.add_argument("--test", metavar="MANIFEST", help="the test manifest when DATASET_DIR is a manifest file")
    p.add_argument("--s3", required=True, metavar="s3://BUCKET/PREFIX")
    p = steps.add_parser(
        "create-datasets",
        parents=[common, proj],
        help="create the train and test datasets from the manifests in S3 and wait for them",
    )
    p.add_argument(
        "--s3",
        required=True,
        metavar="s3://BUCKET/PREFIX",
        help="where `upload` put them: PREFIX/train.manifest and PREFIX/test.manifest",
    )
    p.add_argument("--single", action="store_true", help="a train dataset only (Lookout splits it itself)")
    p.add_argument("--replace", action="store_true", help="delete existing datasets first (default: keep them)")
    p = steps.add_parser("train", parents=[common, proj], help="train a model and wait for it (30 min to hours)")
    p.add_argument(
        "--s3", required=True, metavar="s3://BUCKET/PREFIX", help="training output goes to PREFIX/model-output/"
    )
    p.add_argument("--out", metavar="MODEL_DIR", help="also write MODEL_DIR/model.json for `conveyor-qc run`")
    p.add_argument(
        "--image-size",
        type=int,
        default=DEFAULT_IMAGE_SIZE[0],
        metavar="N",
        help="training image size, recorded in model.json (default 384)",
    )
    p.add_argument("--no-wait", action="store_true", help="return once training has started")
    p = steps.add_parser(
        "start",
        parents=[common, proj, version],
        help="host the model and wait for HOSTED (billed by the hour until `stop`)",
    )
    p.add_argument("--min-units", type=int, default=1, metavar="N", help="minimum inference units (default 1)")
    p.add_argument("--max-units", type=int, metavar="N", help="maximum inference units (auto-scaling)")
    p = steps.add_parser(
        "detect",
        parents=[common, proj, version],
        help="detect anomalies in crops",
        description="Send each image (or every PNG/JPEG under a folder, e.g. a run's crops/) at "
        "the training size to DetectAnomalies; print path, label and score (the "
        "probability of anomaly). With --start, host the model for the run and stop "
        "it afterwards, also after an error or Ctrl-C.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--start", action="store_true", help="host the model for this run (stopped afterwards)")
    p.add_argument("--min-units", type=int, default=1, metavar="N", help="with --start: inference units")
    p.add_argument(
        "--image-size", type=int, default=DEFAULT_IMAGE_SIZE[0], metavar="N", help="training image size (default 384)"
    )
    p.add_argument("--format", choices=("png", "jpeg"), default="png", help="encoding sent (default png)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p = steps.add_parser("stop", parents=[common, proj, version], help="stop hosting the model")
    p.add_argument("--no-wait", action="store_true", help="return once stopping has begun")
    p = steps.add_parser("status", parents=[common, proj], help="datasets and models of the project")
    p.add_argument("--json", action="store_true")
    lp.set_defaults(handler="lookout:cmd_lookout")
