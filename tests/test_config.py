"""Config files: defaults, round trips, and errors that name the key and the range."""

from __future__ import annotations

import pytest

from conveyor_qc import Config, ConfigError


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
