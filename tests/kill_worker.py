"""Dask worker preload for tests/test_batch.py: the worker that runs the video named NAME kills its
own process after KILL_FRAME frames, as a crash or the OOM killer would (no clean-up, partial files
left behind), unless the file MARKER exists; it creates it just before, so the video's next
attempt runs through.

The test names this file in DASK_DISTRIBUTED__WORKER__PRELOAD and passes "NAME:MARKER" in
CQC_TEST_KILL_WORKER; every worker of the local cluster imports it at start. Nothing of it is in
the package: it wraps conveyor_qc.run.batch.run_video, the function each task calls.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from conveyor_qc.run import batch

KILL_FRAME = 30
SPEC_ENV = "CQC_TEST_KILL_WORKER"

_target, _, _marker = os.environ.get(SPEC_ENV, "").partition(":")
# Dask may load a preload more than once into the same module (importlib.reload): wrap the original.
_run_video = getattr(batch.run_video, "__wrapped__", batch.run_video)


@functools.wraps(_run_video)
def _run_video_then_die(video, out_dir, config, **kwargs):
    if Path(out_dir).name != _target or not _marker or os.path.exists(_marker):
        return _run_video(video, out_dir, config, **kwargs)

    def progress(done: int, *_) -> None:
        if done >= KILL_FRAME:
            Path(_marker).touch()
            os._exit(70)

    return _run_video(video, out_dir, config, progress=progress, **kwargs)


if _target:
    batch.run_video = _run_video_then_die
