"""Bring your own model: an ONNX graph trained elsewhere (anomalib's PatchCore or EfficientAD, a
classifier), run by onnxruntime on each object's crops with the same verdicts as the local model.

A model folder holds ``model.onnx`` and ``model.json`` (:func:`conveyor_qc.anomaly.base.read_meta`'s
format, ``"backend": "onnx"``)::

    {"format": "conveyor-qc-model", "version": 2, "backend": "onnx", "conveyor_qc_version": "...",
     "file": "model.onnx", "sha256": "...",                      # both optional
     "input": {"size": [224, 224] | null, "colour": "rgb" | "bgr" | "grey", "divide_by": 255,
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
               "layout": "NCHW" | "NHWC", "resize": "letterbox" | "stretch", "name": null},
     "output": {"kind": "score" | "probability" | "map", "name": "..." | "index": 0,
                "anomaly_class": 1,                             # probability only
                "reduce": "max" | "mean" | "p99"},              # map only
     "threshold": 0.42, "range": [0.0, 0.84]}                    # range optional

Each image (BGR uint8, any size) is turned into the colour order, fitted into ``size`` (letterboxed
with black, as conveyor-qc's crops are, or stretched), divided by ``divide_by``, less ``mean``,
over ``std``, in ``layout``; the crops of a call go through the graph as one batch (at most
:data:`MAX_BATCH`; one at a time when the graph's batch axis is fixed to 1). The chosen output
gives each image's *raw value*: a ``score`` as it is, a ``probability`` of class
``anomaly_class`` (or the one probability of a (N,) or (N, 1) output), a ``map``'s ``reduce``
(its maximum, mean, or a percentile ``pNN``) over the part of the map that covers the image.

**The score** (:class:`ScoreScale`): the raw value becomes the package's 0..1 score by two straight
lines meeting at the threshold: ``range[0]`` -> 0, ``threshold`` -> 0.5, ``range[1]`` -> 1,
clipped. ``range`` defaults to ``[0, 2 x threshold]`` (so ``score = raw / (2 x threshold)``) and
to ``[0, 1]`` for a probability (whose threshold defaults to 0.5, making the score the
probability itself). A raw value that is not a number (NaN) scores 0.5: an anomaly, to be looked
at, as the local model judges a crop in which it finds no object. A ``map`` output gives heat maps
too: the map over the image, each pixel twice its own score before clipping (1.0 at the
threshold, 2.0 at ``range[1]``: :mod:`conveyor_qc.anomaly.heatmap`'s full colour).

Everything is checked when the folder is loaded, before any frame is read: the fields, the file
(and its checksum when model.json gives one), the graph's input (one image batch of rank 4, the
channels and fixed size ``input`` says) and output, and one dummy batch through the graph for the
output's shape; each problem is a one-line :class:`ModelError`. onnxruntime runs on the CPU on one
thread (the judge's, beside the pipeline). :func:`import_onnx` makes a folder from an ``.onnx``
file, optionally with the threshold that maximises anomaly F1 on a labelled manifest. See
docs/anomaly.md, "Bring your own model (ONNX)".
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.anomaly.base import (
    META_NAME,
    MODEL_FORMAT,
    MODEL_VERSION,
    AnomalyModel,
    ModelError,
    Verdict,
    read_image,
    verdict_of,
    write_meta,
)
from conveyor_qc.io.atomic import atomic_open
from conveyor_qc.version import __version__

__all__ = [
    "KINDS",
    "MAX_BATCH",
    "ONNX_NAME",
    "OnnxGraph",
    "OnnxModel",
    "OnnxSpec",
    "ScoreScale",
    "best_threshold",
    "import_onnx",
    "parse_spec",
]

ONNX_NAME = "model.onnx"
KINDS = ("score", "probability", "map")
COLOURS = ("rgb", "bgr", "grey")
LAYOUTS = ("NCHW", "NHWC")
RESIZES = ("letterbox", "stretch")
#: Most images in one run of the graph: a call with more (evaluate-model's whole manifest) is cut
#: into batches of this many, so that memory stays bounded (32 x 3 x 384 x 384 floats: 57 MB).
MAX_BATCH = 32
INSTALL_HINT = 'pip install "conveyor-qc[onnx]"'
_INPUT_FIELDS = ("name", "size", "colour", "divide_by", "mean", "std", "layout", "resize")
_OUTPUT_FIELDS = ("name", "index", "kind", "anomaly_class", "reduce")
_REDUCE = re.compile(r"^(max|mean|p(\d+(?:\.\d+)?))$")
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
}


# --- model.json ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxSpec:
    """What model.json says about the graph: its file, how an image becomes its input, which
    output means what, and where anomaly begins."""

    file: str = ONNX_NAME
    sha256: str | None = None
    input_name: str | None = None  # None: the graph's first input
    size: tuple[int, int] | None = None  # (H, W); None: the graph's fixed size
    colour: str = "rgb"
    divide_by: float = 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str = "NCHW"
    resize: str = "letterbox"
    output_name: str | None = None
    output_index: int | None = None  # neither name nor index: output 0
    kind: str = "score"
    anomaly_class: int = 1
    reduce: str = "max"
    threshold: float | None = None
    range: tuple[float, float] | None = None

    @property
    def channels(self) -> int:
        return 1 if self.colour == "grey" else 3


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Section:
    """One section of model.json (``input``, ``output``): its fields, each checked with a
    message naming it."""

    def __init__(self, where: str, name: str, data, fields: tuple[str, ...], required: bool):
        self.where, self.name = where, name
        if data is None and not required:
            data = {}
        if not isinstance(data, dict):
            raise ModelError(f"{where}: {name} must be an object with {', '.join(fields)}, not {data!r}")
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ModelError(f"{where}: unknown field {name}.{unknown[0]} (its fields: {', '.join(fields)})")
        self.data = data

    def bad(self, key: str, what: str) -> ModelError:
        return ModelError(f"{self.where}: {self.name}.{key} {what}, not {self.data[key]!r}")

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str:
        if key not in self.data or (self.data[key] is None and default is not None):
            if default is None:
                raise ModelError(f"{self.where}: no {self.name}.{key} ({' | '.join(options)})")
            return default
        value = self.data[key]
        if isinstance(value, str):
            for option in options:  # the layout in capitals, everything else as written
                if value.lower() == option.lower():
                    return option
        raise self.bad(key, f"must be {' | '.join(options)}")

    def number(self, key: str, default: float, positive: bool = False) -> float:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not _is_number(value) or (positive and value <= 0):
            raise self.bad(key, "must be a number" + (" above 0" if positive else ""))
        return float(value)

    def numbers(self, key: str, default: tuple[float, ...], channels: int, positive: bool = False) -> tuple[float, ...]:
        value = self.data.get(key)
        if value is None:
            return default
        values = [value] if _is_number(value) else value
        ok = isinstance(values, list) and len(values) in (1, channels) and all(_is_number(v) for v in values)
        if not ok or (positive and min(values) <= 0):
            raise self.bad(key, f"must be a number or a list of {channels}" + (" above 0" if positive else ""))
        return tuple(float(v) for v in values)

    def name_of(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.bad(key, "must be the name of one of the graph's tensors")
        return value


def parse_spec(meta: dict, where: str, need_threshold: bool = True) -> OnnxSpec:
    """model.json's fields as an :class:`OnnxSpec`; a missing or bad field is a ModelError naming it."""
    file = meta.get("file", ONNX_NAME)
    if not isinstance(file, str) or not file or Path(file).name != file:
        raise ModelError(f"{where}: file must be the name of the ONNX file in the model folder, not {file!r}")
    sha = meta.get("sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise ModelError(f"{where}: sha256 must be 64 lower-case hex digits, not {sha!r}")
    inp = _Section(where, "input", meta.get("input"), _INPUT_FIELDS, required=False)
    out = _Section(where, "output", meta.get("output"), _OUTPUT_FIELDS, required=True)

    size = inp.data.get("size")
    if size is None or size == "graph":
        size = None
    elif isinstance(size, int) and not isinstance(size, bool) and size > 0:
        size = (size, size)
    elif (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        size = (size[0], size[1])
    else:
        raise inp.bad("size", 'must be [height, width] in pixels, one number for a square, or "graph"')
    colour = inp.choice("colour", COLOURS, "rgb")
    channels = 1 if colour == "grey" else 3

    kind = out.choice("kind", KINDS, None)
    if "index" in out.data and (
        not isinstance(out.data["index"], int) or isinstance(out.data["index"], bool) or out.data["index"] < 0
    ):
        raise out.bad("index", "must be a whole number from 0")
    if kind != "probability" and "anomaly_class" in out.data:
        raise ModelError(f"{where}: output.anomaly_class is for a probability output, not a {kind}")
    if kind != "map" and "reduce" in out.data:
        raise ModelError(f"{where}: output.reduce is for a map output, not a {kind}")
    anomaly_class = out.data.get("anomaly_class", 1)
    if not isinstance(anomaly_class, int) or isinstance(anomaly_class, bool) or anomaly_class < 0:
        raise out.bad("anomaly_class", "must be a whole number from 0 (the anomaly class's index)")
    reduce = out.data.get("reduce", "max")
    match = _REDUCE.match(reduce) if isinstance(reduce, str) else None
    if match is None or (match.group(2) is not None and not 0 < float(match.group(2)) <= 100):
        raise out.bad("reduce", "must be max, mean or a percentile p1-p100 (e.g. p99)")

    threshold = meta.get("threshold")
    if threshold is None and kind == "probability":
        threshold = 0.5
    if threshold is None and need_threshold:
        raise ModelError(
            f"{where}: no threshold (the raw value from which an object is an anomaly): set it, or make "
            "the folder with `conveyor-qc import-onnx --calibrate MANIFEST`"
        )
    if threshold is not None and not _is_number(threshold):
        raise ModelError(f"{where}: threshold must be a number, not {threshold!r}")
    rng = meta.get("range")
    if rng is not None:
        if not (isinstance(rng, list) and len(rng) == 2 and all(_is_number(v) for v in rng)):
            raise ModelError(f"{where}: range must be [low, high], the raw values scored 0 and 1, not {rng!r}")
        rng = (float(rng[0]), float(rng[1]))
    return OnnxSpec(
        file=file,
        sha256=sha,
        input_name=inp.name_of("name"),
        size=size,
        colour=colour,
        divide_by=inp.number("divide_by", 255.0, positive=True),
        mean=inp.numbers("mean", (0.0,), channels),
        std=inp.numbers("std", (1.0,), channels, positive=True),
        layout=inp.choice("layout", LAYOUTS, "NCHW"),
        resize=inp.choice("resize", RESIZES, "letterbox"),
        output_name=out.name_of("name"),
        output_index=out.data.get("index"),
        kind=kind,
        anomaly_class=anomaly_class,
        reduce=reduce,
        threshold=None if threshold is None else float(threshold),
        range=rng,
    )


# --- raw value -> score ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreScale:
    """The raw value's 0..1 score: ``low`` -> 0, ``threshold`` -> 0.5, ``high`` -> 1, a straight
    line on each side of the threshold, clipped; NaN -> 0.5."""

    threshold: float
    low: float
    high: float

    @classmethod
    def of(cls, spec: OnnxSpec, where: str) -> ScoreScale:
        assert spec.threshold is not None
        t = spec.threshold
        if spec.range is not None:
            low, high = spec.range
        elif spec.kind == "probability":
            low, high = 0.0, 1.0
        elif t > 0:
            low, high = 0.0, 2.0 * t
        else:
            raise ModelError(
                f"{where}: threshold {t:g} is not above 0: give range [low, high], the raw values scored 0 "
                "and 1, with low < threshold < high"
            )
        if not low < t < high:
            raise ModelError(f"{where}: range [{low:g}, {high:g}] must have the threshold {t:g} inside it")
        return cls(t, low, high)

    def _line(self, raw: np.ndarray) -> np.ndarray:
        r = np.asarray(raw, np.float64)
        with np.errstate(invalid="ignore"):
            below = 0.5 * (r - self.low) / (self.threshold - self.low)
            above = 0.5 + 0.5 * (r - self.threshold) / (self.high - self.threshold)
            return np.where(r < self.threshold, below, above)

    def scores(self, raw: np.ndarray) -> np.ndarray:
        s = np.clip(self._line(raw), 0.0, 1.0)
        return np.where(np.isnan(s), 0.5, s)

    def heat(self, raw_map: np.ndarray) -> np.ndarray:
        """A map's pixels as heat: twice the pixel's score before clipping above (1.0 at the
        threshold), never below 0."""
        h = 2.0 * self._line(raw_map)
        return np.nan_to_num(np.maximum(h, 0.0), nan=0.0).astype(np.float32)


# --- the graph ------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    """onnxruntime's message on one line, without its ``[ONNXRuntimeError] : 7 : NAME :`` prefix."""
    text = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*", "", str(exc).strip())
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)  # the path: the message names it already
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _shape(dims) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else repr(d) for d in dims) + "]"


def _fit(image: np.ndarray, height: int, width: int, resize: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The image in a height x width frame, and where it lies there (top, left, h, w): stretched,
    or letterboxed (aspect kept, centred on black, as conveyor_qc.crops.letterbox does)."""
    h, w = image.shape[:2]
    if resize == "stretch" or h * width == w * height:
        nh, nw = height, width
    else:
        scale = min(height / h, width / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if nh < h or nw < w else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    if image.ndim == 2:
        image = image[..., None]
    if (nh, nw) == (height, width):
        return image, (0, 0, height, width)
    out = np.zeros((height, width, image.shape[2]), image.dtype)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top : top + nh, left : left + nw] = image
    return out, (top, left, nh, nw)


class OnnxGraph:
    """An ONNX file opened by onnxruntime as model.json describes it, checked: images in, each
    image's raw value (and, for a map, its map over the image) out."""

    def __init__(self, path: Path, spec: OnnxSpec, where: str):
        self.spec, self.where = spec, where
        self._session: Any = None
        try:
            ort = importlib.import_module("onnxruntime")  # untyped: mypy sees Any
        except ImportError:
            raise ModelError(
                f"{where}: an ONNX model needs onnxruntime, which is not installed: {INSTALL_HINT}"
            ) from None
        if not path.is_file():
            raise ModelError(f"{path}: no such file (the ONNX graph model.json names)")
        if spec.sha256 is not None and _sha256(path) != spec.sha256:
            raise ModelError(
                f"{path}: its checksum differs from model.json's sha256 (damaged, or replaced by another "
                "graph): make the folder again with `conveyor-qc import-onnx`, or remove sha256 from model.json"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the judge's thread, beside the pipeline: no pool of its own
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings would come before our one line
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  onnxruntime's errors derive from Exception only
            raise ModelError(f"{path}: not an ONNX graph onnxruntime can load ({_short(exc)})") from None
        try:
            self._check_input()
            self._check_output()
            self._dry_run()
        except BaseException:
            self.close()
            raise

    # --- checks at load --------------------------------------------------------------------------

    def _check_input(self) -> None:
        spec, where = self.spec, self.where
        inputs = self._session.get_inputs()
        names = [i.name for i in inputs]
        if spec.input_name is not None and spec.input_name not in names:
            raise ModelError(
                f"{where}: input.name {spec.input_name!r} is not an input of the graph ({', '.join(names)})"
            )
        if len(inputs) != 1:
            raise ModelError(
                f"{where}: the graph has {len(inputs)} inputs ({', '.join(names)}); conveyor-qc feeds it one "
                "batch of images"
            )
        inp = inputs[0]
        self.input_name = inp.name
        dims = list(inp.shape or [])
        if len(dims) != 4:
            raise ModelError(
                f"{where}: the graph's input {inp.name!r} has shape {_shape(dims)}; a batch of images has 4 axes "
                f"({spec.layout})"
            )
        if inp.type not in _DTYPES:
            raise ModelError(
                f"{where}: the graph's input {inp.name!r} is {inp.type}; conveyor-qc feeds float, float16, "
                "double or uint8 pixels"
            )
        self.dtype = _DTYPES[inp.type]
        if self.dtype == np.uint8 and (spec.divide_by != 1 or set(spec.mean) != {0.0} or set(spec.std) != {1.0}):
            raise ModelError(
                f"{where}: the graph takes uint8 pixels as they are: set input.divide_by to 1, mean to 0 and std to 1"
            )
        c_axis, h_axis, w_axis = (1, 2, 3) if spec.layout == "NCHW" else (3, 1, 2)
        c = dims[c_axis]
        if isinstance(c, int) and c != spec.channels:
            other = "NHWC" if spec.layout == "NCHW" else "NCHW"
            raise ModelError(
                f"{where}: the graph's input {inp.name!r} of shape {_shape(dims)} takes {c} channels on axis "
                f"{c_axis} ({spec.layout}), input.colour {spec.colour!r} gives {spec.channels} (another "
                f"input.layout, {other}?)"
            )
        fixed = [d if isinstance(d, int) and d > 0 else None for d in (dims[h_axis], dims[w_axis])]
        if spec.size is None:
            if None in fixed:
                raise ModelError(
                    f"{where}: the graph's input {inp.name!r} of shape {_shape(dims)} has no fixed height and "
                    "width: give input.size [height, width]"
                )
            self.size = (int(fixed[0]), int(fixed[1]))  # type: ignore[arg-type]
        else:
            for given, graph, what in zip(spec.size, fixed, ("height", "width")):
                if graph is not None and given != graph:
                    raise ModelError(
                        f"{where}: input.size {list(spec.size)} does not match the graph's input {inp.name!r} of "
                        f"shape {_shape(dims)} ({what} {graph})"
                    )
            self.size = spec.size
        b = dims[0]
        self.batch = int(b) if isinstance(b, int) and b > 0 else None  # None: any batch size
        self._input_dims = dims

    def _check_output(self) -> None:
        spec, where = self.spec, self.where
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        listing = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
        index = spec.output_index
        if spec.output_name is not None:
            if spec.output_name not in names:
                raise ModelError(f"{where}: output.name {spec.output_name!r} is not an output of the graph ({listing})")
            if index is not None and (index >= len(names) or names[index] != spec.output_name):
                raise ModelError(
                    f"{where}: output.name {spec.output_name!r} is not output {index} of the graph ({listing})"
                )
            index = names.index(spec.output_name)
        index = 0 if index is None else index
        if index >= len(names):
            raise ModelError(f"{where}: output.index {index}: the graph has {len(names)} output(s) ({listing})")
        self.output_name = names[index]

    def _dry_run(self) -> None:
        """One dummy batch through the graph: it runs, and its output has the kind's shape. A
        graph whose batch axis is free but that fails on two images (a reshape fixed at export)
        runs one image at a time."""

        def dummy(n: int) -> np.ndarray:
            return self._run(np.zeros((n, *self.size, self.spec.channels), np.uint8))

        trial = self.batch or 2
        try:
            out: np.ndarray | None = dummy(trial)
        except ModelError:
            if self.batch is not None:
                raise
            out = None
        if self.batch is None and (out is None or out.ndim == 0 or out.shape[0] != trial):
            trial = self.batch = 1
            out = dummy(trial)
        assert out is not None
        self._extract(out, trial)

    # --- running -----------------------------------------------------------------------------------

    def _prepare(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """(N, H, W, C) uint8 in the colour order and size the graph takes, and where each image lies."""
        spec = self.spec
        fitted, boxes = [], []
        for im in images:
            if im.ndim == 2:
                im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
            if spec.colour == "rgb":
                im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
            elif spec.colour == "grey":
                im = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
            x, box = _fit(im, *self.size, spec.resize)
            fitted.append(x)
            boxes.append(box)
        return np.stack(fitted), boxes

    def _tensor(self, pixels: np.ndarray) -> np.ndarray:
        spec = self.spec
        if self.dtype == np.uint8:
            x = pixels
        else:
            x = pixels.astype(np.float32) / np.float32(spec.divide_by)
            x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        if spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise ModelError(f"{self.where}: the ONNX model is closed")
        x = self._tensor(pixels)
        try:
            (out,) = self._session.run([self.output_name], {self.input_name: x})
        except Exception as exc:  # noqa: BLE001  onnxruntime's errors derive from Exception only
            raise ModelError(
                f"{self.where}: the graph fails on a batch of shape {list(x.shape)} {x.dtype} ({_short(exc)})"
            ) from None
        return np.asarray(out)

    def _extract(self, out: np.ndarray, n: int) -> np.ndarray:
        """The output as the kind says: (N,) raw values (score, probability) or (N, h, w) maps."""
        spec, name = self.spec, self.output_name
        shape = list(out.shape)
        if out.ndim == 0 or shape[0] != n:
            raise ModelError(
                f"{self.where}: output {name!r} has shape {shape} for a batch of {n}: its first axis is not the batch"
            )
        if not np.issubdtype(out.dtype, np.number) or out.dtype == np.bool_:
            raise ModelError(f"{self.where}: output {name!r} holds {out.dtype}, not numbers")
        out = out.astype(np.float64, copy=False)
        if spec.kind == "score":
            if out.size != n:
                raise ModelError(
                    f"{self.where}: output {name!r} of shape {shape} is not a score: one value per image, (N,) or (N, 1)"
                )
            return out.reshape(n)
        if spec.kind == "probability":
            if out.size == n:
                return out.reshape(n)
            if out.ndim != 2:
                raise ModelError(
                    f"{self.where}: output {name!r} of shape {shape} is not a probability: (N, classes), (N,) or (N, 1)"
                )
            if spec.anomaly_class >= shape[1]:
                raise ModelError(
                    f"{self.where}: output.anomaly_class {spec.anomaly_class}: output {name!r} of shape {shape} has "
                    f"{shape[1]} classes (0-{shape[1] - 1})"
                )
            return out[:, spec.anomaly_class]
        if out.ndim == 3:
            return out
        if out.ndim == 4 and shape[1] == 1:
            return out[:, 0]
        if out.ndim == 4 and shape[3] == 1:
            return out[..., 0]
        raise ModelError(
            f"{self.where}: output {name!r} of shape {shape} is not a score map: (N, H, W), (N, 1, H, W) or (N, H, W, 1)"
        )

    def run(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Each image's raw value and, for a map output, the part of its map that covers the image
        (the map's resolution); in batches of at most MAX_BATCH (the graph's own fixed batch size)."""
        n = len(images)
        raw = np.zeros(n)
        maps: list[np.ndarray] | None = [] if self.spec.kind == "map" else None
        step = self.batch or MAX_BATCH
        for start in range(0, n, step):
            pixels, boxes = self._prepare(images[start : start + step])
            k = len(boxes)
            if self.batch is not None and k < self.batch:  # a fixed batch: filled with copies of the first
                pixels = np.concatenate([pixels, np.repeat(pixels[:1], self.batch - k, axis=0)])
            got = self._extract(self._run(pixels), len(pixels))[:k]
            if maps is None:
                raw[start : start + k] = got
                continue
            for i, (m, box) in enumerate(zip(got, boxes)):
                region = self._region(m, box)
                maps.append(region)
                raw[start + i] = self._reduce(region)
        return raw, maps

    def _region(self, m: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The part of a map (any resolution) that covers the image, not the letterbox's bands."""
        top, left, h, w = box
        height, width = self.size
        if (h, w) == (height, width):
            return m
        mh, mw = m.shape
        r0, r1 = math.floor(top * mh / height), math.ceil((top + h) * mh / height)
        c0, c1 = math.floor(left * mw / width), math.ceil((left + w) * mw / width)
        return m[r0 : max(r1, r0 + 1), c0 : max(c1, c0 + 1)]

    def _reduce(self, m: np.ndarray) -> float:
        r = self.spec.reduce
        if not m.size or np.isnan(m).any():
            return math.nan
        if r == "max":
            return float(m.max())
        if r == "mean":
            return float(m.mean())
        return float(np.percentile(m, float(r[1:])))

    def close(self) -> None:
        self._session = None


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- the model interface ----------------------------------------------------------------------------


class OnnxModel(AnomalyModel):
    """An ONNX model folder as an :class:`AnomalyModel`: the graph loaded once, released by close()."""

    def __init__(self, graph: OnnxGraph, scale: ScoreScale, meta: dict):
        self.graph, self.scale, self.meta = graph, scale, meta

    @classmethod
    def load(cls, folder: Path, meta: dict) -> OnnxModel:
        where = str(Path(folder) / META_NAME)
        spec = parse_spec(meta, where)
        scale = ScoreScale.of(spec, where)
        return cls(OnnxGraph(Path(folder) / spec.file, spec, where), scale, meta)

    @property
    def has_heat_maps(self) -> bool:  # type: ignore[override]
        return self.graph.spec.kind == "map"

    def raw(self, images: list[np.ndarray]) -> np.ndarray:
        """Each image's raw value (the output as the graph gives it, before the 0..1 score)."""
        return self.graph.run(images)[0] if images else np.zeros(0)

    def scores(self, images: list[np.ndarray]) -> np.ndarray:
        return self.scale.scores(self.raw(images))

    def predict(self, images: list[np.ndarray]) -> list[Verdict]:
        return [verdict_of(s) for s in self.scores(images)]

    def explain(self, images: list[np.ndarray]) -> list[tuple[Verdict, np.ndarray | None]]:
        if not images:
            return []
        raw, maps = self.graph.run(images)
        verdicts = [verdict_of(s) for s in self.scale.scores(raw)]
        if maps is None:
            return [(v, None) for v in verdicts]
        heats = []
        for image, m in zip(images, maps):
            h, w = image.shape[:2]
            over = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            heats.append(self.scale.heat(over))
        return list(zip(verdicts, heats))

    def close(self) -> None:
        self.graph.close()


# --- making a folder ---------------------------------------------------------------------------------


def best_threshold(raw: np.ndarray, anomaly: np.ndarray) -> tuple[float, dict]:
    """The raw value from which an image is called an anomaly that maximises anomaly F1 on these
    labelled images: half way between the lowest value called an anomaly and the highest called
    normal (of equal F1s, the widest such gap). Returns it and the figures it gives there."""
    raw = np.asarray(raw, np.float64)
    y = np.asarray(anomaly, bool)
    order = np.argsort(-raw, kind="stable")
    r, t = raw[order], y[order].astype(int)
    n, positives = len(r), int(t.sum())
    k = np.arange(1, n + 1)  # the top k called anomalies
    tp = np.cumsum(t)
    f1 = 2.0 * tp / (k + positives)
    cut = np.append(r[:-1] > r[1:], True)  # a threshold can fall after k only between distinct values
    gap = np.append(r[:-1] - r[1:], 0.0)
    best = max(np.flatnonzero(cut), key=lambda i: (round(float(f1[i]), 12), float(gap[i])))
    if best < n - 1:
        threshold = float((r[best] + r[best + 1]) / 2)
    else:  # everything an anomaly: just under the lowest value
        threshold = float(r[-1] - max(1e-6, 1e-3 * abs(r[-1])))
    tp_, fp = int(tp[best]), int(best + 1 - tp[best])
    fn, tn = positives - tp_, n - positives - fp
    p = tp_ / (tp_ + fp) if tp_ + fp else 0.0
    rec = tp_ / (tp_ + fn) if tp_ + fn else 0.0
    return threshold, {
        "images": n,
        "f1": float(f1[best]),
        "precision": p,
        "recall": rec,
        "tp": tp_,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def import_onnx(
    onnx_file: str | Path,
    out_dir: str | Path,
    *,
    kind: str,
    threshold: float | None = None,
    calibrate: str | Path | None = None,
    raw_range: tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    colour: str = "rgb",
    divide_by: float = 255.0,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    layout: str = "NCHW",
    resize: str = "letterbox",
    input_name: str | None = None,
    output: str | int | None = None,
    anomaly_class: int | None = None,
    reduce: str | None = None,
) -> dict:
    """Make the model folder ``out_dir`` (``model.onnx``, ``model.json``) from an ONNX file.

    The threshold is given (a probability's defaults to 0.5), or (``calibrate``, a labelled Ground
    Truth manifest) the raw value that maximises anomaly F1 on its images (:func:`best_threshold`;
    model.json's ``calibration`` keeps the figures). ``raw_range`` is model.json's ``range``.
    Everything is checked, and the graph run, before anything is written. Returns model.json's
    content."""
    src = Path(onnx_file)
    if not src.is_file():
        raise ModelError(f"{src}: no such ONNX file")
    if threshold is not None and calibrate is not None:
        raise ModelError("give the threshold or a manifest to calibrate it on, not both")
    if threshold is None and calibrate is None and kind != "probability":
        raise ModelError(f"a {kind} output needs its threshold, or a labelled manifest to calibrate it on")
    inp: dict = {"size": list(size) if size else None, "colour": colour, "divide_by": divide_by}
    inp.update({"mean": mean or [0.0], "std": std or [1.0], "layout": layout, "resize": resize})
    if input_name is not None:
        inp["name"] = input_name
    out: dict = {"kind": kind}
    if isinstance(output, int):
        out["index"] = output
    elif output is not None:
        out["name"] = output
    if anomaly_class is not None:
        out["anomaly_class"] = anomaly_class
    if reduce is not None:
        out["reduce"] = reduce
    meta: dict = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "backend": "onnx",
        "conveyor_qc_version": __version__,
        "file": ONNX_NAME,
        "input": inp,
        "output": out,
        "threshold": threshold,
    }
    if raw_range is not None:
        meta["range"] = [float(raw_range[0]), float(raw_range[1])]
    spec = parse_spec(meta, str(src), need_threshold=False)
    graph = OnnxGraph(src, spec, str(src))
    with contextlib.closing(graph):
        meta["input"]["size"] = list(graph.size)  # what the graph takes, written out
        meta["output"].pop("index", None)
        meta["output"]["name"] = graph.output_name
        if calibrate is not None:
            meta["threshold"], meta["calibration"], low = _calibrate(graph, calibrate)
            if low is not None and raw_range is None:  # the default range needs a threshold above 0
                meta["range"] = [low, 2 * meta["threshold"] - low]
        elif threshold is None:
            meta["threshold"] = 0.5  # a probability's
        spec = parse_spec(meta, str(src))
        ScoreScale.of(spec, str(src))  # the threshold and the range agree
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / ONNX_NAME
    if not (dest.exists() and dest.samefile(src)):
        with open(src, "rb") as fh, atomic_open(dest, "wb") as copy:
            shutil.copyfileobj(fh, copy, 1 << 20)
    meta["sha256"] = _sha256(dest)
    write_meta(folder, meta)
    return meta


def _calibrate(graph: OnnxGraph, manifest: str | Path) -> tuple[float, dict, float | None]:
    """The threshold that maximises anomaly F1 on a labelled manifest's images, the figures there,
    and (a threshold not above 0, not a probability) a low end for the range: the lowest value seen."""
    from conveyor_qc.dataset.manifest import read_manifest

    entries = read_manifest(manifest)
    paths: list[Path] = []
    for e in entries:
        if e.path is None:
            raise ModelError(f"{manifest}:{e.line}: {e.source_ref}: calibration reads local images, not s3:// ones")
        paths.append(e.path)
    y = np.array([e.label == "anomaly" for e in entries], bool)
    if not y.any() or y.all():
        raise ModelError(f"{manifest}: calibration needs both normal and anomalous images")
    raw = np.concatenate(
        [graph.run([read_image(p) for p in paths[i : i + MAX_BATCH]])[0] for i in range(0, len(paths), MAX_BATCH)]
    )
    if np.isnan(raw).any():
        raise ModelError(f"{manifest}: the graph gives no number (NaN) for {paths[int(np.argmax(np.isnan(raw)))]}")
    threshold, figures = best_threshold(raw, y)
    figures = {"manifest": str(manifest), **figures, "raw_min": float(raw.min()), "raw_max": float(raw.max())}
    low = None
    if threshold <= 0 and graph.spec.kind != "probability":
        low = min(float(raw.min()), threshold - 1.0)
    return threshold, figures, low
