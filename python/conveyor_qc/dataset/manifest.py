"""SageMaker Ground Truth image-classification manifests, as Lookout for Vision reads them.

One JSON object per line::

    {"source-ref": "images/line3/12/000041.jpg",
     "anomaly-label": 1,
     "anomaly-label-metadata": {"job-name": "conveyor-qc", "class-name": "anomaly",
                                "human-annotated": "yes", "creation-date": "2026-11-27T10:00:00.000Z",
                                "type": "groundtruth/image-classification"}}

``anomaly-label`` is 1 for ``anomaly`` and 0 for ``normal``. The reader takes
manifests written by anyone: the label key is whichever key ``K`` has a
``K-metadata`` object whose ``type`` is ``groundtruth/image-classification``
(``anomaly-label`` in Lookout for Vision's own samples, a labelling job's name
elsewhere); a relative ``source-ref`` is resolved against the manifest's
folder, an ``s3://`` one is kept as it is. Every problem is reported as
``path:line: what``.

Lines that conveyor-qc writes carry two extra top-level keys, which other
readers ignore: ``conveyor-qc-object`` (``<video>/<track_id>``: the object
the image shows, so a split can be checked by object) and, on augmented
images, ``conveyor-qc-source-ref`` (the image it was made from) with
``conveyor-qc-augmentation`` (what was done to it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_text

__all__ = [
    "CLASSES",
    "CLASSIFICATION_TYPE",
    "LABEL_KEY",
    "ManifestEntry",
    "ManifestError",
    "format_date",
    "read_manifest",
    "write_manifest",
]

CLASSIFICATION_TYPE = "groundtruth/image-classification"
LABEL_KEY = "anomaly-label"  # what Lookout for Vision's console and samples use
CLASSES = ("normal", "anomaly")
OBJECT_KEY = "conveyor-qc-object"
SOURCE_KEY = "conveyor-qc-source-ref"
AUGMENT_KEY = "conveyor-qc-augmentation"


class ManifestError(ConveyorQCError, ValueError):
    """A manifest line cannot be used; the message starts with ``path:line:``."""


def format_date(when: datetime | float | None = None) -> str:
    """Ground Truth's ``creation-date``: UTC ISO 8601 with milliseconds and a ``Z``."""
    if when is None:
        when = datetime.now(UTC)
    elif not isinstance(when, datetime):
        when = datetime.fromtimestamp(float(when), UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class ManifestEntry:
    """One manifest line: an image and its class."""

    source_ref: str  # as written: a relative or absolute local path, or s3://bucket/key
    label: str  # "normal" | "anomaly"
    label_key: str = LABEL_KEY
    human_annotated: str = "yes"
    creation_date: str = field(default_factory=format_date)
    job_name: str | None = "conveyor-qc"
    #: every other key of the metadata object, kept as read (e.g. "confidence")
    metadata_extra: dict = field(default_factory=dict)
    #: every other top-level key, kept as read (conveyor-qc-object, conveyor-qc-source-ref, ...)
    extra: dict = field(default_factory=dict)
    #: where it was read from (None for a new entry)
    line: int | None = None
    #: the local file the source-ref names (resolved against the manifest's folder); None for s3://
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.label not in CLASSES:
            raise ValueError(f"label {self.label!r} is not normal or anomaly")

    def at(self, source_ref: str, **extra) -> ManifestEntry:
        """The same line for an image at ``source_ref`` (another dataset, or S3), with ``extra``
        top-level keys added; where it was read from is not carried over."""
        return ManifestEntry(
            source_ref=source_ref,
            label=self.label,
            label_key=self.label_key,
            human_annotated=self.human_annotated,
            creation_date=self.creation_date,
            job_name=self.job_name,
            metadata_extra=dict(self.metadata_extra),
            extra={**self.extra, **extra},
        )

    @property
    def object_id(self) -> str | None:
        """``<video>/<track_id>`` when conveyor-qc wrote the line."""
        v = self.extra.get(OBJECT_KEY)
        return str(v) if v is not None else None

    @property
    def augmented_from(self) -> str | None:
        v = self.extra.get(SOURCE_KEY)
        return str(v) if v is not None else None

    def to_dict(self) -> dict:
        meta: dict = {}
        if self.job_name is not None:
            meta["job-name"] = self.job_name
        meta.update(
            {
                "class-name": self.label,
                "human-annotated": self.human_annotated,
                "creation-date": self.creation_date,
                "type": CLASSIFICATION_TYPE,
            }
        )
        for k, v in self.metadata_extra.items():
            meta.setdefault(k, v)
        out = {
            "source-ref": self.source_ref,
            self.label_key: 1 if self.label == "anomaly" else 0,
            f"{self.label_key}-metadata": meta,
        }
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(", ", ": "))


def _label_keys(obj: dict) -> list[str]:
    keys = []
    for k, v in obj.items():
        if k.endswith("-metadata") and isinstance(v, dict) and v.get("type") == CLASSIFICATION_TYPE:
            keys.append(k[: -len("-metadata")])
    return keys


def parse_line(
    text: str, where: str, base: Path | None = None, label_key: str | None = None, line: int | None = None
) -> ManifestEntry:
    """One manifest line -> ManifestEntry. ``where`` prefixes every error (``path:line``)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: a line must be a JSON object, got {type(obj).__name__}")
    ref = obj.get("source-ref")
    if not isinstance(ref, str) or not ref.strip():
        raise ManifestError(f'{where}: no "source-ref" (the image\'s path or s3:// URL)')
    if label_key is None:
        keys = _label_keys(obj)
        if not keys:
            raise ManifestError(
                f'{where}: no image-classification label (a "KEY-metadata" object with "type": "{CLASSIFICATION_TYPE}")'
            )
        if len(keys) > 1:
            raise ManifestError(
                f"{where}: several image-classification labels ({', '.join(keys)}); choose one with label_key"
            )
        key = keys[0]
    else:
        key = label_key
        if not isinstance(obj.get(f"{key}-metadata"), dict):
            raise ManifestError(f'{where}: no "{key}-metadata" object')
    meta = dict(obj[f"{key}-metadata"])
    cls = meta.pop("class-name", None)
    label = cls.strip().lower() if isinstance(cls, str) else None
    if label not in CLASSES:
        raise ManifestError(f"{where}: class-name {cls!r} is not normal or anomaly")
    value = obj.get(key)
    if value is not None and value not in (0, 1):
        raise ManifestError(f'{where}: "{key}" is {value!r}, expected 0 (normal) or 1 (anomaly)')
    if value is not None and value != (1 if label == "anomaly" else 0):
        raise ManifestError(f'{where}: "{key}" is {value} but class-name is {label!r}')
    meta.pop("type", None)
    human = meta.pop("human-annotated", "yes")
    date = meta.pop("creation-date", None)
    job = meta.pop("job-name", None)
    extra = {k: v for k, v in obj.items() if k not in ("source-ref", key, f"{key}-metadata")}
    path = None
    if not ref.startswith("s3://"):
        p = Path(ref)
        path = p if p.is_absolute() or base is None else base / p
    return ManifestEntry(
        source_ref=ref,
        label=label,
        label_key=key,
        human_annotated=str(human),
        creation_date=str(date) if date is not None else format_date(),
        job_name=job,
        metadata_extra=meta,
        extra=extra,
        line=line,
        path=path,
    )


def read_manifest(path: str | Path, *, label_key: str | None = None, check_files: bool = False) -> list[ManifestEntry]:
    """Every line of a manifest (blank lines skipped). ``check_files``: a local
    source-ref that names no file is an error too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    base = path.resolve().parent
    entries = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        e = parse_line(raw, f"{path}:{n}", base, label_key, line=n)
        if check_files and e.path is not None and not e.path.is_file():
            raise ManifestError(f"{path}:{n}: image {e.source_ref} not found ({e.path})")
        entries.append(e)
    return entries


def write_manifest(path: str | Path, entries: list[ManifestEntry]) -> None:
    """Write ``entries`` one per line, atomically."""
    atomic_write_text(path, "".join(e.to_json() + "\n" for e in entries))
