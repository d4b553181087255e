"""Fingerprints of what `run` writes, to show that a refactoring changed no behaviour.

Renders the four original presets and the bench clip once into WORK, trains a local model
as `make demo` does, runs `conveyor-qc run --model` on each clip (crops and annotated video
on) and prints, per clip, a digest of tracks.txt, objects.csv and summary.json with its
timings and paths taken out. Compare two snapshots with --compare.

    python tools/behaviour_snapshot.py --work /tmp/snap --out before.json
    ... change the code ...
    python tools/behaviour_snapshot.py --work /tmp/snap --out after.json --compare before.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from conveyor_qc.evaluation.synth import PRESETS as SYNTH_PRESETS
from conveyor_qc.evaluation.synth import synthesize

PRESETS = ("cookies", "vertical", "light-on-dark", "hard")
SECONDS = 10
#: summary.json fields that change from run to run, or name where the run was.
VOLATILE = {"fps", "processing_seconds", "source", "path", "mtime_ns"}


def qc(*args: object) -> None:
    cmd = [sys.executable, "-m", "conveyor_qc", *map(str, args)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def scrub(value: object) -> object:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def digest(run: Path) -> dict[str, str]:
    out = {}
    for name in ("tracks.txt", "objects.csv"):
        out[name] = hashlib.sha256((run / name).read_bytes()).hexdigest()[:16]
    summary = scrub(json.loads((run / "summary.json").read_text()))
    out["summary.json"] = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:16]
    out["crops"] = str(len(list((run / "crops").glob("*"))))
    return out


def prepare(work: Path) -> dict[str, Path]:
    clips = {}
    for preset in PRESETS:
        folder = work / "clips" / preset
        if not (folder / "video.mp4").exists():
            qc("synth", folder, "--preset", preset, "--seed", 1, "--seconds", SECONDS, "-q")
        clips[preset] = folder / "video.mp4"
    bench = work / "clips" / "bench"
    if not (bench / "video.mp4").exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
        from test_throughput import CLIP_RATE  # the bench clip's own rate

        synthesize(
            bench, preset=dataclasses.replace(SYNTH_PRESETS["cookies"], rate=CLIP_RATE), seed=11, seconds=SECONDS
        )
    clips["bench"] = bench / "video.mp4"
    model = work / "model"
    if not (model / "model.json").exists() and not any(model.glob("*")):
        train = work / "train"
        qc("synth", train / "clip", "--preset", "cookies", "--seed", 12, "--seconds", 20, "-q")
        qc("run", train / "clip" / "video.mp4", "--out", train / "run", "--no-video", "-q")
        qc("label", train / "run", "--from-truth", train / "clip")
        qc("dataset", train / "run", "--out", train / "dataset", "--test-fraction", 0, "--per-object", 5, "-q")
        qc("train", train / "dataset" / "train.manifest", "--out", model)
    return clips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the clips, the model and the runs")
    parser.add_argument("--out", type=Path, required=True, help="where to write this snapshot (JSON)")
    parser.add_argument("--compare", type=Path, help="an earlier snapshot: exit 1 if anything differs")
    args = parser.parse_args()

    clips = prepare(args.work)
    snapshot = {}
    for name, video in clips.items():
        run = args.work / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        qc("run", video, "--out", run, "--model", args.work / "model", "-q")
        snapshot[name] = digest(run)
        print(name, snapshot[name])
    args.out.write_text(json.dumps(snapshot, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = {k for k in before.keys() | snapshot.keys() if before.get(k) != snapshot.get(k)}
        for k in sorted(differ):
            print(f"DIFFERS {k}: {before.get(k)} -> {snapshot.get(k)}")
        print("identical" if not differ else f"{len(differ)} of {len(snapshot)} differ")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
