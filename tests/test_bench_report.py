"""bench/report.py turns a `make bench` run (bench/results/raw.json, pytest-benchmark's JSON) into
README's throughput section and bench/results/throughput.md. README's figures must be that run's,
untouched by hand: the section is rendered again from the committed JSON and compared."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from conftest import REPO

RAW = REPO / "bench" / "results" / "raw.json"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_readmes_throughput_section_is_the_committed_runs(report):
    rows, memory, data = report.load(RAW)
    summary, full = report.render(rows, memory, data)
    readme = (REPO / "README.md").read_text()
    section = readme.split(report.START, 1)[1].split(report.END, 1)[0]
    assert section.strip() == summary.strip()
    assert (REPO / "bench" / "results" / "throughput.md").read_text().strip() == full.strip()


def test_the_1080p_table_gives_the_whole_call_and_the_rate_run_says(report):
    """Each 1080p run row: frames over the whole call and over its decode-only pass, then the rate
    `run` reports (summary.json's fps) over the same pass; the cameras rows give the rate each run
    reported, the slowest first."""
    rows, _, _ = report.load(RAW)
    lines = report.table_1080(rows).splitlines()
    product = next(line for line in lines if "the product as users run it" in line)
    row = report._find(rows, "1080p run+crops+video+model")
    cells = [c.strip() for c in product.strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(row["fps"], abs=0.051)
    assert float(cells[2]) == pytest.approx(row["fps"] / row["extra"]["decode_fps"], abs=0.005)
    assert float(cells[3]) == pytest.approx(row["extra"]["summary_fps"], abs=0.051)
    assert float(cells[4]) == pytest.approx(row["extra"]["summary_fps"] / row["extra"]["decode_fps"], abs=0.005)
    two = next(line for line in lines if "two runs of it at once" in line)
    cells = [c.strip() for c in two.strip("|").split("|")]
    assert cells[1:3] == ["-", "-"] and cells[3].startswith(
        f"{min(report._find(rows, '1080p x2')['extra']['each_fps']):.1f}"
    )


def test_a_row_without_its_reported_rate_shows_a_dash(report):
    """Rows recorded before the rate `run` reports was kept (no ``summary_fps``) render, with '-'."""
    rows = json.loads(json.dumps(report.load(RAW)[0]))
    for row in rows:
        row.get("extra", {}).pop("summary_fps", None)
    product = next(line for line in report.table_1080(rows).splitlines() if "the product as users run it" in line)
    assert [c.strip() for c in product.strip("|").split("|")][3:5] == ["-", "-"]
