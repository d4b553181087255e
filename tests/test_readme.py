"""README cannot drift from the code: every concrete command line it shows runs (in a temporary
folder, in order), every option its synopses name is one the command's --help lists, every `make`
target it names exists, and its Python snippet runs as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from conveyor_qc.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _command_lines() -> list[str]:
    """Every `conveyor-qc ...` line of README's sh blocks, comments and continuations joined."""
    lines: list[str] = []
    for block in _blocks("sh"):
        for raw in block.splitlines():
            line = raw.split("  #")[0].strip()
            if line.startswith("conveyor-qc "):
                lines.append(line)
            elif line.startswith("[") and lines:  # a synopsis continued on the next line
                lines[-1] += " " + line
    return lines


def _is_synopsis(line: str) -> bool:
    """A synopsis has placeholders (VIDEO, OUT_DIR) or optional parts ([--seed N]); a concrete line
    has neither and runs as it is."""
    return "[" in line or "|" in line or "..." in line or re.search(r"\b[A-Z][A-Z_.]{2,}\b", line) is not None


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main([*command.split(), "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_option_readme_names_is_in_the_commands_help(capsys):
    synopses = [line for line in _command_lines() if _is_synopsis(line)]
    assert len(synopses) >= 15
    for line in synopses:
        words = line.split()
        if words[1] == "lookout":  # conveyor-qc lookout create-project|upload|...
            listed = _help("lookout", capsys)
            for action in words[2].split("|"):
                assert action in listed, f"README: `lookout {action}` is not a lookout command"
            continue
        text = _help(words[1], capsys)
        for option in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))):
            assert option in text, f"README shows `conveyor-qc {words[1]} {option}`, which --help does not list"


def test_every_make_target_readme_names_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README)) | set(re.findall(r"^make ([a-z-]+)", README, flags=re.M))
    assert {"demo", "test", "lint", "bench"} <= named
    assert named <= targets, f"README names make targets the Makefile lacks: {named - targets}"


def test_readmes_command_lines_run_in_order(tmp_path):
    """The whole loop README shows: synth, run, label from the truth, dataset, train, run with the
    model, eval."""
    concrete = [line for line in _command_lines() if not _is_synopsis(line)]
    assert len(concrete) >= 8 and any(" --model " in c for c in concrete)
    for line in concrete:
        r = run_cli(*shlex.split(line)[1:], cwd=tmp_path)
        assert r.returncode == 0, f"README's `{line}` failed:\n{r.stderr}"
    # what the loop was for: verdicts on the test clip's objects, compared with the truth
    assert "anomaly     precision" in r.stdout and "F1 n/a" not in r.stdout.split("anomaly", 1)[1]


def test_readmes_python_snippet_runs(tmp_path):
    (snippet,) = [b for b in _blocks("python") if "Pipeline(config)" in b]
    assert "line3.toml" in snippet and "line3.mp4" in snippet
    # what the snippet's comments say to make: a clip and a settings file
    assert run_cli("synth", tmp_path / "clip", "--seconds", "4", "-q").returncode == 0
    (tmp_path / "clip" / "video.mp4").rename(tmp_path / "line3.mp4")
    assert run_cli("config", "--out", "line3.toml", cwd=tmp_path).returncode == 0
    probe = snippet + "\nassert pipeline.counted > 0, pipeline.counted\n"
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    printed = [line.split() for line in r.stdout.splitlines()]
    assert printed and all(len(words) >= 4 for words in printed[:-1])  # id, box, crop shape, solidity
    assert int(printed[-1][-1]) > 0  # print(pipeline.counted)
