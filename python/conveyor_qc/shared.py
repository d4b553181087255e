"""Where the project's shared folder is: real photos and the Lookout for Vision API description
that tests, the photo presets and ``docs/lookout.md`` use."""

from __future__ import annotations

import os
from pathlib import Path

#: Set it to use a shared folder elsewhere.
SHARED_ENV = "CONVEYOR_QC_SHARED"


def shared_dir() -> Path:
    """$CONVEYOR_QC_SHARED, default ``shared`` beside the repository of a source checkout (or
    beside the working folder, for an installed package run from the repository root)."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    repo = next((p for p in here.parents if (p / "pyproject.toml").is_file()), None)
    beside_repo = repo.parent / "shared" if repo is not None else None
    beside_cwd = Path.cwd().resolve().parent / "shared"
    if beside_repo is not None and (beside_repo.is_dir() or not beside_cwd.is_dir()):
        return beside_repo
    return beside_cwd
