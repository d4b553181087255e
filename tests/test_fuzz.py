"""Fuzzing the bindings and the config loader (docs/faults.md, "Fuzzing").

- hypothesis: structured random inputs (arrays of any dtype, shape, strides and contiguity;
  parameter fields and config keys set to any value; TOML text), for a time budget of
  CQC_FUZZ_SECONDS per target (default 3 s here; `make fuzz` gives each 600 s), in rounds of
  fresh examples, so the budget and not a fixed count bounds it. What each may do is in
  fuzz/checks.py.
- atheris (fuzz/fuzz_bindings.py, fuzz/fuzz_config.py) and libFuzzer on the C++ core
  (cpp/fuzz/fuzz_pipeline.cpp, built by `make fuzzers` with clang): each run for a few seconds
  (CQC_FUZZ_SECONDS), to show they still run and find nothing new.
- The cases the fuzzers found, kept as regression tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "fuzz"))

import checks  # noqa: E402  (fuzz/checks.py)

from conveyor_qc import _core  # noqa: E402
from conveyor_qc.config import Config, ConfigError  # noqa: E402

BUDGET = float(os.environ.get("CQC_FUZZ_SECONDS", "3"))
ROUND = settings(
    max_examples=40, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
)


def for_a_while(test) -> int:
    """Run a @given test in rounds of fresh examples until the budget is spent; returns the
    number of examples. A failure is shrunk and raised by hypothesis as usual."""
    start = time.monotonic()
    rounds = 0
    while True:
        test()
        rounds += 1
        if time.monotonic() >= start + BUDGET:
            n = rounds * ROUND.max_examples
            name = os.environ.get("PYTEST_CURRENT_TEST", "fuzz").split(" ")[0]
            print(f"\n{name}: {n} examples in {time.monotonic() - start:.0f} s")
            return n


# --- strategies -------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-3, 300),
    st.integers(-(2**63), 2**64),
    st.floats(),
    st.floats(-10, 10),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.sampled_from(checks.ENUM_WORDS),
    st.lists(st.one_of(st.floats(), st.integers(-300, 300)), max_size=4),
    st.binary(max_size=8),
)

# Values near the ranges of cpp/include/conveyor_qc/*.hpp, where the bugs are.
NEAR_RANGE = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 7, 15, 16, 31, 32, 100, 1000, 1001, -1, 2**31 - 1, -(2**31)]),
    st.sampled_from([0.0, 1e-9, 0.001, 0.01, 0.05, 0.1, 0.5, 0.99, 1.0, 1.0001, 2.0, 100.0, 1e9, 1e10, -0.0]),
    st.lists(st.sampled_from([0.0, 1.0, 100.0, 180.0, 255.0, 256.0, -1.0]), min_size=3, max_size=3),
)


@st.composite
def core_settings(draw):
    out = []
    for _ in range(draw(st.integers(0, 8))):
        section = draw(st.sampled_from(checks.CORE_SECTIONS + ("nope", "mask")))
        if section in checks.CORE_SECTIONS and draw(st.booleans()):
            name = draw(st.sampled_from(checks.field_names(section)))
        else:
            name = draw(st.sampled_from(["kind", "nope", "FIELDS", "__class__", "validate", "x"]))
        out.append((section, name, draw(st.one_of(NEAR_RANGE, ANY_VALUE))))
    return out


DTYPES = st.sampled_from(
    [
        np.uint8,
        np.int8,
        np.uint16,
        np.int16,
        np.int32,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
        np.dtype(">u2"),
        np.dtype("S3"),
    ]
)


@st.composite
def frames(draw, size=None):
    """Arrays of any kind, most of them close to a frame: uint8 HxWx3, possibly transposed,
    sliced with steps, reversed, Fortran-ordered, broadcast (zero strides), read-only, or with
    strides that do not matter for a side of 1."""
    kind = draw(st.sampled_from(["frame", "frame", "frame", "weird-strides", "any"]))
    if kind == "any":
        return draw(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=10)))
    h, w = size if size is not None and draw(st.booleans()) else (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    if kind == "weird-strides":
        base = np.zeros(64 * 64 * 3 + 64, np.uint8)
        base[:] = draw(st.integers(0, 255))
        h = draw(st.sampled_from([1, h]))
        row = draw(st.sampled_from([0, 1, 3, 3 * w, 3 * w + 5, -3 * w]))
        offset = 64 * 3 * 32 if row < 0 else 0
        try:
            return np.lib.stride_tricks.as_strided(base[offset:], shape=(h, w, 3), strides=(row, 3, 1))
        except ValueError:
            return base[: h * w * 3].reshape(h, w, 3)
    a = np.empty((h, w, 3), np.uint8)
    a[:] = draw(st.integers(0, 255))
    # blobs on a belt, so that detection and tracking have something to do
    for _ in range(draw(st.integers(0, 3))):
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        a[y : y + draw(st.integers(1, 20)), x : x + draw(st.integers(1, 20))] = draw(st.integers(0, 255))
    t = draw(
        st.sampled_from(
            ["none", "none", "transpose", "step", "reverse", "fortran", "broadcast", "readonly", "channels"]
        )
    )
    if t == "transpose":
        a = a.transpose(1, 0, 2)
    elif t == "step":
        a = a[::2]
    elif t == "reverse":
        a = a[::-1]
    elif t == "fortran":
        a = np.asfortranarray(a)
    elif t == "broadcast":
        a = np.broadcast_to(a[:1], a.shape)
    elif t == "readonly":
        a.flags.writeable = False
    elif t == "channels":
        a = np.ascontiguousarray(a[:, :, :2])
    return a


@st.composite
def frame_sequences(draw):
    h, w = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    return [draw(frames(size=(h, w))) for _ in range(draw(st.integers(1, 8)))]


# --- the bindings -----------------------------------------------------------------------------


def test_fuzz_pipeline():
    @ROUND
    @given(core_settings(), frame_sequences())
    def one(settings_, frames_):
        checks.check_pipeline(settings_, frames_)

    assert for_a_while(one) > 0


def test_fuzz_detector_and_mask():
    names = checks.field_names("detect") + ("nope",)
    mask_names = checks.field_names("mask") + ("nope",)

    @ROUND
    @given(
        st.lists(st.tuples(st.sampled_from(names), st.one_of(NEAR_RANGE, ANY_VALUE)), max_size=4),
        st.one_of(
            hnp.arrays(
                st.sampled_from([np.uint8, np.int8, np.float32, np.bool_]),
                hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=30),
            ),
            hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.sampled_from([0, 255])),
        ),
        st.one_of(
            st.just([]),
            st.lists(st.integers(-(2**31), 2**31 - 1), min_size=0, max_size=5),
            st.lists(st.integers(-5, 45), min_size=4, max_size=4),
        ),
        st.one_of(st.floats(), st.sampled_from([1.0, 0.5, 2.0, 1e-300, 1e300])),
        st.lists(st.tuples(st.sampled_from(mask_names), st.one_of(NEAR_RANGE, ANY_VALUE)), max_size=4),
        frame_sequences(),
    )
    def one(det_settings, mask, roi, scale, mask_settings, frames_):
        checks.check_detector(det_settings, mask, roi, scale)
        checks.check_mask_builder(mask_settings, frames_)

    assert for_a_while(one) > 0


# --- the config loader ------------------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(checks.all_keys()),
    st.text(max_size=15),
    st.sampled_from(["track", "track.", ".kind", "track.kind.x", "output.crop_size", "mask.object_lower"]),
)

TOML_SCALAR = st.one_of(
    st.integers().map(str),
    st.sampled_from(["9" * 30, "-0", "+1", "0x1F", "0o7", "0b1", "1_000", "01"]),
    st.floats().map(lambda f: repr(f).replace("inf", "inf").replace("nan", "nan")),
    st.sampled_from(
        [
            "1e400",
            "-1e400",
            "inf",
            "-inf",
            "nan",
            "1.5",
            "0.0",
            "1e-320",
            "true",
            "false",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "1979-05-27",
        ]
    ),
    st.text(max_size=10).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(['"kcf"', '"KCF"', '"auto"', "'lab'", '"""x"""', '"\\u0000"', '"\\ud800"']),
)
TOML_VALUE = st.one_of(
    TOML_SCALAR,
    st.lists(TOML_SCALAR, max_size=4).map(lambda v: "[" + ", ".join(v) + "]"),
    st.dictionaries(st.sampled_from(["a", "kind", "line"]), TOML_SCALAR, max_size=2).map(
        lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
    ),
)


@st.composite
def toml_texts(draw):
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        section = draw(
            st.one_of(st.sampled_from(["mask", "detect", "track", "count", "output"]), st.text(min_size=1, max_size=6))
        )
        header = draw(st.sampled_from(["[{}]", "[[{}]]", "[{}.sub]", '["{}"]', "{} = 1"])).format(section)
        lines.append(header)
        fields = Config._fields(section) if section in ("mask", "detect", "track", "count", "output") else ("x",)
        for _ in range(draw(st.integers(0, 5))):
            key = draw(st.one_of(st.sampled_from(fields), st.text(max_size=6)))
            lines.append(f"{key} = {draw(TOML_VALUE)}")
    text = "\n".join(lines)
    if draw(st.integers(0, 9)) == 0:  # damage it
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(max_size=4)) + text[i:]
    return text


def test_fuzz_config_text():
    @ROUND
    @given(st.one_of(toml_texts(), st.binary(max_size=64), st.text(max_size=64)))
    def one(text):
        checks.check_config_text(text)

    assert for_a_while(one) > 0


def test_fuzz_config_keys_and_values():
    section_tables = st.dictionaries(
        st.sampled_from(checks.all_keys()).map(lambda k: k.split(".")[1]), st.one_of(NEAR_RANGE, ANY_VALUE), max_size=4
    )

    @ROUND
    @given(
        st.lists(st.tuples(KEYS, st.one_of(NEAR_RANGE, ANY_VALUE)), max_size=6),
        st.one_of(
            st.dictionaries(
                st.sampled_from(["mask", "detect", "track", "count", "output", "x"]),
                st.one_of(section_tables, ANY_VALUE),
                max_size=3,
            ),
            ANY_VALUE,
        ),
        st.lists(
            st.one_of(st.tuples(KEYS, TOML_VALUE).map(lambda kv: f"{kv[0]}={kv[1]}"), st.text(max_size=20)), max_size=3
        ),
    )
    def one(items, table, cli_items):
        checks.check_config_set(items)
        checks.check_config_dict(table)
        checks.check_cli_set(cli_items)

    assert for_a_while(one) > 0


# --- atheris and libFuzzer, briefly ------------------------------------------------------------


def run_fuzzer(cmd: list[str], tmp_path: Path) -> str:
    seconds = max(1, int(BUDGET))
    r = subprocess.run(
        [
            *cmd,
            f"-max_total_time={seconds}",
            "-rss_limit_mb=2048",
            "-timeout=20",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=seconds * 10 + 120,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    print(
        "\n"
        + " ".join(Path(c).name for c in cmd[:2])
        + ": "
        + " ".join(line for line in r.stderr.splitlines() if line.startswith(("Done", "stat::")))
    )
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", r.stderr) or re.search(r"Done (\d+) runs", r.stderr)
    assert runs and int(runs.group(1)) > 0, r.stderr[-3000:]
    return r.stderr


@pytest.mark.parametrize("target", ["fuzz_bindings.py", "fuzz_config.py"])
def test_atheris(target, tmp_path):
    pytest.importorskip("atheris", reason="atheris (pip) is needed: `make` installs it")
    run_fuzzer([sys.executable, str(REPO / "fuzz" / target), str(tmp_path)], tmp_path)


def test_libfuzzer_core(tmp_path):
    binary = REPO / "build" / "fuzz" / "fuzz_pipeline"
    if not binary.exists():
        pytest.skip("the libFuzzer target is not built (`make fuzzers`: needs clang, installed as root)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run_fuzzer([str(binary), str(corpus), str(REPO / "cpp" / "fuzz" / "seeds")], tmp_path)


# --- what the fuzzers found -------------------------------------------------------------------


@pytest.mark.parametrize("shape, downscale", [((1, 1, 3), 0.5), ((1, 40, 3), 0.5), ((40, 2, 3), 0.2), ((3, 3, 3), 0.1)])
def test_found_tiny_frame_is_an_input_error(shape, downscale):
    """A frame that track.downscale makes empty raised OpenCV's resize assertion as a
    RuntimeError (found by these fuzzers and by tests/test_bad_input.py; cpp/src/pipeline.cpp,
    fixed in c49021c by its owner): it is an InputError naming the frame and R."""
    params = _core.PipelineParams()
    params.track.downscale = downscale
    pipeline = _core.Pipeline(params)
    with pytest.raises(ValueError, match="too small for track.downscale"):
        pipeline.process(np.zeros(shape, np.uint8))
    assert checks.check_pipeline([("track", "downscale", downscale)], [np.zeros(shape, np.uint8)]) == "processed"


@pytest.mark.parametrize("row_stride", [0, 1, 5, -9])
def test_found_one_row_frame_with_any_row_stride(row_stride):
    """NumPy calls a 1-row array C-contiguous whatever its row stride; the bindings passed that
    stride to cv::Mat, which asserted (a RuntimeError) for 0 and 1 (fixed in bindings.cpp)."""
    base = np.arange(40 * 3 * 4, dtype=np.uint8)
    frame = np.lib.stride_tricks.as_strided(base[200:], shape=(1, 40, 3), strides=(row_stride, 3, 1))
    assert frame.flags.c_contiguous
    params = _core.PipelineParams()
    params.track.downscale = 1.0  # at 0.5 one row is too small (the tiny-frame finding below)
    pipeline = _core.Pipeline(params)
    assert pipeline.process(frame).frame_index == 0
    mask = _core.MaskBuilder(_core.MaskParams()).build(frame)
    assert mask.shape == (1, 40)
    checks.check_pipeline([("track", "downscale", 1.0)], [frame, np.ascontiguousarray(frame)])


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("mask.edge_dilate", 2**31, "at most 10 digits"),  # was a TypeError from the core's C int
        ("track.detect_every", -(2**63), "at most 10 digits"),
        ("detect.min_area", 10**400, "finite"),  # was an OverflowError
        ("mask.object_lower", [float("nan"), 0, 0], "finite"),  # was taken, and NaN never equals itself
        ("mask.object_upper", [10**400, 0, 0], "finite"),  # was an OverflowError
        ("track.kind", "kcf\ud800", "track.kind"),  # not encodable: was a TypeError
    ],
)
def test_found_config_values_are_config_errors(key, value, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Config().set(key, value)
    assert checks.check_config_set([(key, value)]) in ("set", "refused")


def test_found_config_huge_integer_in_a_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[mask]\nedge_dilate = 99999999999999999999\n")  # TOML allows 64-bit integers
    with pytest.raises(ConfigError, match="edge_dilate"):
        Config.load(path)
    path.write_text("[track]\nmax_misses = 9223372036854775807\n")
    with pytest.raises(ConfigError, match="max_misses"):
        Config.load(path)
