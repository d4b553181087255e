"""Where the embedded model says the anomaly is, against masks of the real defects (issue 18).

On the real cookie photos (conveyor_qc/data/aws-cookies, shipped with the package, or
$CONVEYOR_QC_SHARED/data/aws-cookies: masks/anomaly-N.png marks each broken
cookie's defect), cross-validated by photo: the model of each fold, trained on the other folds'
photos, draws the heat maps of its fold's broken cookies. Reported over all broken cookies:

- pixel AUROC: how well the heat map's values rank defect pixels above the other pixels of the
  same photos (0.5 = chance, 1.0 = every defect pixel hotter than every other);
- the share of defects whose heat-map peak falls in the mask (and within 8 px of it).

With ``--products DIR`` (the output of tools/anomaly_products.py), the same on each product's
test anomalies, with a model trained on its train.manifest. ``--sheet IMAGE`` (.jpg or .png) also draws a picture
of some of them: each heat map over its image, the defect's mask outlined in green, the peak
marked with a cyan cross (docs/heatmaps.jpg).

    python tools/anomaly_heatmaps.py                      # the cookies
    python tools/anomaly_heatmaps.py --products /tmp/anom/s6 --sheet docs/heatmaps.jpg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import rankdata

from conveyor_qc.anomaly.base import read_image
from conveyor_qc.anomaly.classifier import group_folds
from conveyor_qc.anomaly.heatmap import overlay, peak
from conveyor_qc.anomaly.local import LocalFit, views_of
from conveyor_qc.dataset.manifest import read_manifest
from conveyor_qc.io.atomic import atomic_write_bytes
from conveyor_qc.shared import cookie_photos_dir

TOLERANCE = 8  # px: "near the mask"
TILE = 192  # px: a picture's side in the sheet


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U of the positives' ranks (ties share a rank)."""
    pos = truth.astype(bool)
    ranks = rankdata(scores)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tile(image: np.ndarray, heat: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
    """One picture of the sheet: the heat map over the image, the mask's outline, the peak."""
    out = overlay(image, heat)
    if mask is not None:
        contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    if heat is not None:
        cv2.drawMarker(out, peak(heat), (255, 255, 0), cv2.MARKER_CROSS, 16, 2)
    h, w = out.shape[:2]
    s = TILE / max(h, w)
    out = cv2.resize(out, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    pad = np.zeros((TILE, TILE, 3), np.uint8)
    pad[: out.shape[0], : out.shape[1]] = out
    return pad


def score_maps(heats: list[np.ndarray | None], masks: list[np.ndarray]) -> dict:
    values, truth, inside, near = [], [], 0, 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * TOLERANCE + 1, 2 * TOLERANCE + 1))
    for heat, mask in zip(heats, masks):
        defect = mask > 127
        if heat is None:
            heat = np.zeros(mask.shape, np.float32)
        values.append(heat.ravel())
        truth.append(defect.ravel())
        x, y = peak(heat)
        inside += bool(defect[y, x])
        near += bool(cv2.dilate(defect.astype(np.uint8), kernel)[y, x])
    return {
        "defects": len(masks),
        "pixel_auroc": round(auroc(np.concatenate(values), np.concatenate(truth)), 3),
        "peak_in_mask": round(inside / len(masks), 3),
        f"peak_within_{TOLERANCE}px": round(near / len(masks), 3),
    }


def cookies(folds: int = 5, seed: int = 0, tiles: list | None = None) -> dict:
    root = cookie_photos_dir()
    entries = read_manifest(root / "train.manifest")
    views = views_of([read_image(e.path) for e in entries if e.path is not None])
    y = np.array([e.label == "anomaly" for e in entries], int)
    fold = group_folds(y, np.arange(len(y)), folds, seed=seed)
    heats: list[np.ndarray | None] = [None] * len(y)
    for f in range(folds):
        train = np.flatnonzero(fold != f)
        fit = LocalFit.fit([views[i] for i in train], y[train], train)
        test = [i for i in np.flatnonzero(fold == f) if y[i]]
        for i, h in zip(test, fit.heat_maps([views[i] for i in test])):
            heats[i] = h
    broken = [i for i in range(len(y)) if y[i]]
    masks = [cv2.imread(str(root / "masks" / (Path(entries[i].source_ref).stem + ".png")), 0) for i in broken]
    if tiles is not None:
        tiles.append([tile(read_image(entries[i].path), heats[i], m) for i, m in list(zip(broken, masks))[:6]])
    return score_maps([heats[i] for i in broken], masks)


def products(folder: Path, tiles: list | None = None) -> dict:
    out = {}
    for product in sorted(p.name for p in folder.iterdir() if (p / "test.manifest").is_file()):
        base = folder / product
        train = read_manifest(base / "train.manifest")
        test = [e for e in read_manifest(base / "test.manifest") if e.label == "anomaly"]
        y = np.array([e.label == "anomaly" for e in train], int)
        fit = LocalFit.fit(views_of([read_image(e.path) for e in train]), y, np.arange(len(y)))
        images = [read_image(e.path) for e in test]
        heats = fit.heat_maps(views_of(images))
        masks = [cv2.imread(str(base / "masks" / Path(e.source_ref).name), 0) for e in test]
        out[product] = score_maps(heats, masks)
        if tiles is not None:  # one of each defect, and a second
            tiles.append([tile(images[i], heats[i], masks[i]) for i in range(6)])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=Path, metavar="DIR", help="also each product of anomaly_products.py's DIR")
    parser.add_argument("--seed", type=int, default=0, help="the cookies' fold shuffle")
    parser.add_argument("--sheet", type=Path, metavar="IMAGE", help="also draw six heat maps a product (.jpg, .png)")
    args = parser.parse_args()
    tiles: list | None = [] if args.sheet else None
    print("cookies", json.dumps(cookies(seed=args.seed, tiles=tiles)), flush=True)
    if args.products:
        for product, r in products(args.products, tiles).items():
            print(product, json.dumps(r), flush=True)
    if tiles:
        sheet = np.vstack([np.hstack(row) for row in tiles])
        ok, data = cv2.imencode(args.sheet.suffix or ".png", sheet, [cv2.IMWRITE_JPEG_QUALITY, 88])
        if not ok:
            parser.error(f"--sheet {args.sheet}: not an image type OpenCV writes")
        atomic_write_bytes(args.sheet, data.tobytes())
        print("sheet ->", args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
