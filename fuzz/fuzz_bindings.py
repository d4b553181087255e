"""atheris target: the bindings (conveyor_qc._core) with parameters and frames made from the
fuzzer's bytes; what is allowed is in checks.py. Coverage-guided on the Python layer (the
bindings' C++ is covered by the libFuzzer target, cpp/fuzz/fuzz_pipeline.cpp).

    python fuzz/fuzz_bindings.py CORPUS_DIR -max_total_time=600
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

import conveyor_qc.config  # noqa: F401
from conveyor_qc import _core

with atheris.instrument_imports(include=["checks"]):
    import checks

SECTIONS = list(checks.CORE_SECTIONS) + ["nope"]
FIELDS = {s: list(checks.field_names(s)) + ["nope"] for s in checks.CORE_SECTIONS}
STRINGS = list(checks.ENUM_WORDS)
DTYPES = [np.uint8, np.int8, np.uint16, np.float32, np.float64, np.bool_, np.complex64]


def value(fdp: atheris.FuzzedDataProvider):
    kind = fdp.ConsumeIntInRange(0, 8)
    if kind == 0:
        return fdp.ConsumeIntInRange(-3, 300)
    if kind == 1:
        return fdp.ConsumeInt(8)
    if kind == 2:
        return fdp.ConsumeRegularFloat()
    if kind == 3:
        return fdp.ConsumeFloat()
    if kind == 4:
        return fdp.ConsumeProbability() * fdp.ConsumeIntInRange(1, 4)
    if kind == 5:
        return fdp.PickValueInList(STRINGS)
    if kind == 6:
        return fdp.ConsumeUnicodeNoSurrogates(8)
    if kind == 7:
        return [fdp.ConsumeRegularFloat() for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return fdp.ConsumeBool()


def frame(fdp: atheris.FuzzedDataProvider, h: int, w: int):
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind == 0:  # anything
        shape = tuple(fdp.ConsumeIntInRange(0, 8) for _ in range(fdp.ConsumeIntInRange(0, 4)))
        dtype = fdp.PickValueInList(DTYPES)
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = fdp.ConsumeBytes(n).ljust(n, b"\0")
        return np.frombuffer(raw, dtype).reshape(shape)
    if fdp.ConsumeBool():
        h, w = fdp.ConsumeIntInRange(1, 48), fdp.ConsumeIntInRange(1, 48)
    a = np.full((h, w, 3), fdp.ConsumeIntInRange(0, 255), np.uint8)
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        y, x = fdp.ConsumeIntInRange(0, h - 1), fdp.ConsumeIntInRange(0, w - 1)
        a[y : y + fdp.ConsumeIntInRange(1, 24), x : x + fdp.ConsumeIntInRange(1, 24)] = fdp.ConsumeIntInRange(0, 255)
    if kind == 1:
        a = a.transpose(1, 0, 2)
    elif kind == 2:
        a = a[::-1]
    elif kind == 3:
        a = np.asfortranarray(a)
    elif kind == 4:
        a = np.broadcast_to(a[:1], a.shape)
    elif kind == 5:
        a = np.lib.stride_tricks.as_strided(a, shape=(1, w, 3), strides=(fdp.ConsumeIntInRange(0, 7), 3, 1))
    return a


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 2)
    if target == 0:
        settings = []
        for _ in range(fdp.ConsumeIntInRange(0, 8)):
            section = fdp.PickValueInList(SECTIONS)
            name = fdp.PickValueInList(FIELDS.get(section, ["x"]))
            settings.append((section, name, value(fdp)))
        h, w = fdp.ConsumeIntInRange(8, 48), fdp.ConsumeIntInRange(8, 48)  # frame() makes smaller ones too
        frames = [frame(fdp, h, w) for _ in range(fdp.ConsumeIntInRange(1, 10))]
        checks.check_pipeline(settings, frames)
    elif target == 1:
        settings = [(fdp.PickValueInList(FIELDS["detect"]), value(fdp)) for _ in range(fdp.ConsumeIntInRange(0, 4))]
        h, w = fdp.ConsumeIntInRange(0, 40), fdp.ConsumeIntInRange(0, 40)
        mask = (np.frombuffer(fdp.ConsumeBytes(h * w).ljust(h * w, b"\0"), np.uint8).reshape(h, w) > 127) * np.uint8(
            255
        )
        roi = [
            fdp.ConsumeIntInRange(-50, 60) if fdp.ConsumeBool() else fdp.ConsumeInt(4)
            for _ in range(fdp.PickValueInList([0, 4, 4, 3]))
        ]
        checks.check_detector(settings, mask, roi, fdp.ConsumeFloat() if fdp.ConsumeBool() else 1.0)
    else:
        settings = [(fdp.PickValueInList(FIELDS["mask"]), value(fdp)) for _ in range(fdp.ConsumeIntInRange(0, 4))]
        h, w = fdp.ConsumeIntInRange(1, 40), fdp.ConsumeIntInRange(1, 40)
        checks.check_mask_builder(settings, [frame(fdp, h, w) for _ in range(fdp.ConsumeIntInRange(1, 12))])


if __name__ == "__main__":
    _core.Pipeline(_core.PipelineParams())  # imported before the fuzzer starts
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
