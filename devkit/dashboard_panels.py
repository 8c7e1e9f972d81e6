"""The matplotlib side of devkit/dashboards.py: one function per Grafana panel type, each drawing
a panel's query answers into its box of the dashboard's grid, in Grafana's dark theme.

Only the panel types and options ChatWarden's dashboards use are drawn (timeseries, stat with
value mappings and threshold colours, bar gauge, table with merge/organize, heatmap of ``le``
buckets, rows); anything else says so in its box rather than guessing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devkit.dashboards import (
    FIGURE_WIDTH_IN,
    GRID,
    MUTED,
    NAMED_COLORS,
    PALETTE,
    PANEL,
    TEXT,
    Answer,
    Box,
    Series,
    Window,
    figure_height,
    format_value,
    last_value,
    legend,
    mapped,
    table_rows,
    threshold_color,
)


@dataclass
class Canvas:
    """The figure being drawn and what every panel needs to place itself in it."""

    figure: Any
    units: int
    window: Window

    @property
    def height_in(self) -> float:
        return figure_height(self.units)

    def inches(self, box: Box) -> tuple[float, float]:
        return box.width * FIGURE_WIDTH_IN, box.height * self.height_in

    def axes(self, box: Box, left: float, bottom: float, right: float, top: float) -> Any:
        """Axes inside ``box`` with margins in inches (tick labels, title, legend)."""
        return self.figure.add_axes(
            (
                box.left + left / FIGURE_WIDTH_IN,
                box.bottom + bottom / self.height_in,
                max(0.01, box.width - (left + right) / FIGURE_WIDTH_IN),
                max(0.005, box.height - (bottom + top) / self.height_in),
            )
        )


def frame(canvas: Canvas, box: Box, title: str) -> None:
    from matplotlib.patches import Rectangle

    fig = canvas.figure
    fig.add_artist(
        Rectangle(
            (box.left, box.bottom),
            box.width,
            box.height,
            transform=fig.transFigure,
            facecolor=PANEL,
            edgecolor=GRID,
            linewidth=0.8,
            zorder=-2,  # under the panel's axes (zorder 0)
        )
    )
    fig.text(
        box.left + 0.08 / FIGURE_WIDTH_IN,
        box.bottom + box.height - 0.07 / canvas.height_in,
        title,
        color=TEXT,
        fontsize=9,
        fontweight="bold",
        va="top",
        ha="left",
    )


def message(canvas: Canvas, box: Box, text: str, color: str = MUTED) -> None:
    canvas.figure.text(
        box.left + box.width / 2,
        box.bottom + box.height / 2 - 0.1 / canvas.height_in,
        text,
        color=color,
        fontsize=9,
        ha="center",
        va="center",
        wrap=True,
    )


def _empty_or_error(canvas: Canvas, box: Box, answers: Sequence[Answer]) -> bool:
    """Write "No data" or the first query error in the panel; True when there was nothing else."""
    errors = [a.error for a in answers if a.error]
    if errors:
        message(canvas, box, "query error: " + errors[0][:150], NAMED_COLORS["red"])
        return True
    if not any(a.series for a in answers):
        message(canvas, box, "No data")
        return True
    return False


NICE_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def time_locator(window: Window, most: int) -> Any:
    """Ticks on round times, at most ``most`` of them (matplotlib's AutoDateLocator warns and
    falls back on ranges of a few minutes)."""
    import matplotlib.dates as mdates

    span = window.end - window.start
    step = next((n for n in NICE_STEPS_S if span / n <= most), None)
    if step is None:
        return mdates.AutoDateLocator(maxticks=most)
    if step < 60:
        return mdates.SecondLocator(bysecond=range(0, 60, step), tz=UTC)
    if step < 3600:
        return mdates.MinuteLocator(byminute=range(0, 60, step // 60), tz=UTC)
    return mdates.HourLocator(byhour=range(0, 24, step // 3600), tz=UTC)


ROW_IN = 0.19  # a legend row


def legend_entries(series: Sequence[Series], fits: int) -> tuple[list[int], str]:
    """Which series the legend lists (indexes) and the line that stands for the rest, if any.

    Series initialised at start stay at zero when their event never happens (a failed action,
    a platform not used): when the legend cannot hold every series, it lists the ones that
    moved and counts the rest."""
    if len(series) <= fits:
        return list(range(len(series))), ""
    moved = [i for i, s in enumerate(series) if any(v != 0 and not math.isnan(v) for v in s.values)]
    listed = moved[: fits - 1]
    rest = len(series) - len(listed)
    zero = " (at zero throughout)" if len(moved) <= len(listed) else ""
    return listed, f"... and {rest} more series{zero}"


def draw_timeseries(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], answers: Sequence[Answer]
) -> None:
    import matplotlib.dates as mdates
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    named = [(legend(a.legend_format, s.labels, a.expr), s) for a in answers for s in a.series]
    named = [(name, s) for name, s in named if any(not math.isnan(v) for v in s.values)]
    if _empty_or_error(canvas, box, answers) or not named:
        if named == [] and not any(a.error for a in answers) and any(a.series for a in answers):
            message(canvas, box, "No data (NaN only)")
        return
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit")
    width_in, height_in = canvas.inches(box)
    columns = max(1, int(width_in // 2.3))
    fits = max(columns, int((height_in * 0.4) // ROW_IN) * columns)
    listed, more = legend_entries([s for _, s in named], fits)
    legend_in = math.ceil((len(listed) + bool(more)) / columns) * ROW_IN + 0.05
    ax = canvas.axes(box, left=0.62, bottom=0.28 + legend_in, right=0.15, top=0.32)
    ax.set_facecolor(PANEL)
    handles = []
    for index, (name, series) in enumerate(named):
        times = [datetime.fromtimestamp(t, UTC) for t in series.times]
        (line,) = ax.plot(
            times, series.values, color=PALETTE[index % len(PALETTE)], linewidth=1.2, label=name
        )
        handles.append(line)
    ax.set_xlim(
        datetime.fromtimestamp(canvas.window.start, UTC),
        datetime.fromtimestamp(canvas.window.end, UTC),
    )
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    ax.xaxis.set_major_locator(time_locator(canvas.window, max(3, int(width_in // 1.1))))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    if defaults.get("min") is not None or unit in ("percentunit", "ops", "s"):
        ax.set_ylim(bottom=defaults.get("min", 0))
    ax.tick_params(colors=MUTED, labelsize=7, length=2)
    ax.grid(True, color=GRID, linewidth=0.6)
    for spine in ax.spines.values():
        spine.set_visible(False)
    shown = [handles[i] for i in listed]
    labels = [h.get_label() for h in shown]
    if more:
        shown.append(Line2D([], [], alpha=0))
        labels.append(more)
    canvas.figure.legend(
        shown,
        labels,
        loc="upper left",
        ncol=columns,
        fontsize=7,
        frameon=False,
        labelcolor=TEXT,
        handlelength=1.2,
        columnspacing=1.0,
        borderaxespad=0,
        bbox_to_anchor=(
            box.left + 0.1 / FIGURE_WIDTH_IN,
            box.bottom + (legend_in + 0.02) / canvas.height_in,
        ),
    )


def _stat_cells(count: int, width_in: float, height_in: float) -> tuple[int, int]:
    """Columns and rows for ``count`` values: as close to square cells as the panel allows."""
    columns = max(1, min(count, round(math.sqrt(count * width_in / max(height_in, 0.1)))))
    return columns, math.ceil(count / columns)


def draw_stat(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], answers: Sequence[Answer]
) -> None:
    from matplotlib.patches import Rectangle

    if _empty_or_error(canvas, box, answers):
        return
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    options = panel.get("options", {})
    with_name = options.get("textMode") == "value_and_name" or (
        options.get("textMode") in (None, "auto") and sum(len(a.series) for a in answers) > 1
    )
    values = [
        (legend(a.legend_format, s.labels, a.expr), last_value(s))
        for a in answers
        for s in a.series
    ]
    width_in, height_in = canvas.inches(box)
    inner_w, inner_h = width_in - 0.16, height_in - 0.4
    columns, rows = _stat_cells(len(values), inner_w, inner_h)
    cell_w, cell_h = inner_w / columns, inner_h / rows
    fig = canvas.figure
    for index, (name, value) in enumerate(values):
        text, color = mapped(value, defaults)
        text = text or format_value(value, defaults.get("unit"), defaults.get("decimals"))
        color = color or threshold_color(value, defaults)
        x_in = 0.08 + (index % columns) * cell_w
        y_in = 0.08 + (rows - 1 - index // columns) * cell_h
        left = box.left + x_in / FIGURE_WIDTH_IN
        bottom = box.bottom + y_in / canvas.height_in
        w, h = (cell_w - 0.05) / FIGURE_WIDTH_IN, (cell_h - 0.05) / canvas.height_in
        background = options.get("colorMode") == "background"
        if background:
            fig.add_artist(
                Rectangle(
                    (left, bottom),
                    w,
                    h,
                    transform=fig.transFigure,
                    facecolor=color,
                    edgecolor="none",
                    alpha=0.85,
                    zorder=-1,
                )
            )
        ink = "#ffffff" if background else color
        size = max(7.0, min(26.0, cell_h * 26, cell_w * 60 / max(len(text), 3)))
        if with_name:
            fig.text(
                left + w / 2,
                bottom + h * 0.78,
                name,
                color=ink,
                # A character is about 0.6 em wide: the name fits its cell.
                fontsize=max(5.0, min(8.0, size * 0.5, (cell_w - 0.1) * 72 / (0.6 * len(name)))),
                ha="center",
                va="center",
                clip_on=True,
            )
            fig.text(
                left + w / 2,
                bottom + h * 0.36,
                text,
                color=ink,
                fontsize=size * 0.8,
                fontweight="bold",
                ha="center",
                va="center",
            )
        else:
            fig.text(
                left + w / 2,
                bottom + h / 2,
                text,
                color=ink,
                fontsize=size,
                fontweight="bold",
                ha="center",
                va="center",
            )


def draw_bargauge(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], answers: Sequence[Answer]
) -> None:
    if _empty_or_error(canvas, box, answers):
        return
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    bars = sorted(
        (
            (legend(a.legend_format, s.labels, a.expr), last_value(s))
            for a in answers
            for s in a.series
        ),
        key=lambda item: -item[1] if not math.isnan(item[1]) else 0,
    )
    ax = canvas.axes(box, left=1.5, bottom=0.12, right=0.8, top=0.35)
    ax.set_facecolor(PANEL)
    names = [name for name, _ in bars][::-1]
    values = [0.0 if math.isnan(v) else v for _, v in bars][::-1]
    color = threshold_color(max(values), defaults)
    ax.barh(names, values, color=color, height=0.7)
    ax.set_xlim(left=defaults.get("min", 0), right=max(values) * 1.02 or 1)
    for y, value in enumerate(values):
        ax.text(
            max(values) * 1.03 or 1,
            y,
            format_value(value, defaults.get("unit"), defaults.get("decimals")),
            color=TEXT,
            fontsize=8,
            va="center",
            ha="left",
            clip_on=False,
        )
    ax.tick_params(colors=TEXT, labelsize=8, length=0)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_table(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], answers: Sequence[Answer]
) -> None:
    if _empty_or_error(canvas, box, answers):
        return
    columns, rows = table_rows(answers, panel.get("transformations", []))
    width_in, height_in = canvas.inches(box)
    line_in = 0.22
    fits = max(1, int((height_in - 0.45) // line_in) - 1)
    if len(rows) > fits:
        rows = [
            *rows[: fits - 1],
            [f"... {len(rows) - fits + 1} more rows"] + [""] * (len(columns) - 1),
        ]
    column_w = (width_in - 0.2) / max(1, len(columns))
    fig = canvas.figure
    for r, row in enumerate([columns, *rows]):
        y = box.bottom + box.height - (0.42 + r * line_in) / canvas.height_in
        for c, cell in enumerate(row):
            x = box.left + (0.1 + c * column_w) / FIGURE_WIDTH_IN
            limit = max(4, int(column_w * 13))
            shown = cell if len(cell) <= limit else cell[: limit - 1] + "…"
            fig.text(
                x,
                y,
                shown,
                color=MUTED if r == 0 else TEXT,
                fontsize=8,
                va="top",
                ha="left",
                fontweight="bold" if r == 0 else "normal",
            )


def _le(series: Series) -> float:
    bound = series.labels.get("le", "+Inf")
    return math.inf if bound in ("+Inf", "Inf") else float(bound)


def draw_heatmap(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], answers: Sequence[Answer]
) -> None:
    """Cumulative ``le`` buckets over time, de-accumulated into per-bucket counts per step (as
    Grafana does for format "heatmap")."""
    import matplotlib.dates as mdates
    import numpy as np
    from matplotlib.colors import PowerNorm

    if _empty_or_error(canvas, box, answers):
        return
    buckets = sorted((s for a in answers for s in a.series), key=_le)
    times = sorted({t for s in buckets for t in s.times})
    index = {t: i for i, t in enumerate(times)}
    cumulative = np.zeros((len(buckets), len(times)))
    for row, series in enumerate(buckets):
        for t, v in zip(series.times, series.values, strict=True):
            cumulative[row, index[t]] = 0.0 if math.isnan(v) else v
    # Empty cells stay the panel's colour (Grafana leaves them out), not the scale's lightest.
    counts = np.ma.masked_equal(np.diff(cumulative, axis=0, prepend=0.0).clip(min=0), 0)
    options = panel.get("options", {})
    y_unit = options.get("yAxis", {}).get("unit")
    step = times[1] - times[0] if len(times) > 1 else canvas.window.step
    edges = [datetime.fromtimestamp(t - step / 2, UTC) for t in times]
    edges.append(datetime.fromtimestamp(times[-1] + step / 2, UTC))
    ax = canvas.axes(box, left=0.75, bottom=0.3, right=0.15, top=0.32)
    exponent = options.get("color", {}).get("exponent", 0.5)
    mesh = ax.pcolormesh(
        mdates.date2num(edges),
        np.arange(len(buckets) + 1),
        counts,
        cmap=options.get("color", {}).get("scheme", "Oranges"),
        norm=PowerNorm(exponent, vmin=0, vmax=max(1.0, float(counts.max() or 0))),
    )
    mesh.set_edgecolor(PANEL)
    mesh.set_linewidth(options.get("cellGap", 1) * 0.3)
    ax.set_facecolor(PANEL)
    ax.xaxis_date(tz=UTC)
    span = (canvas.window.start, canvas.window.end)
    ax.set_xlim(*mdates.date2num([datetime.fromtimestamp(t, UTC) for t in span]))
    ax.xaxis.set_major_locator(time_locator(canvas.window, 12))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    ax.set_yticks([i + 0.5 for i in range(len(buckets))])
    ax.set_yticklabels(
        [
            "≤ " + format_value(_le(s), y_unit, 0 if y_unit == "percentunit" else None)
            for s in buckets
        ]
    )
    if label := options.get("yAxis", {}).get("axisLabel"):
        ax.set_ylabel(label, color=MUTED, fontsize=8)
    ax.tick_params(colors=MUTED, labelsize=7, length=2)
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_row(canvas: Canvas, box: Box, panel: Mapping[str, Any]) -> None:
    from matplotlib.lines import Line2D

    fig = canvas.figure
    y = box.bottom + box.height / 2
    fig.text(
        box.left,
        y,
        panel.get("title", ""),
        color=TEXT,
        fontsize=12,
        fontweight="bold",
        va="center",
        ha="left",
    )
    fig.add_artist(
        Line2D(
            [box.left, box.left + box.width],
            [box.bottom, box.bottom],
            transform=fig.transFigure,
            color=GRID,
            linewidth=1,
        )
    )


DRAWERS = {
    "timeseries": draw_timeseries,
    "graph": draw_timeseries,
    "stat": draw_stat,
    "gauge": draw_stat,
    "singlestat": draw_stat,
    "bargauge": draw_bargauge,
    "table": draw_table,
    "heatmap": draw_heatmap,
}
