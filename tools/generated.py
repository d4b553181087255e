"""Files the tools generate and CI checks (the compiled module's stub, the settings tables)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_current(path: Path, fresh: str, stale: str) -> int:
    """0 when ``path`` holds ``fresh``; else print the diff and ``error: <path> <stale>`` and return 1."""
    current = path.read_text() if path.exists() else ""
    if current == fresh:
        return 0
    name = str(path.relative_to(ROOT))
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True), name, "generated"))
    print(f"error: {name} {stale}", file=sys.stderr)
    return 1
