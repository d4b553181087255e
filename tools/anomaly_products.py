"""Anomaly benchmarks on products the embedded model was not written for (issue 18).

Each product is a real photograph that scikit-image ships, cut out (conveyor_qc.evaluation.synth's
cut-outs): the 24 coins of coins.png, the cup on its saucer of coffee.png, and a flat wooden horse
(horse.png's silhouette in the wood of coffee.png's table: legs, a neck, a tail). A crop is what
`run` would cut: the product, turned, scaled and lit a little differently each time, letterboxed on
the line's belt. Anomalous crops carry one defect, made on the photograph before it is turned:

- missing: a piece off the outline (for the horse: a leg)
- scribble: two to four marker strokes across the product
- crack: a jagged dark line across it
- blotch: a soft stain of another colour

and a mask of the defect (``masks/``, the crop's size) for the heat-map figures.

    python tools/anomaly_products.py --out /tmp/anom --seed 1            # every product
    python tools/anomaly_products.py --out /tmp/anom --evaluate          # and the local model's F1

writes OUT/PRODUCT/{images,masks}/, train.manifest (30 normal + 10 anomalous, the defects
mixed), train-normal.manifest (its normal images only, for one-class), test.manifest (30 + 30).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.anomaly.base import read_image
from conveyor_qc.anomaly.model import load_model, train_model
from conveyor_qc.crops import letterbox
from conveyor_qc.dataset.manifest import ManifestEntry, read_manifest, write_manifest
from conveyor_qc.evaluation.synth.objects import _cut_polygon, _jagged_line
from conveyor_qc.evaluation.synth.photos import load_skimage_objects

PRODUCTS = ("coin", "cup", "horse")
DEFECTS = ("missing", "scribble", "crack", "blotch")
CROP = 384
#: images per split: (normal, anomalous)
SPLITS = {"train": (30, 10), "test": (30, 30)}


def _defect(rng: np.random.Generator, kind: str, product: str, alpha: np.ndarray, pm: np.ndarray):
    """The cut-out with one defect, and the defect's mask (float32, the cut-out's size)."""
    h, w = alpha.shape
    inside = alpha > 0.5
    ys, xs = np.nonzero(inside)
    r = math.sqrt(inside.sum() / math.pi)
    cx, cy = float(xs.mean()), float(ys.mean())
    mask = np.zeros((h, w), np.float32)
    if kind == "missing":
        if product == "horse":  # a leg: a part of the silhouette below the belly, down to the hooves
            low = inside.astype(np.uint8)
            low[: int(0.68 * h)] = 0
            n, lab, st, _ = cv2.connectedComponentsWithStats(low)
            legs = [
                i for i in range(1, n) if st[i, cv2.CC_STAT_AREA] > 0.002 * h * w and st[i, 1] + st[i, 3] > 0.85 * h
            ]
            cut = (lab == legs[int(rng.integers(len(legs)))]).astype(np.float32)
            cut = cv2.dilate(cut, np.ones((3, 3), np.uint8))
        else:
            cut = _cut_polygon(rng, (h, w), (cx, cy), r, rng.uniform(0, 2 * np.pi), r * rng.uniform(0.25, 0.45))
        mask = np.clip(cut * alpha, 0, 1)
        keep = 1.0 - cut
        return alpha * keep, pm * keep[..., None], mask
    canvas = np.zeros((h, w), np.uint8)
    if kind == "scribble":
        for _ in range(int(rng.integers(2, 5))):
            pts = []
            p = np.array([cx, cy]) + rng.uniform(-0.6, 0.6, 2) * r
            for _ in range(int(rng.integers(3, 7))):
                pts.append(p.copy())
                p = p + rng.uniform(-0.45, 0.45, 2) * r
            cv2.polylines(canvas, [np.int32(pts)], False, 255, int(max(2, r * rng.uniform(0.03, 0.06))), cv2.LINE_AA)
        colour = np.array([(40, 40, 200), (200, 60, 30), (30, 30, 30), (40, 160, 40)][int(rng.integers(4))], np.float32)
        strength = 0.85
    elif kind == "crack":
        phi = rng.uniform(0, np.pi)
        d = np.array([math.cos(phi), math.sin(phi)])
        a, b = np.array([cx, cy]) - d * r * 1.2, np.array([cx, cy]) + d * r * 1.2
        line = _jagged_line(rng, a, b, 3.0, 1.2)
        cv2.polylines(canvas, [np.int32(line)], False, 255, int(max(2, r * 0.035)), cv2.LINE_AA)
        colour = np.array([12, 12, 14], np.float32)
        strength = 0.9
    else:  # blotch
        axes = (int(r * rng.uniform(0.2, 0.4)), int(r * rng.uniform(0.12, 0.3)))
        centre = (int(cx + rng.uniform(-0.4, 0.4) * r), int(cy + rng.uniform(-0.4, 0.4) * r))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        canvas = cv2.GaussianBlur(canvas, (0, 0), max(1.0, r * 0.04))
        colour = np.array([(60, 120, 200), (150, 60, 160), (40, 90, 60)][int(rng.integers(3))], np.float32)
        strength = float(rng.uniform(0.5, 0.75))
    cover = (canvas.astype(np.float32) / 255.0) * alpha * strength
    pm = pm * (1 - cover[..., None]) + colour * cover[..., None]
    return alpha, pm, (cover > 0.15 * strength).astype(np.float32)


#: One belt per product, as on a line: a light grey-green conveyor, lit a little differently each crop.
BELT_BGR = np.array([178, 186, 180], np.float32)


def _belt(rng: np.random.Generator, size: int) -> np.ndarray:
    base = BELT_BGR * np.float32(rng.uniform(0.93, 1.07))
    belt = np.ones((size, size, 3), np.float32) * base
    belt += rng.normal(0, 3.0, (size, size, 1)).astype(np.float32)
    return belt


def render(rng: np.random.Generator, photo, product: str, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One crop (BGR uint8, CROP x CROP) and its defect mask (uint8 0/255)."""
    alpha, pm = photo.alpha.copy(), photo.pm.copy()
    mask = np.zeros(alpha.shape, np.float32)
    if defect:
        alpha, pm, mask = _defect(rng, defect, product, alpha, pm)
    if rng.random() < 0.5:
        alpha, pm, mask = alpha[:, ::-1], pm[:, ::-1], mask[:, ::-1]
    h, w = alpha.shape
    scale = rng.uniform(0.9, 1.1)
    diag = int(math.ceil(math.hypot(h, w) * scale)) + 4
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(rng.uniform(0, 360)), scale)
    m[:, 2] += np.array([diag / 2.0 - w / 2.0, diag / 2.0 - h / 2.0])
    warp = lambda x: cv2.warpAffine(np.ascontiguousarray(x), m, (diag, diag), flags=cv2.INTER_LINEAR)  # noqa: E731
    alpha, pm, mask = np.clip(warp(alpha), 0, 1), warp(pm) * rng.uniform(0.9, 1.1), warp(mask)
    pad = int(diag * 0.12)
    belt = _belt(rng, diag + 2 * pad)
    sl = np.s_[pad : pad + diag, pad : pad + diag]
    belt[sl] = belt[sl] * (1 - alpha[..., None]) + pm
    full_mask = np.zeros(belt.shape[:2], np.float32)
    full_mask[sl] = mask
    crop = letterbox(np.clip(belt, 0, 255).astype(np.uint8), CROP)
    mask_crop = letterbox(cv2.cvtColor((full_mask > 0.5).astype(np.uint8) * 255, cv2.COLOR_GRAY2BGR), CROP)[..., 0]
    return crop, mask_crop


def build(out: Path, product: str, seed: int) -> dict[str, Path]:
    photos = load_skimage_objects()[product]
    folder = out / product
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    manifests = {}
    for s, (split, (n_normal, n_anomaly)) in enumerate(SPLITS.items()):
        rng = np.random.default_rng([seed, s, PRODUCTS.index(product)])
        entries = []
        for i in range(n_normal + n_anomaly):
            defect = None if i < n_normal else DEFECTS[(i - n_normal) % len(DEFECTS)]
            photo = photos[int(rng.integers(len(photos)))]
            crop, mask = render(rng, photo, product, defect)
            name = f"{split}-{i:03d}-{defect or 'normal'}.png"
            cv2.imwrite(str(folder / "images" / name), crop)
            if defect:
                cv2.imwrite(str(folder / "masks" / name), mask)
            entries.append(
                ManifestEntry(
                    source_ref=f"images/{name}", label="anomaly" if defect else "normal", extra={"defect": defect}
                )
            )
        write_manifest(folder / f"{split}.manifest", entries)
        manifests[split] = folder / f"{split}.manifest"
        if split == "train":
            write_manifest(folder / "train-normal.manifest", [e for e in entries if e.label == "normal"])
            manifests["train-normal"] = folder / "train-normal.manifest"
    return manifests


def evaluate(manifests: dict[str, Path], work: Path) -> dict[str, dict]:
    """Anomaly F1 on the test images, supervised and one-class, and each defect's recall."""
    test = read_manifest(manifests["test"])
    images = [read_image(e.path) for e in test if e.path is not None]
    out = {}
    for mode, train in (("supervised", manifests["train"]), ("one-class", manifests["train-normal"])):
        model_dir = work / f"model-{mode}"
        train_model(train, model_dir, one_class=mode == "one-class")
        with load_model(model_dir) as model:
            verdicts = [v.label == "anomaly" for v in model.predict(images)]
        truth = [e.label == "anomaly" for e in test]
        tp = sum(p and t for p, t in zip(verdicts, truth))
        fp = sum(p and not t for p, t in zip(verdicts, truth))
        fn = sum(t and not p for p, t in zip(verdicts, truth))
        recall = {
            d: round(
                sum(p for p, e in zip(verdicts, test) if e.extra.get("defect") == d)
                / sum(1 for e in test if e.extra.get("defect") == d),
                2,
            )
            for d in DEFECTS
        }
        out[mode] = {"f1": round(2 * tp / max(2 * tp + fp + fn, 1), 3), "false_alarms": fp, "recall": recall}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--products", nargs="*", default=list(PRODUCTS), choices=PRODUCTS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="train the local model, print anomaly F1")
    args = parser.parse_args()
    results = {}
    for product in args.products:
        manifests = build(args.out, product, args.seed)
        if args.evaluate:
            results[product] = evaluate(manifests, args.out / product)
            print(product, json.dumps(results[product]), flush=True)
    if results:
        (args.out / f"results-seed{args.seed}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
