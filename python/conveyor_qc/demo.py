"""The short summary `make demo` ends with (every other step is a CLI command, see the Makefile):

python -m conveyor_qc.demo summary RUN_DIR SYNTH_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conveyor_qc.evaluation.metrics import evaluate, read_labels


def summary(run_dir: str, synth_dir: str) -> int:
    run, synth = Path(run_dir), Path(synth_dir)
    s = json.loads((run / "summary.json").read_text())
    r = evaluate(synth / "gt.txt", run / "tracks.txt", synth / "labels.csv", run / "objects.csv", mot=False)
    true_anomalies = sum(1 for label in read_labels(synth / "labels.csv").values() if label == "anomaly")
    print()
    print(
        f"demo: {run}/  (report.html: open it in a browser; annotated.mp4, tracks.txt, objects.csv, crops/, summary.json)"
    )
    print(
        f"  objects counted : {s['objects']} (ground truth: {r['objects']}; object F1 {r['f1']:.3f}, "
        f"each counted once: {'yes' if r['f1'] == 1.0 else 'no'})"
    )
    if s["unknown"] == s["objects"]:
        print("  anomalies       : no anomaly model given (objects are labelled 'unknown')")
    else:
        f1 = r.get("anomaly_f1")
        print(
            f"  anomalies       : {s['anomalies']} flagged (ground truth: {true_anomalies}; anomaly F1 {f1:.3f})"
            if f1 is not None
            else f"  anomalies       : {s['anomalies']} flagged"
        )
    print(
        f"  speed           : {s['fps']:.0f} frames per second ({s['frames']} frames of "
        f"{s['width']}x{s['height']}, with annotated video, crops and the anomaly model)"
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "summary":
        print(__doc__, file=sys.stderr)
        return 2
    return summary(argv[1], argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
