"""Where the real cookie photos and the Lookout for Vision API description are read from.

Both ship with the package, each with its NOTICE (``conveyor_qc/data/``, package data):

- ``data/aws-cookies/``: 63 labelled cookie photos, their ``train.manifest`` and the defects'
  ``masks/`` (AWS Lookout for Vision samples, CC BY-SA 4.0, downscaled); read by tests, the
  ``light-on-dark`` and ``photo-dense`` synth presets and ``tools/anomaly_heatmaps.py``;
- ``data/aws-models/``: the ``lookoutvision`` API description that botocore dropped in 1.40.61
  (from botocore 1.40.60, Apache-2.0); the Lookout backend adds it to botocore's search path.

``$CONVEYOR_QC_SHARED`` replaces both with a folder of the shared layout (``data/aws-cookies/``
and ``aws-models/``, like the project's read-only ``../shared``). A folder that lacks them is an
error that names what is missing, never a silent fallback to the packaged copies.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Set it to read the photos and the API description from a shared folder instead of the package.
SHARED_ENV = "CONVEYOR_QC_SHARED"

#: The copies that ship with the package.
PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def shared_override() -> Path | None:
    """The folder ``$CONVEYOR_QC_SHARED`` names, or None (the packaged copies are used)."""
    env = os.environ.get(SHARED_ENV)
    return Path(env).expanduser() if env else None


def cookie_photos_dir() -> Path:
    """The real cookie photos: ``$CONVEYOR_QC_SHARED/data/aws-cookies``, default the packaged copy."""
    shared = shared_override()
    return shared / "data" / "aws-cookies" if shared is not None else PACKAGE_DATA / "aws-cookies"


def aws_models_dir() -> Path:
    """The folder for botocore's search path holding ``lookoutvision/2020-11-20/service-2.json.gz``:
    ``$CONVEYOR_QC_SHARED/aws-models``, default the packaged copy."""
    shared = shared_override()
    return shared / "aws-models" if shared is not None else PACKAGE_DATA / "aws-models"


def missing_hint() -> str:
    """What to do when a folder above lacks its files: for messages that have named the file."""
    shared = shared_override()
    if shared is not None:
        return (
            f"{SHARED_ENV}={shared} replaces the copy that ships with conveyor-qc; point it at a folder "
            f"holding data/aws-cookies/ and aws-models/, or unset it"
        )
    return (
        f"the copy that ships with conveyor-qc ({PACKAGE_DATA}) is missing, so the installation is "
        f"incomplete: reinstall conveyor-qc, or set {SHARED_ENV} to a folder holding data/aws-cookies/ "
        "and aws-models/"
    )
