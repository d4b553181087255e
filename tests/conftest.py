"""Shared fixtures: synthetic clips with exact ground truth (made once per
session), and the real photos in the shared folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The read-only shared folder: $CONVEYOR_QC_SHARED, default ../shared beside the repo."""
    return Path(os.environ.get("CONVEYOR_QC_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def cookies_dir() -> Path:
    d = shared_dir() / "data" / "aws-cookies"
    if not (d / "train.manifest").exists():
        pytest.skip(f"real cookie photos not found in {d} (set CONVEYOR_QC_SHARED to the shared folder)")
    return d


class Clip:
    """A synthetic video with its ground truth."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.video = folder / "video.mp4"
        self.gt = read_mot(folder / "gt.txt")
        with open(folder / "labels.csv", newline="") as fh:
            self.labels = {int(r["id"]): r for r in csv.DictReader(fh)}

    @property
    def ids(self) -> set[int]:
        return set(self.labels)


def read_mot(path: Path) -> np.ndarray:
    """MOTChallenge rows as an (N, >=6) float array: frame, id, x, y, w, h, ..."""
    rows = [list(map(float, line.split(",")))
            for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=float).reshape(-1, len(rows[0]) if rows else 10)


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory):
    """make_clip(preset, seed, seconds) -> Clip, cached for the session."""
    from conveyor_qc.synth import synthesize

    cache: dict[tuple, Clip] = {}

    def make(preset: str = "cookies", seed: int = 0, seconds: float = 6.0) -> Clip:
        key = (preset, seed, seconds)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"clip-{preset}-{seed}")
            synthesize(folder, preset=preset, seed=seed, seconds=seconds)
            cache[key] = Clip(folder)
        return cache[key]

    return make


def iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_tracks(gt: np.ndarray, tracks: np.ndarray, min_iou: float = 0.5, min_share: float = 0.5):
    """Pair each ground-truth id with the track id whose boxes overlap it
    (IoU >= min_iou) on the most frames; a pair needs that on >= min_share of
    the frames the ground-truth object is tracked. Returns (pairs, per-gt
    overlap counts) where pairs maps gt id -> list of track ids that qualify."""
    by_frame: dict[int, list] = {}
    for row in tracks:
        by_frame.setdefault(int(row[0]), []).append(row)
    hits: dict[int, dict[int, int]] = {}
    frames_of: dict[int, int] = {}
    for row in gt:
        f, gid = int(row[0]), int(row[1])
        if len(row) > 8 and row[8] < 0.5:  # objects mostly outside the frame are not judged
            continue
        frames_of[gid] = frames_of.get(gid, 0) + 1
        for t in by_frame.get(f, []):
            if iou(row[2:6], t[2:6]) >= min_iou:
                hits.setdefault(gid, {}).setdefault(int(t[1]), 0)
                hits[gid][int(t[1])] += 1
    pairs = {gid: [tid for tid, n in hits.get(gid, {}).items() if n >= min_share * frames_of[gid]]
             for gid in frames_of}
    return pairs, hits
