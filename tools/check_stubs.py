"""The compiled module's stub, python/conveyor_qc/_core.pyi, is generated from the built module.

    python tools/check_stubs.py           # exit 1, with a diff, when the stub is not the module's
    python tools/check_stubs.py --write   # write it (`make stubs`)

pybind11-stubgen reads the module's signatures and docstrings (bindings.cpp); the result is put
in the project's format with ruff, so that the checked-in file is what the tools make, byte for
byte. `make lint` runs the check, so a binding changed without its stub fails CI.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generated import ROOT, check_current

STUB = ROOT / "python" / "conveyor_qc" / "_core.pyi"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        sys.exit(f"error: {name} is not installed (`make lint` installs it into .venv)")
    return found


def generate() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [tool("pybind11-stubgen"), "conveyor_qc._core", "--output-dir", tmp, "--exit-code"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stub = Path(tmp) / "conveyor_qc" / "_core.pyi"
        config = ["--config", str(ROOT / "pyproject.toml")]
        subprocess.run(
            [tool("ruff"), "check", *config, "--fix-only", "--unsafe-fixes", "-q", "--exit-zero", str(stub)], check=True
        )
        subprocess.run([tool("ruff"), "format", *config, "-q", str(stub)], check=True)
        return stub.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {STUB.relative_to(ROOT)}")
    args = parser.parse_args()
    fresh = generate()
    if args.write:
        STUB.write_text(fresh)
        print(f"wrote {STUB.relative_to(ROOT)}")
        return 0
    return check_current(STUB, fresh, "is not the built module's stub: run `make stubs`")


if __name__ == "__main__":
    sys.exit(main())
