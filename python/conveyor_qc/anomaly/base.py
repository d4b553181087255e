"""What every anomaly model is: the interface, its verdicts, and the model folder's format.

A model folder holds ``model.json``::

    {"format": "conveyor-qc-model", "version": 2, "backend": "local" | "lookout",
     "conveyor_qc_version": "<release>", ...backend's own keys}

A missing folder or file, damaged JSON, another format or another format version is a
:class:`ModelError` naming the problem. An object seen on several crops gets one verdict:
:func:`combine_verdicts`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_text
from conveyor_qc.version import __version__

MODEL_FORMAT = "conveyor-qc-model"
#: The model.json layout this release writes. Bump when it changes.
MODEL_VERSION = 2
#: The layouts this release reads: 1 (the local model's figures alone, before 0.9) and 2 (with
#: the local model's bank of normal patches, ``bank.npz``).
READABLE_VERSIONS = (1, 2)
META_NAME = "model.json"


class ModelError(ConveyorQCError, ValueError):
    """A model folder cannot be used (missing, damaged, other version); the message says why."""


@dataclass(frozen=True)
class Verdict:
    label: str  # "normal" | "anomaly"
    score: float  # [0, 1], higher = more anomalous


class AnomalyModel:
    """What every backend offers."""

    def predict(self, images: list[np.ndarray]) -> list[Verdict]:  # BGR uint8 images
        raise NotImplementedError

    #: Whether :meth:`explain` gives heat maps (where), not only verdicts (whether).
    has_heat_maps = False

    def explain(self, images: list[np.ndarray]) -> list[tuple[Verdict, np.ndarray | None]]:
        """Each image's verdict and heat map: float32, the image's size, 1.0 at the model's
        threshold of unusual (None: this backend or model says only whether, not where)."""
        return [(v, None) for v in self.predict(images)]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ImageError(ConveyorQCError, ValueError):
    """An image file cannot be used: a folder, or not an image OpenCV can read; the message says which."""


def read_image(path: str | Path) -> np.ndarray:
    """An image file as OpenCV reads it (BGR uint8). A missing file is a ``FileNotFoundError``
    ("no such image"), an unreadable one a ``PermissionError``; a folder, or a file that is no
    image OpenCV can read, is an :class:`ImageError`. Each says so in one line: OpenCV's own
    warnings about the file are kept off stderr."""
    from conveyor_qc.run.video import quiet_opencv_log  # (here: the reader's, a light module)

    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(2, "no such image", str(path))
    if file.is_dir():
        raise ImageError(f"{path}: a folder, not an image")
    with open(file, "rb"):  # refused (permissions): a PermissionError naming the file, not OpenCV's warning
        pass
    with quiet_opencv_log():
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error:  # a decoder's assertion on a damaged file
            image = None
    if image is None:
        raise ImageError(f"{path}: not an image that can be read (another kind of file, or damaged)")
    return image


def verdict_of(score: float) -> Verdict:
    """The verdict of a score in [0, 1]: an anomaly from 0.5."""
    score = float(min(max(score, 0.0), 1.0))
    return Verdict("anomaly" if score >= 0.5 else "normal", score)


# --- the model folder ----------------------------------------------------------------------------


def read_meta(model_dir: str | Path) -> dict:
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelError(f"{d}: no such model folder")
    f = d / META_NAME
    if not f.is_file():
        raise ModelError(f"{d}: not a model folder (no {META_NAME})")
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{f}: damaged model file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"{f}: not a conveyor-qc model (format is not {MODEL_FORMAT!r})")
    if meta.get("version") not in READABLE_VERSIONS:
        newer = isinstance(meta.get("version"), int) and meta["version"] > MODEL_VERSION
        raise ModelError(
            f"{f}: model format version {meta.get('version')!r} made by conveyor-qc "
            f"{meta.get('conveyor_qc_version', '?')}, this is conveyor-qc {__version__} "
            f"(reads versions {', '.join(map(str, READABLE_VERSIONS))}): "
            + ("upgrade conveyor-qc to use it" if newer else "train the model again with this release")
        )
    return meta


def write_meta(model_dir: str | Path, meta: dict) -> Path:
    """Write ``model_dir/model.json`` atomically (the folder is made if missing)."""
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / META_NAME
    atomic_write_text(path, json.dumps(meta, indent=1, default=str) + "\n")
    return path


def combine_verdicts(verdicts: list[Verdict]) -> Verdict | None:
    """One verdict for an object from the verdicts of its crops (each taken while it was wholly
    in view): the mean score. The camera looks down on the belt and the object does not turn
    over, so every crop shows the same crack or stack; what differs between crops is noise (a
    neighbour cut into the crop, blur, the light), which the mean averages out and the maximum
    would pick up. Measured on the synthetic cookies (seed 1 -> seed 2): the mean 0 false
    alarms, the maximum or the mean of the top third 2, the same 18 of 18 anomalies found.
    See docs/anomaly.md."""
    if not verdicts:
        return None
    return verdict_of(sum(v.score for v in verdicts) / len(verdicts))
