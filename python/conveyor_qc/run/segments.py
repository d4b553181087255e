"""A pipeline over a live stream that may break: segments numbered as one run.

When a live source comes back after a long gap (``run --max-gap``), the objects
on the belt have moved further than the tracker can follow, and new objects
start tracks only in the entry strip once the core has seen its first frame.
So a long gap ends every open track (as the end of a video does) and starts a
fresh core, which learns the belt again and picks up the objects already on
it anywhere, as at the start of a run. ``SegmentedPipeline`` hides the seam:
track numbers and frame numbers continue from the previous segment, so the
run's tracks.txt, objects.csv and crops read as one stream (docs/streams.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from conveyor_qc import _core
from conveyor_qc.config import Config
from conveyor_qc.run.pipeline import Crop, FrameUpdate, ObjectEvent, Pipeline, Tracks

__all__ = ["SegmentedPipeline"]


class SegmentedPipeline:
    """:class:`~conveyor_qc.pipeline.Pipeline` with ``restart()``; otherwise the same calls.

    Frame numbers count the frames received: a gap has no frame numbers of its own."""

    def __init__(self, config: Config | None = None, **pipeline_args):
        self.config = config if config is not None else Config()
        self._args = pipeline_args
        self._pipeline = Pipeline(self.config, **pipeline_args)
        self._id_offset = 0  # track numbers used by earlier segments
        self._frame_offset = 0  # frames processed by earlier segments
        self._counted_before = 0  # objects counted at the line by earlier segments
        self._max_id = 0
        #: Segments so far (1 + restarts).
        self.segments = 1
        #: Ids counted at the counting line at the end of the last segment (set by finish()).
        self.finish_crossed = np.zeros(0, np.int32)

    # --- Pipeline's calls ---------------------------------------------------------------------------

    @property
    def frames_processed(self) -> int:
        return self._frame_offset + self._pipeline.frames_processed

    @property
    def counted(self) -> int:
        return self._counted_before + self._pipeline.counted

    @property
    def direction(self) -> str:
        return self._pipeline.direction

    def last_mask(self) -> np.ndarray:
        return self._pipeline.last_mask()

    def downscaled(self, frame: np.ndarray) -> np.ndarray:
        return self._pipeline.downscaled(frame)

    @property
    def downscaled_size(self) -> tuple[int, int]:
        return self._pipeline.downscaled_size

    @property
    def belt_stats(self) -> _core.BeltStats:
        return self._pipeline.belt_stats

    def process(self, frame: np.ndarray) -> FrameUpdate:
        update = self._pipeline.process(frame)
        self._note_ids(update.tracks.ids, update.tracks.count)
        self._note_ids(np.array([o.track_id for o in update.finished], np.int64), 0)
        if not (self._id_offset or self._frame_offset):
            return update
        return replace(
            update,
            tracks=self._tracks(update.tracks),
            finished=[self._object(o) for o in update.finished],
            crops=[self._crop(c) for c in update.crops],
            judge_crops=[self._crop(c) for c in update.judge_crops],
        )

    def finish(self) -> list[ObjectEvent]:
        ended = self._pipeline.finish()
        self._note_ids(np.array([o.track_id for o in ended], np.int64), 0)
        self.finish_crossed = self._pipeline.finish_crossed + self._id_offset
        return [self._object(o) for o in ended]

    # --- the seam -----------------------------------------------------------------------------------

    def restart(self) -> list[ObjectEvent]:
        """End every open track (returned, as ``finish()`` returns them; the ids counted at
        the line by that end are in ``finish_crossed``) and go on with a fresh core.

        A belt direction read from the footage (``track.direction = "auto"``) is kept, so the
        new segment confirms and counts objects from its first frames."""
        ended = self.finish()
        config = self.config
        if config.track.direction == "auto" and self._pipeline.direction != "auto":
            config = config.copy()
            config.set("track.direction", self._pipeline.direction, source="the previous stream segment")
        self._frame_offset += self._pipeline.frames_processed
        self._counted_before += self._pipeline.counted
        self._id_offset = self._max_id
        self._pipeline = Pipeline(config, **self._args)
        self.segments += 1
        return ended

    def _note_ids(self, ids: np.ndarray, count: int) -> None:
        top = max(int(ids.max()) if ids.size else 0, int(count)) + self._id_offset
        if top > self._max_id:
            self._max_id = top

    def _tracks(self, t: Tracks) -> Tracks:
        return replace(
            t,
            frame_index=t.frame_index + self._frame_offset,
            ids=t.ids + self._id_offset,
            crossed=t.crossed + self._id_offset,
            count=t.count + self._id_offset,
            counted=t.counted + self._counted_before,
        )

    def _object(self, o: ObjectEvent) -> ObjectEvent:
        if not (self._id_offset or self._frame_offset):
            return o
        f = self._frame_offset
        return replace(
            o,
            track_id=o.track_id + self._id_offset,
            first_frame=o.first_frame + f,
            last_frame=o.last_frame + f,
            best_frame=o.best_frame + f,
            frames=o.frames + f,
        )

    def _crop(self, c: Crop) -> Crop:
        return c.renumbered(self._id_offset, self._frame_offset)
