"""What a run's results were made from: the input file's identity and the model's.

``run`` records both in summary.json (``"input"``, ``"model"``) beside the config it used, so
that anyone, and ``conveyor-qc batch`` in particular, can tell whether a run folder still
matches its video, settings and model (docs/batch.md, "When a video counts as done").
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from conveyor_qc.anomaly.base import META_NAME

__all__ = ["model_identity", "source_identity"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def source_identity(source) -> dict | None:
    """``{"bytes", "mtime_ns"}`` of a video file; None for a camera index, a stream URL, or a
    path that is not a regular file (the reader names that problem itself)."""
    if isinstance(source, int):
        return None
    text = os.fspath(source)
    if text.isdigit() or _URL.match(text):
        return None
    try:
        st = os.stat(text)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def model_identity(model) -> dict | None:
    """``{"path", "sha256"}`` of a model folder (the hash of its model.json, which holds every
    number of the model or the name of the cloud model it calls); None for no model. A model
    object handed over through the API has no folder to name: both are None."""
    if model is None:
        return None
    if hasattr(model, "predict"):
        return {"path": None, "sha256": None}
    folder = Path(model).absolute()
    try:
        digest = hashlib.sha256((folder / META_NAME).read_bytes()).hexdigest()
    except OSError:
        digest = None  # load_model names the problem
    return {"path": str(folder), "sha256": digest}
