"""Helpers of the output-fault tests (test_outputs_crash.py, test_faults.py): a small synthetic
clip that runs in a few seconds, and a run folder read back row by row."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from conftest import CLI, run_cli  # noqa: F401  (the fault tests import them from here)

#: The small clip's objects are a quarter of the default's area.
RUN_SETTINGS = ["--set", "detect.min_area=100"]
OBJECT_HEADER = ["track_id", "first_frame", "last_frame", "frames", "x", "y", "w", "h", "label", "score"]


def small_preset():
    """The cookies preset at 640x360 (6 s: 180 frames, 46 objects found with seed 3)."""
    from conveyor_qc.evaluation.synth import PRESETS

    return dataclasses.replace(
        PRESETS["cookies"],
        name="small",
        width=640,
        height=360,
        radius=(20.0, 28.0),
        belt_speed=5.0,
        rate=4.0,
        rail_px=17,
        lane_margin=4,
        min_gap=4,
        shadow_offset=(2.5, 3.5),
        shadow_blur=2.5,
        split_gap=(2.0, 3.0),
    )


def make_small_clip(folder: Path) -> Path:
    from conveyor_qc.evaluation.synth import synthesize

    synthesize(folder, preset=small_preset(), seed=3, seconds=6)
    return folder / "video.mp4"


class Outputs:
    """A run folder read back: objects.csv rows and tracks.txt lines by object number, and the
    crops. Reading asserts that every row is whole and well formed."""

    def __init__(self, folder: Path, committed: dict[str, int] | None = None):
        """``committed``: read only these first bytes of each file (a journal's last commit);
        what follows them is kept in ``objects_tail`` and ``tracks_tail``."""
        self.folder = folder
        self.objects_text = (folder / "objects.csv").read_bytes()
        self.tracks_text = (folder / "tracks.txt").read_bytes()
        self.objects_tail = self.tracks_tail = b""
        if committed is not None:
            n, m = committed["objects.csv"], committed["tracks.txt"]
            self.objects_text, self.objects_tail = self.objects_text[:n], self.objects_text[n:]
            self.tracks_text, self.tracks_tail = self.tracks_text[:m], self.tracks_text[m:]
        assert self.objects_text.endswith(b"\n"), "objects.csv ends in a partial row"
        assert not self.tracks_text or self.tracks_text.endswith(b"\n"), "tracks.txt ends in a partial row"
        rows = list(csv.reader(io.StringIO(self.objects_text.decode())))
        assert rows[0] == OBJECT_HEADER
        self.objects = {int(r[0]): r for r in rows[1:]}
        self.object_lines = {int(line.split(b",", 1)[0]): line + b"\n" for line in self.objects_text.splitlines()[1:]}
        assert all(len(r) == len(OBJECT_HEADER) for r in rows)
        assert len(self.objects) == len(rows) - 1, "an object written twice"
        self.tracks: dict[int, list[bytes]] = {}
        for line in self.tracks_text.splitlines():
            fields = line.split(b",")
            assert len(fields) == 10, line
            [float(f) for f in fields]
            self.tracks.setdefault(int(fields[1]), []).append(line)

    def crops(self, sub: str = "crops") -> dict[int, dict[str, bytes]]:
        out: dict[int, dict[str, bytes]] = {}
        root = self.folder / sub
        if root.is_dir():
            for d in root.iterdir():
                out[int(d.name)] = {f.name: f.read_bytes() for f in d.iterdir()}
        return out

    def subset(self, ids: set[int]) -> tuple[bytes, bytes]:
        """What this (full) run's final objects.csv and tracks.txt hold for these objects only."""
        head = self.objects_text.split(b"\n", 1)[0] + b"\n"
        objects = head + b"".join(
            line + b"\n" for line in self.objects_text.splitlines()[1:] if int(line.split(b",", 1)[0]) in ids
        )
        tracks = b"".join(line + b"\n" for line in self.tracks_text.splitlines() if int(line.split(b",")[1]) in ids)
        return objects, tracks
