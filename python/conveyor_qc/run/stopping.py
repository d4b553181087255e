"""Stopping the clean way, whichever signal asks, and never in the middle of a step.

systemd, Docker and Kubernetes stop a service with SIGTERM; a person at a terminal with Ctrl-C
(SIGINT). Python turns SIGINT into KeyboardInterrupt, which every long command already handles
(``run`` finishes the objects in view, waits for their verdicts and writes complete files; ``batch``
records what finished), but leaves SIGTERM to end the process on the spot, like a crash. Here SIGTERM
raises :class:`Terminated`, a KeyboardInterrupt, in the main thread: the same clean path. Only the
first one does; a second one while the command is finishing is ignored (a supervisor that will not
wait sends SIGKILL, and what was committed survives even that: docs/outputs.md).

Python raises a signal's exception between any two bytecodes of the main thread. Inside a step that
hands state from one owner to the next (a frame: the tracker has finished objects, the writer and
the judge do not have them yet), an exception there would lose what only that step holds. Such a
step runs under :func:`whole_step`: a stop asked meanwhile is held and raised as the step ends, so
the command stops between steps, with everything handed on. Waiting for a frame is not a step: a
stalled camera is stopped at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "stop_on_sigterm", "terminated", "whole_step"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as Ctrl-C is."""


class _MainThread:
    """What the handlers and whole_step() share; both run only in the main thread."""

    in_step = 0  # nesting depth of whole_step()
    held: KeyboardInterrupt | None = None  # a stop asked during a step, raised when it ends


_received = threading.Event()
_main = _MainThread()


def terminated() -> bool:
    """Whether a SIGTERM asked this process to stop (since :func:`stop_on_sigterm` began)."""
    return _received.is_set()


def _stop(stop: KeyboardInterrupt) -> None:
    if _main.in_step:
        _main.held = _main.held or stop  # the first stop asked is the one reported
        return
    raise stop


def _on_sigterm(signum, frame) -> None:
    if _received.is_set():
        return  # already stopping: let it finish
    _received.set()
    _stop(Terminated())


def _on_sigint(signum, frame) -> None:
    _stop(KeyboardInterrupt())


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the block runs, and both it and
    Ctrl-C wait for the end of a :func:`whole_step` (the previous handlers come back after).
    Elsewhere than in the main thread signals cannot be caught: nothing changes there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _main.held = None
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C only where Python would raise KeyboardInterrupt for it: an ignored SIGINT stays ignored.
    previous_int = signal.getsignal(signal.SIGINT)
    take_int = previous_int is signal.default_int_handler
    if take_int:
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if take_int:
            signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def whole_step() -> Iterator[None]:
    """A step a stop must not cut in two: Ctrl-C or SIGTERM during it takes effect as it ends.
    Keep steps short (one frame): a stop waits for the step in progress."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _main.in_step += 1
    try:
        yield
    finally:
        _main.in_step -= 1
    if not _main.in_step and _main.held is not None:
        stop, _main.held = _main.held, None
        raise stop
