"""The Python API, used the way another program embeds it (no CLI)."""

from __future__ import annotations

import numpy as np

from conveyor_qc import Config, ObjectEvent, Pipeline, VideoReader


def test_embed_without_cli(make_clip):
    clip = make_clip("cookies", seed=1, seconds=8)
    pipeline = Pipeline(Config())
    finished: list[ObjectEvent] = []
    ids_seen: set[int] = set()
    with VideoReader(str(clip.video)) as reader:
        for frame in reader:
            update = pipeline.process(frame)
            assert update.tracks.boxes.shape == (len(update.tracks), 4)
            ids_seen.update(tid for tid, _ in update.tracks)
            finished.extend(update.finished)
    finished.extend(pipeline.finish())
    assert finished
    finished_ids = {o.track_id for o in finished}
    assert ids_seen <= finished_ids
    # Objects never wholly in view are counted only as they leave or the stream ends.
    for obj in finished:
        if obj.track_id not in ids_seen:
            assert not obj.ever_whole and obj.end in ("stream_end", "exited")
    assert len({o.track_id for o in finished}) == len(finished)  # each object reported once
    for obj in finished:
        assert obj.frames.shape[0] == obj.boxes.shape[0] == obj.frame_count
        assert obj.first_frame == obj.frames[0] and obj.last_frame == obj.frames[-1]
        assert np.all(np.diff(obj.frames) == 1)
        if obj.ever_whole:
            assert obj.best_crop is not None and obj.best_crop.shape == (384, 384, 3)
            assert obj.shape["area"] > 0
    last = pipeline.frames_processed - 1
    assert any(o.end == "exited" for o in finished)
    for obj in finished:  # objects in view at the end are reported as such, and only those
        assert (obj.end == "stream_end") == (obj.last_frame == last), obj.end
