"""``report.html`` of a batch folder (``conveyor-qc batch``, docs/batch.md): every video in one table,
each linked to its own run's report, the totals and each video's anomaly rate as a chart.

Made from ``batch.json`` and each video's ``summary.json`` (for the objects judged normal, which
batch.json does not hold); a video without results (failed, interrupted) is listed with why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conveyor_qc.report import charts
from conveyor_qc.report.page import (
    REPORT_NAME,
    ReportError,
    esc,
    local_time,
    prose,
    render,
    seconds_text,
    write_page,
)
from conveyor_qc.version import __version__

__all__ = ["write_batch_report"]

BATCH_NAME = "batch.json"

_STATUS_WORDS = {
    "done": "done",
    "skipped": "done earlier",
    "failed": "failed",
    "interrupted": "interrupted",
    "pending": "running",
}


def write_batch_report(batch_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write ``batch_dir/report.html`` (or ``out``), atomically, from ``batch_dir/batch.json`` and
    the videos' run folders; return its path. A folder without batch.json, or a damaged one, is a
    :class:`ReportError`."""
    folder = Path(batch_dir)
    batch = read_batch(folder)
    page = Path(out) if out is not None else folder / REPORT_NAME
    videos = [v for v in batch.get("videos") or [] if isinstance(v, dict)]
    rows = [_Video(folder, v, page) for v in videos]
    judged = batch.get("model") is not None or any(r.judged for r in rows)
    total = batch.get("total") or {}
    text = render(
        "batch.html",
        title=esc(f"Batch report: {folder.absolute().name}"),
        heading=esc(folder.absolute().name),
        subtitle=esc(f"{len(rows)} video{'' if len(rows) == 1 else 's'} run by conveyor-qc batch"),
        version=esc(__version__),
        status=_status(batch, rows),
        figures=_figures(total, rows, judged),
        chart=_chart(rows, judged),
        videos=_table(rows, judged),
        provenance=_provenance(folder, batch),
        footer=(
            f"Made by conveyor-qc {esc(__version__)} on {esc(local_time(time.time()))}. "
            f"<code>conveyor-qc report {esc(folder)}</code> makes it again."
        ),
    )
    return write_page(page, text)


def read_batch(folder: Path) -> dict:
    if not folder.exists():
        raise ReportError(f"batch folder {folder} does not exist")
    if not folder.is_dir():
        raise ReportError(f"{folder} is a file, not a batch folder")
    path = folder / BATCH_NAME
    if not path.is_file():
        raise ReportError(
            f"{folder} is not a batch folder (no {BATCH_NAME}): give the --out folder of `conveyor-qc batch`"
        )
    try:
        batch = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: damaged ({exc})") from None
    if not isinstance(batch, dict) or batch.get("format") != "conveyor-qc-batch":
        raise ReportError(f"{path}: not the batch.json of `conveyor-qc batch`")
    return batch


class _Video:
    """One video's line: batch.json's entry, with its run's summary.json where there is one."""

    def __init__(self, folder: Path, entry: dict, page: Path):
        from conveyor_qc.report.page import relative_link
        from conveyor_qc.run.job import judged

        self.entry = entry
        self.name = str(entry.get("name") or "?")
        run = folder / str(entry.get("out") or self.name)
        self.summary: dict[str, Any] = {}
        try:
            loaded = json.loads((run / "summary.json").read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.summary = loaded
        except (OSError, ValueError):
            pass
        self.judged = bool(self.summary) and judged(self.summary)
        self.link = relative_link(run / REPORT_NAME, page) if (run / REPORT_NAME).is_file() else None

    def get(self, key: str) -> Any:
        value = self.entry.get(key)
        return self.summary.get(key) if value is None else value

    @property
    def rate(self) -> float | None:
        anomalies, normal = self.summary.get("anomalies"), self.summary.get("normal")
        if not self.judged or not isinstance(anomalies, int) or not isinstance(normal, int) or anomalies + normal == 0:
            return None
        return anomalies / (anomalies + normal)


def _status(batch: dict, rows: list[_Video]) -> str:
    state = batch.get("state")
    failed = [r for r in rows if r.entry.get("status") == "failed"]
    lines, kind = [], "ok"
    if state == "finished":
        lines.append("Finished." if not failed else "Finished, but some videos failed (below).")
    elif state == "interrupted":
        kind = "warn"
        lines.append("Interrupted: the batch was stopped before every video was run.")
    else:
        kind = "warn"
        lines.append("Still running (or stopped without finishing): this page shows how far it got.")
    if failed:
        kind = "warn"
    early = [r.name for r in rows if r.get("ended_early")]
    if early:
        kind = "warn"
        lines.append(
            f"Ended before the frames they announced (the figures cover what could be read): {', '.join(early)}."
        )
    body = "".join(f"<p>{esc(line)}</p>" for line in lines)
    when = (
        f"<p>Started {esc(local_time(batch.get('started_at')))}"
        + (f", finished {esc(local_time(batch['finished_at']))}" if batch.get("finished_at") else "")
        + ".</p>"
    )
    return f'<section class="status {kind}" id="status" aria-label="status">{body}{when}</section>'


def _figure(label: str, value: str, detail: str = "", key: str = "", cls: str = "") -> str:
    return (
        f'<div class="figure {cls}" data-key="{esc(key)}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div><div class="detail">{esc(detail)}</div></div>'
    )


def _figures(total: dict, rows: list[_Video], judged: bool) -> str:
    statuses = ", ".join(
        f"{total[s]} {_STATUS_WORDS[s]}"
        for s in ("done", "skipped", "failed", "interrupted", "pending")
        if total.get(s)
    )
    cards = [_figure("Videos", f"{len(rows)}", statuses, "videos")]
    cards.append(_figure("Objects", f"{total.get('objects', 0)}", "in the videos with results", "objects"))
    cards.append(_figure("Counted at the line", f"{total.get('counted', 0)}", "", "counted"))
    if judged:
        anomalies = sum(int(r.summary.get("anomalies") or 0) for r in rows if r.judged)
        seen = sum(int(r.summary.get("anomalies") or 0) + int(r.summary.get("normal") or 0) for r in rows if r.judged)
        rate = f"{100 * anomalies / seen:.1f} %" if seen else "-"
        cards.append(
            _figure(
                "Anomalies", f"{total.get('anomalies', 0)}", f"{rate} of the objects judged", "anomalies", "anomaly"
            )
        )
    else:
        cards.append(_figure("Anomalies", "not judged", "no anomaly model was given", "anomalies", "unknown text"))
    if total.get("frames_processed"):
        cards.append(
            _figure(
                "Speed",
                f"{total.get('fps', 0):.0f}",
                f"frames a second, all workers ({total['frames_processed']} frames in "
                f"{seconds_text(total.get('wall_seconds'))})",
                "fps",
            )
        )
    return '<div class="figures">' + "".join(cards) + "</div>"


def _chart(rows: list[_Video], judged: bool) -> str:
    if not judged:
        return '<p class="note" id="not-judged">Not judged: the batch had no anomaly model, so there is no anomaly rate.</p>'
    rated = [r for r in rows if r.rate is not None]
    if not rated:
        return '<p class="note">No video has judged objects yet.</p>'
    svg = charts.batch_rate_chart(
        [r.name for r in rated], [r.rate or 0.0 for r in rated], [int(r.summary.get("anomalies") or 0) for r in rated]
    )
    return f"<figure class='chart-box'><figcaption>Anomaly rate of each video (its anomalies in brackets)</figcaption>{svg}</figure>"


def _number(value: Any, fmt: str = "{}") -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _table(rows: list[_Video], judged: bool) -> str:
    head = (
        '<th class="name">video</th><th>status</th><th>objects</th><th>counted</th>'
        + ("<th>anomalies</th><th>rate</th>" if judged else "")
        + '<th>video length</th><th>speed</th><th class="name">notes</th>'
    )
    body = []
    for r in rows:
        status = str(r.entry.get("status") or "?")
        name = esc(r.name)
        name_cell = f'<a href="{esc(r.link)}">{name}</a>' if r.link else name
        cells = [
            f'<td class="name">{name_cell}</td>',
            f'<td class="status-{esc(status)}">{esc(_STATUS_WORDS.get(status, status))}</td>',
            f"<td>{_number(r.get('objects'))}</td>",
            f"<td>{_number(r.get('counted'))}</td>",
        ]
        if judged:
            if r.summary and not r.judged:
                cells.append("<td>not judged</td><td>-</td>")
            else:
                rate = f"{100 * r.rate:.1f} %" if r.rate is not None else "-"
                cells.append(f"<td>{_number(r.get('anomalies'))}</td><td>{rate}</td>")
        video_s = r.get("video_seconds")
        cells.append(f"<td>{esc(seconds_text(video_s)) if isinstance(video_s, (int, float)) else '-'}</td>")
        cells.append(f"<td>{_number(r.get('fps'), '{:.0f} frames/s')}</td>")
        notes = []
        if r.entry.get("error"):
            notes.append(f"{r.entry.get('error_type') or 'error'}: {r.entry['error']}")
        if r.get("ended_early"):
            notes.append("ended early")
        if r.entry.get("worker_losses"):
            notes.append(f"worker lost {r.entry['worker_losses']} time(s)")
        if status in ("done", "skipped") and not r.link:
            notes.append("no report.html (`conveyor-qc report` makes it)")
        cells.append(f'<td class="why">{prose("; ".join(notes))}</td>')
        body.append(f'<tr class="video" data-name="{name}" data-status="{esc(status)}">{"".join(cells)}</tr>')
    return f'<table class="videos" id="videos"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _provenance(folder: Path, batch: dict) -> str:
    rows = [
        ("conveyor-qc version", str(batch.get("conveyor_qc_version") or "unknown")),
        ("results folder", str(batch.get("out") or folder)),
    ]
    cluster = batch.get("cluster")
    if isinstance(cluster, dict):
        where = (
            f"local, {cluster.get('workers')} worker process{'' if cluster.get('workers') == 1 else 'es'}"
            if cluster.get("local")
            else f"the scheduler at {cluster.get('scheduler')}"
        )
        rows.append(("cluster", where))
    model = batch.get("model")
    if isinstance(model, dict):
        sha = model.get("sha256")
        rows.append(("anomaly model", f"{model.get('path')}" + (f" (model.json sha256 {sha[:16]}...)" if sha else "")))
    else:
        rows.append(("anomaly model", "none (not judged)"))
    rows.append(("retries", str(batch.get("retries"))))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    config = batch.get("config")
    settings = ""
    if isinstance(config, dict):
        settings = (
            '<details class="settings" id="settings"><summary>Settings used (the same for every video)</summary>'
            f"<pre>{esc(json.dumps(config, indent=1))}</pre></details>"
        )
    return f'<table class="facts" id="provenance">{body}</table>{settings}'
