"""More training images that look like what changes on a production line (``conveyor-qc augment``).

``augment_dataset(DATASET_DIR, OUT, factor=N)`` writes a new dataset folder:
every image and manifest line of DATASET_DIR (images hard-linked), plus N new
images per original train image, next to it as ``<frame>-augNN.jpg`` (``.png``
when its source is a PNG: an image keeps its format, as in ``dataset``), each
with a train.manifest line that keeps its object's label and object and names
its source image (``conveyor-qc-source-ref``) and what was done
(``conveyor-qc-augmentation``). The test side is copied as it is: augmenting
it would grade a model on images made from its own training data.

The transforms are written with OpenCV and NumPy (docs/dataset.md says why not
albumentations). Photometric and sensor changes are applied to the object's
part of the letterboxed square only, so the padding stays black as in every
crop the line produces (near black counts as padding: a JPEG crop has faint
ringing there, see PADDING_TOLERANCE); then the whole square is flipped,
rotated, scaled and shifted, with black filling what comes in from outside.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.anomaly.base import ImageError, read_image
from conveyor_qc.crops import JPEG_QUALITY, content_rect, encode_crop
from conveyor_qc.dataset.export import (
    REPORT_NAME,
    DatasetError,
    build_then_swap,
    image_suffix,
)
from conveyor_qc.dataset.manifest import (
    AUGMENT_KEY,
    SOURCE_KEY,
    ManifestEntry,
    ManifestError,
    read_manifest,
    write_manifest,
)
from conveyor_qc.dataset.s3 import parse_s3_url, s3_entries, upload_dataset
from conveyor_qc.io.atomic import atomic_write_text
from conveyor_qc.version import __version__

__all__ = ["AugmentReport", "augment_dataset", "augment_image", "content_rect"]


# --------------------------------------------------------------------------- one image


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(math.radians(angle)) * c, math.sin(math.radians(angle)) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return k / max(float(k.sum()), 1e-6)


def augment_image(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random variation of a BGR uint8 image (same size) and a description of it."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = content_rect(img)
    c: np.ndarray = img[y0:y1, x0:x1].astype(np.float32)
    done: list[str] = []

    # Lighting: exposure and contrast (around the mean), sometimes gamma.
    if rng.random() < 0.9:
        gain, contrast = rng.uniform(0.75, 1.25), rng.uniform(0.8, 1.2)
        mean = c.mean(axis=(0, 1), keepdims=True)
        c = (c - mean) * contrast + mean * gain
        done.append(f"exposure x{gain:.2f} contrast x{contrast:.2f}")
    if rng.random() < 0.3:
        gamma = rng.uniform(0.8, 1.25)
        c = 255.0 * (np.clip(c, 0, 255) / 255.0) ** gamma
        done.append(f"gamma {gamma:.2f}")
    # White balance: warmer or cooler light (blue against red), a slight green tint.
    if rng.random() < 0.7:
        t, g = rng.uniform(-0.1, 0.1), rng.uniform(-0.04, 0.04)
        c = c * np.array([1 - t, 1 + g, 1 + t], np.float32)
        done.append(f"white balance {t:+.2f}/{g:+.2f}")
    c = np.clip(c, 0, 255).astype(np.uint8)
    # Focus and motion: a slight Gaussian blur or a motion blur along a random direction.
    r = rng.random()
    if r < 0.2:
        sigma = rng.uniform(0.5, 1.5)
        c = cv2.GaussianBlur(c, (0, 0), sigma)
        done.append(f"blur {sigma:.1f}px")
    elif r < 0.4:
        length, angle = int(rng.integers(3, 12)), rng.uniform(0, 180)
        c = cv2.filter2D(c, -1, _motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
        done.append(f"motion blur {length}px {angle:.0f}deg")
    # Sensor noise.
    if rng.random() < 0.5:
        sigma = rng.uniform(2, 8)
        c = np.clip(c.astype(np.float32) + rng.normal(0, sigma, c.shape).astype(np.float32), 0, 255).astype(np.uint8)
        done.append(f"noise {sigma:.1f}")
    # Compression.
    if rng.random() < 0.5:
        q = int(rng.integers(35, 91))
        ok, buf = cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            if decoded is not None:
                c = decoded.reshape(c.shape)
            done.append(f"jpeg {q}")
    out = np.zeros_like(img)
    out[y0:y1, x0:x1] = c

    # Geometry: flips, quarter turns, then a small rotation, scale and shift.
    if rng.random() < 0.5:
        out = cv2.flip(out, 1)
        done.append("hflip")
    if rng.random() < 0.5:
        out = cv2.flip(out, 0)
        done.append("vflip")
    if h == w:
        k = int(rng.integers(0, 4))
        if k:
            out = np.ascontiguousarray(np.rot90(out, k))
            done.append(f"rot{90 * k}")
    if rng.random() < 0.9:
        angle, scale = rng.uniform(-15, 15), rng.uniform(0.85, 1.05)
        dx, dy = rng.uniform(-0.05, 0.05) * w, rng.uniform(-0.05, 0.05) * h
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += (dx, dy)
        out = cv2.warpAffine(
            out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
        )
        done.append(f"rotate {angle:+.1f}deg scale x{scale:.2f} shift {dx:+.0f},{dy:+.0f}px")
    return out, ", ".join(done) or "none"


# --------------------------------------------------------------------------- a dataset


@dataclass
class AugmentReport:
    out: Path
    train_images: int  # originals on the train side
    new_images: int
    test_images: int
    by_class: dict[str, int]  # new images per class
    upload: dict | None = None

    def to_dict(self) -> dict:
        return {
            "written_by": f"conveyor-qc {__version__} augment",
            "train_images": self.train_images,
            "new_images": self.new_images,
            "test_images": self.test_images,
            "new_by_class": self.by_class,
            "upload": self.upload,
        }


def _rel(entry: ManifestEntry, root: Path, manifest: Path) -> str:
    """Where the entry's image goes in the new dataset: the same relative path
    when it is inside the dataset folder, else under images/external/."""
    if entry.path is None:
        raise DatasetError(
            f"{manifest}:{entry.line}: {entry.source_ref} is not a local file; augment needs the images on disk"
        )
    p = entry.path.resolve()
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        tag = hashlib.sha1(str(p).encode()).hexdigest()[:8]
        return f"images/external/{tag}-{p.name}"


def augment_dataset(
    dataset_dir: str | Path,
    out: str | Path,
    *,
    factor: int,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    s3: str | None = None,
    s3_endpoint: str | None = None,
) -> AugmentReport:
    """Write ``out``: the dataset of ``dataset_dir`` plus ``factor`` new images per train
    image; with ``s3``, also its s3 manifests, and upload it there."""
    root = Path(dataset_dir).resolve()
    out = Path(out)
    if factor < 1:
        raise DatasetError(f"--factor must be at least 1, got {factor}")
    if out.resolve() == root:
        raise DatasetError("--out must be another folder than the dataset (the dataset is left as it is)")
    if s3 is not None:
        parse_s3_url(s3)
    source = _Dataset.read(root, dataset_dir)
    jobs = source.plan(factor)
    report = AugmentReport(
        out=out, train_images=len(source.originals()), new_images=len(jobs), test_images=len(source.test), by_class={}
    )

    def build(tmp: Path) -> None:
        source.link_into(tmp)
        make = functools.partial(_augmented_entry, source, tmp, seed)
        new_entries: list[ManifestEntry] = []
        with ThreadPoolExecutor(
            max_workers=workers or min(2, os.cpu_count() or 1), thread_name_prefix="augment"
        ) as pool:
            for n, entry in enumerate(pool.map(make, jobs), start=1):
                new_entries.append(entry)
                if progress is not None and (n % 20 == 0 or n == len(jobs)):
                    progress(n, len(jobs), "augmenting")
        sides = {"train": [e.at(rel) for e, rel in zip(source.train, source.train_rel)] + new_entries}
        if source.test_path.exists():
            sides["test"] = [e.at(rel) for e, rel in zip(source.test, source.test_rel)]
        for side, entries in sides.items():
            write_manifest(tmp / f"{side}.manifest", entries)
            if s3 is not None:
                write_manifest(tmp / f"{side}.s3.manifest", s3_entries(entries, s3))
        report.by_class = {c: sum(1 for e in new_entries if e.label == c) for c in ("normal", "anomaly")}
        atomic_write_text(tmp / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")

    build_then_swap(out, build)
    if s3 is not None:
        report.upload = upload_dataset(out, s3, endpoint_url=s3_endpoint, progress=progress).to_dict()
        atomic_write_text(out / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


#: (train index, number of the augmented copy, its path in the new dataset)
_Job = tuple[int, int, str]


@dataclass
class _Dataset:
    """The dataset being augmented: its manifests' entries and their paths relative to it."""

    root: Path
    train_path: Path
    test_path: Path
    train: list[ManifestEntry]
    test: list[ManifestEntry]
    train_rel: list[str]
    test_rel: list[str]

    @classmethod
    def read(cls, root: Path, given: str | Path) -> _Dataset:
        train_path, test_path = root / "train.manifest", root / "test.manifest"
        if not train_path.exists():
            raise DatasetError(f"{given}: no train.manifest (make the dataset with conveyor-qc dataset)")
        try:
            train = read_manifest(train_path, check_files=True)
            test = read_manifest(test_path, check_files=True) if test_path.exists() else []
        except ManifestError as exc:
            raise DatasetError(str(exc)) from None
        return cls(
            root,
            train_path,
            test_path,
            train,
            test,
            [_rel(e, root, train_path) for e in train],
            [_rel(e, root, test_path) for e in test],
        )

    def originals(self) -> list[int]:
        """The train images to augment: never an augmented one."""
        return [i for i, e in enumerate(self.train) if e.augmented_from is None]

    def plan(self, factor: int) -> list[_Job]:
        """``factor`` new images per original, named after it; numbers an earlier run used are skipped."""
        taken = set(self.train_rel) | set(self.test_rel)
        jobs: list[_Job] = []
        for i in self.originals():
            rel = Path(self.train_rel[i])
            k, made = 0, 0
            while made < factor:
                k += 1
                new = (rel.parent / f"{rel.stem}-aug{k:02d}{image_suffix(rel)}").as_posix()
                if new in taken:  # made by an earlier augment run: keep counting
                    continue
                taken.add(new)
                jobs.append((i, k, new))
                made += 1
        return jobs

    def link_into(self, tmp: Path) -> None:
        """Every image of the dataset at its place in the new one (hard links where possible)."""
        for e, rel in list(zip(self.train, self.train_rel)) + list(zip(self.test, self.test_rel)):
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                assert e.path is not None, "augment reads local datasets"
                try:
                    os.link(e.path, dst)
                except OSError:
                    dst.write_bytes(Path(e.path).read_bytes())


def _augmented_entry(source: _Dataset, tmp: Path, seed: int, job: _Job) -> ManifestEntry:
    """One augmented image written into ``tmp``, and its manifest entry (its source and what was done)."""
    i, k, rel = job
    src = source.train[i]
    try:
        img = read_image(str(src.path))  # one line of ours, no OpenCV warning before it
    except (ImageError, OSError):
        raise DatasetError(f"{source.train_path}:{src.line}: {src.path} is not a readable image") from None
    rng = np.random.default_rng([seed, i, k])
    new, what = augment_image(img, rng)
    try:
        data = encode_crop(new, "jpg" if rel.endswith(".jpg") else "png", JPEG_QUALITY)
    except ValueError:
        raise DatasetError(f"cannot encode an augmented image of {src.path}") from None
    (tmp / rel).write_bytes(data)
    return src.at(rel, **{SOURCE_KEY: source.train_rel[i], AUGMENT_KEY: what})
