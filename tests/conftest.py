"""Shared fixtures: synthetic clips with exact ground truth (made once per
session), and the real photos in the shared folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from conveyor_qc.evaluate import read_mot  # noqa: F401  (tests import it from here)

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
