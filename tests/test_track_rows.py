"""tracks.txt's rows: written by the core, sorted in numpy as the run finishes; both must give
exactly the bytes of the plain Python they replaced (issue 22)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from conveyor_qc import _core
from conveyor_qc.run.outputs import (
    _fmt,
    _sorted_track_lines,
    _sorted_track_lines_slowly,
    mot_line,
    mot_text,
)


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


def _python_decimal2(v: float) -> str:
    """What tracks.txt's numbers were before the core wrote them: the reference."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


def test_rows_of_an_object_are_the_lines_python_wrote():
    rng = np.random.default_rng(3)
    boxes = np.concatenate(
        [
            rng.integers(1, 1900, (200, 4)),  # the detector's: whole
            rng.uniform(-20, 1900, (2000, 4)),  # predicted: fractions, negatives
            [[0.0, 5, 6, 7], [-0.0, 5, 6, 7], [2.675, 0.005, 1.015, 3], [1e6, 2, 3, 4], [-3, 2, 3.5, 4]],
            [[0.125, 0.375, 1.625, 2.875], [-0.004, 0.994, 99.995, 1e-9]],  # ties at the 3rd decimal
        ]
    ).astype(np.float32)  # the core's boxes
    frames = np.arange(boxes.shape[0], dtype=np.int32) * 2
    obj = SimpleNamespace(track_id=41, frames=frames, boxes=boxes)
    want = [
        f"{int(f) + 1},41," + ",".join(_python_decimal2(float(v)) for v in b) + ",1,-1,-1,-1"
        for f, b in zip(frames, boxes)
    ]
    lines = mot_text(obj).decode().splitlines()
    assert lines == want
    assert lines[2200] == "4401,41,0,5,6,7,1,-1,-1,-1" and lines[2201] == "4403,41,-0,5,6,7,1,-1,-1,-1"
    assert lines[2205] == "4411,41,0.12,0.38,1.62,2.88,1,-1,-1,-1"  # half to even, as Python
    assert mot_line(4405, 41, *map(float, boxes[2202])) == want[2202]
    # An empty track writes nothing; boxes of another type are refused, not cast.
    assert mot_text(SimpleNamespace(track_id=1, frames=frames[:0], boxes=boxes[:0])) == b""
    with pytest.raises(ValueError, match="float32"):
        _core.mot_lines(1, frames, boxes.astype(np.int64))
    # float64 boxes (another tracker's) are written as given, never rounded to float32 first
    assert _core.mot_lines(1, frames[:1], np.array([[0.125000001, 2, 3, 4]])) == b"1,1,0.13,2,3,4,1,-1,-1,-1\n"
    with pytest.raises(ValueError, match="N = len"):
        _core.mot_lines(1, frames[:3], boxes[:4])


def test_numbers_to_two_decimals_as_python_wrote_them():
    values = [float(v) for v in range(-300, 3000)] + [-0.0, 0.0, 0.004, 0.005, 2.675, 1e15, 123.456, -0.001]
    values += np.random.default_rng(1).uniform(-5, 2000, 20000).tolist()
    values += np.random.default_rng(2).uniform(0, 2000, 20000).round(3).tolist()  # many ties
    values += [1e300, -1e-300, 5e-324, float("inf"), float("-inf")]
    assert [_fmt(v) for v in values] == [_python_decimal2(v) for v in values]
