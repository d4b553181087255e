"""The table of docs/labelling.md, "Asking the right questions": labels to reach anomaly F1 0.9 with
the labelling page's orders, on rare-anomaly runs of synthetic clips.

    python tools/active_table.py --out-dir /tmp/active --presets cookies light-on-dark \
        --seeds 21 22 23 --seconds 120 --anomaly-share 0.03 --batch 5

For each preset and seed it makes the clip (``conveyor-qc synth --anomaly-share``), runs it
(``conveyor-qc run --no-video``), labels the run from the clip's ground truth into ``truth.csv``
beside the run (not the run's labels.csv: the page would take those as given), then plays
``conveyor-qc simulate-labelling`` with each order (``random`` seeded with the clip's seed). Clips
and runs already in ``--out-dir`` are reused. Prints a Markdown table: one row per run, then the
mean over the runs ("never" counts as every object, and is marked). A count with a star was reached
by finding every anomaly: none was left for the model to tell (``anomalies_left_at_target`` 0).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

from conveyor_qc.dataset.active import ORDERS, run_features, simulate_labelling
from conveyor_qc.evaluation.synth import synthesize
from conveyor_qc.evaluation.synth.presets import with_anomaly_share
from conveyor_qc.evaluation.truth_labels import label_from_truth
from conveyor_qc.run.job import run_video


def prepare(base: Path, preset: str, seed: int, seconds: float, share: float) -> tuple[Path, Path]:
    clip, run, truth = base / "clip", base / "run", base / "truth.csv"
    if not truth.is_file():
        synthesize(clip, preset=with_anomaly_share(preset, share), seed=seed, seconds=seconds, replace=True)
        run_video(str(clip / "video.mp4"), run, video=False)
        made = label_from_truth(run, clip, replace=True)
        shutil.move(made.path, truth)
    return run, truth


def cookie_run(base: Path) -> tuple[Path, Path]:
    """The 63 real cookie photos (train.manifest) as a run folder: one object per photo, its crop
    the photo, numbered in the manifest's order (the ``passage`` order), and truth.csv beside it."""
    from conveyor_qc.dataset.manifest import read_manifest
    from conveyor_qc.shared import cookie_photos_dir

    run, truth = base / "run", base / "truth.csv"
    entries = [e for e in read_manifest(cookie_photos_dir() / "train.manifest") if e.path is not None]
    (run / "crops").mkdir(parents=True, exist_ok=True)
    rows, labels = ["track_id,first_frame,last_frame,frames,x,y,w,h,label,score"], ["track_id,label"]
    for tid, e in enumerate(entries, start=1):
        assert e.path is not None
        (run / "crops" / str(tid)).mkdir(exist_ok=True)
        shutil.copyfile(e.path, run / "crops" / str(tid) / f"0{e.path.suffix.lower()}")
        rows.append(f"{tid},{tid},{tid},1,0,0,1,1,unknown,")
        labels.append(f"{tid},{e.label}")
    (run / "objects.csv").write_text("\n".join(rows) + "\n")
    truth.write_text("\n".join(labels) + "\n")
    return run, truth


def row(name: str, seed: int, run: Path, truth_file: Path, args: argparse.Namespace, totals: dict) -> None:
    """One run's line of the table; each order's labels to target added to ``totals`` ("never"
    as every object)."""
    with open(truth_file, newline="") as fh:
        truth = {int(r["track_id"]): r["label"] for r in csv.DictReader(fh)}
    features = run_features(run)
    cells, got = [], {}
    for order in ORDERS:
        sim = simulate_labelling(features, truth, order, target_f1=args.target_f1, seed=seed, batch=args.batch)
        n = sim.labels_to_target
        got[order] = sim.objects if n is None else n
        totals[order].append(got[order])
        # a star: reached by finding every anomaly (none left to tell), not by a model that tells them
        cells.append("never" if n is None else f"{n}{'*' if sim.anomalies_left_at_target == 0 else ''}")
        print(f"{name} {seed} {order}: {n}", file=sys.stderr)
    never = any(c == "never" for c in cells[: ORDERS.index("passage") + 1])
    ratio = "-" if never else f"{got['active'] / got['passage']:.2f}"
    print(f"| {name} | {seed} | {sim.objects} | {sim.anomalies} | " + " | ".join(cells) + f" | {ratio} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--presets", nargs="+", default=["cookies", "light-on-dark"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--anomaly-share", type=float, default=0.03)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--target-f1", type=float, default=0.9)
    ap.add_argument("--cookies", action="store_true", help="also the 63 real cookie photos, as one run")
    args = ap.parse_args()
    print("| run | seed | objects | anomalies | " + " | ".join(ORDERS) + " | active / passage |")
    print("|---|---|---|---|" + "---|" * (len(ORDERS) + 1))
    totals: dict[str, list[int]] = {o: [] for o in ORDERS}
    for preset in args.presets:
        for seed in args.seeds:
            base = args.out_dir / f"{preset}-{seed}"
            row(preset, seed, *prepare(base, preset, seed, args.seconds, args.anomaly_share), args, totals)
    means = {o: sum(v) / len(v) for o, v in totals.items()}
    print(
        f"| **mean of {len(totals['active'])}** | | | | "
        + " | ".join(f"{means[o]:.0f}" for o in ORDERS)
        + f" | {means['active'] / means['passage']:.2f} |"
    )
    if args.cookies:  # not rare (half of the photos), so outside the mean
        row("real cookie photos", 0, *cookie_run(args.out_dir / "cookie-photos"), args, {o: [] for o in ORDERS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
