"""The embedded model's patch bank gives a crop the same figures whichever thread asks and whatever
else the process runs: the judge, the labelling page's heat maps and report.html all explain crops,
on threads of their own, and a heat map served must be the one the model gives (tests/test_label.py
compares them pixel for pixel). Its BLAS products give the same sums on any number of BLAS threads
(OpenBLAS splits the output, not the sums); its OpenCV calls are held to that here."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from conveyor_qc.anomaly.local import FRAME_ONLY, view_crop
from conveyor_qc.anomaly.patches import describe


@pytest.fixture(scope="module")
def frames(cookies_dir):
    """The object frames of the 63 real cookie photos."""
    views = [view_crop(cv2.imread(str(p)), FRAME_ONLY) for p in sorted((cookies_dir / "images").glob("*.jpg"))]
    out = [v.frame for v in views if v.frame is not None]
    assert len(out) >= 60
    return out


def test_descriptors_do_not_depend_on_what_else_the_process_runs(frames):
    """Two threads describing at once, as the judge and the labelling page's heat maps do: OpenCV
    splits each call among the threads free at that moment, and cv2.magnitude's vector path and its
    plain tail round differently, so its result changed in the last bit with the split (a heat map
    served differed from the model's by a pixel)."""
    alone = [describe(f) for f in frames]
    results: dict[int, list[np.ndarray]] = {}

    def describe_all(k: int) -> None:
        results[k] = [describe(f) for _ in range(3) for f in frames]

    threads = [threading.Thread(target=describe_all, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, described in results.items():
        for i, got in enumerate(described):
            np.testing.assert_array_equal(got, alone[i % len(frames)], err_msg=f"thread {k}, frame {i % len(frames)}")
