"""atheris target: the config loader (conveyor_qc.config) on any bytes as a TOML file, on
tables and key/value sets made from the bytes, and on ``--set`` options; what is allowed is in
checks.py. The loader's own code is instrumented for coverage.

    python fuzz/fuzz_config.py CORPUS_DIR -max_total_time=600
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["conveyor_qc.config", "conveyor_qc.cli", "checks", "tomllib", "tomli_w"]):
    import tomllib  # noqa: F401

    import checks
    import tomli_w  # noqa: F401

    import conveyor_qc.cli
    import conveyor_qc.config  # noqa: F401

KEYS = checks.all_keys() + ["track", "track.", ".kind", "x.y", "mask.object_lower.0"]


def value(fdp: atheris.FuzzedDataProvider):
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12))
    if kind == 1:
        return fdp.ConsumeFloat()
    if kind == 2:
        return fdp.ConsumeUnicode(8)
    if kind == 3:
        return fdp.ConsumeBool()
    if kind == 4:
        return [fdp.ConsumeRegularFloat() for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if kind == 5:
        return {fdp.PickValueInList(KEYS).split(".")[-1]: fdp.ConsumeIntInRange(-2, 2000)}
    if kind == 6:
        return None
    return fdp.ConsumeIntInRange(-2, 2000)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 3)
    if target == 0:
        checks.check_config_text(fdp.ConsumeBytes(fdp.remaining_bytes()))
    elif target == 1:
        checks.check_config_set(
            [
                (fdp.PickValueInList(KEYS) if fdp.ConsumeBool() else fdp.ConsumeUnicode(10), value(fdp))
                for _ in range(fdp.ConsumeIntInRange(0, 5))
            ]
        )
    elif target == 2:
        table = {}
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            key = fdp.PickValueInList(KEYS)
            section, _, name = key.partition(".")
            table.setdefault(section, {}) if isinstance(table.get(section, {}), dict) else None
            if isinstance(table.get(section), dict) and name:
                table[section][name] = value(fdp)
            else:
                table[section] = value(fdp)
        checks.check_config_dict(table)
    else:
        items = [
            fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 30))
            if fdp.ConsumeBool()
            else f"{fdp.PickValueInList(KEYS)}={fdp.ConsumeUnicode(12)}"
            for _ in range(fdp.ConsumeIntInRange(0, 3))
        ]
        checks.check_cli_set(items)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
