"""Augmentation: train side only, every new line names its source, labels and objects kept."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conveyor_qc.cli import main
from conveyor_qc.crops import letterbox
from conveyor_qc.dataset.augment import augment_dataset, augment_image, content_rect
from conveyor_qc.dataset.export import export_dataset
from conveyor_qc.dataset.manifest import read_manifest

FACTOR = 2


@pytest.fixture(scope="module")
def dataset(cookies_dir, tmp_path_factory):
    """The real cookie photos as a split dataset (one object per photo)."""
    out = tmp_path_factory.mktemp("aug") / "ds"
    export_dataset([cookies_dir / "train.manifest"], out, test_fraction=0.3, seed=3)
    return out


@pytest.fixture(scope="module")
def augmented(dataset):
    out = dataset.parent / "ds-aug"
    report = augment_dataset(dataset, out, factor=FACTOR, seed=7)
    return out, report


def test_test_side_is_untouched(dataset, augmented):
    out, report = augmented
    before = read_manifest(dataset / "test.manifest")
    after = read_manifest(out / "test.manifest", check_files=True)
    assert [e.to_dict() for e in after] == [e.to_dict() for e in before]
    for a, b in zip(after, before):
        assert a.path.read_bytes() == b.path.read_bytes()
    assert report.test_images == len(before)
    # No image made from a test image, and no test object on the train side.
    train = read_manifest(out / "train.manifest")
    assert not {e.object_id for e in train} & {e.object_id for e in after}
    test_refs = {e.source_ref for e in before}
    assert not any(e.augmented_from in test_refs for e in train)


def test_every_new_line_names_its_source(dataset, augmented):
    out, report = augmented
    original = read_manifest(dataset / "train.manifest")
    train = read_manifest(out / "train.manifest", check_files=True)
    by_ref = {e.source_ref: e for e in original}
    new = [e for e in train if e.augmented_from is not None]
    assert len(train) == len(original) * (1 + FACTOR) and len(new) == report.new_images == len(original) * FACTOR
    assert [e.source_ref for e in train[: len(original)]] == [e.source_ref for e in original]
    per_source: dict[str, int] = {}
    for e in new:
        src = by_ref[e.augmented_from]  # names an original train image
        assert e.label == src.label and e.object_id == src.object_id
        assert e.extra["conveyor-qc-augmentation"]
        assert e.path.parent == (out / src.source_ref).parent  # beside its source, in its object's folder
        per_source[e.augmented_from] = per_source.get(e.augmented_from, 0) + 1
        img, src_img = cv2.imread(str(e.path)), cv2.imread(str(out / src.source_ref))
        assert img.shape == src_img.shape == (384, 384, 3)
        assert not np.array_equal(img, src_img)
    assert set(per_source.values()) == {FACTOR} and len(per_source) == len(original)
    assert report.by_class == {c: FACTOR * sum(e.label == c for e in original) for c in ("normal", "anomaly")}


def test_same_seed_same_images_and_again_on_augmented(augmented, tmp_path):
    out, _ = augmented
    # Augmenting an augmented dataset augments only the originals, under new names.
    again = tmp_path / "again"
    augment_dataset(out, again, factor=1, seed=7)
    first = read_manifest(out / "train.manifest")
    second = read_manifest(again / "train.manifest", check_files=True)
    assert len(second) == len(first) + sum(e.augmented_from is None for e in first)
    assert len({e.source_ref for e in second}) == len(second)
    assert {e.augmented_from for e in second if e.augmented_from} == {
        e.source_ref for e in first if e.augmented_from is None
    }


def test_new_images_keep_their_source_format(augmented):
    """The photos are JPEGs, so the dataset's images are, and so are the images made from them."""
    from conveyor_qc.crops import image_header

    out, _ = augmented
    new = [e for e in read_manifest(out / "train.manifest") if e.augmented_from is not None]
    assert new
    for e in new:
        assert e.source_ref.endswith(".jpg") and e.augmented_from.endswith(".jpg")
        assert image_header(e.path) == ("jpg", 384, 384)


def test_content_rect_ignores_jpeg_ringing(cookies_dir):
    """A JPEG crop's padding is near black next to the object, not black: still padding."""
    from conveyor_qc.crops import encode_crop

    photo = cv2.imread(str(next((cookies_dir / "images").glob("normal-*.jpg"))))
    for part in (photo[:, :200], photo[:150]):  # padded left and right, top and bottom
        img = letterbox(part, 384)
        exact = content_rect(img, tolerance=0)
        jpeg = cv2.imdecode(np.frombuffer(encode_crop(img, "jpg", 95), np.uint8), cv2.IMREAD_COLOR)
        assert content_rect(img) == exact
        assert max(abs(a - b) for a, b in zip(content_rect(jpeg), exact)) <= 2
        assert max(abs(a - b) for a, b in zip(content_rect(jpeg, tolerance=0), exact)) > 4  # what it guards against


def test_deterministic(cookies_dir):
    img = letterbox(cv2.imread(str(next((cookies_dir / "images").glob("normal-*.jpg")))), 384)
    a, da = augment_image(img, np.random.default_rng(11))
    b, db = augment_image(img, np.random.default_rng(11))
    assert np.array_equal(a, b) and da == db
    c, _ = augment_image(img, np.random.default_rng(12))
    assert not np.array_equal(a, c)


def test_padding_stays_black_without_geometry(cookies_dir):
    """Photometric and sensor changes touch the object's part only."""
    img = letterbox(cv2.imread(str(next((cookies_dir / "images").glob("anomaly-*.jpg")))), 384)
    x0, y0, x1, y1 = content_rect(img)
    assert (x0, y0, x1, y1) == (48, 0, 336, 384)  # a 288x384 photo in the square

    class NoGeometry:
        def __init__(self, seed):
            self.rng = np.random.default_rng(seed)
            self.calls = 0

        def random(self):
            self.calls += 1
            # the six photometric draws come first: yes; then flip, flip, affine: no
            return 0.0 if self.calls <= 6 else 1.0

        def integers(self, low, high=None):
            return low  # no quarter turn

        def __getattr__(self, name):
            return getattr(self.rng, name)

    out, what = augment_image(img, NoGeometry(1))
    assert "rotate" not in what and "flip" not in what
    assert out[:, :x0].max() == 0 and out[:, x1:].max() == 0
    assert not np.array_equal(out[:, x0:x1], img[:, x0:x1])


def test_cli(dataset, tmp_path, capsys):
    assert main(["augment", str(dataset), "--out", str(tmp_path / "a"), "--factor", "1", "-q"]) == 0
    assert "new train images" in capsys.readouterr().out
    assert main(["augment", str(dataset), "--out", str(tmp_path / "b"), "--factor", "0"]) == 1
    assert "--factor" in capsys.readouterr().err
    assert main(["augment", str(dataset), "--out", str(dataset), "--factor", "1"]) == 1
    assert main(["augment", str(tmp_path), "--out", str(tmp_path / "c"), "--factor", "1"]) == 1
    assert "no train.manifest" in capsys.readouterr().err
