"""The table of docs/dataset.md, "Crops that mislead a model": precision and recall of every flag of
``conveyor_qc.dataset.quality`` on synthetic clips whose bad objects are known.

    python tools/quality_table.py --out-dir /tmp/quality --presets cookies light-on-dark \
        crackers-up toys lateral-cut --seeds 41 42 --seconds 20 --blur-share 0.15
    python tools/quality_table.py --out-dir /tmp/quality --presets cookies lateral-cut \
        --seeds 41 42 --seconds 20 --touching-share 0.3 --set detect.split_solidity=0

For each preset and seed it makes a clip with a share of blurred objects (``synthesize`` with
``blur_share``: its ``conditions.csv`` says which are blurred, touching or cut), runs it (``run
--no-video``), checks the run (:func:`check_run`) and compares each track's flags with which
tracks truly have them (:func:`conveyor_qc.evaluation.truth_labels.quality_truth`: tracks paired
with ground-truth objects as ``conveyor-qc eval`` and ``label --from-truth`` pair them; exposure
faults are never in the clips, so every exposure flag is a false one).

Every track of the run counts, with crops or not (one without can only be ``cut``). Clips and
runs already in ``--out-dir`` are reused. Prints a Markdown table: per flag, the true objects, the
flagged ones, precision and recall, per run and summed over the runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from conveyor_qc.config import Config
from conveyor_qc.dataset.quality import FLAGS, QualityReport, check_run
from conveyor_qc.evaluation.synth import synthesize
from conveyor_qc.evaluation.synth.presets import Preset, with_blur_share
from conveyor_qc.evaluation.truth_labels import quality_truth
from conveyor_qc.run.job import run_video


def prepare(base: Path, preset: Preset, seed: int, seconds: float, overrides: list[str]) -> tuple[Path, Path]:
    clip, run = base / "clip", base / "run"
    if not (clip / "conditions.csv").is_file():
        synthesize(clip, preset=preset, seed=seed, seconds=seconds, replace=True)
    if not (run / "summary.json").is_file():
        run_video(str(clip / "video.mp4"), run, Config.from_options(None, overrides), video=False)
    return clip, run


def score(truth: dict[str, set[str]], report: QualityReport) -> dict[str, tuple[int, int, int]]:
    """{flag: (true, flagged, both)}."""
    out = {}
    for f in FLAGS:
        flagged = {o.name for o in report.flagged(f)}
        out[f] = (len(truth[f]), len(flagged), len(truth[f] & flagged))
    return out


def ratio(a: int, b: int) -> str:
    return "-" if b == 0 else f"{a / b:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out-dir", type=Path, required=True, help="clips and runs go here (reused when there)")
    ap.add_argument("--presets", nargs="+", default=["cookies", "light-on-dark"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[41, 42])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--blur-share", type=float, default=0.15, help="share of objects rendered blurred")
    ap.add_argument("--touching-share", type=float, help="share of objects arriving as touching pairs (preset's)")
    ap.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a setting of the run, e.g. detect.split_solidity=0 (touching pairs stay merged)",
    )
    ap.add_argument("--details", action="store_true", help="also list the missed and the false tracks")
    args = ap.parse_args(argv)

    totals = {f: [0, 0, 0] for f in FLAGS}
    rows = []
    for preset in args.presets:
        for seed in args.seeds:
            chosen = with_blur_share(preset, args.blur_share)
            if args.touching_share is not None:
                chosen = dataclasses.replace(chosen, touching_share=args.touching_share)
            variant = "".join(f"-{o}" for o in args.set) + (
                "" if args.touching_share is None else f"-touching{args.touching_share}"
            )
            base = args.out_dir / f"{preset}-{seed}-{args.seconds:g}s-blur{args.blur_share}{variant}"
            clip, run = prepare(base, chosen, seed, args.seconds, args.set)
            report = check_run(run)
            truth = quality_truth(run, clip, report)
            result = score(truth, report)
            rows.append((preset, seed, len(report.objects), result))
            for f, (t, fl, both) in result.items():
                totals[f][0] += t
                totals[f][1] += fl
                totals[f][2] += both
            if args.details:
                for f in FLAGS:
                    flagged = {o.name for o in report.flagged(f)}
                    missed, false = sorted(truth[f] - flagged, key=int), sorted(flagged - truth[f], key=int)
                    if missed or false:
                        print(f"{preset} {seed} {f}: missed {missed} false {false}", file=sys.stderr)
                        for name in false[:5]:
                            print(f"    #{name}: {report.objects[name].reasons[f]}", file=sys.stderr)

    head = "| run | seed | tracks | " + " | ".join(f"{f} true / flagged / P / R" for f in FLAGS) + " |"
    print(head)
    print("|" + "---|" * (3 + len(FLAGS)))
    for preset, seed, n, result in rows:
        cells = [f"{t} / {fl} / {ratio(b, fl)} / {ratio(b, t)}" for t, fl, b in result.values()]
        print(f"| {preset} | {seed} | {n} | " + " | ".join(cells) + " |")
    n_all = sum(r[2] for r in rows)
    cells = [f"{t} / {fl} / {ratio(b, fl)} / {ratio(b, t)}" for t, fl, b in totals.values()]
    print(f"| **all** | | {n_all} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
