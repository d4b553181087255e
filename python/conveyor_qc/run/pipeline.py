"""The embedding API: give frames, get tracked boxes and finished objects.

    from conveyor_qc import Config, Pipeline

    pipeline = Pipeline(Config())
    for frame in frames:                      # BGR uint8 HxWx3 arrays
        update = pipeline.process(frame)
        for track_id, box in update.tracks:   # confirmed objects in view
            ...
        for obj in update.finished:           # objects that have left
            print(obj.track_id, obj.best_box, obj.best_crop.shape)
        update.tracks.crossed                 # ids counted at the counting line on this frame
    for obj in pipeline.finish():             # objects still in view at the end
        ...
    pipeline.finish_crossed                   # ids counted at the line at the stream end
    pipeline.counted                          # objects counted at the line in all

All detection and tracking happens in the C++ core (``_core.Pipeline``);
this class adds what needs the frame pixels in Python: the letterboxed crops.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from conveyor_qc import _core
from conveyor_qc.config import Config
from conveyor_qc.crops import cut_region, letterbox

__all__ = ["Crop", "FrameUpdate", "ObjectEvent", "Pipeline", "Tracks"]


@dataclass(frozen=True)
class Tracks:
    """The confirmed objects in view on one frame, one row per object.

    A column per field (like supervision's Detections): ``ids`` (N,) int32,
    ``boxes`` (N, 4) float32 x, y, w, h in full-resolution pixels, ``whole``
    (N,) bool, True where the object is wholly in view.
    """

    frame_index: int
    ids: np.ndarray
    boxes: np.ndarray
    whole: np.ndarray
    #: Objects counted so far (finished and in view).
    count: int
    #: (K,) int32 ids of the objects counted at the counting line on this frame
    #: (``count.line``, the exit edge by default). An id crosses at most once.
    crossed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    #: Objects counted at the counting line so far.
    counted: int = 0

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __iter__(self) -> Iterator[tuple[int, tuple[float, float, float, float]]]:
        # Python values of every row at once (the video's drawing reads ~30 a frame at 1080p):
        # the boxes' exact values as floats, as float() of each gave.
        yield from zip(self.ids.tolist(), map(tuple, np.asarray(self.boxes, np.float64).tolist()))


class Crop:
    """One object cut out of one frame (``frame_index``), letterboxed to a square.

    ``Crop(track_id, frame_index, image)`` holds a finished image. The pipeline's own crops hold
    the object's region of the frame instead, and letterbox it when ``image`` is first read, by
    the thread that reads it: for the crops ``run`` saves, its writer thread, so that the loop
    over frames only copies the region (letterboxing on that loop was a tenth of its time).
    """

    __slots__ = ("_image", "_region", "_size", "frame_index", "track_id")

    def __init__(
        self,
        track_id: int,
        frame_index: int,
        image: np.ndarray | None = None,
        *,
        region: np.ndarray | None = None,
        size: int = 384,
    ):
        if (image is None) == (region is None):
            raise ValueError("a Crop is made of either its image or the region to letterbox, not both or neither")
        self.track_id, self.frame_index = track_id, frame_index
        self._image, self._region, self._size = image, region, size

    @property
    def image(self) -> np.ndarray:
        """The letterboxed square (BGR uint8, ``size`` x ``size``)."""
        image = self._image
        if image is None:
            # Two threads asking at once each letterbox the region (which is never dropped):
            # the same pixels, and no lock on the way of the common case.
            assert self._region is not None, "a Crop holds its image or its region"
            image = self._image = letterbox(self._region, self._size)
        return image

    def renumbered(self, track_offset: int, frame_offset: int) -> Crop:
        """The same crop under another number and frame index (a later stream segment), still lazy."""
        crop = Crop.__new__(Crop)
        crop.track_id, crop.frame_index = self.track_id + track_offset, self.frame_index + frame_offset
        crop._image, crop._region, crop._size = self._image, self._region, self._size
        return crop

    def __repr__(self) -> str:
        return f"Crop(track_id={self.track_id}, frame_index={self.frame_index})"


@dataclass
class ObjectEvent:
    """An object that has left the frame (or was in view when the stream ended)."""

    track_id: int
    #: 0-based index of the first and last frame the object was tracked on.
    first_frame: int
    last_frame: int
    #: (M,) frame indices and (M, 4) boxes: the object's path.
    frames: np.ndarray
    boxes: np.ndarray
    #: Its largest box while wholly in view (largest at all if it never was), and that frame.
    best_box: tuple[float, float, float, float]
    best_frame: int
    ever_whole: bool
    #: The object cut out on its best frame, letterboxed (None if it never was in view whole).
    best_crop: np.ndarray | None
    #: Shape figures of its largest detection: area, solidity, circularity, ...
    shape: _core.Detection | None = None
    #: "exited", "lost" or "stream_end".
    end: str = "exited"
    #: Its motion along the belt when it ended (the core's, fitted over its last whole boxes):
    #: ``speed`` px per frame (0: unknown), and ``centre_along`` where its centre was on its last
    #: frame, px along the belt from the entry edge (past the exit edge's length once it has
    #: left). A reject gate downstream is timed from them (``_core.predict_crossing``).
    speed: float = 0.0
    centre_along: float = 0.0
    label: str = "unknown"
    score: float = float("nan")
    #: The crops cut for judging it (``FrameUpdate.judge_crops``: at most ``object_crops``, taken
    #: while it was wholly in view), kept only when the pipeline is asked to
    #: (``Pipeline(object_crops=N)``: an anomaly model judges the object from them).
    crops: list = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class FrameUpdate:
    tracks: Tracks
    finished: list[ObjectEvent]
    #: Crops cut on this frame (when ``keep_crops`` is on): one each time an object has travelled
    #: ``output.crop_spacing`` of the view since its last.
    crops: list[Crop]
    #: With ``object_crops``: the crops cut on this frame for judging objects, so a model can give
    #: a verdict while the object is in view. An object wholly in view is judged from its first
    #: periodic crop (``output.crop_spacing``) and then every ``judge_every``-th, at most
    #: ``object_crops`` times: a few views spread over its path.
    judge_crops: list[Crop] = field(default_factory=list)


class Pipeline:
    """Frames in, tracked objects out. See the module docstring."""

    def __init__(
        self, config: Config | None = None, keep_crops: bool = False, object_crops: int = 0, judge_every: int = 1
    ):
        """``object_crops``: judge each object from at most this many crops (``judge_crops``), its
        periodic crops number 0, ``judge_every``, 2 * ``judge_every``, ... (0: judge nothing)."""
        self.config = config if config is not None else Config()
        self.config.validate()
        if int(judge_every) < 1:
            raise ValueError(f"judge_every must be at least 1, got {judge_every}")
        self._core = _core.Pipeline(self.config.core)
        self._keep_crops = keep_crops
        self._object_crops = int(object_crops)
        self._judge_every = int(judge_every)
        self._crop_lists: dict[int, list[Crop]] = {}
        self._best_crops: dict[int, Crop] = {}  # lazy: letterboxed once, when the object finishes
        #: Per object: where its last periodic crop was cut (box centre, as a fraction of the
        #: frame's width and height) and how many it has had.
        self._periodic: dict[int, tuple[float, float, int]] = {}
        self._counted = 0
        #: Ids counted at the counting line at the stream end (set by finish()).
        self.finish_crossed = np.zeros(0, np.int32)

    @property
    def frames_processed(self) -> int:
        return self._core.frames_processed

    @property
    def direction(self) -> str:
        """The belt's direction: ``track.direction``, or with ``"auto"`` (the default) the
        direction read from the first objects' motion, once known (``"auto"`` until then;
        nothing is confirmed or counted before)."""
        return self._core.direction

    @property
    def counted(self) -> int:
        """Objects counted at the counting line so far (``count.line``)."""
        return self._counted

    @property
    def belt_stats(self) -> _core.BeltStats:
        """The figures the learnt belt model judged by (``mask.mode = "auto"``;
        ``frames_learnt`` is 0 in threshold mode or before the first frame)."""
        return self._core.belt_stats

    def process(self, frame: np.ndarray) -> FrameUpdate:
        """Process the next frame: BGR, uint8, HxWx3, C-contiguous (not copied)."""
        r = self._core.process(frame)
        index = r.frame_index
        confirmed = r.confirmed
        judge: list[Crop] = []
        crops = self._cut_crops(frame, index, r, judge)
        crossed = r.crossed
        self._counted = r.counted
        tracks = Tracks(
            frame_index=index,
            ids=r.ids[confirmed],
            boxes=r.boxes[confirmed],
            whole=r.whole[confirmed],
            count=r.count,
            crossed=crossed,
            counted=r.counted,
        )
        finished = self._finished()
        if len(self._best_crops) > len(r.keys):
            # Tracks that ended uncounted (fragments, noise) leave crops behind: forget them.
            live = set(r.keys.tolist())
            for key in [k for k in self._best_crops if k not in live]:
                del self._best_crops[key]
                self._periodic.pop(key, None)
        if len(self._crop_lists) > len(r.keys):
            live = set(r.keys.tolist())
            for key in [k for k in self._crop_lists if k not in live]:
                del self._crop_lists[key]
        return FrameUpdate(tracks=tracks, finished=finished, crops=crops, judge_crops=judge)

    def finish(self) -> list[ObjectEvent]:
        """End of stream: the objects still in view, as finished objects.

        The objects counted at the line at the stream end (those past it that
        had not counted yet) are in ``finish_crossed``."""
        r = self._core.finish()
        self.finish_crossed = r.crossed
        self._counted = r.counted
        return self._finished()

    def last_mask(self) -> np.ndarray:
        return self._core.last_mask()

    def downscaled(self, frame: np.ndarray) -> np.ndarray:
        """The frame just processed (``frame``), downscaled by track.downscale as the core does it:
        a new array, at no second resize on the frames where the core made one."""
        return self._core.downscaled(frame)

    @property
    def downscaled_size(self) -> tuple[int, int]:
        """(width, height) of :meth:`downscaled`'s frames ((0, 0) before the first frame)."""
        return self._core.downscaled_size

    # -------------------------------------------------------------------------

    def _cut_crops(self, frame: np.ndarray, index: int, r: _core.FrameTracks, judge: list[Crop]) -> list[Crop]:
        """Best crops of every track (an object can be at its largest before it is counted), and
        a crop of each counted object each time it has travelled output.crop_spacing of the view."""
        out = self.config.output
        crops: list[Crop] = []
        best, confirmed = r.best_updated, r.confirmed
        height, width = frame.shape[:2]
        rows = np.flatnonzero(r.whole & (best | confirmed))
        # Python values of the rows at once (~30 objects a frame on a crowded 1080p belt: numpy's
        # scalars one by one were a tenth of the loop's Python).
        items = zip(rows.tolist(), r.keys[rows].tolist(), r.ids[rows].tolist(), r.boxes[rows].tolist())
        for i, key, tid, box in items:
            periodic = judged = False
            if (self._keep_crops or self._object_crops) and confirmed[i]:
                number = self._next_periodic(key, box, width, height, out.crop_spacing)
                periodic = number is not None
                if number is not None and self._object_crops:
                    # every judge_every-th periodic crop, until the object has object_crops of them
                    judged = number % self._judge_every == 0 and len(self._crop_lists.get(key, ())) < self._object_crops
            if not ((periodic and self._keep_crops) or judged or best[i]):
                continue
            region = cut_region(frame, r.boxes[i], out.crop_margin)
            if region is None:
                continue
            # One lazy crop for all its uses: letterboxed once, where it is first needed.
            crop = Crop(tid, index, region=region, size=out.crop_size)
            if best[i]:
                self._best_crops[key] = crop
            if periodic and self._keep_crops:
                crops.append(crop)
            if judged:
                self._crop_lists.setdefault(key, []).append(crop)
                judge.append(crop)
        return crops

    def _next_periodic(self, key: int, box: list[float], width: int, height: int, spacing: float) -> int | None:
        """The number of the object's periodic crop due on this frame (0 for its first while whole
        in view), or None: one is due once its box centre has moved ``spacing`` of the view since
        the last, measured in fractions of the frame's width and height, so that crops are as far
        apart on a 60 fps camera as on a 30 fps one, at 720p as at 1080p, on any belt's direction."""
        x, y, w, h = box
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        last = self._periodic.get(key)
        if last is not None and math.hypot(cx - last[0], cy - last[1]) < spacing:
            return None
        number = 0 if last is None else last[2] + 1
        self._periodic[key] = (cx, cy, number)
        return number

    def _finished(self) -> list[ObjectEvent]:
        events = []
        for t in self._core.take_finished():
            tid, key = t.id, t.key
            self._periodic.pop(key, None)
            events.append(
                ObjectEvent(
                    track_id=tid,
                    first_frame=t.first_frame,
                    last_frame=t.last_frame,
                    frames=t.frames,
                    boxes=t.boxes,
                    best_box=t.best_box,
                    best_frame=t.best_frame,
                    ever_whole=t.ever_whole,
                    best_crop=_image_of(self._best_crops.pop(key, None)),
                    shape=t.shape,
                    end=t.end,
                    speed=t.speed,
                    centre_along=t.centre_along,
                    crops=[c.image for c in self._crop_lists.pop(key, [])],
                )
            )
        return events


def _image_of(crop: Crop | None) -> np.ndarray | None:
    return None if crop is None else crop.image
