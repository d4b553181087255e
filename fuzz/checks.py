"""What the fuzzed entry points may do with any input, shared by the hypothesis tests
(tests/test_fuzz.py) and the atheris targets beside this file (docs/faults.md, "Fuzzing").

- The bindings (``conveyor_qc._core``): parameter fields set to any value, frames of any dtype,
  shape, strides and contiguity, then processed. Allowed: a TypeError/ValueError (ParamError,
  InputError) for what is not allowed, and results that keep their documented form for what is.
  Anything else (another exception, a crash of the process) is a finding.
- The config loader (``conveyor_qc.config``): any TOML text or bytes, any table, any key/value
  set one at a time, the ``--set KEY=VALUE`` parser. Allowed: a ConfigError, or a config that
  validates and survives a round trip through TOML unchanged.

Findings are kept as regression tests in tests/test_fuzz.py (docs/faults.md lists them).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import tomllib

import numpy as np

from conveyor_qc import _core
from conveyor_qc.config import SECTIONS, Config, ConfigError

CORE_SECTIONS = ("mask", "detect", "track", "count")


def too_small(shape: tuple, params: _core.PipelineParams) -> bool:
    """A frame that track.downscale makes empty: refused by name (an InputError) since commit
    c49021c; before, OpenCV's resize assertion escaped as a RuntimeError."""
    r = params.track.downscale
    return r < 1.0 and (round(shape[1] * r) < 1 or round(shape[0] * r) < 1)  # round half to even, as cvRound


# --- the bindings -------------------------------------------------------------------------


#: Words the settings' string fields take, in and out of their spellings (and a few that no field takes).
ENUM_WORDS = (
    "kcf",
    "KCF",
    "none",
    "auto",
    "lab",
    "hsv",
    "gray",
    "left-to-right",
    "top_to_bottom",
    "threshold",
    "csrt",
    "mil",
    "mosse",
    "medianflow",
    "",
    "\x00",
    "é",
)


def field_names(section: str) -> tuple[str, ...]:
    return tuple(getattr(_core, f"{section.capitalize()}Params").FIELDS)


def is_valid_frame(a) -> bool:
    return (
        isinstance(a, np.ndarray)
        and a.dtype == np.uint8
        and a.ndim == 3
        and a.shape[2] == 3
        and a.flags.c_contiguous
        and a.shape[0] >= 1
        and a.shape[1] >= 1
    )


def check_result(r: _core.FrameTracks, shape: tuple) -> None:
    n = r.ids.shape[0]
    assert r.ids.dtype == np.int32 and r.keys.shape == (n,)
    assert r.boxes.shape == (n, 4) and r.boxes.dtype == np.float32
    for key in ("confirmed", "whole", "best_updated", "detected"):
        assert getattr(r, key).shape == (n,) and getattr(r, key).dtype == np.bool_, key
    assert np.isfinite(r.boxes).all(), r.boxes
    assert r.count >= 0 and r.counted >= 0
    confirmed_ids = r.ids[r.confirmed]
    assert (confirmed_ids > 0).all() and len(set(confirmed_ids.tolist())) == len(confirmed_ids)
    d = r.detections
    assert d.boxes.shape[1:] == (4,) and np.isfinite(d.boxes).all()


def check_finished(done: list) -> None:
    for t in done:
        assert t.id > 0, t
        assert t.first_frame <= t.last_frame, t
        assert t.frames.shape[0] == t.boxes.shape[0] >= 1
        assert (np.diff(t.frames) > 0).all(), t.frames
        assert np.isfinite(t.boxes).all()
        assert t.end in ("exited", "lost", "stream_end")


def check_pipeline(settings: list[tuple[str, str, object]], frames: list) -> str:
    """Set each (section, field, value) on fresh parameters, build a Pipeline and feed it the
    frames. Returns how it ended ("refused", "processed"); raises AssertionError for a wrong
    outcome (any other exception is a finding too)."""
    params = _core.PipelineParams()
    for section, name, value in settings:
        target = getattr(params, section, None) if section in CORE_SECTIONS else None
        try:
            if target is None:
                setattr(params, section, value)
            else:
                setattr(target, name, value)
        except (TypeError, ValueError, AttributeError):
            pass  # refused as a Python exception: right
    try:
        params.validate()
        valid = True
    except ValueError:
        valid = False
    try:
        pipeline = _core.Pipeline(params)
    except ValueError:
        assert not valid, "Pipeline refused parameters that validate() accepts"
        return "refused"
    assert valid, "Pipeline took parameters that validate() refuses"
    size = None
    for frame in frames:
        shape = getattr(frame, "shape", ())
        try:
            r = pipeline.process(frame)
        except (TypeError, ValueError) as exc:
            if is_valid_frame(frame) and size in (None, frame.shape[:2]):
                assert too_small(shape, params) and "too small" in str(exc), (
                    f"a valid frame {frame.shape} was refused: {exc}"
                )
            continue
        assert is_valid_frame(frame), f"took a frame it should refuse: {frame.dtype} {shape} {frame.strides}"
        assert not too_small(shape, params), f"took a frame {shape} that downscale {params.track.downscale} empties"
        assert size in (None, frame.shape[:2]), "took a frame of another size"
        size = frame.shape[:2]
        check_result(r, shape)
        check_finished(pipeline.take_finished())
    end = pipeline.finish()
    assert end.counted >= 0
    check_finished(pipeline.take_finished())
    return "processed"


def _params(params, settings: list[tuple[str, object]]):
    """``params`` with each (name, value) the struct accepts set; the ones it refuses skipped."""
    for name, value in settings:
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            setattr(params, name, value)
    return params


def check_detector(settings: list[tuple[str, object]], mask, roi, scale) -> None:
    params = _params(_core.DetectParams(), settings)
    try:
        detector = _core.Detector(params)
    except ValueError:
        return
    try:
        d = detector.detect(mask, roi, scale)
    except (TypeError, ValueError):
        return
    assert d.boxes.shape[1:] == (4,) and np.isfinite(d.boxes).all()
    assert (d.area >= 0).all()


def check_mask_builder(settings: list[tuple[str, object]], frames: list) -> None:
    params = _params(_core.MaskParams(), settings)
    try:
        builder = _core.MaskBuilder(params)
    except ValueError:
        return
    for frame in frames:  # its belt model is of colours, not pixels: any size, in any order
        try:
            mask = builder.build(frame)
        except (TypeError, ValueError):
            continue
        assert is_valid_frame(frame)
        assert mask.shape == frame.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 255}


# --- the config loader ----------------------------------------------------------------------


def _round_trip(config: Config) -> None:
    config.validate()
    text = config.to_toml()
    again = Config.from_dict(tomllib.loads(text), source="round trip")
    assert again.to_dict() == config.to_dict(), (text, again.to_dict())


def check_config_text(data: bytes | str) -> str:
    """Config.load on a file holding ``data``: a ConfigError, or a config that round-trips."""
    fd, path = tempfile.mkstemp(prefix="cqc-fuzz-", suffix=".toml")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        try:
            config = Config.load(path)
        except ConfigError:
            return "refused"
    finally:
        os.unlink(path)  # (an atheris run ends with _exit: no atexit clean-up)
    _round_trip(config)
    return "loaded"


def check_config_dict(data) -> str:
    try:
        config = Config.from_dict(data)
    except ConfigError:
        return "refused"
    _round_trip(config)
    return "loaded"


def check_config_set(items: list[tuple[str, object]]) -> str:
    config = Config()
    for key, value in items:
        try:
            config.set(key, value)
        except ConfigError:
            continue
    try:
        config.validate()
    except ConfigError:
        return "refused"
    _round_trip(config)
    return "set"


def check_cli_set(items: list[str]) -> str:
    """The ``--set KEY=VALUE`` options of the command line."""
    try:
        config = Config.from_options(None, items)
    except ConfigError:
        return "refused"
    _round_trip(config)
    return "set"


def all_keys() -> list[str]:
    return [f"{s}.{f}" for s in SECTIONS for f in Config._fields(s)]


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
