"""`conveyor-qc ARGS`, killed with SIGKILL right after the named step of closing a run's outputs.

    python tests/kill_at.py STEP ARGS...     (STEP: synced, encoded, video, tracks, objects, crops, summary)

The run's writer logs each step of close() at DEBUG on ``conveyor_qc.run.outputs`` as it is done
(docs/outputs.md); a logging handler here turns the named one into a SIGKILL, as a crash or a
power cut there would be. tests/test_outputs_crash.py uses it; nothing of it is in the package.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from conveyor_qc.cli import main


class _KillAt(logging.Handler):
    def __init__(self, step: str) -> None:
        super().__init__(logging.DEBUG)
        self.step = step

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "close_step", None) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    writer_log = logging.getLogger("conveyor_qc.run.outputs")
    writer_log.setLevel(logging.DEBUG)
    writer_log.addHandler(_KillAt(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
