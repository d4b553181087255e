"""Config files: defaults, round trips, and errors that name the key and the range."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from conveyor_qc import Config, ConfigError
from conveyor_qc.config import OutputParams


def test_defaults_are_valid_and_round_trip(tmp_path):
    config = Config()
    config.validate()
    path = tmp_path / "c.toml"
    config.set("track.kind", "kcf")
    config.set("track.downscale", 0.4)
    config.set("mask.object_upper", [90, 255, 255])
    config.save(path, header="made by a test")
    text = path.read_text()
    assert text.startswith("# made by a test\n")
    again = Config.load(path)
    assert again.to_dict() == config.to_dict()
    assert again.track.kind == "kcf" and again.track.downscale == pytest.approx(0.4)


def test_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[track]\ndetect_every = 5\ndirection = "right_to_left"\n')
    config = Config.load(path)
    assert config.track.detect_every == 5
    assert config.track.direction == "right_to_left"
    assert config.mask.mode == Config().mask.mode


@pytest.mark.parametrize(
    "text, words",
    [
        ("[track]\ndownscale = 1.5\n", ["track.downscale", "(0, 1]", "1.5"]),
        ("[track]\nfoo = 1\n", ["track.foo", "known in [track]", "downscale"]),
        ("[belt]\nspeed = 1\n", ["[belt]", "mask, detect, track, count, output"]),
        ('[track]\nkind = "kfc"\n', ["track.kind", "kcf", "kfc"]),
        ('[track]\ndirection = "sideways"\n', ["track.direction", "left_to_right"]),
        ("[track]\ndetect_every = 2.5\n", ["track.detect_every", "integer"]),
        ('[mask]\ncanny_low = "high"\n', ["mask.canny_low", "number"]),
        ("[mask]\ncanny_low = 300.0\n", ["mask.canny_low", "300"]),
        ("[mask]\nobject_lower = [1, 2]\n", ["mask.object_lower", "3 numbers"]),
        ("[detect]\nmin_area = -5.0\n", ["detect.min_area", "-5"]),
        ("[output]\ncrop_size = 2\n", ["output.crop_size", "[16, 4096]"]),
        ('[output]\ncrop_format = "webp"\n', ["output.crop_format", "one of jpg, png", "'webp'"]),
        ('[output]\ncrop_format = "PNG"\n', ["output.crop_format", "one of jpg, png", "'PNG'"]),
        ("[output]\ncrop_format = 1\n", ["output.crop_format", "a string"]),
        ("[output]\ncrop_quality = 40\n", ["output.crop_quality", "[50, 100]", "40"]),
        ("[output]\ncrop_quality = 95.0\n", ["output.crop_quality", "integer"]),
        ("[track]\nparallel = 1\n", ["track.parallel", "true or false"]),
        ("this is not toml", ["not valid TOML"]),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    message = str(err.value)
    assert str(path) in message
    for w in words:
        assert w in message, message


def test_crop_format_and_quality(tmp_path):
    """JPEG at quality 95 by default; PNG, or another quality, on request; both round-trip."""
    assert (Config().output.crop_format, Config().output.crop_quality) == ("jpg", 95)
    path = tmp_path / "c.toml"
    path.write_text('[output]\ncrop_format = "png"\ncrop_quality = 80\n')
    config = Config.load(path)
    assert (config.output.crop_format, config.output.crop_quality) == ("png", 80)
    config.save(path)
    assert Config.load(path).to_dict()["output"] == config.to_dict()["output"]


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        Config.load("/nonexistent/conf.toml")


def test_every_core_field_is_reachable():
    """Each field the core declares is a config key with its default."""
    d = Config().to_dict()
    from conveyor_qc import _core

    for section, cls in (("mask", _core.MaskParams), ("detect", _core.DetectParams), ("track", _core.TrackParams)):
        assert set(d[section]) == set(cls.FIELDS)


def test_every_setting_is_documented():
    """docs/settings.md names every key of every section (so the docs cannot fall behind)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    missing = []
    for section, keys in Config().to_dict().items():
        if f"## [{section}]" not in text:
            missing.append(f"[{section}]")
        missing += [f"{section}.{k}" for k in keys if f"`{k}`" not in text]
    assert not missing, f"not in docs/settings.md: {missing}"


_BOUNDED = re.compile(r"(odd )?in ([\[(])([^,]+), ([^\])]+)([\])])")


def _refuses(params: Any, section: str, field: str, value: float, partners: tuple[str, ...] = ()) -> bool:
    """Whether validate() refuses `value` for `field`. An error about another field is no refusal
    (shadow_min_ratio moved up to 1 makes the default shadow_max_ratio wrong), except about the
    field a bound is (max_area under min_area: min_area is checked first, and named)."""
    setattr(params, field, value)
    try:
        params.validate()
    except ValueError as exc:
        return any(str(exc).startswith(f"{section}.{name} must be ") for name in (field, *partners))
    return False


def _bound(params: Any, text: str) -> float:
    """A bound of a range's text: a number, or another field (its default value)."""
    try:
        return float(text)
    except ValueError:
        return float(getattr(params, text))


def _steps(value: float, integer: bool) -> tuple[float, float]:
    """The nearest values below and above `value` of the field's kind."""
    if integer:
        return value - 1, value + 1
    return math.nextafter(value, -math.inf), math.nextafter(value, math.inf)


def _core_params() -> list[tuple[str, Any]]:
    from conveyor_qc import _core

    return [
        ("mask", _core.MaskParams),
        ("detect", _core.DetectParams),
        ("track", _core.TrackParams),
        ("count", _core.CountParams),
    ]


@pytest.mark.parametrize("section, cls", _core_params(), ids=lambda x: x if isinstance(x, str) else "")
def test_core_choices_are_what_the_fields_take(section, cls):
    """Params.CHOICES (docs/settings.md's enum cells) covers every string field; each name is taken
    and read back as written, and a name not in it is refused with the list in the message."""
    choices = dict(cls.CHOICES)
    assert sorted(choices) == sorted(f for f in cls.FIELDS if isinstance(getattr(cls(), f), str))
    for field, names in choices.items():
        params = cls()
        for name in names:
            setattr(params, field, name)
            assert getattr(params, field) == name
        with pytest.raises(ValueError, match=", ".join(names)):
            setattr(params, field, "no-such-" + field)


@pytest.mark.parametrize("section, cls", _core_params(), ids=lambda x: x if isinstance(x, str) else "")
def test_core_ranges_are_what_validate_checks(section, cls):
    """Params.RANGES (the core's table, which docs/settings.md is generated from) covers every
    numeric field, and each range's ends are accepted or refused as its text says."""
    ranges = dict(cls.RANGES)
    numeric = [f for f in cls.FIELDS if type(getattr(cls(), f)) in (int, float)]
    assert sorted(ranges) == sorted(numeric)
    for field, text in ranges.items():
        match = _BOUNDED.fullmatch(text)
        assert match, text
        odd, opening, lo_text, hi_text, closing = match.groups()
        integer = isinstance(getattr(cls(), field), int)
        lo, hi = _bound(cls(), lo_text), _bound(cls(), hi_text)
        conv = int if integer else float
        below_lo, above_lo = _steps(lo, integer)
        below_hi, above_hi = _steps(hi, integer)
        partners = tuple(t for t in (lo_text, hi_text) if t in cls.FIELDS)

        def refused(value: float, field: str = field, partners: tuple[str, ...] = partners, conv: Any = conv) -> bool:
            return _refuses(cls(), section, field, conv(value), partners)

        assert refused(below_lo), (field, below_lo)
        assert refused(lo) == (opening == "("), (field, lo)
        assert not refused(above_lo if opening == "(" else lo), (field, lo)
        assert refused(hi) == (closing == ")"), (field, hi)
        assert not refused(below_hi if closing == ")" else hi), (field, hi)
        assert refused(above_hi), (field, above_hi)
        if odd:
            assert refused(lo + 1), (field, "even")
    if section == "mask":  # NaN is outside every range
        p = cls()
        p.shadow_chroma = float("nan")
        with pytest.raises(ValueError, match=r"^mask\.shadow_chroma must be in \(0, 100\], got nan$"):
            p.validate()


def test_output_bounds_are_what_validate_checks():
    """OutputParams.BOUNDS, inclusive at both ends, as docs/settings.md prints them."""
    for field, (lo, hi) in OutputParams.BOUNDS.items():
        integer = isinstance(getattr(OutputParams(), field), int)
        below_lo, _ = _steps(lo, integer)
        _, above_hi = _steps(hi, integer)
        for value, ok in ((lo, True), (hi, True), (below_lo, False), (above_hi, False)):
            params = OutputParams(**{field: type(getattr(OutputParams(), field))(value)})
            if ok:
                params.validate()
            else:
                with pytest.raises(ConfigError, match=rf"^output\.{field} must be in \[{lo}, {hi}\], got "):
                    params.validate()
