"""From labelled runs to a train/test image dataset (``conveyor-qc dataset``).

Inputs are run folders (``conveyor-qc run`` outputs plus a ``labels.csv`` of
``track_id,label``) or Ground Truth classification manifests written by
anyone. The dataset folder gets::

    images/<video>/<track_id>/<frame>.jpg   up to K crops per object, 384x384 (.png for PNG crops)
    train.manifest, test.manifest          one line per image (source-ref relative to the folder)
    train.s3.manifest, test.s3.manifest    with --s3: the same lines with s3:// paths
    report.json                            counts per side and class, objects left out, warnings
    quality.csv, quality.html              the runs' crops that would mislead a model (dataset/quality.py)
    review.manifest, review/...            with flagged="review": those crops, for a person to look at

The split is by object: every image of an object is on the same side. It is
stratified by class, so each side gets both classes whenever a class has two
objects or more. The folder is built as a hidden sibling and swapped into
place at the end, so a re-run replaces it whole. docs/dataset.md has the rest.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conveyor_qc.anomaly.base import ImageError, read_image
from conveyor_qc.crops import (
    CROP_SUFFIXES,
    JPEG_QUALITY,
    encode_crop,
    image_header,
    letterbox,
)
from conveyor_qc.dataset.manifest import (
    CLASSES,
    OBJECT_KEY,
    ManifestEntry,
    ManifestError,
    format_date,
    read_manifest,
    write_manifest,
)
from conveyor_qc.dataset.quality import (
    FLAGS,
    QualityError,
    QualityReport,
    check_run,
    quality_csv,
    quality_page,
)
from conveyor_qc.dataset.s3 import parse_s3_url, s3_entries, upload_dataset
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_text, replace_directory, sync_filesystem
from conveyor_qc.version import __version__

__all__ = [
    "FLAGGED_CHOICES",
    "IMAGE_SIZE",
    "LOOKOUT_MINIMUMS",
    "DatasetError",
    "DatasetReport",
    "SourceObject",
    "build_then_swap",
    "check_minimums",
    "collect_manifest",
    "collect_run",
    "export_dataset",
    "format_report",
    "image_suffix",
    "pick_frames",
    "place_image",
    "read_run_labels",
    "split_objects",
]

IMAGE_SIZE = 384
#: What ``dataset --flagged`` does with the crops the quality checks flag: keep them (and say how
#: many), leave them out, or leave them out and list them in review.manifest for a person.
FLAGGED_CHOICES = ("keep", "exclude", "review")
QUALITY_CSV, QUALITY_PAGE, REVIEW_MANIFEST = "quality.csv", "quality.html", "review.manifest"
#: The manifest key of a review line's flags (``blurred merged``), which other readers ignore.
FLAGS_KEY = "conveyor-qc-flags"
MIN_FRAME_GAP = 3  # chosen crops of one object are at least this many frames apart
REPORT_NAME = "report.json"
#: Lookout for Vision's minimum image counts (per class) for a project to train.
LOOKOUT_MINIMUMS = {
    "single": {"train": {"normal": 20, "anomaly": 10}},
    "separate": {"train": {"normal": 10}, "test": {"normal": 10, "anomaly": 10}},
}

#: progress(done, total, what)
Progress = Callable[[int, int, str], None]


class DatasetError(ConveyorQCError, ValueError):
    """An input or output of a dataset cannot be used; the message names it."""


@dataclass
class SourceObject:
    """One object: its images (path, frame or None) and its class."""

    video: str
    name: str  # track id for runs, the image's name for manifests
    label: str
    images: Sequence[tuple[Path, int | None]]
    creation_date: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return object_key(self.video, self.name)


def object_key(video: str, name: str) -> str:
    """An object's name across the inputs of a dataset: its video's, then its own."""
    return f"{video}/{name}"


@dataclass
class DatasetReport:
    out: Path
    single: bool
    videos: dict[str, str]  # video name -> input path
    counts: dict[str, dict[str, dict[str, int]]]  # side -> class -> {"objects", "images"}
    left_out: list[dict]
    warnings: list[str]
    upload: dict | None = None
    #: the quality checks: {"flagged": keep|exclude|review, "counts": {flag: objects},
    #: "objects": checked, "flagged_objects": n, "crops_left_out": n, "review_images": n}
    quality: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "written_by": f"conveyor-qc {__version__} dataset",
            "single_dataset": self.single,
            "videos": self.videos,
            "counts": self.counts,
            "left_out": self.left_out,
            "warnings": self.warnings,
            "upload": self.upload,
            "quality": self.quality,
        }


# --------------------------------------------------------------------------- inputs


def read_run_labels(path: str | Path) -> dict[int, str]:
    """``labels.csv`` of a run (``track_id,label``) -> {track id: normal | anomaly | unknown}.
    An empty label is ``unknown``; extra columns are ignored."""
    path = Path(path)
    out: dict[int, str] = {}
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115  `with fh` below; a missing file told apart
    except FileNotFoundError:
        raise DatasetError(
            f"{path} not found: label the run's objects first (a CSV with header "
            "track_id,label; label normal, anomaly or unknown)"
        ) from None
    with fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "track_id" not in cols or "label" not in cols:
            hint = " (that is a synthetic clip's ground truth: its ids are not track ids)" if "id" in cols else ""
            raise DatasetError(
                f"{path}:1: header must have columns track_id,label, got {','.join(cols) or 'nothing'}{hint}"
            )
        reader.fieldnames = cols
        for row in reader:
            n = reader.line_num
            raw = (row.get("track_id") or "").strip()
            try:
                tid = int(raw)
            except ValueError:
                raise DatasetError(f"{path}:{n}: track_id {raw!r} is not an integer") from None
            label = (row.get("label") or "").strip().lower() or "unknown"
            if label not in ("normal", "anomaly", "unknown"):
                raise DatasetError(f"{path}:{n}: label {label!r} is not normal, anomaly or unknown")
            if tid in out and out[tid] != label:
                raise DatasetError(f"{path}:{n}: track {tid} labelled both {out[tid]} and {label}")
            out[tid] = label
    return out


def collect_run(run_dir: str | Path, video: str) -> tuple[list[SourceObject], list[dict]]:
    """The labelled objects of a run folder with their crops, and those left out (with why)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DatasetError(f"{run_dir}: not a folder (give a run folder or a .manifest file)")
    labels_path = run_dir / "labels.csv"
    if not labels_path.exists():
        raise DatasetError(
            f"{run_dir}: no labels.csv (a CSV with header track_id,label; label normal, "
            "anomaly or unknown): label the run's objects first"
        )
    labels = read_run_labels(labels_path)
    crops_dir = run_dir / "crops"
    if not crops_dir.is_dir():
        raise DatasetError(f"{run_dir}: no crops/ folder (was the run made with --no-crops?)")
    crops: dict[int, list[tuple[Path, int]]] = {}
    for d in crops_dir.iterdir():
        if not (d.is_dir() and d.name.isdigit()):
            continue
        # <frame>.jpg, or .png (runs before output.crop_format, or with crop_format png)
        frames = [(p, int(p.stem)) for p in d.iterdir() if p.suffix in CROP_SUFFIXES and p.stem.isdigit()]
        if frames:
            crops[int(d.name)] = sorted(frames, key=lambda t: (t[1], t[0].name))
    known: set[int] = set(crops)
    if (run_dir / "objects.csv").exists():
        with open(run_dir / "objects.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if (row.get("track_id") or "").strip().isdigit():
                    known.add(int(row["track_id"]))
    date = format_date(labels_path.stat().st_mtime)
    objects, left_out = [], []
    for tid in sorted(known | set(labels)):
        label = labels.get(tid)
        if label is None or label == "unknown":
            left_out.append(
                {"video": video, "object": str(tid), "reason": "not labelled" if label is None else "labelled unknown"}
            )
        elif tid not in crops:
            left_out.append({"video": video, "object": str(tid), "reason": f"labelled {label} but has no crops"})
        else:
            objects.append(SourceObject(video, str(tid), label, crops[tid], creation_date=date))
    return objects, left_out


def collect_manifest(path: str | Path, video: str) -> list[SourceObject]:
    """Every line of a manifest as an object of its own (one image each)."""
    entries = read_manifest(path, check_files=True)
    objects: list[SourceObject] = []
    names: set[str] = set()
    for e in entries:
        if e.path is None:
            raise DatasetError(f"{path}:{e.line}: {e.source_ref} is not a local file (download it first)")
        name = _unique(_safe_name(e.path.stem), names)
        objects.append(SourceObject(video, name, e.label, [(e.path, None)], creation_date=e.creation_date))
    return objects


def _safe_name(s: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "_" for c in s).strip("._")
    return s or "x"


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name}-{n}"
    taken.add(out)
    return out


# --------------------------------------------------------------------------- choosing and splitting


def pick_frames(frames: list[int], k: int, min_gap: int = MIN_FRAME_GAP) -> list[int]:
    """Up to ``k`` of ``frames`` (sorted ints), spread evenly over the object's
    frames and at least ``min_gap`` apart: never consecutive near-duplicates.
    Returns positions into ``frames``."""
    if k <= 0 or not frames:
        return []
    kept = [0]
    for i in range(1, len(frames)):
        if frames[i] - frames[kept[-1]] >= min_gap:
            kept.append(i)
    if len(kept) <= k:
        return kept
    # k targets evenly spaced in time; each takes the nearest free kept frame.
    targets = np.linspace(frames[kept[0]], frames[kept[-1]], k)
    chosen: list[int] = []
    free = list(kept)
    for t in targets:
        j = min(free, key=lambda i: (abs(frames[i] - t), i))
        chosen.append(j)
        free.remove(j)
    return sorted(chosen)


def split_objects(
    objects: list[SourceObject], test_fraction: float, seed: int, same_as: dict[str, str] | None = None
) -> tuple[list[SourceObject], list[SourceObject]]:
    """(train, test) by object, stratified by class: a class with two objects or
    more has at least one on each side (when ``test_fraction`` > 0).

    ``same_as``: object key -> the key of the earlier object it is the same physical object as (a
    broken track, found by the quality checks): it goes to the side of that one (followed to the
    first of a chain), so no object is graded on what it was trained on. Only the first of each
    chain is drawn, so without duplicates the split is what it always was."""
    if not 0.0 <= test_fraction < 1.0:
        raise DatasetError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    by_key = {o.key: o for o in objects}

    def first(o: SourceObject) -> SourceObject:
        seen = {o.key}
        while same_as and (up := same_as.get(o.key)) in by_key and up not in seen:
            o = by_key[up]
            seen.add(o.key)
        return o

    followers = [o for o in objects if first(o) is not o]
    leaders = [o for o in objects if first(o) is o]
    rng = random.Random(seed)
    train: list[SourceObject] = []
    test: list[SourceObject] = []
    for cls in CLASSES:
        group = sorted((o for o in leaders if o.label == cls), key=lambda o: (o.video, _natural(o.name)))
        rng.shuffle(group)
        n = len(group)
        k = int(round(n * test_fraction)) if test_fraction > 0 else 0
        if test_fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        test.extend(group[:k])
        train.extend(group[k:])
    on_test = {o.key for o in test}
    for o in followers:
        (test if first(o).key in on_test else train).append(o)
    return train, test


def _natural(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def check_minimums(counts: dict, single: bool) -> list[str]:
    """Warnings for each side and class below Lookout for Vision's minimum image counts."""
    warnings = []
    rules = LOOKOUT_MINIMUMS["single" if single else "separate"]
    what = "a single dataset" if single else "separate train and test datasets"
    for side, need in rules.items():
        for cls, n_min in need.items():
            have = counts.get(side, {}).get(cls, {}).get("images", 0)
            if have < n_min:
                warnings.append(
                    f"{side} has {have} {cls} image(s); Lookout for Vision needs at least {n_min} for {what}"
                )
    return warnings


# --------------------------------------------------------------------------- writing


def image_suffix(src: Path) -> str:
    """The suffix of ``src``'s image in a dataset: an image keeps its format, so a JPEG
    (``.jpg``, ``.jpeg``) stays ``.jpg`` and is never re-encoded as PNG; a PNG stays
    ``.png``, and any other format (which Lookout for Vision does not take) becomes ``.png``."""
    return ".jpg" if src.suffix.lower() in (".jpg", ".jpeg") else ".png"


def place_image(src: Path, dst: Path, size: int = IMAGE_SIZE) -> None:
    """Put ``src`` at ``dst`` as a ``size`` x ``size`` image in the format ``dst``'s
    suffix names (``.jpg`` or ``.png``): hard-linked (or copied) when it already is
    one, otherwise decoded, letterboxed and encoded (JPEG at quality 95)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fmt = "jpg" if dst.suffix.lower() in (".jpg", ".jpeg") else "png"
    if image_header(src) == (fmt, size, size):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        return
    try:
        img = read_image(src)  # one line of ours, no OpenCV warning before it
    except (ImageError, OSError) as exc:
        raise DatasetError(
            f"{src}: not a readable image ({exc.strerror if isinstance(exc, OSError) else exc})"
        ) from None
    if img.shape[:2] != (size, size):
        img = letterbox(img, size)
    try:
        dst.write_bytes(encode_crop(img, fmt, JPEG_QUALITY))
    except ValueError:
        raise DatasetError(f"cannot encode {src} as {fmt.upper()}") from None


def build_then_swap(out: Path, build: Callable[[Path], None], marker: str = REPORT_NAME) -> None:
    """Run ``build(tmp)`` on a hidden sibling of ``out``, then put it in ``out``'s
    place (the old folder is removed). ``out`` must be missing, empty, or an
    earlier conveyor-qc dataset (it holds ``marker``): never a user's folder."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise DatasetError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not (out / marker).exists():
            raise DatasetError(
                f"{out} exists and is not a dataset written by conveyor-qc (no {marker}): choose a new or empty folder"
            )
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create {parent}: {exc.strerror}") from None
    tmp = parent / f".{out.name}.tmp-{os.getpid()}"
    old = parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.mkdir()
        build(tmp)
        # Its files reach the disk before the folder takes its name, and the old folder is
        # swapped for it in one call where Linux can (a kill leaves the old dataset or the new).
        sync_filesystem(tmp)
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _video_names(inputs: list[Path]) -> list[str]:
    taken: set[str] = set()
    names = []
    for p in inputs:
        p = p.resolve()
        base = p.parent.name if p.is_file() else p.name
        names.append(_unique(_safe_name(base), taken))
    return names


def export_dataset(
    inputs: list[str | Path],
    out: str | Path,
    *,
    test_fraction: float = 0.3,
    seed: int = 0,
    per_object: int = 5,
    s3: str | None = None,
    s3_endpoint: str | None = None,
    progress: Progress | None = None,
    flagged: str = "keep",
) -> DatasetReport:
    """Build the dataset folder ``out`` from run folders and manifests (see the module doc).

    Every run's crops are checked first (:mod:`conveyor_qc.dataset.quality`); ``flagged`` says
    what becomes of the flagged ones: ``keep`` them, ``exclude`` them (an object whose every crop
    is flagged is left out), or ``review``: exclude them and write them to review.manifest."""
    paths, out = [Path(p) for p in inputs], Path(out)
    _check_inputs(paths, out, per_object, s3)
    if flagged not in FLAGGED_CHOICES:
        raise DatasetError(f"--flagged must be one of {', '.join(FLAGGED_CHOICES)}, not {flagged!r}")
    videos = _video_names(paths)
    objects, left_out = _collect(paths, videos)
    quality, quality_warnings = _check_quality(paths, videos, progress)
    flagged_out: list[tuple[SourceObject, list[tuple[Path, int | None]]]] = []
    if flagged != "keep":
        objects, flagged_out = _leave_out_flagged(objects, quality, left_out)
    single = test_fraction == 0
    same_as = {  # broken tracks: each on the side of the object it is
        object_key(video, o.name): object_key(video, o.same_as)
        for video, r in quality.items()
        for o in r.objects.values()
        if o.same_as is not None
    }
    train, test = split_objects(objects, test_fraction, seed, same_as)
    sides = {"train": train} if single else {"train": train, "test": test}
    plan = {side: _images_of(objs, per_object) for side, objs in sides.items()}
    counts = {
        side: {
            cls: {
                "objects": sum(1 for o in objs if o.label == cls),
                "images": sum(1 for o, _, _ in plan[side] if o.label == cls),
            }
            for cls in CLASSES
        }
        for side, objs in sides.items()
    }
    warnings = [
        f"only one {cls} object: it is on the train side, the test side has none"
        for cls in CLASSES
        if not single and sum(1 for o in objects if o.label == cls) == 1
    ]
    warnings += check_minimums(counts, single)
    warnings += quality_warnings
    review = _images_of([o for o, _ in flagged_out], per_object, "review") if flagged == "review" else []
    report = DatasetReport(
        out=out,
        single=single,
        videos={v: str(p) for v, p in zip(videos, paths)},
        counts=counts,
        left_out=left_out,
        warnings=warnings,
        quality={
            "flagged": flagged,
            "objects": sum(len(r.objects) for r in quality.values()),
            "flagged_objects": sum(len(r.flagged()) for r in quality.values()),
            "counts": {f: sum(r.counts()[f] for r in quality.values()) for f in FLAGS},
            "crops_left_out": sum(len(images) for _, images in flagged_out),
            "review_images": len(review),
        },
    )
    total = sum(len(r) for r in plan.values())

    def build(tmp: Path) -> None:
        done = 0
        for side, rows in plan.items():
            entries = []
            for o, src, rel in rows:
                place_image(src, tmp / rel)
                entries.append(
                    ManifestEntry(
                        source_ref=rel,
                        label=o.label,
                        creation_date=o.creation_date or format_date(),
                        extra={OBJECT_KEY: o.key},
                    )
                )
                done += 1
                if progress is not None and (done % 20 == 0 or done == total):
                    progress(done, total, "images")
            write_manifest(tmp / f"{side}.manifest", entries)
            if s3 is not None:
                write_manifest(tmp / f"{side}.s3.manifest", s3_entries(entries, s3))
        _write_quality(tmp, quality, flagged, review)
        atomic_write_text(tmp / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")

    build_then_swap(out, build)
    if s3 is not None:
        res = upload_dataset(out, s3, endpoint_url=s3_endpoint, progress=progress)
        report.upload = res.to_dict()
        atomic_write_text(out / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _check_inputs(paths: list[Path], out: Path, per_object: int, s3: str | None) -> None:
    if per_object < 1:
        raise DatasetError(f"--per-object must be at least 1, got {per_object}")
    if not paths:
        raise DatasetError("give at least one run folder or manifest")
    for p in paths:
        if not p.exists():
            raise DatasetError(f"{p} not found")
        if p.resolve() == out.resolve():
            raise DatasetError(f"--out {out} is also an input")
    if s3 is not None:
        parse_s3_url(s3)  # a bad URL fails before any work


def _collect(paths: list[Path], videos: list[str]) -> tuple[list[SourceObject], list[dict]]:
    """The labelled objects of every input, and the objects of runs left out (with why)."""
    objects: list[SourceObject] = []
    left_out: list[dict] = []
    for p, video in zip(paths, videos):
        try:
            if p.is_file():
                objects.extend(collect_manifest(p, video))
            else:
                objs, lo = collect_run(p, video)
                objects.extend(objs)
                left_out.extend(lo)
        except ManifestError as exc:
            raise DatasetError(str(exc)) from None
    if not objects:
        raise DatasetError("no labelled object with images in " + ", ".join(str(p) for p in paths))
    return objects, left_out


def _images_of(
    objs: list[SourceObject], per_object: int, folder: str = "images"
) -> list[tuple[SourceObject, Path, str]]:
    """(object, source image, path in the dataset) of one side: at most ``per_object`` crops of
    each object, spread over its frames; a photo from a manifest, once, named after it."""
    rows: list[tuple[SourceObject, Path, str]] = []
    for o in sorted(objs, key=lambda o: (o.video, _natural(o.name))):
        if o.images[0][1] is None:
            src = o.images[0][0]
            chosen = [(src, f"{folder}/{o.video}/{o.name}/{o.name}{image_suffix(src)}")]
        else:
            frames = [f for _, f in o.images if f is not None]
            chosen = [
                (src, f"{folder}/{o.video}/{o.name}/{f:06d}{image_suffix(src)}")
                for src, f in (o.images[i] for i in pick_frames(frames, per_object))
            ]
        rows.extend((o, src, rel) for src, rel in chosen)
    return rows


# --------------------------------------------------------------------------- crops that mislead a model


def _check_quality(
    paths: list[Path], videos: list[str], progress: Progress | None
) -> tuple[dict[str, QualityReport], list[str]]:
    """The quality report of every run input (manifests are photos chosen by someone: not
    checked), by video name, and a warning for each run that could not be checked."""
    reports: dict[str, QualityReport] = {}
    warnings: list[str] = []
    for path, video in zip(paths, videos):
        if path.is_file():
            continue
        step = None
        if progress is not None:
            step = functools.partial(_progress_of, progress, f"checking {video}")
        try:
            reports[video] = check_run(path, progress=step)
        except QualityError as exc:
            warnings.append(f"{path}: crops not checked for quality ({exc})")
    return reports, warnings


def _progress_of(progress: Progress, what: str, done: int, total: int) -> None:
    progress(done, total, what)


def _leave_out_flagged(
    objects: list[SourceObject], quality: dict[str, QualityReport], left_out: list[dict]
) -> tuple[list[SourceObject], list[tuple[SourceObject, list[tuple[Path, int | None]]]]]:
    """The objects with their flagged crops taken out (an object left with none goes to
    ``left_out``, with its flags), and each object's flagged crops (for review.manifest)."""
    kept: list[SourceObject] = []
    flagged_out: list[tuple[SourceObject, list[tuple[Path, int | None]]]] = []
    for o in objects:
        report = quality.get(o.video)
        checked = report.objects.get(o.name) if report is not None else None
        if checked is None or not checked.flags:
            kept.append(o)
            continue
        bad = {c.path.name: checked.crop_flags(c) for c in checked.crops if checked.crop_flags(c)}
        good = [(p, f) for p, f in o.images if p.name not in bad]
        out = [(p, f) for p, f in o.images if p.name in bad]
        if out:
            flagged_out.append((SourceObject(o.video, o.name, o.label, out, o.creation_date, o.extra), out))
        if good:
            kept.append(SourceObject(o.video, o.name, o.label, good, o.creation_date, o.extra))
        else:
            flags = sorted({f for why in bad.values() for f in why}, key=FLAGS.index)
            left_out.append({"video": o.video, "object": o.name, "reason": "flagged " + ", ".join(flags)})
    if not kept:
        raise DatasetError("every labelled object's crops are flagged (quality.csv says why); nothing is left")
    return kept, flagged_out


def _write_quality(
    folder: Path, quality: dict[str, QualityReport], flagged: str, review: list[tuple[SourceObject, Path, str]]
) -> None:
    """quality.csv and quality.html, and with ``review`` the review images and review.manifest."""
    reports = sorted(quality.items())
    atomic_write_text(folder / QUALITY_CSV, quality_csv(reports, relative_to=lambda p: p.name))
    atomic_write_text(folder / QUALITY_PAGE, quality_page(reports))
    if flagged != "review":
        return
    entries = []
    for o, src, rel in review:
        place_image(src, folder / rel)
        checked = quality[o.video].objects[o.name]
        why = next((checked.crop_flags(c) for c in checked.crops if c.path.name == src.name), {})
        extra = {OBJECT_KEY: o.key, FLAGS_KEY: " ".join(f for f in FLAGS if f in why)}
        entries.append(
            ManifestEntry(source_ref=rel, label=o.label, creation_date=o.creation_date or format_date(), extra=extra)
        )
    write_manifest(folder / REVIEW_MANIFEST, entries)


def format_quality(report: DatasetReport) -> str:
    """The one line on the crops the quality checks flagged, and what became of them."""
    q = report.quality
    if not q:
        return ""
    counts = ", ".join(f"{q['counts'][f]} {f}" for f in FLAGS)
    line = f"quality: flagged {q['flagged_objects']} of {q['objects']} objects ({counts})"
    if q["flagged"] == "keep":
        return line + f": kept (--flagged exclude leaves them out); see {QUALITY_PAGE}"
    done = f"{q['crops_left_out']} crop(s) left out"
    if q["flagged"] == "review":
        done += f", {q['review_images']} in {REVIEW_MANIFEST}"
    return f"{line}: {done}; see {QUALITY_PAGE}"


def format_report(report: DatasetReport) -> str:
    """The counts table, left-out objects and the upload, for people."""
    lines = []
    n_obj = sum(c["objects"] for side in report.counts.values() for c in side.values())
    n_img = sum(c["images"] for side in report.counts.values() for c in side.values())
    lines.append(
        f"{len(report.videos)} input(s), {n_obj} objects, {n_img} images -> {report.out}"
        + ("  (single dataset: --test-fraction 0)" if report.single else "")
    )
    lines.append(f"{'':8}{'objects':>18}{'images':>18}")
    lines.append(f"{'':8}{'normal':>9}{'anomaly':>9}{'normal':>9}{'anomaly':>9}")
    for side, c in report.counts.items():
        lines.append(
            f"{side:8}{c['normal']['objects']:>9}{c['anomaly']['objects']:>9}"
            f"{c['normal']['images']:>9}{c['anomaly']['images']:>9}"
        )
    if report.left_out:
        reasons: dict[str, int] = {}
        for r in report.left_out:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        lines.append(
            f"left out {len(report.left_out)} object(s): "
            + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
            + " (listed in report.json)"
        )
    if report.quality:
        lines.append(format_quality(report))
    if report.upload:
        u = report.upload
        lines.append(
            f"uploaded {u['uploaded']} file(s) ({u['bytes']} bytes), {u['skipped']} already there -> {u['url']}"
        )
    return "\n".join(lines)
