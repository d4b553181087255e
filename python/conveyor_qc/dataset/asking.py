"""The labelling page's questions, kept up to date on a thread of their own.

:class:`Asker` reads the figures of a run's objects once (:func:`~conveyor_qc.dataset.active.run_features`,
a few seconds for a few hundred objects), then, every time a label is saved, retrains the
classifier and orders what is left (:func:`~conveyor_qc.dataset.active.ask_order`), and publishes
the result as one immutable :class:`Questions`. The server's request threads only read the last
one published: a click is saved and answered at once, whether a retrain is running or not, and
the page picks the new order up when it is ready (``GET /api/order``).

Labels that arrive while a retrain runs are not lost: the thread starts again from the labels as
they are when it is done (the store's :attr:`~conveyor_qc.dataset.label_server.LabelStore.version`
says which labels an order was computed from).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor_qc.dataset.active import MIN_PER_CLASS, SPREAD, Guesses, RunFeatures, ask_order, run_features
from conveyor_qc.dataset.label_server import LabelStore
from conveyor_qc.dataset.quality import check_run

__all__ = ["Asker", "Questions"]

#: What computes an order: ``ask_order``'s signature (a test slows it down to show clicks never wait).
Compute = Callable[..., tuple[list[int], Guesses | None]]


@dataclass(frozen=True)
class Questions:
    """One published state of the page's questions."""

    state: str  # "reading" (the crops' figures), "ready", or "failed" (the page falls back to passage order)
    version: int = 0  # one more for each order published
    labels_version: int = -1  # the store's version the order was computed from
    ask: list[int] = field(default_factory=list)  # unlabelled track ids, the most useful question first
    basis: str = "unusual"  # "unusual": too few labels, the most unusual first; "model": what would teach most
    guesses: dict[int, tuple[str, float]] = field(default_factory=dict)  # track id -> (label, score)
    quality: float | None = None  # the classifier's cross-validated anomaly F1 on the labels (None: too few)
    labelled: int = 0  # labels the order was computed from
    need: dict[str, int] = field(default_factory=dict)  # labels of each class still missing before the model orders
    seconds: float = 0.0  # how long the last retrain took
    read: int = 0  # objects whose figures are read (while "reading")
    objects: int = 0  # objects with crops
    error: str | None = None
    # the data-quality checks (dataset/quality.py), once made: track id -> {flag: why}; None: not yet
    flags: dict[int, dict[str, str]] | None = None

    def to_json(self, pending: bool) -> dict:
        return {
            "state": self.state,
            "version": self.version,
            "labels_version": self.labels_version,
            "pending": pending,
            "ask": self.ask,
            "basis": self.basis,
            "guesses": {str(t): {"label": g[0], "score": round(g[1], 4)} for t, g in self.guesses.items()},
            "quality": None if self.quality is None else round(self.quality, 4),
            "labelled": self.labelled,
            "need": self.need,
            "seconds": round(self.seconds, 3),
            "read": self.read,
            "objects": self.objects,
            "error": self.error,
            "flags": None if self.flags is None else {str(t): f for t, f in self.flags.items()},
        }


class Asker:
    """Keeps the page's :class:`Questions` current for ``store``'s labels.

    ``start()`` begins reading in the background; ``questions`` is the last published state (never
    blocks); the store calls :meth:`changed` after each saved label; ``close()`` stops the thread.
    ``spread`` and ``min_per_class`` are :func:`ask_order`'s, so the page asks exactly what
    ``conveyor-qc simulate-labelling`` measures."""

    def __init__(
        self,
        store: LabelStore,
        *,
        spread: int = SPREAD,
        min_per_class: int = MIN_PER_CLASS,
        compute: Compute = ask_order,
    ):
        self.store = store
        self.spread = spread
        self.min_per_class = min_per_class
        self._compute = compute
        self._flags: dict[int, dict[str, str]] | None = None  # the quality checks', once made
        self.questions = Questions("reading", objects=sum(1 for o in store.objects.values() if o.crops))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="label-asker", daemon=True)
        store.on_change(self.changed)

    def start(self) -> Asker:
        self._thread.start()
        return self

    def changed(self) -> None:
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def state(self) -> dict:
        """The last published questions as JSON, and whether labels have changed since."""
        q = self.questions
        return q.to_json(pending=q.state == "ready" and self.store.version != q.labels_version)

    # --- the thread

    def _work(self) -> None:
        try:
            features = run_features(self.store, progress=self._reading)
        except Exception as exc:  # noqa: BLE001  an unreadable crop, say: the page still labels, in passage order
            self._fail(f"cannot read the crops' figures ({exc}); asking in the order the objects passed", exc)
            return
        checked = False
        while not self._stop.is_set():
            self._wake.clear()  # before the labels are read: a change from now on wakes the next round
            version, labels = self.store.labelled()
            try:
                self._publish(features, version, labels)
            except Exception as exc:  # noqa: BLE001  keep the last order; say why it is not updated
                self._fail(f"the model could not be retrained ({exc}); the order is not updated", exc)
            if not checked:  # after the first order: the page asks while the crops are checked
                checked = True
                self._check_quality()
                continue
            self._wake.wait()

    def _check_quality(self) -> None:
        """The data-quality flags of every object (blurred, cut, merged, duplicate, exposure),
        shown on its card; the next order published carries them."""
        try:
            report = check_run(self.store.run_dir)
        except Exception as exc:  # noqa: BLE001  the page goes on without flags; the log says why
            traceback.print_exception(exc)
            self._flags = {}
            return
        self._flags = {o.track_id: dict(o.reasons) for o in report.flagged() if o.track_id is not None}

    def _reading(self, done: int, total: int) -> None:
        self.questions = Questions("reading", read=done, objects=total)

    def _fail(self, message: str, exc: BaseException) -> None:
        traceback.print_exception(exc)
        q = self.questions
        self.questions = Questions(
            "failed",
            q.version + 1,
            q.labels_version,
            q.ask,
            q.basis,
            q.guesses,
            q.quality,
            q.labelled,
            error=message,
            flags=q.flags,
        )

    def _publish(self, features: RunFeatures, version: int, labels: dict[int, str]) -> None:
        started = time.perf_counter()
        ask, guesses = self._compute(features, labels, "active", spread=self.spread, min_per_class=self.min_per_class)
        seconds = time.perf_counter() - started
        ids = [int(t) for t in features.track_ids]
        # objects without a crop have no figures: asked last, in the order they passed
        have = set(ids)
        ask = ask + [t for t in self.store.objects if t not in have and t not in labels]
        counts = {kind: sum(1 for t, v in labels.items() if v == kind and t in have) for kind in ("normal", "anomaly")}
        q = self.questions
        self.questions = Questions(
            "ready",
            version=q.version + 1,
            labels_version=version,
            ask=ask,
            basis="unusual" if guesses is None else "model",
            guesses={} if guesses is None else dict(zip(ids, zip(guesses.labels, map(float, guesses.probability)))),
            quality=None if guesses is None else guesses.quality,
            labelled=sum(counts.values()),
            need={k: max(0, self.min_per_class - n) for k, n in counts.items()},
            seconds=seconds,
            read=len(ids),
            objects=len(ids),
            flags=self._flags,
        )
