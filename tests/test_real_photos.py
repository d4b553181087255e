"""Detection on the real cookie photos (light cookies on a dark baking tray,
AWS Lookout for Vision samples, CC BY-SA 4.0): the `auto` mask finds the
cookie with no hand-set threshold."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conveyor_qc import _core


def photos(cookies_dir, label):
    for line in (cookies_dir / "train.manifest").read_text().splitlines():
        rec = json.loads(line)
        meta = next(v for k, v in rec.items() if k.endswith("-metadata"))
        if meta["class-name"] == label:
            yield cookies_dir / rec["source-ref"]


def detect(image):
    mask_params = _core.MaskParams()
    mask_params.auto_learn_frames = 1
    builder = _core.MaskBuilder(mask_params)
    mask = builder.build(image)
    params = _core.DetectParams()
    params.min_area = 0.03 * image.shape[0] * image.shape[1]
    params.max_area = float(image.shape[0] * image.shape[1])
    return _core.Detector(params).detect(mask)


@pytest.mark.parametrize("label", ["normal", "anomaly"])
def test_auto_mask_finds_the_cookie(cookies_dir, label):
    paths = list(photos(cookies_dir, label))
    assert len(paths) >= 30
    found = 0
    for path in paths:
        image = cv2.imread(str(path))
        assert image is not None, path
        d = detect(image)
        if len(d.area) == 0:
            continue
        # The cookie lies in the middle of the photo: the largest component
        # holds it, or, for a cookie broken in pieces, the pieces around it.
        boxes = d.boxes if label == "anomaly" else d.boxes[[int(np.argmax(d.area))]]
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
        cx, cy = image.shape[1] / 2, image.shape[0] / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1 and d.area.max() > 0.08 * image.size / 3:
            found += 1
    assert found == len(paths), f"{label}: cookie found in {found} of {len(paths)} photos"


def test_normal_cookie_is_one_object(cookies_dir):
    """A whole cookie is one component, chocolate chips and cracks included."""
    counts = [len(detect(cv2.imread(str(p))).area) for p in photos(cookies_dir, "normal")]
    assert sum(c == 1 for c in counts) >= 0.9 * len(counts), counts


def test_the_photos_ship_with_the_package(monkeypatch):
    """A clone or an installed wheel has them, with their NOTICE: nothing to fetch, nothing skipped."""
    import conveyor_qc
    from conveyor_qc import shared

    monkeypatch.delenv(shared.SHARED_ENV, raising=False)
    d = shared.cookie_photos_dir()
    assert d == shared.PACKAGE_DATA / "aws-cookies"
    assert shared.PACKAGE_DATA.parent == Path(conveyor_qc.__file__).resolve().parent
    notice = (d / "NOTICE").read_text()
    assert "CC BY-SA 4.0" in notice and "aws-samples/amazon-lookout-for-vision" in notice
    refs = [json.loads(line)["source-ref"] for line in (d / "train.manifest").read_text().splitlines()]
    assert len(refs) == 63 and all((d / ref).is_file() for ref in refs)
    broken = [ref for ref in refs if "anomaly" in ref]
    assert len(broken) == 32 and all((d / "masks" / (Path(ref).stem + ".png")).is_file() for ref in broken)
    assert "Apache License 2.0" in (shared.PACKAGE_DATA / "aws-models" / "NOTICE").read_text()
