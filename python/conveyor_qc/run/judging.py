"""An anomaly model judging objects beside the loop over frames, in a thread of its own.

The local model costs ~6 ms of CPU a crop and Lookout for Vision a network round trip
(tens to hundreds of milliseconds): judged on the loop that feeds the core, either held
every frame after it. A :class:`Judge` takes the crops to judge and the finished objects
as the loop hands them over, and judges them in order on one worker thread; the loop
collects what is done (:meth:`Judge.done`) without waiting, so the model's work overlaps
decoding and the core's. On 2 cores, the local model on the loop held a run to 0.21 of
decode-only speed with the annotated video; beside it, see README "Throughput".

What comes out is what judging on the loop gave, in the same order: one worker takes the
work first in, first out, so an object's crops are judged before the object is finished,
and finished objects come out in the order they finished (``objects.csv`` rows do not
move). Only *when* a verdict reaches the annotated video's labels can differ, by the few
frames the worker is behind. A model that raises hands its error to the loop, at the next
:meth:`Judge.done`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from conveyor_qc.anomaly.base import Verdict, combine_verdicts

__all__ = ["Judge", "Judged"]

#: Pieces of work (a frame's crops, or its finished objects) the worker may be behind by before
#: the loop waits for it: a bound on the frames held in memory when the model is slower than
#: the video (each crop holds a piece of its frame).
MAX_BEHIND = 64


@dataclass(frozen=True)
class Judged:
    """One piece of judged work, in the order it was given.

    ``labels``: (track id, the object's verdict so far) for objects whose crops were just
    judged, or ``objects``: finished objects with their final ``label`` and ``score`` set.
    """

    labels: tuple[tuple[int, str], ...] = ()
    objects: tuple = ()


class Judge:
    """Judges crops and finished objects with ``model`` on a worker thread, in order."""

    def __init__(self, model, max_behind: int = MAX_BEHIND):
        self.model = model
        self.max_behind = max_behind
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self._queue: deque[Future] = deque()
        # Each object's verdicts so far, by track id: touched on the worker thread only.
        self._seen: dict[int, list[Verdict]] = {}

    # --- the loop's side ----------------------------------------------------------------------

    def crops(self, crops) -> None:
        """Judge these crops (``FrameUpdate.judge_crops``); their objects' labels come out."""
        if crops:
            self._submit(self._judge_crops, list(crops))

    def objects(self, objects) -> None:
        """Give these finished objects their final verdict; they come out after every crop
        handed over before them."""
        if objects:
            self._submit(self._finish, list(objects))

    def done(self, wait: bool = False) -> Iterator[Judged]:
        """What is judged, oldest first, without waiting (``wait``: everything handed over).
        A worker more than ``max_behind`` pieces behind is waited for (a model slower than the
        video holds the loop rather than memory)."""
        queue = self._queue
        while queue and (wait or queue[0].done() or len(queue) > self.max_behind):
            yield queue.popleft().result()  # a model's error is raised here, on the loop

    @property
    def waiting(self) -> int:
        """Batches of crops and objects given to the model and not yet taken back (metrics)."""
        return len(self._queue)

    def close(self) -> None:
        """Stop the worker; work not collected yet is dropped."""
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _submit(self, fn, items) -> None:
        self._queue.append(self._pool.submit(fn, items))

    # --- the worker's side --------------------------------------------------------------------

    def _judge_crops(self, crops) -> Judged:
        for crop, verdict in zip(crops, self.model.predict([c.image for c in crops])):
            self._seen.setdefault(crop.track_id, []).append(verdict)
        ids = dict.fromkeys(c.track_id for c in crops)  # each once, in order
        # every id has at least the verdict just added, so combine_verdicts gives one
        return Judged(labels=tuple((tid, _label(combine_verdicts(self._seen[tid]))) for tid in ids))

    def _finish(self, objects) -> Judged:
        for obj in objects:
            verdicts = self._seen.pop(obj.track_id, [])
            if not verdicts and obj.ever_whole and obj.best_crop is not None:
                verdicts = self.model.predict([obj.best_crop])  # left before its first periodic crop
            verdict = combine_verdicts(verdicts)
            if verdict is not None:
                obj.label, obj.score = verdict.label, verdict.score
            obj.crops = []  # the pixels are not needed any more
        return Judged(objects=tuple(objects))


def _label(verdict: Verdict | None) -> str:
    return verdict.label if verdict is not None else "unknown"
