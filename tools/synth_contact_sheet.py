"""One frame of every `conveyor-qc synth` preset, tiled with its name: docs/synth-presets.png.

    python tools/synth_contact_sheet.py [--out docs/synth-presets.png] [--seed 1] [--seconds 1.0] [--width 320] [--cols 4]

Each preset renders a short clip (--seconds) into a temporary folder; the sheet shows its middle
frame scaled to --width, the ground-truth boxes drawn in thin green lines (cut objects: yellow).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.evaluation.synth import PRESETS, synthesize


def frame_of(video: Path, n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    frame = None
    for _ in range(n):
        ok, f = cap.read()
        if not ok:
            break
        frame = f
    cap.release()
    return frame


def tile(name: str, seed: int, seconds: float, width: int, boxes: bool) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        r = synthesize(d, preset=name, seed=seed, seconds=seconds)
        n = max(1, r.frames // 2)
        img = frame_of(r.video, n)
        if boxes:
            gt = np.loadtxt(r.gt, delimiter=",", ndmin=2)
            for row in gt[gt[:, 0] == n]:
                x, y, w, h = row[2:6].astype(int)
                col = (0, 220, 0) if row[8] >= 1 else (0, 220, 255)
                cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), col, max(1, img.shape[1] // 500))
    scale = width / img.shape[1]
    img = cv2.resize(img, (width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    if img.shape[0] > width:  # portrait: centre crop to a square
        top = (img.shape[0] - width) // 2
        img = img[top : top + width]
    h = int(round(width * 9 / 16))
    if img.shape[0] != h:
        canvas = np.full((max(h, img.shape[0]), width, 3), 40, np.uint8)
        canvas[: img.shape[0]] = img[: canvas.shape[0]]
        img = canvas[:h] if img.shape[0] >= h else canvas
    label = np.full((24, width, 3), 30, np.uint8)
    cv2.putText(label, name, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([label, img])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "synth-presets.png"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--boxes", action="store_true", help="draw the ground-truth boxes")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated names (default: all)")
    args = ap.parse_args()
    tiles = []
    for name in args.presets.split(","):
        tiles.append(tile(name, args.seed, args.seconds, args.width, args.boxes))
        print(name, flush=True)
    h = max(t.shape[0] for t in tiles)
    tiles = [np.vstack([t, np.full((h - t.shape[0], args.width, 3), 30, np.uint8)]) for t in tiles]
    while len(tiles) % args.cols:
        tiles.append(np.full_like(tiles[0], 30))
    rows = [np.hstack(tiles[i : i + args.cols]) for i in range(0, len(tiles), args.cols)]
    sheet = np.vstack(rows)
    # 5 bits a channel keeps the file small (the frames' sensor noise does not compress)
    sheet = (sheet & 0xF8) + 4
    cv2.imwrite(args.out, sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print("->", args.out)


if __name__ == "__main__":
    main()
