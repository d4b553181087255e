"""The report's charts, drawn by matplotlib as SVG and inlined in the page (no file, no script).

Only matplotlib's object API is used (a ``Figure`` saved as SVG): no pyplot, so no backend is
chosen or changed for the process (``run`` calls this from its own thread, and a program using
conveyor-qc keeps its own matplotlib backend). Text stays text (``svg.fonttype = none``: small,
sharp at any zoom, drawn in the page's own sans-serif), ids are made unique per chart (two charts
in one page), and the same figures give the same bytes (``svg.hashsalt``).

Each bar and each point carries an id a test (or a script) can count: ``<chart>-bar-<label>-<i>``
for the bars of the counts, ``<chart>-points`` for the group of the rate's points.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_BARS",
    "Bin",
    "batch_rate_chart",
    "counts_chart",
    "display_bins",
    "per_period",
    "rate_chart",
    "verdict_colours",
]

#: A chart shows at most this many bars: longer runs have their bins merged (several minutes a bar).
MAX_BARS = 180
#: Chart size in inches at 100 px an inch (the page scales it to its width).
WIDTH_IN, HEIGHT_IN = 9.6, 2.8

_INK, _GRID, _MUTED = "#1f2328", "#d8dde3", "#59636e"
_DRAWING = threading.Lock()


def verdict_colours() -> dict[str, str]:
    """The colours of the annotated video's boxes (Okabe and Ito's blue, vermillion and yellow,
    run/outputs.py LABEL_COLOURS) as CSS hex, so that the page and the video agree."""
    from conveyor_qc.run.outputs import LABEL_COLOURS

    return {label: "#{:02x}{:02x}{:02x}".format(*bgr[::-1]) for label, bgr in LABEL_COLOURS.items()}


class Bin:
    """One bar of a chart: objects counted at the line from ``start_s`` for ``seconds``."""

    __slots__ = ("anomaly", "normal", "seconds", "start_s", "total", "unknown")

    def __init__(self, start_s: float, seconds: float, normal: int = 0, anomaly: int = 0, unknown: int = 0):
        self.start_s, self.seconds = float(start_s), float(seconds)
        self.normal, self.anomaly, self.unknown = int(normal), int(anomaly), int(unknown)
        self.total = self.normal + self.anomaly + self.unknown

    @property
    def judged(self) -> int:
        return self.normal + self.anomaly

    @property
    def rate(self) -> float | None:
        """Anomalies among the judged objects of the bin, in [0, 1]; None if none was judged."""
        return self.anomaly / self.judged if self.judged else None


def display_bins(counts_over_time: dict) -> list[Bin]:
    """summary.json's ``counts_over_time`` (run/counts.py: ``bin_seconds`` 1 or 60, ``bins`` of
    ``start_s``, ``total``, ``normal``, ``anomaly``, ``unknown``) as the chart's bars: one per bin,
    or, past MAX_BARS bins, consecutive bins merged (k bins a bar, the fewest that fit)."""
    step = float(counts_over_time.get("bin_seconds") or 1)
    raw = counts_over_time.get("bins") or []
    k = max(1, math.ceil(len(raw) / MAX_BARS))
    bars = []
    for i in range(0, len(raw), k):
        group = raw[i : i + k]
        bars.append(
            Bin(
                group[0].get("start_s", i * step),
                step * len(group),
                sum(int(b.get("normal", 0)) for b in group),
                sum(int(b.get("anomaly", 0)) for b in group),
                sum(int(b.get("unknown", 0)) for b in group),
            )
        )
    return bars


def _time_axis(bars: Sequence[Bin]) -> tuple[float, str]:
    """The x axis's unit for the video's length: (seconds per unit, name)."""
    end = bars[-1].start_s + bars[-1].seconds if bars else 0.0
    if end <= 180:
        return 1.0, "seconds"
    if end <= 3 * 3600:
        return 60.0, "minutes"
    return 3600.0, "hours"


def _figure(height: float = HEIGHT_IN, left: float = 0.75):
    """A figure with one chart, ``left`` inches for the y axis's labels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height), dpi=100)
    # Fixed margins in inches (a constrained layout would cost more than drawing the chart).
    fig.subplots_adjust(left=left / WIDTH_IN, right=1 - 0.35 / WIDTH_IN, bottom=0.6 / height, top=1 - 0.35 / height)
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(_MUTED)
    ax.tick_params(colors=_MUTED, labelcolor=_INK)
    ax.grid(axis="y", color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


_RC = {
    "svg.fonttype": "none",  # text as <text>, in the page's font
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "sans-serif"],
    "font.size": 11,
    "axes.titlesize": 12,
}


def _svg(build, name: str, label: str) -> str:
    """Draw with ``build()`` (returning the figure) under the report's settings; the SVG element alone
    (no XML prolog nor DOCTYPE, which names an external DTD), every id prefixed with ``name``, sized
    by the page, with ``label`` for screen readers."""
    import matplotlib

    rc: Any = {**_RC, "svg.hashsalt": f"conveyor-qc-{name}"}  # (matplotlib types its keys as literals)
    # rc_context changes matplotlib's settings for the whole process and puts back what it found:
    # two charts drawn at once (two runs' reports on threads of one program) took each other's
    # settings and left ours in place for the program's own plots. One chart at a time.
    with _DRAWING, matplotlib.rc_context(rc):
        fig = build()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{name}-{m[1]}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{name}-{m[1]})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{name}-{m[1]}"', svg)
    from html import escape

    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    return f'{head} class="chart" id="{name}" role="img" aria-label="{escape(label)}"{svg[head_end:]}'


def counts_chart(bars: Sequence[Bin], judged: bool, name: str = "counts") -> str:
    """Stacked bars of the objects counted at the line per bin: normal, anomaly, and unknown
    ("not judged" in a run without a model), in the annotated video's colours."""
    colours = verdict_colours()
    unit, unit_name = _time_axis(bars)
    series = [("normal", "normal"), ("anomaly", "anomaly")] if judged else []
    series.append(("unknown", "unknown (not judged)" if judged else "not judged (no model)"))

    def build():
        from matplotlib.patches import Rectangle

        fig, ax = _figure()
        x = [b.start_s / unit for b in bars]
        width = [0.9 * b.seconds / unit for b in bars]
        bottom = [0.0] * len(bars)
        for key, legend in series:
            heights = [float(getattr(b, key)) for b in bars]
            # Rectangles added as they are, not by ax.bar, whose data limits each new patch updated
            # (a quarter of the chart's time, at the end of every run): both axes' limits are set
            # below. The series' first bar carries its name for the legend.
            for i, (left, w, low, h) in enumerate(zip(x, width, bottom, heights)):
                patch = Rectangle((left, low), w, h, facecolor=colours[key], linewidth=0)
                patch.set_label(legend if i == 0 else "_nolegend_")
                patch.set_gid(f"bar-{key}-{i}")
                ax.add_artist(patch)
            bottom = [a + h for a, h in zip(bottom, heights)]
        ax.set_xlabel(f"video time ({unit_name})")
        step = bars[0].seconds if bars else 1.0
        per = per_period(step)
        ax.set_ylabel(f"objects {per}")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(0, max([1.0, *bottom]) * 1.25)
        if bars:
            ax.set_xlim(x[0], (bars[-1].start_s + bars[-1].seconds) / unit)
        ax.legend(loc="upper left", ncols=len(series), frameon=False, fontsize=10, bbox_to_anchor=(0, 1.02))
        return fig

    total = sum(b.total for b in bars)
    return _svg(build, name, f"Bar chart: {total} objects counted at the line over {len(bars)} periods of video")


def per_period(seconds: float) -> str:
    """``per second``, ``per 5 minutes``: how long one bar lasts."""
    if seconds < 60:
        return "per second" if seconds == 1 else f"per {seconds:g} seconds"
    if seconds < 3600:
        return "per minute" if seconds == 60 else f"per {seconds / 60:g} minutes"
    return "per hour" if seconds == 3600 else f"per {seconds / 3600:g} hours"


def rate_chart(bars: Sequence[Bin], overall: float | None, name: str = "rate") -> str:
    """The anomaly rate per bin (anomalies among the judged objects counted in it) as points,
    joined, with the run's overall rate as a dashed line. Bins with no judged object have no point."""
    colours = verdict_colours()
    unit, unit_name = _time_axis(bars)
    points = [((b.start_s + b.seconds / 2) / unit, 100.0 * b.rate) for b in bars if b.rate is not None]

    def build():
        fig, ax = _figure(HEIGHT_IN * 0.85)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(
            xs,
            ys,
            color=colours["anomaly"],
            marker="o",
            markersize=4,
            linewidth=1.2,
            gid="points",
            label=f"anomalies among the objects judged, {per_period(bars[0].seconds if bars else 1)}",
        )
        if overall is not None:
            ax.axhline(
                100 * overall, color=_INK, linestyle="--", linewidth=1, label=f"whole run: {100 * overall:.1f} %"
            )
        ax.set_xlabel(f"video time ({unit_name})")
        ax.set_ylabel("anomaly rate (%)")
        ax.set_ylim(0, 105)
        if bars:
            ax.set_xlim(bars[0].start_s / unit, (bars[-1].start_s + bars[-1].seconds) / unit)
        ax.legend(loc="upper left", ncols=2, frameon=False, fontsize=10, bbox_to_anchor=(0, 1.02))
        return fig

    return _svg(build, name, f"Line chart: the anomaly rate over {len(points)} periods of video")


def batch_rate_chart(
    names: Sequence[str], rates: Sequence[float], anomalies: Sequence[int], name: str = "rates"
) -> str:
    """The anomaly rate of each video of a batch, one horizontal bar each, its count of anomalies beside it."""
    colours = verdict_colours()

    def build():
        shown = [n if len(n) <= 40 else n[:37] + "..." for n in names]
        fig, ax = _figure(min(12.0, 1.1 + 0.32 * len(names)), left=min(3.6, 0.35 + 0.085 * max(map(len, shown))))
        ys = list(range(len(names)))[::-1]
        drawn = ax.barh(ys, [100 * r for r in rates], color=colours["anomaly"], height=0.7)
        for i, patch in enumerate(drawn):
            patch.set_gid(f"bar-{i}")
        for y, r, n in zip(ys, rates, anomalies):
            ax.text(100 * r + 0.8, y, f"{100 * r:.1f} % ({n})", va="center", fontsize=10, color=_INK)
        ax.set_yticks(ys, shown)
        ax.set_xlabel("anomaly rate (% of the objects judged)")
        ax.set_xlim(0, max([10.0, *(100 * r for r in rates)]) * 1.18)
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", color=_GRID, linewidth=0.8)
        return fig

    return _svg(build, name, f"Bar chart: the anomaly rate of each of {len(names)} videos")
