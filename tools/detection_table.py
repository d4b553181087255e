"""Untuned accuracy on every synth preset: the table in docs/tuning.md.

    python tools/detection_table.py --seeds 2 3 --seconds 20 --work /tmp/table [--presets dense toys ...]
                                    [--set KEY=VALUE ...] [--jobs 2] [--markdown] [--json FILE]

For each preset and seed: `conveyor-qc synth` (kept in WORK, so a second call reuses the
clips), `conveyor-qc run` with no settings but --set (no video, no crops), and the object
comparison of `conveyor-qc eval`: object F1, counted / objects and the count error
(evaluate.ObjectReport.count_error). Seeds other than 1 are the held-out ones: develop on
seed 1, report seeds 2 and 3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conveyor_qc.evaluation.metrics import object_metrics
from conveyor_qc.evaluation.synth import PRESETS


def qc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conveyor_qc", *args], capture_output=True, text=True, check=False)


def clip(work: Path, preset: str, seed: int, seconds: float) -> Path:
    out = work / "clips" / f"{preset}-s{seed}-{seconds:g}s"
    if not (out / "gt.txt").is_file():
        r = qc("synth", str(out), "--preset", preset, "--seed", str(seed), "--seconds", str(seconds), "-q")
        if r.returncode:
            raise RuntimeError(f"synth {preset} seed {seed}: {r.stderr.strip()}")
    return out


def source_of(folder: Path) -> str:
    if (folder / "video.mp4").is_file():
        return str(folder / "video.mp4")
    return str(folder / "frames" / "img_%05d.png")


def measure(
    work: Path, tag: str, preset: str, seed: int, seconds: float, sets: list[str], judge_visibility: float
) -> dict:
    folder = clip(work, preset, seed, seconds)
    out = work / "runs" / tag / f"{preset}-s{seed}"
    args = ["run", source_of(folder), "--out", str(out), "--no-video", "--no-crops", "-q"]
    for s in sets:
        args += ["--set", s]
    r = qc(*args)
    if r.returncode:
        return {"preset": preset, "seed": seed, "error": r.stderr.strip().splitlines()[-1]}
    rep = object_metrics(folder / "gt.txt", out / "tracks.txt", judge_visibility=judge_visibility)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "preset": preset,
        "seed": seed,
        "f1": rep.f1,
        "counted": rep.counted,
        "objects": rep.objects,
        "count_error": rep.count_error,
        "missed": len(rep.missed),
        "ghosts": len(rep.ghosts),
        "joined": len(rep.joined),
        "split": len(rep.split),
        "duplicates": len(rep.duplicates),
        "fps": summary["fps"],
        "warnings": [w["code"] for w in summary.get("mask", {}).get("warnings", [])],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="*", default=list(PRESETS))
    p.add_argument("--seeds", nargs="*", type=int, default=[2, 3])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--work", type=Path, default=Path("/tmp/conveyor-qc-table"))
    p.add_argument("--tag", default="untuned", help="runs go to WORK/runs/TAG")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--judge-visibility",
        type=float,
        default=0.4,
        help="an object is required once this share of it is in view (default 0.4)",
    )
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--markdown", action="store_true", help="a docs/tuning.md table instead of one line a run")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every row to FILE")
    a = p.parse_args()
    jobs = [(pr, s) for pr in a.presets for s in a.seeds]
    # Clips first, one process each in parallel (rendering is the slow part), then the runs.
    with ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(lambda j: clip(a.work, j[0], j[1], a.seconds), jobs))
        rows = list(pool.map(lambda j: measure(a.work, a.tag, j[0], j[1], a.seconds, a.sets, a.judge_visibility), jobs))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    if a.markdown:
        print(
            "| preset | " + " | ".join(f"seed {s}: object F1, counted / objects (count error)" for s in a.seeds) + " |"
        )
        print("|---|" + "---|" * len(a.seeds))
        for pr in a.presets:
            cells = []
            for s in a.seeds:
                r = next(r for r in rows if r["preset"] == pr and r["seed"] == s)
                cells.append(
                    r.get("error") or f"{r['f1']:.3f}, {r['counted']} / {r['objects']} ({100 * r['count_error']:.1f}%)"
                )
            print(f"| {pr} | " + " | ".join(cells) + " |")
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['preset']:<14} s{r['seed']}  ERROR {r['error']}")
                continue
            print(
                f"{r['preset']:<14} s{r['seed']}  F1 {r['f1']:.3f}  {r['counted']:3d}/{r['objects']:3d} "
                f"err {100 * r['count_error']:4.1f}%  m{r['missed']} g{r['ghosts']} j{r['joined']} "
                f"s{r['split']} d{r['duplicates']}  {r['fps']:.0f} fps {' '.join(r['warnings'])}"
            )
    sys.stdout.flush()
    os._exit(0)  # (no lingering pool threads)


if __name__ == "__main__":
    main()
