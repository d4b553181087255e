"""The compiled module given bad arrays: a clear Python exception, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from conveyor_qc import _core


@pytest.fixture
def core():
    return _core.Pipeline(_core.PipelineParams())


def frame(h=120, w=160):
    return np.full((h, w, 3), 200, np.uint8)


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (np.zeros((120, 160, 3), np.float32), TypeError, "uint8"),
        (np.zeros((120, 160, 3), np.int8), TypeError, "uint8"),
        (np.zeros((120, 160), np.uint8), ValueError, "(height, width, 3)"),
        (np.zeros((120, 160, 4), np.uint8), ValueError, "(height, width, 3)"),
        (np.zeros((160,), np.uint8), ValueError, "(height, width, 3)"),
        (np.zeros((120, 160, 3), np.uint8)[:, ::2], ValueError, "C-contiguous"),
        (np.zeros((120, 160, 3), np.uint8).transpose(1, 0, 2), ValueError, "C-contiguous"),
        (np.zeros((0, 160, 3), np.uint8), ValueError, "empty"),
    ],
)
def test_bad_frames_raise(core, bad, error, words):
    with pytest.raises(error, match=".*" + __import__("re").escape(words)):
        core.process(bad)
    # The pipeline is still usable afterwards.
    core.process(frame())


def test_not_an_array(core):
    with pytest.raises(TypeError):
        core.process("frame.png")
    with pytest.raises(TypeError):
        core.process(None)


def test_frame_size_change_is_an_error(core):
    core.process(frame())
    with pytest.raises(ValueError, match="frame size changed"):
        core.process(frame(100, 100))


def test_param_errors_are_value_errors():
    p = _core.TrackParams()
    p.downscale = 0.0
    with pytest.raises(ValueError, match="track.downscale"):
        p.validate()
    params = _core.PipelineParams()
    params.track = p
    with pytest.raises(_core.ParamError):
        _core.Pipeline(params)
    with pytest.raises(ValueError, match="track.kind"):
        p.kind = "nope"


def test_frames_are_not_copied_or_modified(core):
    f = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    before = f.copy()
    core.process(f)
    assert np.array_equal(f, before)
    # A read-only view is accepted too (the core never writes to frames).
    g = f.copy()
    g.flags.writeable = False
    core.process(g)


def test_gil_is_released_while_the_core_works():
    """With a switch interval far longer than the test, the main thread gives
    up the GIL only where it blocks: here, only inside the core. A second
    thread that counts can therefore count only while the core works."""
    import sys
    import threading
    import time

    core = _core.Pipeline(_core.PipelineParams())
    big = np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    core.process(big)  # warm up
    counter = [0]
    go, stop = threading.Event(), threading.Event()

    def spin():
        go.wait()
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)  # hand the GIL back at once

    spinner = threading.Thread(target=spin)
    spinner.start()
    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        go.set()
        for _ in range(5):
            core.process(big)
        seen = counter[0]  # read before this thread blocks anywhere else
    finally:
        stop.set()
        sys.setswitchinterval(old)
        spinner.join()
    assert seen > 0


def test_downscale_is_the_pipelines_own():
    """tune searches detection settings on frames downscaled by _core.downscale: the same
    size (and so the same mask) as the pipeline's own downscale, and bad factors refused."""
    import numpy as np
    import pytest

    from conveyor_qc import _core
    from conveyor_qc.config import Config

    rng = np.random.default_rng(1)
    frame = np.ascontiguousarray(rng.integers(0, 256, (361, 643, 3), dtype=np.uint8))
    for r in (0.4, 0.5, 0.6):
        config = Config()
        config.set("track.downscale", r)
        config.set("mask.mode", "threshold")
        pipeline = _core.Pipeline(config.core)
        pipeline.process(frame)
        small = _core.downscale(frame, r)
        assert small.shape == (round(361 * r), round(643 * r), 3)
        assert pipeline.last_mask().shape == small.shape[:2]
        builder = _core.MaskBuilder(config.core.mask)
        assert np.array_equal(builder.build(small), pipeline.last_mask())
    full = _core.downscale(frame, 1.0)
    assert np.array_equal(full, frame) and full.ctypes.data != frame.ctypes.data
    for bad in (0.0, -1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="downscale"):
            _core.downscale(frame, bad)


def test_downscaled_is_the_frame_just_processed_at_the_cores_size():
    """The annotated video takes its frames from here: on detection frames a copy of the frame the
    core downscaled, on the others made on request, and the same pixels either way (at 1/2,
    OpenCV's INTER_AREA's)."""
    import cv2

    from conveyor_qc.config import Config

    rng = np.random.default_rng(2)
    frames = [np.ascontiguousarray(rng.integers(0, 256, (360, 642, 3), dtype=np.uint8)) for _ in range(4)]
    for r in (0.5, 0.4):
        config = Config()
        config.set("track.downscale", r)
        config.set("track.detect_every", 2)
        pipeline = _core.Pipeline(config.core)
        with pytest.raises(ValueError, match="no frame processed yet"):
            pipeline.downscaled(frames[0])
        kinds = set()
        for frame in frames:
            kinds.add(pipeline.process(frame).detection_frame)
            small = pipeline.downscaled(frame)
            again = pipeline.downscaled(frame)
            assert pipeline.downscaled_size == small.shape[1::-1] == (round(642 * r), round(360 * r))
            assert np.array_equal(small, _core.downscale(frame, r)) and np.array_equal(small, again)
            assert small.ctypes.data != again.ctypes.data  # each a new array: the encoder draws on it
            if r == 0.5:
                assert np.array_equal(small, cv2.resize(frame, (321, 180), interpolation=cv2.INTER_AREA))
        assert kinds == {True, False}  # frames the core downscaled itself, and frames it did not
        with pytest.raises(ValueError, match="the last one processed"):
            pipeline.downscaled(frames[0][:100])
