"""Stopping the clean way, whichever signal asks.

systemd, Docker and Kubernetes stop a service with SIGTERM; a person at a terminal with Ctrl-C
(SIGINT). Python turns SIGINT into KeyboardInterrupt, which every long command already handles
(``run`` finishes the objects in view, waits for their verdicts and writes complete files; ``batch``
records what finished), but leaves SIGTERM to end the process on the spot, like a crash. Here SIGTERM
raises :class:`Terminated`, a KeyboardInterrupt, in the main thread: the same clean path. Only the
first one does; a second one while the command is finishing is ignored (a supervisor that will not
wait sends SIGKILL, and what was committed survives even that: docs/outputs.md).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "stop_on_sigterm", "terminated"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as Ctrl-C is."""


_received = threading.Event()


def terminated() -> bool:
    """Whether a SIGTERM asked this process to stop (since :func:`stop_on_sigterm` began)."""
    return _received.is_set()


def _on_sigterm(signum, frame) -> None:
    if _received.is_set():
        return  # already stopping: let it finish
    _received.set()
    raise Terminated()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the block runs (the previous
    handler comes back after). Elsewhere than in the main thread signals cannot be caught: nothing
    changes there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
