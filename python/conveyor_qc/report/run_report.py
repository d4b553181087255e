"""``report.html`` of one run folder: the page a shift manager reads (docs/report.md).

Made from the folder alone: ``summary.json`` (figures, counts over time, settings, provenance),
``objects.csv`` (the anomalies and their scores), ``crops/`` (their pictures) and the anomaly
model, which draws where it sees each anomaly (:meth:`AnomalyModel.explain`, drawn over the crop by
:func:`conveyor_qc.anomaly.heatmap.overlay`, as `predict --heatmap` and the labelling page do).
Only the crops shown are explained: at most ``limit`` anomalies, the highest scores first.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.anomaly.base import AnomalyModel, ModelError
from conveyor_qc.anomaly.heatmap import TOP, overlay
from conveyor_qc.anomaly.patches import one_blas_thread
from conveyor_qc.crops import CROP_SUFFIXES
from conveyor_qc.report import charts
from conveyor_qc.report.page import (
    REPORT_NAME,
    ReportError,
    clock,
    esc,
    jpeg_data_uri,
    local_time,
    prose,
    relative_link,
    render,
    seconds_text,
    write_page,
)
from conveyor_qc.version import __version__

__all__ = ["GALLERY_LIMIT", "THUMB", "write_run_report"]

#: Anomalies shown with their pictures, the highest scores first; the others are counted.
GALLERY_LIMIT = 60
#: Pictures are inlined at most this many px a side (shown at about 170 px; sharp on a 1.5x screen).
THUMB = 256
SUMMARY_NAME, OBJECTS_NAME, CROPS_NAME, VIDEO_NAME = "summary.json", "objects.csv", "crops", "annotated.mp4"


def write_run_report(
    run_dir: str | Path,
    model: AnomalyModel | str | Path | None = None,
    *,
    out: str | Path | None = None,
    limit: int = GALLERY_LIMIT,
) -> Path:
    """Write ``run_dir/report.html`` (or ``out``), atomically, and return its path.

    ``model``: the anomaly model that draws the heat maps, an :class:`AnomalyModel` or a model
    folder; None: the folder summary.json names (``model.path``) if it is still there and
    unchanged (the same model.json), else the anomalies are shown without heat maps and the page
    says why. A folder that is not a finished run (no summary.json), or a damaged summary, is a
    :class:`ReportError`; a model folder given that cannot be loaded, a ``ModelError``.
    """
    folder = Path(run_dir)
    summary = read_summary(folder)
    rows, rows_note = _read_objects(folder)
    page = Path(out) if out is not None else folder / REPORT_NAME
    judged = _judged(summary)
    anomalies = sorted(
        (r for r in rows if r.get("label") == "anomaly"),
        key=lambda r: (-_score(r), _int(r.get("track_id"))),
    )
    shown = anomalies[: max(0, int(limit))]
    gallery = _Gallery(folder, summary, shown)
    if shown and gallery.have_crops:
        with _resolve_model(summary, model) as (resolved, model_note):
            gallery.draw(resolved, model_note)
    text = render(
        "template.html",
        title=esc(f"Quality report: {_source_name(summary)}"),
        heading=esc(_source_name(summary)),
        subtitle=_subtitle(summary, folder),
        version=esc(__version__),
        status=_status(summary, rows_note),
        figures=_figures(summary, judged),
        charts=_charts(summary, judged),
        gallery_heading=esc(f"Anomalies ({len(anomalies)})" if judged else "Anomalies: not judged"),
        gallery=gallery.html(len(anomalies), judged, limit),
        video=_video(folder, summary, page),
        provenance=_provenance(folder, summary),
        settings=_settings(summary),
        footer=_footer(folder),
    )
    return write_page(page, text)


# --- reading the folder ----------------------------------------------------------------------------


def read_summary(folder: Path) -> dict:
    """The run's summary.json, or a :class:`ReportError` that says what the folder is instead."""
    if not folder.exists():
        raise ReportError(f"run folder {folder} does not exist")
    if not folder.is_dir():
        raise ReportError(f"{folder} is a file, not a run folder")
    path = folder / SUMMARY_NAME
    if not path.is_file():
        if (folder / ".run.journal").exists():
            raise ReportError(
                f"{folder}: the run has not finished (no {SUMMARY_NAME}): it is still running, or was "
                f"killed (`conveyor-qc recover {folder}` finishes it)"
            )
        if (folder / "batch.json").is_file():
            raise ReportError(f"{folder} is a batch folder: its report is made by `conveyor-qc report {folder}`")
        raise ReportError(
            f"{folder} is not a run folder (no {SUMMARY_NAME}): give the --out folder of `conveyor-qc run`"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: damaged ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("objects"), int):
        raise ReportError(f"{path}: not the summary of a conveyor-qc run")
    return summary


def _read_objects(folder: Path) -> tuple[list[dict], str | None]:
    """objects.csv's rows (and a note for the page if it cannot be read)."""
    path = folder / OBJECTS_NAME
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh)), None
    except FileNotFoundError:
        return [], f"{OBJECTS_NAME} is missing from the folder: no list of anomalies."
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [], f"{OBJECTS_NAME} cannot be read ({exc}): no list of anomalies."


def _judged(summary: dict) -> bool:
    from conveyor_qc.run.job import judged  # the one rule of run, recover and batch

    return judged(summary)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _score(row: dict) -> float:
    try:
        value = float(row.get("score") or "nan")
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def _source_name(summary: dict) -> str:
    source = str(summary.get("source") or "unknown source")
    return Path(source).name or source if "://" not in source else source


def _fps(summary: dict) -> float:
    fps = summary.get("video_fps")
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else 30.0


# --- the model and the gallery ---------------------------------------------------------------------


class _resolve_model:
    """The model that draws the heat maps, and a note for the page when there is none; a model
    loaded here is closed on leaving."""

    def __init__(self, summary: dict, model: AnomalyModel | str | Path | None):
        self.summary, self.given = summary, model
        self.loaded: AnomalyModel | None = None

    def __enter__(self) -> tuple[AnomalyModel | None, str | None]:
        from conveyor_qc.anomaly.model import load_model
        from conveyor_qc.run.provenance import model_identity

        given, recorded = self.given, self.summary.get("model")
        if given is not None and hasattr(given, "predict"):
            return given, None  # type: ignore[return-value]
        if given is not None:  # a folder named by the caller: its errors are the caller's to see
            self.loaded = load_model(given)
            note = None
            sha = (recorded or {}).get("sha256") if isinstance(recorded, dict) else None
            if sha and (model_identity(given) or {}).get("sha256") != sha:
                note = f"The heat maps are drawn by the model in {given}, not the one that judged this run."
            return self.loaded, note
        how = "`conveyor-qc report RUN_DIR --model MODEL_DIR` draws them with a model you name."
        if not isinstance(recorded, dict) or not recorded.get("path"):
            return None, f"No heat maps: the run does not name its model's folder. {how}"
        path = Path(recorded["path"])
        if not (path / "model.json").is_file():
            return None, f"No heat maps: the model folder {path} is no longer there. {how}"
        if recorded.get("sha256") and (model_identity(path) or {}).get("sha256") != recorded["sha256"]:
            return None, f"No heat maps: the model in {path} has changed since this run. {how}"
        try:
            self.loaded = load_model(path)
        except ModelError as exc:
            return None, f"No heat maps: the model cannot be loaded ({exc}). {how}"
        return self.loaded, None

    def __exit__(self, *exc: object) -> None:
        if self.loaded is not None:
            self.loaded.close()


@dataclass
class _Card:
    row: dict
    crop: Path | None = None
    picture: str | None = None  # data: URI of the crop
    heat: str | None = None  # data: URI of the crop with the heat map over it
    heat_score: float | None = None  # the model's score of that one crop


def _crop_files(folder: Path) -> list[Path]:
    """An object's crop files in frame order (``<frame>.jpg``, 6 digits or more)."""
    try:
        files = [p for p in folder.iterdir() if p.suffix.lower() in CROP_SUFFIXES]
    except OSError:
        return []
    return sorted(files, key=lambda p: (_int(p.stem, 1 << 62), p.name))


def _read(path: Path) -> np.ndarray | None:
    from conveyor_qc.run.video import quiet_opencv_log

    with quiet_opencv_log():
        try:
            return cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error:
            return None


class _Gallery:
    """The anomalies shown: one crop each (the middle one of its path: in full view, away from the
    edges where it enters and leaves), beside the same crop with the model's heat map over it."""

    def __init__(self, folder: Path, summary: dict, rows: list[dict]):
        self.summary = summary
        self.fps = _fps(summary)
        self.crops_dir = folder / CROPS_NAME
        self.have_crops = self.crops_dir.is_dir()
        self.cards = [_Card(r) for r in rows]
        self.notes: list[str] = []
        self.heat_maps = False

    def draw(self, model: AnomalyModel | None, model_note: str | None) -> None:
        if model_note:
            self.notes.append(model_note)
        explainer = model if getattr(model, "has_heat_maps", False) else None  # any object with predict()
        if model is not None and explainer is None:
            self.notes.append(
                "No heat maps: this model says only whether an object is an anomaly, not where "
                "(a Lookout for Vision model, or a local model made before heat maps)."
            )
        # The cards on a few threads: reading, scaling and encoding the pictures and most of the
        # model's work on a crop are OpenCV's and the core's, which let other threads run. At the
        # end of a run, where report.html is the last thing made, the other cores are idle: on 2
        # cores the heat maps of 11 anomalies took 100 ms one after the other and 65 ms on two
        # threads (issue 22). The outer BLAS limit keeps the bank's own limits (one per product,
        # patches.one_blas_thread) from putting back each other's setting out of order.
        from conveyor_qc.run.video import usable_cores

        workers = max(1, min(usable_cores(), len(self.cards)))
        with one_blas_thread(), ThreadPoolExecutor(workers, thread_name_prefix="report") as pool:
            drawn = list(pool.map(lambda card: self._draw_card(card, explainer), self.cards))
        failed = next((error for error in drawn if error is not None), None)
        if failed is not None:  # all or none: a page whose heat maps stop halfway would mislead
            self.notes.append(f"No heat maps: the model failed to draw them ({type(failed).__name__}: {failed}).")
            for card in self.cards:
                card.heat = card.heat_score = None
        self.heat_maps = any(card.heat is not None for card in self.cards)

    def _draw_card(self, card: _Card, model: AnomalyModel | None) -> Exception | None:
        """The card's crop (the middle one of its path) and, with ``model``, its heat map; the
        model's error, if it failed."""
        files = _crop_files(self.crops_dir / str(_int(card.row.get("track_id"), -1)))
        if not files:
            return None
        card.crop = files[len(files) // 2]
        image = _read(card.crop)
        if image is None:
            return None
        card.picture = jpeg_data_uri(image, THUMB)
        if model is None:
            return None
        try:
            ((verdict, heat),) = model.explain([image])
        except Exception as exc:  # noqa: BLE001  the page is still worth having without them
            return exc
        if heat is not None:
            card.heat = jpeg_data_uri(overlay(image, heat), THUMB)
            card.heat_score = verdict.score
        return None

    def html(self, total: int, judged: bool, limit: int) -> str:
        if not judged:
            return (
                '<p class="note" id="not-judged">Not judged: this run had no anomaly model (<code>--model</code>), '
                "so no object was called normal or an anomaly. Its objects were counted and cut out only.</p>"
            )
        if total == 0:
            return '<p class="good" id="no-anomalies">No anomaly: the model found every object it judged normal.</p>'
        parts = []
        shown = len(self.cards)
        if shown < total:
            parts.append(
                f'<p class="note" id="left-out">The {shown} anomalies with the highest scores are shown; '
                f"{total - shown} more, with lower scores, are left out (every one is in {OBJECTS_NAME}).</p>"
                if shown
                else f'<p class="note" id="left-out">{total} anomalies, none shown (limit {limit}): every one is '
                f"in {OBJECTS_NAME}.</p>"
            )
        if not self.have_crops:
            parts.append(
                '<p class="note" id="no-crops">No pictures: this run saved no crops (<code>--no-crops</code>). '
                f"The anomalies' numbers and scores are below and in {OBJECTS_NAME}.</p>"
            )
        parts += [f'<p class="note model-note">{prose(n)}</p>' for n in self.notes]
        if self.heat_maps:
            parts.append(_legend())
        parts.append('<div class="gallery">')
        parts += [self._card(c) for c in self.cards]
        parts.append("</div>")
        return "\n".join(parts)

    def _card(self, card: _Card) -> str:
        row = card.row
        tid = _int(row.get("track_id"), -1)
        score = _score(row)
        first, last = _int(row.get("first_frame")), _int(row.get("last_frame"))
        when = f"{clock((first - 1) / self.fps)}-{clock((last - 1) / self.fps)}"
        if card.picture is None:
            pictures = '<div class="nopic">no picture</div>'
        else:
            crop_name = f"{CROPS_NAME}/{tid}/{card.crop.name}" if card.crop else ""
            pictures = (
                f'<figure><img class="crop" src="{card.picture}" alt="object {tid}" title="{esc(crop_name)}">'
                "<figcaption>the object</figcaption></figure>"
            )
            if card.heat is not None:
                view = f" (this view: {card.heat_score:.2f})" if card.heat_score is not None else ""
                pictures += (
                    f'<figure><img class="heat" src="{card.heat}" alt="where the model sees the anomaly on object {tid}">'
                    f"<figcaption>where the model looks{esc(view)}</figcaption></figure>"
                )
        return (
            f'<article class="card" id="obj-{tid}" data-id="{tid}" data-score="{score:.4f}">'
            f'<div class="pics">{pictures}</div>'
            f'<p class="what"><span class="num">#{tid}</span> <span class="score">score {score:.2f}</span> '
            f'<span class="when">seen {esc(when)}</span></p></article>'
        )


def _legend() -> str:
    """What the heat maps' colours mean, drawn by the same code as the heat maps: a ramp of evidence
    from none to TOP times the edge of normal over a grey strip."""
    width = 360
    strip = np.full((14, width, 3), 150, np.uint8)
    heat = np.tile(np.linspace(0.0, TOP, width, dtype=np.float32), (14, 1))
    ramp = jpeg_data_uri(overlay(strip, heat), width, quality=90)
    return (
        '<div class="legend" id="heat-legend"><p>Beside each anomaly, the same picture with the model\'s '
        "heat map over it: the brighter the colour, the more unusual that part of the object looks "
        "against the normal objects the model learnt from. No colour: looks normal.</p>"
        f'<div class="ramp"><img src="{ramp}" alt="colour scale, from normal to very unusual">'
        f'<span style="left:0">normal</span><span class="mid" style="left:{100 / TOP:.0f}%">edge of normal</span>'
        f'<span style="right:0">{TOP:g}x the edge</span></div></div>'
    )


# --- the other parts of the page -------------------------------------------------------------------


def _subtitle(summary: dict, folder: Path) -> str:
    src = summary.get("source") or "unknown"
    return f"Video <code>{esc(src)}</code>, results in <code>{esc(folder)}</code>"


def _status(summary: dict, rows_note: str | None) -> str:
    """Complete, interrupted, ended early or recovered, in words; and the run's warnings."""
    kind, lines = "ok", []
    stopped_by = summary.get("stopped_by")
    if summary.get("recovered"):
        kind = "warn"
        lines.append(
            f"Recovered: the run was stopped before it finished ({esc(summary.get('reason') or 'killed')}) and its "
            "folder was finished afterwards. The figures are those of the objects that had left the belt "
            "by then; the counts at the line over time were not saved."
        )
    elif summary.get("interrupted"):
        kind = "warn"
        by = {"SIGINT": "Ctrl-C", "SIGTERM": "a stop request (SIGTERM)"}.get(str(stopped_by), "an interruption")
        lines.append(
            f"Interrupted by {esc(by)} after {esc(seconds_text(summary.get('video_seconds')))} of video: "
            "the figures cover what was seen until then."
        )
    elif summary.get("ended_early"):
        kind = "warn"
        reason = summary.get("stop_reason") or "the video ended before the frames it announced"
        lines.append(f"Ended early: {esc(reason)}. The figures cover what could be read.")
    elif summary.get("complete"):
        lines.append("Complete: the whole video was processed.")
    else:
        kind = "warn"
        lines.append("Not complete.")
    if summary.get("video_lost"):
        lines.append("The annotated video was lost when the run stopped.")
    for warning in (summary.get("mask") or {}).get("warnings") or []:
        kind = "warn"
        lines.append(f"Warning: {esc(warning)}")
    if summary.get("reconnects"):
        lines.append(f"The stream was lost and reconnected {esc(summary['reconnects'])} time(s).")
    if rows_note:
        kind = "warn"
        lines.append(esc(rows_note))
    body = "".join(f"<p>{line}</p>" for line in lines)
    return f'<section class="status {kind}" id="status" aria-label="status">{body}</section>'


def _figure(label: str, value: str, detail: str = "", key: str = "", cls: str = "") -> str:
    return (
        f'<div class="figure {cls}" data-key="{esc(key)}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div><div class="detail">{esc(detail)}</div></div>'
    )


def _figures(summary: dict, judged: bool) -> str:
    n = int(summary.get("objects") or 0)
    anomalies, normal, unknown = (int(summary.get(k) or 0) for k in ("anomalies", "normal", "unknown"))
    counts = summary.get("counts") or {}
    cards = [_figure("Objects", f"{n}", "seen on the belt and tracked", "objects")]
    if counts:
        at_line = int(counts.get("total") or 0)
        split = (
            f"{counts.get('normal', 0)} normal, {counts.get('anomaly', 0)} anomalies"
            + (f", {counts['unknown']} unknown" if counts.get("unknown") else "")
            if judged
            else "not judged"
        )
        cards.append(_figure("Counted at the line", f"{at_line}", split, "counted"))
    if judged:
        seen = anomalies + normal
        of = f"of the {seen} objects judged" if seen else "no object judged"
        cards.append(_figure("Anomalies", f"{anomalies}", of, "anomalies", "anomaly"))
        cards.append(_figure("Anomaly rate", f"{100 * anomalies / seen:.1f} %" if seen else "-", "", "rate", "anomaly"))
        cards.append(_figure("Normal", f"{normal}", "", "normal", "normal"))
        cards.append(_figure("Unknown", f"{unknown}", "not judged: never wholly in view", "unknown", "unknown"))
    else:
        cards.append(_figure("Anomalies", "not judged", "no anomaly model was given", "anomalies", "unknown text"))
        cards.append(_figure("Not judged", f"{unknown or n}", "every object", "unknown", "unknown"))
    video_s, proc_s = summary.get("video_seconds"), summary.get("processing_seconds")
    if isinstance(summary.get("fps"), (int, float)):
        frames = summary.get("frames", "?")
        cards.append(_figure("Speed", f"{summary['fps']:.0f}", f"frames a second ({frames} frames)", "fps"))
    if isinstance(video_s, (int, float)) and isinstance(proc_s, (int, float)):
        pace = f"{video_s / proc_s:.1f}x real time" if proc_s > 0 else ""
        cards.append(
            _figure("Processing time", seconds_text(proc_s), f"for {seconds_text(video_s)} of video; {pace}", "time")
        )
    reject = summary.get("reject")
    if isinstance(reject, dict):  # a reject gate downstream (docs/line.md)
        events, late = int(reject.get("events") or 0), int(reject.get("late") or 0)
        detail = f"for the gate {reject.get('line_px', 0):g} px past the view; " + (
            f"{late} too late for it" if late else "all in time"
        )
        cards.append(_figure("Reject signals", f"{events}", detail, "reject", "anomaly" if late else ""))
    return '<div class="figures">' + "".join(cards) + "</div>"


def _charts(summary: dict, judged: bool) -> str:
    cot = summary.get("counts_over_time")
    if not isinstance(cot, dict) or not cot.get("bins"):
        return '<p class="note" id="no-chart">No counts over time: this run did not record them (a recovered run).</p>'
    bars = charts.display_bins(cot)
    per = charts.per_period(bars[0].seconds)
    merged = len(bars) < len(cot["bins"])
    note = (
        f'<p class="note">{len(cot["bins"])} periods of {cot.get("bin_seconds", 1)} s, shown {per}.</p>'
        if merged
        else ""
    )
    parts = [
        f"<figure class='chart-box'><figcaption>Objects counted at the line, {esc(per)}</figcaption>",
        charts.counts_chart(bars, judged),
        f"{note}</figure>",
    ]
    if judged:
        seen = int(summary.get("anomalies") or 0) + int(summary.get("normal") or 0)
        overall = int(summary.get("anomalies") or 0) / seen if seen else None
        parts += [
            f"<figure class='chart-box'><figcaption>Anomaly rate, {esc(per)} (of the objects counted at "
            "the line that were judged)</figcaption>",
            charts.rate_chart(bars, overall),
            "</figure>",
        ]
    else:
        parts.append('<p class="note">No anomaly rate: the objects were not judged.</p>')
    parts.append(_numbers_table(bars, judged))
    return "\n".join(parts)


def _numbers_table(bars: list[charts.Bin], judged: bool) -> str:
    """The charts' numbers, folded away (for reading exact figures, and for screen readers)."""
    head = "<th>from</th><th>counted</th>" + ("<th>normal</th><th>anomalies</th><th>rate</th>" if judged else "")
    rows = []
    for b in bars:
        cells = f"<td>{clock(b.start_s)}</td><td>{b.total}</td>"
        if judged:
            rate = f"{100 * b.rate:.0f} %" if b.rate is not None else "-"
            cells += f"<td>{b.normal}</td><td>{b.anomaly}</td><td>{rate}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return (
        '<details class="numbers"><summary>The numbers behind the charts</summary>'
        f'<table id="over-time-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></details>'
    )


def _video(folder: Path, summary: dict, page: Path) -> str:
    video = folder / VIDEO_NAME
    if video.is_file():
        link = esc(relative_link(video, page))
        size = ""
        scale = ((summary.get("config") or {}).get("output") or {}).get("video_scale")
        if isinstance(summary.get("width"), int) and isinstance(summary.get("height"), int) and scale:
            size = f' width="{round(summary["width"] * scale)}" height="{round(summary["height"] * scale)}"'
        return (
            f'<video id="annotated" controls preload="metadata"{size} src="{link}">Your browser cannot play '
            f'it here: <a href="{link}">open {VIDEO_NAME}</a>.</video>'
            f"<p>Every box coloured by its verdict (blue normal, vermillion anomaly, yellow not judged), "
            f'its number, and the counting line. <a href="{link}" id="video-link">Open or download '
            f"{VIDEO_NAME}</a>.</p>"
        )
    output = (summary.get("config") or {}).get("output") or {}
    if output.get("video") is False:
        why = "the run was made without one (--no-video or output.video = false)"
    elif summary.get("video_lost") or summary.get("recovered"):
        why = "it was lost when the run stopped"
    else:
        why = f"{VIDEO_NAME} is not in the folder (a run with --no-video writes none)"
    return f'<p class="note" id="no-video">No annotated video: {esc(why)}.</p>'


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)  # pragma: no cover


def _provenance(folder: Path, summary: dict) -> str:
    rows: list[tuple[str, str]] = [("conveyor-qc version", str(summary.get("version") or "unknown"))]
    rows.append(("video", str(summary.get("source") or "unknown")))
    kind = summary.get("source_kind")
    if kind:
        rows.append(("kind of input", str(kind)))
    ident = summary.get("input")
    if isinstance(ident, dict):
        modified = ident.get("mtime_ns")
        when = local_time(modified / 1e9) if isinstance(modified, (int, float)) else "?"
        rows.append(("video file", f"{_size(ident.get('bytes'))}, modified {when}"))
    if summary.get("width"):
        rows.append(
            ("video size", f"{summary.get('width')}x{summary.get('height')} at {summary.get('video_fps', '?')} fps")
        )
    if summary.get("direction"):
        rows.append(("belt direction", str(summary["direction"]).replace("_", " ")))
    model = summary.get("model")
    if isinstance(model, dict):
        sha = model.get("sha256")
        rows.append(
            (
                "anomaly model",
                f"{model.get('path') or 'given through the API'}"
                + (f" (model.json sha256 {sha[:16]}...)" if sha else ""),
            )
        )
    elif "model" in summary:
        rows.append(("anomaly model", "none (not judged)"))
    if summary.get("started"):
        rows.append(("run started", local_time(summary["started"])))
    if summary.get("recovered_at"):
        rows.append(("recovered", local_time(summary["recovered_at"])))
    with contextlib.suppress(OSError):
        rows.append(("results written", local_time((folder / SUMMARY_NAME).stat().st_mtime)))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts" id="provenance">{body}</table>'


def _settings(summary: dict) -> str:
    config = summary.get("config")
    if not isinstance(config, dict):
        return '<p class="note">The settings are not recorded.</p>'
    from conveyor_qc.config import Config

    defaults = json.loads(json.dumps(Config().to_dict()))
    changed = []
    sections = []
    for section, values in config.items():
        if not isinstance(values, dict):
            continue
        rows = []
        for key, value in values.items():
            default = (defaults.get(section) or {}).get(key, value)
            differs = value != default
            if differs:
                changed.append(f"{section}.{key}")
            shown = json.dumps(value) if not isinstance(value, str) else value
            cls = ' class="changed"' if differs else ""
            rows.append(f"<tr{cls}><th>{esc(key)}</th><td>{esc(shown)}</td></tr>")
        sections.append(f"<h4>{esc(section)}</h4><table class='facts'>{''.join(rows)}</table>")
    said = f"{len(changed)} changed from the defaults: {', '.join(changed)}" if changed else "all at their defaults"
    return (
        f'<details class="settings" id="settings"><summary>Settings used ({esc(said)})</summary>'
        f"<p>Each setting is explained in docs/settings.md; changed ones are marked.</p>{''.join(sections)}</details>"
    )


def _footer(folder: Path) -> str:
    return (
        f"Made by conveyor-qc {esc(__version__)} on {esc(local_time(time.time()))}. "
        f"<code>conveyor-qc report {esc(folder)}</code> makes it again."
    )
