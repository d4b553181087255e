"""How the code base reads, in numbers: the before/after table of a clean-up.

Prints, for the Python package and the C++ core: modules per folder, import cycles between
the package's modules, late imports (an import of one of our modules inside a function, the
usual way to dodge a cycle), the longest functions, the pairs of places that share six or
more lines (the `duplicates` command, when it is on PATH) and lint findings (ruff with its
defaults, and with the project's configuration).

    python tools/code_metrics.py [--json FILE]
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lizard
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "conveyor_qc"
CORE = ROOT / "cpp"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_imports(path: Path, name: str) -> list[tuple[str, bool]]:
    """(imported module of ours, whether the import sits inside a function) for one module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            late = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names if a.name.startswith("conveyor_qc"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("conveyor_qc"):
                    # `from . import x` and `from .pkg import mod` name modules in their aliases.
                    for alias in child.names:
                        candidate = f"{target}.{alias.name}"
                        found.append((candidate if candidate in MODULES else target, in_function))
            visit(child, late)

    visit(tree, False)
    return found


MODULES: set[str] = set()


def python_metrics() -> dict:
    files = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    MODULES.update(module_name(p) for p in files)
    per_folder = Counter(str(p.parent.relative_to(PACKAGE.parent)) for p in files)
    names = sorted(MODULES)
    index = {n: i for i, n in enumerate(names)}
    edges: set[tuple[int, int]] = set()
    late: list[str] = []
    for path in files:
        name = module_name(path)
        for target, in_function in our_imports(path, name):
            # A module of ours that is a package counts as its __init__; unknown names
            # (attributes imported from a module) fall back to their module.
            while target and target not in index:
                target = target.rpartition(".")[0]
            if not target or target == name:
                continue
            # A package's __init__ importing its own submodules is how packages are made.
            if not target.startswith(name + "."):
                edges.add((index[name], index[target]))
            if in_function:
                late.append(f"{name} -> {target}")
    graph = csr_matrix(
        (np.ones(len(edges)), ([a for a, _ in edges], [b for _, b in edges])), shape=(len(names), len(names))
    )
    _, labels = connected_components(graph, directed=True, connection="strong")
    groups = Counter(labels)
    cycles = [sorted(names[i] for i in range(len(names)) if labels[i] == g) for g, n in groups.items() if n > 1]
    return {
        "modules": len(files),
        "lines": sum(len(p.read_text().splitlines()) for p in files),
        "modules_per_folder": dict(sorted(per_folder.items())),
        "import_cycles": cycles,
        "late_imports": sorted(late),
    }


def longest_functions(paths: list[Path], most: int = 8) -> list[tuple[int, str]]:
    functions = []
    for path in paths:
        for f in lizard.analyze_file(str(path)).function_list:
            where = f"{path.relative_to(ROOT)}:{f.start_line} {f.name}"
            functions.append((f.length, where))
    return sorted(functions, reverse=True)[:most]


def duplicate_pairs() -> str | None:
    if shutil.which("duplicates") is None:
        return None
    out = subprocess.run(
        ["duplicates", "--repo", str(ROOT), "--seconds", "120"], capture_output=True, text=True, check=False
    )
    return out.stdout.splitlines()[0] if out.stdout else None


def ruff_findings(*extra: str) -> int | None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        return None
    out = subprocess.run(
        [ruff, "check", *extra, "--output-format", "json", "--exit-zero", str(PACKAGE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return len(json.loads(out.stdout or "[]"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    py = python_metrics()
    py_files = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    cpp_files = sorted(p for p in CORE.rglob("*") if p.suffix in {".cpp", ".hpp"})
    figures = {
        **py,
        "longest_python_functions": longest_functions(py_files),
        "longest_cpp_functions": longest_functions(cpp_files),
        "duplicates": duplicate_pairs(),
        "ruff_defaults": ruff_findings("--isolated"),
        "ruff_project": ruff_findings(),
    }
    print(f"Python package: {py['modules']} modules, {py['lines']} lines")
    for folder, n in py["modules_per_folder"].items():
        print(f"  {folder}: {n}")
    print(f"import cycles: {len(py['import_cycles'])}")
    for cycle in py["import_cycles"]:
        print("  " + " <-> ".join(cycle))
    print(f"late imports of our own modules: {len(py['late_imports'])}")
    for line in py["late_imports"]:
        print("  " + line)
    for key in ("longest_python_functions", "longest_cpp_functions"):
        print(key.replace("_", " ") + " (lines):")
        for length, where in figures[key]:
            print(f"  {length:4d}  {where}")
    print(f"duplicates: {figures['duplicates']}")
    print(
        f"ruff findings, its defaults: {figures['ruff_defaults']}; the project's configuration: {figures['ruff_project']}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
