"""The default and range columns of docs/settings.md's tables, generated from the settings themselves.

    python tools/settings_doc.py           # rewrite the two columns in docs/settings.md
    python tools/settings_doc.py --check   # exit 1, with a diff, when they are stale (`make lint`)

Defaults come from default-constructed parameter structs; ranges from the core's tables
(`MaskParams.RANGES`..., the ranges() of each struct in cpp/include/conveyor_qc/) and, for
[output] and [reject], from their `BOUNDS` and `CHOICES` (config.py). A row may group several keys: its cells then
list each key's value in order (one range said once with "each" when they all share it). The
meaning column, and the range of a row whose keys the tables do not cover (enums, colour ranges,
booleans), stay as written.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from conveyor_qc import _core
from conveyor_qc.config import PY_SECTIONS, Config
from generated import ROOT, check_current

DOC = ROOT / "docs" / "settings.md"
HEADER = "| key | default | range | meaning |"


def ranges(section: str) -> dict[str, str]:
    """Each key's allowed values as the docs print them: "(0, 1]", "odd in [1, 15]", "`jpg`, `png`"."""
    if section in PY_SECTIONS:
        own = PY_SECTIONS[section]
        found = {name: own.requirement(name) for name in own.BOUNDS}
        found.update({name: ", ".join(f"`{c}`" for c in choices) for name, choices in own.CHOICES.items()})
    else:
        params = getattr(_core, f"{section.capitalize()}Params")
        found = dict(params.RANGES)
        found.update({name: ", ".join(f"`{c}`" for c in choices) for name, choices in params.CHOICES})
    return {name: text.removeprefix("in ") for name, text in found.items()}


def literal(value: Any) -> str:
    """A default as a config file writes it, numbers in their shortest form (1e6, 0.35)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        short = repr(value)
        return short if len(short) <= 8 else f"{value:g}".replace("e+0", "e").replace("e+", "e")
    if isinstance(value, list):
        # A colour range: whole channel values, as the docs' prose writes them.
        return "[" + ", ".join(literal(int(v) if float(v).is_integer() else v) for v in value) + "]"
    return str(value)


def row(line: str, section: str, defaults: dict[str, Any], known: dict[str, str]) -> str:
    key_cell, _, range_cell, meaning = (cell.strip() for cell in line.removesuffix("|").split("|", 4)[1:])
    keys = re.findall(r"`([^`]+)`", key_cell)
    missing = [k for k in keys if k not in defaults]
    if not keys or missing:
        sys.exit(f"error: docs/settings.md [{section}]: unknown key(s) {missing or key_cell}")
    default_cell = ", ".join(f"`{literal(defaults[k])}`" for k in keys)
    texts = [known[k] for k in keys if k in known]
    if texts:
        if len(keys) > 1 and len(set(texts)) == 1 and len(texts) == len(keys):
            range_cell = f"{texts[0]} each"
        else:
            range_cell = ", ".join(texts)
    return f"| {key_cell} | {default_cell} | {range_cell} | {meaning} |".replace("|  |", "| |")


def generate(text: str) -> str:
    defaults = Config().to_dict()
    out, section, in_table = [], "", False
    for line in text.splitlines(keepends=True):
        heading = re.match(r"## \[(\w+)\]", line)
        if heading:
            section = heading.group(1)
        if line.rstrip("\n") == HEADER:
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            line = row(line.rstrip("\n"), section, defaults[section], ranges(section)) + "\n"
        elif not line.startswith("|"):
            in_table = False
        out.append(line)
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1, with a diff, when the doc is stale")
    args = parser.parse_args()
    current = DOC.read_text()
    fresh = generate(current)
    if not args.check:
        DOC.write_text(fresh)
        return 0
    return check_current(DOC, fresh, "has stale default and range columns: run `python tools/settings_doc.py`")


if __name__ == "__main__":
    sys.exit(main())
