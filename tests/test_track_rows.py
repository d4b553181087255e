"""tracks.txt's rows: formatted at one step for whole boxes, sorted in numpy as the run finishes;
both must give exactly the bytes of the plain Python they replaced (issue 22)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from conveyor_qc.run.outputs import _fmt, _sorted_track_lines, _sorted_track_lines_slowly, mot_line, mot_rows


def _track_file(rng: random.Random, lines: int) -> bytes:
    rows = []
    for _ in range(lines):
        frame, track = rng.randint(1, 4000), rng.randint(1, 250)
        rows.append(
            f"{frame},{track},{rng.uniform(0, 1900):.2f},{rng.randint(0, 1000)},{rng.randint(1, 300)},7,1,-1,-1,-1"
        )
    # Equal keys with different rows: the sort must keep their order (stable), as Python's does.
    rows += [f"17,3,{x},1,1,1,1,-1,-1,-1" for x in range(5)]
    rng.shuffle(rows)
    return ("\n".join(rows) + "\n").encode()


def test_track_lines_sorted_in_numpy_as_the_python_key_sorts_them():
    rng = random.Random(5)
    for lines in (1, 2, 63, 4000):
        data = _track_file(rng, lines)
        assert _sorted_track_lines(data) == _sorted_track_lines_slowly(data)
        # no newline at the end, and empty lines
        torn = data[:-1].replace(b"\n", b"\n\n", 3)
        assert _sorted_track_lines(torn) == _sorted_track_lines_slowly(torn) == _sorted_track_lines(data)
    assert _sorted_track_lines(b"") == b"" == _sorted_track_lines(b"\n\n")
    # Numbers numpy does not read (a sign, a space) go to the Python key, which reads them.
    odd = b"12,+3,0,0,1,1,1,-1,-1,-1\n2, 4,0,0,1,1,1,-1,-1,-1\n2,3,0,0,1,1,1,-1,-1,-1\n"
    assert _sorted_track_lines(odd) == _sorted_track_lines_slowly(odd)
    assert _sorted_track_lines(odd).startswith(b"2,3,")
    with pytest.raises(ValueError):  # a line without two numbers: as the Python key did
        _sorted_track_lines(b"1,2,3\nnot a row\n")


def test_rows_of_an_object_are_the_lines_mot_line_writes():
    rng = np.random.default_rng(3)
    boxes = np.concatenate(
        [
            rng.integers(1, 1900, (200, 4)).astype(np.float64),  # the detector's: whole
            np.round(rng.uniform(-20, 1900, (200, 4)), 3),  # predicted: fractions, negatives
            [[0.0, 5, 6, 7], [-0.0, 5, 6, 7], [2.675, 0.005, 1.015, 3], [1e6, 2, 3, 4], [-3, 2, 3.5, 4]],
        ]
    )
    frames = np.arange(boxes.shape[0], dtype=np.int32) * 2
    obj = SimpleNamespace(track_id=41, frames=frames, boxes=boxes)
    rows = mot_rows(obj)
    assert [r[:2] for r in rows] == [(int(f) + 1, 41) for f in frames]
    assert [r[2] for r in rows] == [mot_line(int(f) + 1, 41, *map(float, b)) for f, b in zip(frames, boxes)]
    assert rows[400][2] == "801,41,0,5,6,7,1,-1,-1,-1" and rows[401][2] == "803,41,-0,5,6,7,1,-1,-1,-1"


def test_whole_values_take_a_shorter_path_to_the_same_text():
    values = [float(v) for v in range(-300, 3000)] + [-0.0, 0.0, 0.004, 0.005, 2.675, 1e15, 123.456, -0.001]
    values += np.random.default_rng(1).uniform(-5, 2000, 20000).round(2).tolist()
    assert [_fmt(v) for v in values] == [f"{v:.2f}".rstrip("0").rstrip(".") for v in values]
