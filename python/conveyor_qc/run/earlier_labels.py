"""A run into a folder that an earlier run's labels are in.

``labels.csv`` (the labelling page's, or ``label --from-truth``'s) names the earlier run's track
numbers. Run again with the same video and settings, the tracks are the same and the labels still
hold (runs are deterministic); run with anything else, the numbers name other objects. So the
labels stay where they are only when the new ``tracks.txt`` is the earlier one byte for byte;
otherwise they are moved aside to ``labels.earlier-<n>.csv``, nothing lost, and the user is told.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from conveyor_qc.dataset.label_server import LABELS_FILE
from conveyor_qc.io.atomic import fsync_directory

__all__ = ["EarlierLabels"]

TRACKS_FILE = "tracks.txt"


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class EarlierLabels:
    """The labels found in a run's folder before it ran, and the tracks they were made for."""

    def __init__(self, out_dir: Path, tracks_digest: str | None):
        self.out_dir = out_dir
        self.tracks_digest = tracks_digest

    @classmethod
    def find(cls, out_dir: str | Path) -> EarlierLabels | None:
        """Before a run: the folder's labels.csv, if any, and a digest of the tracks beside it."""
        out = Path(out_dir)
        if not (out / LABELS_FILE).is_file():
            return None
        return cls(out, _digest(out / TRACKS_FILE))

    def settle(self, warn: Callable[[str], None]) -> Path | None:
        """After the run: keep the labels if the tracks are the same, else move them aside (and
        ``warn``). Returns where they went, or None when they stayed."""
        labels = self.out_dir / LABELS_FILE
        if not labels.is_file():
            return None
        if self.tracks_digest is not None and _digest(self.out_dir / TRACKS_FILE) == self.tracks_digest:
            return None
        n = 1
        while (aside := self.out_dir / f"labels.earlier-{n}.csv").exists():
            n += 1
        labels.rename(aside)
        fsync_directory(self.out_dir)
        warn(
            f"{labels} named the tracks of an earlier run in this folder, which differ from this run's: "
            f"moved to {aside.name} (label this run again, e.g. `conveyor-qc label {self.out_dir}`)"
        )
        return aside
