"""Prints the short summary `make demo` ends with: objects counted against the
synthetic ground truth, anomalies, and frames per second."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main(run_dir: str, synth_dir: str) -> int:
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    with open(Path(synth_dir) / "labels.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    true_anomalies = sum(1 for r in truth if r["label"] == "anomaly")
    print()
    print(f"demo: {run_dir}/  (annotated.mp4, tracks.txt, objects.csv, crops/, summary.json)")
    print(f"  objects counted : {summary['objects']}  (ground truth: {len(truth)}, "
          f"of which {true_anomalies} anomalies)")
    if summary["unknown"] == summary["objects"]:
        print("  anomalies       : no anomaly model given (objects are labelled 'unknown')")
    else:
        print(f"  anomalies       : {summary['anomalies']}")
    print(f"  speed           : {summary['fps']:.0f} frames per second "
          f"({summary['frames']} frames of {summary['width']}x{summary['height']}, with video and crops)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
