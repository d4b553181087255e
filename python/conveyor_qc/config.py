"""Settings of a run, loaded from and saved to TOML with validation.

The core's parameter structs (``mask``, ``detect``, ``track``, ``count``) are the single
source of truth for their fields, defaults and ranges: this module only maps
TOML tables onto them and lets the core validate. ``output`` is the Python
layer's own section (crops, annotated video).

An unknown key or an out-of-range value is a :class:`ConfigError` that names
the key (``track.downscale``) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from conveyor_qc import _core
from conveyor_qc.crops import CROP_FORMATS, JPEG_QUALITY
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_bytes
from conveyor_qc.run.encoder import CODECS as VIDEO_CODECS

__all__ = ["Config", "ConfigError", "OutputParams", "RejectParams"]


#: Settings that were replaced, and what to write instead (named in the error a config using them gets).
REPLACED = {
    "output.crop_every": "crops are spaced by how far an object travelled, not by frames: "
    "output.crop_spacing, a fraction of the view (0.15, the default, is 25 frames at 8 px a frame on 1280 px)",
}


class ConfigError(ConveyorQCError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class _Section:
    """A section of settings this layer owns: its numbers' bounds and its strings' choices, checked
    by validate() and printed in docs/settings.md (tools/settings_doc.py), like the core's
    Params.RANGES."""

    SECTION: ClassVar[str]
    BOUNDS: ClassVar[dict[str, tuple[float, float]]]
    CHOICES: ClassVar[dict[str, tuple[str, ...]]]

    @classmethod
    def requirement(cls, name: str) -> str:
        """What a setting must be, as the error says it: ``in [16, 4096]``, ``one of jpg, png``."""
        if name in cls.CHOICES:
            return f"one of {', '.join(cls.CHOICES[name])}"
        lo, hi = cls.BOUNDS[name]
        return f"in [{lo}, {hi}]"

    def validate(self) -> None:
        for name, (lo, hi) in self.BOUNDS.items():
            value = getattr(self, name)
            if not (lo <= value <= hi):
                raise ConfigError(f"{self.SECTION}.{name} must be {self.requirement(name)}, got {value}")
        for name, allowed in self.CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{self.SECTION}.{name} must be {self.requirement(name)}, got {value!r}")


@dataclass
class OutputParams(_Section):
    """What ``run`` writes besides tracks, objects and the summary."""

    SECTION: ClassVar[str] = "output"

    #: Side of the square crops, in pixels (the seed's Lookout for Vision size).
    crop_size: int = 384
    #: Save a crop of each object each time it has travelled this fraction of the view since its
    #: last one (along the belt: of the frame's width on a horizontal belt), while it is whole in
    #: view (its best crop is always kept). Spaced by travel, not frames, so that a 60 fps camera
    #: or a slow belt gives the same views as a 30 fps one instead of twice as many near-duplicates.
    #: 0.15 gives 5 to 6 views of an object crossing the view, more than the 5 a dataset takes
    #: (dataset --per-object) and the 3 a model judges (0.3 of the view apart). On the cookies preset
    #: it is the former 25 frames (8 px a frame at 1280 px); twice as dense cost two fifths of a
    #: run's time.
    crop_spacing: float = 0.15
    #: Grow each box by this fraction on every side before cropping (the seed grows by 10%).
    crop_margin: float = 0.1
    #: File format of the crops: "jpg" (JPEG at crop_quality: ~10x faster to encode and ~5x
    #: smaller than PNG) or "png" (lossless). Lookout for Vision takes both.
    crop_format: str = "jpg"
    #: JPEG quality of the crops (crop_format "jpg" only).
    crop_quality: int = JPEG_QUALITY
    #: Write crops/<track_id>/<frame>.jpg (or .png, per crop_format).
    crops: bool = True
    #: Write annotated.mp4.
    video: bool = True
    #: Size of annotated.mp4 against the input frames. Encoding is the costliest output: ~6 ms of
    #: CPU a 1280x720 frame, more than decoding it and more than the core's work, and it goes with
    #: the pixel count. Half size (a quarter of that cost) by default: the video is for people to
    #: watch, and its boxes, numbers and counts are drawn at its own size, legible at 640x360.
    #: 1.0 for the input's size.
    video_scale: float = 0.5
    #: The annotated video's frame rate at most: a faster source gives every k-th frame to the video
    #: (k = the source's rate over this, rounded up), so a 60 fps camera makes a 30 fps video at half
    #: the encoding and drawing cost. People watch it; 30 fps shows every object in every place it
    #: passed (an object moves a few px a frame). Sources at 30 fps or less: every frame.
    video_max_fps: float = 30.0
    #: The annotated video's pixels at most (640x360's by default): a larger camera's video is
    #: shrunk further than video_scale, to this many pixels, as its orientation is. The video is
    #: for people to watch its boxes, numbers, verdicts and counts, drawn at its own size and
    #: legible at 640x360; its encoding cost goes with its pixels, and the cameras with the most
    #: pixels leave the least time for it (at 1080p60 the half-size video cost 1.6 ms of CPU a frame
    #: against 1.1 at this size). 1280x720 at video_scale 0.5 is this size already. 0: no cap.
    video_max_pixels: int = 640 * 360
    #: Codec of annotated.mp4: "h264" (H.264 through PyAV's libx264, yuv420p, index first: plays
    #: in a browser; ultrafast, CRF 23: about the CPU of mp4v, 40 % smaller) or "mp4v" (MPEG-4
    #: Part 2 from OpenCV, which browsers do not play). "h264" without PyAV falls back to "mp4v",
    #: with a warning (run/encoder.py).
    video_codec: str = "h264"

    #: Each number's allowed values, inclusive: checked by validate() and printed in
    #: docs/settings.md (tools/settings_doc.py), like the core's Params.RANGES.
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "crop_size": (16, 4096),
        "crop_spacing": (0.01, 1.0),
        "crop_margin": (0.0, 2.0),
        "crop_quality": (50, 100),
        "video_scale": (0.05, 1.0),
        "video_max_fps": (1.0, 1000.0),
        "video_max_pixels": (0, 100_000_000),
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "crop_format": CROP_FORMATS,
        "video_codec": VIDEO_CODECS,
    }


@dataclass
class RejectParams(_Section):
    """Where the reject gate is, downstream of the view, and how early it needs to know
    (docs/line.md, "Reject signal"). With a ``distance``, every object judged an anomaly gives an
    event with the time it will cross the gate."""

    SECTION: ClassVar[str] = "reject"

    #: Distance along the belt from the frame's exit edge to the reject line (the air jet or
    #: pusher), in ``unit``. 0: no reject line, no events.
    distance: float = 0.0
    #: "px" (full-resolution pixels of the video) or "mm" (with ``mm_per_px``).
    unit: str = "px"
    #: Millimetres of belt per full-resolution pixel, along the belt (``unit = "mm"`` needs it):
    #: measure an object of known length in a frame.
    mm_per_px: float = 0.0
    #: Seconds the gate needs between receiving an event and the object's centre reaching the line
    #: (network, controller cycle, valve or pusher travel). A verdict known later than that is
    #: reported as late, never dropped.
    latency: float = 0.1

    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "distance": (0.0, 1e6),
        "mm_per_px": (0.0, 1e4),
        "latency": (0.0, 60.0),
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"unit": ("px", "mm")}

    def validate(self) -> None:
        super().validate()
        if self.distance > 0 and self.unit == "mm" and self.mm_per_px <= 0:
            raise ConfigError("reject.mm_per_px must be above 0 when reject.unit is mm, got 0")

    @property
    def enabled(self) -> bool:
        return self.distance > 0

    def distance_px(self) -> float:
        """The gate's distance past the exit edge in full-resolution pixels."""
        return self.distance / self.mm_per_px if self.unit == "mm" else self.distance


#: The sections this layer owns (the others are the core's parameter structs).
PY_SECTIONS: dict[str, type] = {"output": OutputParams, "reject": RejectParams}
SECTIONS = ("mask", "detect", "track", "count", "output", "reject")


def _default_core_params() -> _core.PipelineParams:
    return _core.PipelineParams()


@dataclass
class Config:
    """All settings of a run. ``Config()`` gives the documented defaults."""

    core: _core.PipelineParams = field(default_factory=_default_core_params)
    output: OutputParams = field(default_factory=OutputParams)
    reject: RejectParams = field(default_factory=RejectParams)

    # Convenience views of the core's sections.
    @property
    def mask(self) -> _core.MaskParams:
        return self.core.mask

    @property
    def detect(self) -> _core.DetectParams:
        return self.core.detect

    @property
    def track(self) -> _core.TrackParams:
        return self.core.track

    @property
    def count(self) -> _core.CountParams:
        return self.core.count

    # --- building -----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        """Build from nested tables ``{"track": {"kind": "kcf"}, ...}``; missing keys keep defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a table of sections, got {type(data).__name__}")
        config = cls()
        for section, table in data.items():
            if section not in SECTIONS:
                raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: [{section}] must be a table of settings")
            for key, value in table.items():
                config._assign(f"{section}.{key}", value, source)
        config.validate(source)  # every range at once, on the final values: the order of keys does not matter
        return config

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a TOML file. Errors name the file and the key."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    def set(self, dotted_key: str, value: Any, source: str = "config") -> None:
        """Set one setting by its dotted name, checking its name, its type and its range at once:
        an error is a :class:`ConfigError` naming the key and what is allowed, as loading a file
        says it (``config: track.downscale must be in (0, 1], got 5``), and leaves the setting as
        it was.

        A bound that is another setting of the section (``mask.canny_low`` in ``[0, canny_high]``,
        ``detect.min_area`` in ``[0, max_area]``, ``mask.shadow_max_ratio`` above
        ``shadow_min_ratio``) is checked against that setting as it stands: the value that makes
        the pair wrong is refused, when it is set (``canny_high`` set under the current
        ``canny_low``, or ``canny_low`` over the current ``canny_high``). To move a pair past its
        current values, set first the one that makes room (raise ``canny_high``, then
        ``canny_low``), or give both to :meth:`update`, which checks them once both are in. A
        section made wrong earlier by assigning to its fields directly (``config.track.downscale
        = 5``) does not make an unrelated ``set`` fail: :meth:`validate` (and the pipeline) name it.
        """
        section, key, old = self._assign(dotted_key, value, source)
        new = getattr(self._section(section), key)
        try:
            self._check_section(section, source)
        except ConfigError as exc:
            self._restore(section, key, old)
            try:
                self._check_section(section, source)
            except ConfigError:  # wrong before this value came: not this value's fault
                self._restore(section, key, new)
                return
            if not str(exc).startswith(f"{source}: {section}.{key} "):  # the bound is this value
                raise ConfigError(f"{exc} (refused {section}.{key} = {value!r})") from None
            raise

    def update(self, values: Mapping[str, Any], source: str = "config") -> None:
        """Set several settings (``{"mask.canny_low": 200, "mask.canny_high": 300}``), their names
        and types checked one by one and every range once all are in: for settings that bound one
        another. On an error nothing is changed."""
        before = self.to_dict()
        try:
            for dotted_key, value in values.items():
                self._assign(dotted_key, value, source)
            self.validate(source)
        except ConfigError:
            for section, table in before.items():
                for key, value in table.items():
                    self._restore(section, key, value)
            raise

    def _assign(self, dotted_key: str, value: Any, source: str) -> tuple[str, str, Any]:
        """Set one setting, its name and type checked (not its range); returns its section, its
        key and the value it had."""
        section, _, key = dotted_key.partition(".")
        if section not in SECTIONS or not key:
            raise ConfigError(f"{source}: unknown key '{dotted_key}' (sections: {', '.join(SECTIONS)})")
        target = self._section(section)
        known = self._fields(section)
        if dotted_key in REPLACED:
            raise ConfigError(f"{source}: '{dotted_key}' is no more: {REPLACED[dotted_key]}")
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{dotted_key}' (known in [{section}]: {', '.join(known)})")
        current = getattr(target, key)
        value = _check_type(f"{section}.{key}", current, value, source)
        try:
            setattr(target, key, value)
        except (ValueError, TypeError) as exc:  # enum strings are parsed (and refused) by the core
            raise ConfigError(f"{source}: {exc}") from None
        return section, key, current

    def _restore(self, section: str, key: str, value: Any) -> None:
        setattr(self._section(section), key, value)

    def _check_section(self, section: str, source: str) -> None:
        """The ranges of one section, as :meth:`validate` checks them (the core's own check for its
        sections, their own ``validate`` for ``output`` and ``reject``)."""
        try:
            self._section(section).validate()
        except ValueError as exc:  # the core's ParamError, or our ConfigError for output
            raise ConfigError(f"{source}: {exc}") from None

    def validate(self, source: str = "config") -> None:
        try:
            self.core.validate()
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        for section in PY_SECTIONS:
            try:
                self._section(section).validate()
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None

    # --- reading back -------------------------------------------------------

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            section: {key: getattr(self._section(section), key) for key in self._fields(section)}
            for section in SECTIONS
        }

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path, header: str = "") -> None:
        """Write as TOML, atomically. ``header`` becomes leading comment lines."""
        comment = "".join(f"# {line}\n" for line in header.splitlines())
        atomic_write_bytes(Path(path), (comment + self.to_toml()).encode("utf-8"))

    @classmethod
    def from_options(cls, path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
        """The settings of a command line: a TOML file (or the defaults), then each ``KEY=VALUE`` of
        ``--set`` in order (VALUE in TOML syntax; a bare word is a string), validated."""
        config = cls.load(path) if path else cls()
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw  # a bare word: a string
            config._assign(key.strip(), value, "--set")
        config.validate("--set" if overrides else str(path or "defaults"))  # once all are in: any order
        return config

    def copy(self) -> Config:
        return Config.from_dict(self.to_dict())

    # --- helpers --------------------------------------------------------------

    def _section(self, section: str) -> Any:
        return getattr(self, section) if section in PY_SECTIONS else getattr(self.core, section)

    @staticmethod
    def _fields(section: str) -> tuple[str, ...]:
        if section in PY_SECTIONS:
            return tuple(f.name for f in dataclasses.fields(PY_SECTIONS[section]))
        return tuple(getattr(_core, f"{section.capitalize()}Params").FIELDS)


def _finite(value: int | float) -> bool:
    """A number that is finite as a float (an int too large for one is not: found by fuzzing,
    an OverflowError)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_type(key: str, current: Any, value: Any, source: str) -> Any:
    """The new value must be of the kind the default is (ints stay ints...)."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if not -(2**31) <= value < 2**31:  # the core's fields are C ints (found by fuzzing: a TypeError)
            raise bad("an integer of at most 10 digits")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if not _finite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise bad("a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (undecodable bytes of a command line)
            raise bad("a string of valid text") from None
        return value
    if isinstance(current, list):
        if (
            not isinstance(value, list)
            or len(value) != len(current)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise bad(f"a list of {len(current)} numbers")
        if not all(_finite(v) for v in value):
            raise bad(f"a list of {len(current)} finite numbers")
        return [float(v) for v in value]
    return value
