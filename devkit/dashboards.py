"""Draw a Grafana dashboard from its own queries, and snapshot both dashboards from a real run.

Grafana cannot be installed on the machines this project is built on, yet the README should show
what an operator sees. So this tool reads the dashboard JSON that Grafana provisions
(deploy/grafana/dashboards/), runs each panel's PromQL against a Prometheus HTTP API exactly as
written there (Grafana's variables filled in the way Grafana fills them), and draws the panels
with matplotlib in the dashboard's own grid. It is not Grafana's renderer and every image says
so; what it does prove is that each query returns data from the metrics the services export.

    python -m devkit.dashboards snapshot        # Prometheus + `warden run` -> docs/dashboard-*.png
    python -m devkit.dashboards render DASHBOARD.json --prometheus URL --start T --end T --out P

``snapshot`` starts a throwaway Prometheus (scraping every 2 s, with the repo's alert and
recording rules), runs ``warden run`` on the local stack on topics and metrics ports of its own
(other people's runs on the same stack are left alone), and renders both dashboards over the
replay. Nothing in a service imports this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from core.errors import WardenError

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
RULES = [
    REPO / "deploy" / "prometheus" / "alerts.yml",
    REPO / "deploy" / "prometheus" / "recording.yml",
]
GRID_COLUMNS = 24
# Inches per grid unit when drawn: Grafana's rows are 30 px and a column is ~1/24 of ~1600 px.
FIGURE_WIDTH_IN = 20.0
UNIT_HEIGHT_IN = FIGURE_WIDTH_IN / GRID_COLUMNS * 30 / (1600 / GRID_COLUMNS)
HEADER_IN, FOOTER_IN = 0.9, 0.45
# Panel types answered by one instant query at the end of the range (Grafana's "instant").
INSTANT_TYPES = {"stat", "gauge", "table", "bargauge", "piechart"}
# Grafana's dark theme and its classic series palette.
PAGE, PANEL, TEXT, MUTED, GRID = "#111217", "#181b1f", "#ccccdc", "#8e8e9e", "#2c3235"
PALETTE = [
    "#7EB26D",
    "#EAB839",
    "#6ED0E0",
    "#EF843C",
    "#E24D42",
    "#1F78C1",
    "#BA43A9",
    "#705DA0",
    "#508642",
    "#CCA300",
    "#447EBC",
    "#C15C17",
    "#890F02",
    "#0A437C",
]
NAMED_COLORS = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
    "purple": "#B877D9",
    "text": TEXT,
}


class DashboardError(WardenError):
    """A dashboard that cannot be read, a query Prometheus refuses, a snapshot run that failed."""


# --- Grafana's variables ------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}])")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$name``, ``${name}`` (or ``${name:format}``) and ``[[name]]`` replaced;
    names not in ``variables`` stay as written, so Prometheus names the problem."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return variables.get(name, match.group(0))

    return _VARIABLE.sub(one, expr)


def regex_value(values: Sequence[str]) -> str:
    """A multi-value variable's values as Grafana writes them into ``=~"..."``: regex-escaped
    (the backslash doubled for the PromQL string) and, for more than one, ``(a|b)``."""
    escaped = [_REGEX_SPECIAL.sub(r"\\\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def template_values(dashboard: Mapping[str, Any], chosen: Mapping[str, str]) -> dict[str, str]:
    """Each templating variable's value: ``chosen`` where given (``.*`` or a plain value), else
    the dashboard's saved current value, where "All" is the variable's allValue (or ``.*``)."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        all_value = variable.get("allValue") or ".*"
        if name in chosen:
            value = chosen[name]
            values[name] = value if value in (".*", all_value) else regex_value([value])
            continue
        current = variable.get("current", {}).get("value", "$__all")
        current = current if isinstance(current, list) else [current]
        if not current or "$__all" in current:
            values[name] = all_value
        elif variable.get("multi") or variable.get("includeAll"):
            values[name] = regex_value([str(v) for v in current])
        else:
            values[name] = str(current[0])
    return values


def duration(seconds: float) -> str:
    """A PromQL duration of whole seconds (Grafana writes ``$__range`` the same way)."""
    return f"{max(1, round(seconds))}s"


def rate_interval(scrape_s: float, step_s: float) -> float:
    """Grafana's ``$__rate_interval``: max(step + scrape interval, 4 x scrape interval)."""
    return max(step_s + scrape_s, 4 * scrape_s)


def builtin_values(start: float, end: float, step_s: float, scrape_s: float) -> dict[str, str]:
    span = end - start
    return {
        "__rate_interval": duration(rate_interval(scrape_s, step_s)),
        "__interval": duration(step_s),
        "__interval_ms": str(round(step_s * 1000)),
        "__range": duration(span),
        "__range_s": str(round(span)),
        "__range_ms": str(round(span * 1000)),
    }


# --- layout -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A panel's place in the figure as matplotlib wants it: fractions, from the bottom left."""

    left: float
    bottom: float
    width: float
    height: float


def panels_of(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, the ones inside collapsed rows included (Grafana nests those)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []) if panel.get("collapsed") else [])
    return found


def grid_height(panels: Sequence[Mapping[str, Any]]) -> int:
    """Grid units from the top of the dashboard to the bottom of its lowest panel."""
    return max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=0)


def figure_height(units: int) -> float:
    return HEADER_IN + units * UNIT_HEIGHT_IN + FOOTER_IN


def panel_box(grid_pos: Mapping[str, int], units: int, gap_in: float = 0.06) -> Box:
    """Where a ``gridPos`` (24 columns; y counted down from the top) lands in a figure drawn for
    a dashboard ``units`` rows high, with a small gap around each panel as Grafana leaves."""
    height_in = figure_height(units)
    left_in = grid_pos["x"] / GRID_COLUMNS * FIGURE_WIDTH_IN + gap_in
    width_in = grid_pos["w"] / GRID_COLUMNS * FIGURE_WIDTH_IN - 2 * gap_in
    top_in = HEADER_IN + grid_pos["y"] * UNIT_HEIGHT_IN + gap_in
    box_in = grid_pos["h"] * UNIT_HEIGHT_IN - 2 * gap_in
    return Box(
        left=left_in / FIGURE_WIDTH_IN,
        bottom=1 - (top_in + box_in) / height_in,
        width=width_in / FIGURE_WIDTH_IN,
        height=box_in / height_in,
    )


# --- values and units ---------------------------------------------------------------------------


def legend(fmt: str | None, labels: Mapping[str, str], expr: str) -> str:
    """A series' name from the target's legendFormat (``{{label}}``), else its label set."""
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}" if shown else expr


def _number(value: float, decimals: int | None) -> str:
    if decimals is None:
        whole = round(value, 9) == int(value)  # 0.6 * 100 is 60.00000000000001
        decimals = 0 if abs(value) >= 100 or whole else 1 if abs(value) >= 10 else 2
    return f"{value:.{decimals}f}"


def format_value(value: float, unit: str | None, decimals: int | None = None) -> str:
    """``value`` as Grafana shows it in ``unit`` (the units these dashboards use)."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == "percentunit":
        return _number(value * 100, decimals) + "%"
    if unit == "percent":
        return _number(value, decimals) + "%"
    if unit in ("s", "ms"):
        seconds = value / 1000 if unit == "ms" else value
        if seconds == 0:
            return "0 s"
        for scale, suffix in ((3600, " h"), (60, " min"), (1, " s"), (1e-3, " ms"), (1e-6, " µs")):
            if abs(seconds) >= scale or scale == 1e-6:
                return _number(seconds / scale, decimals) + suffix
    for scale, suffix in ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
        if abs(value) >= scale:
            number = _number(value / scale, decimals) + suffix
            break
    else:
        number = _number(value, decimals)
    return number + (" ops/s" if unit == "ops" else "")


def threshold_color(value: float, field_config: Mapping[str, Any]) -> str:
    """The colour of the highest threshold step at or below ``value`` (Grafana's "absolute")."""
    color = "green"
    for step in field_config.get("thresholds", {}).get("steps", []):
        if step.get("value") is None or (not math.isnan(value) and value >= step["value"]):
            color = step.get("color", color)
    return NAMED_COLORS.get(color, color)


def mapped(value: float, field_config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A value mapping's text and colour for ``value`` (type "value" only), else (None, None)."""
    for mapping in field_config.get("mappings", []):
        if mapping.get("type") != "value" or math.isnan(value):
            continue
        for key, result in mapping.get("options", {}).items():
            with contextlib.suppress(ValueError):
                if float(key) == value:
                    color = result.get("color")
                    return result.get("text"), NAMED_COLORS.get(color, color) if color else None
    return None, None


# --- Prometheus ---------------------------------------------------------------------------------


@dataclass
class Series:
    labels: dict[str, str]
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class Prometheus:
    """The two query endpoints Grafana's Prometheus data source uses."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = client or httpx.Client(timeout=30)

    def _get(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        response = self.client.get(self.url + path, params=params)
        body = response.json()
        if body.get("status") != "success":
            raise DashboardError(f"{body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query(self, expr: str, at: float) -> list[Series]:
        rows = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        return [Series(r["metric"], [float(r["value"][0])], [float(r["value"][1])]) for r in rows]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return [
            Series(
                r["metric"], [float(t) for t, _ in r["values"]], [float(v) for _, v in r["values"]]
            )
            for r in self._get("/api/v1/query_range", params)
        ]


# --- querying a panel ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The time range drawn: range queries from ``start`` to ``end`` every ``step`` seconds,
    instant queries at ``end``; ``scrape_s`` is Prometheus's scrape interval."""

    start: float
    end: float
    step: float
    scrape_s: float


@dataclass
class Answer:
    """One target's result: its series, or the error Prometheus gave."""

    ref: str
    expr: str
    legend_format: str | None
    series: list[Series]
    error: str | None = None


def panel_answers(
    panel: Mapping[str, Any], prometheus: Prometheus, window: Window, variables: Mapping[str, str]
) -> list[Answer]:
    """Run the panel's targets: instant where the target says so (or the panel shows one value
    per series), else a range query over the window."""
    answers = []
    for index, target in enumerate(panel.get("targets", [])):
        if target.get("hide") or not target.get("expr"):
            continue
        expr = substitute(target["expr"], variables)
        instant = target.get("instant", panel.get("type") in INSTANT_TYPES) and not target.get(
            "range"
        )
        ref = target.get("refId") or chr(ord("A") + index)
        try:
            if instant:
                series = prometheus.query(expr, window.end)
            else:
                series = prometheus.query_range(expr, window.start, window.end, window.step)
        except (DashboardError, httpx.HTTPError, ValueError) as exc:
            answers.append(Answer(ref, expr, target.get("legendFormat"), [], str(exc)))
            continue
        answers.append(Answer(ref, expr, target.get("legendFormat"), series))
    return answers


def last_value(series: Series) -> float:
    """Grafana's "lastNotNull" reduction."""
    for value in reversed(series.values):
        if not math.isnan(value):
            return value
    return math.nan


def table_rows(
    answers: Sequence[Answer], transformations: Sequence[Mapping[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    """A table panel's columns and rows: one row per label set, one value column per target
    (``Value #<refId>`` when merged, as Grafana names them), after "organize"'s renames and
    exclusions."""
    merged = any(t.get("id") == "merge" for t in transformations) or len(answers) > 1
    keys: list[str] = sorted(
        {k for a in answers for s in a.series for k in s.labels} - {"__name__"}
    )
    value_columns = [f"Value #{a.ref}" if merged else "Value" for a in answers]
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for answer, column in zip(answers, value_columns, strict=True):
        for series in answer.series:
            row_key = tuple(series.labels.get(k, "") for k in keys)
            row = rows.setdefault(row_key, dict(zip(keys, row_key, strict=True)))
            row[column] = format_value(last_value(series), None)
    columns = keys + value_columns
    renames: dict[str, str] = {}
    excluded: set[str] = set()
    for transformation in transformations:
        if transformation.get("id") == "organize":
            options = transformation.get("options", {})
            renames.update(options.get("renameByName", {}))
            excluded |= {k for k, v in options.get("excludeByName", {}).items() if v}
    shown = [c for c in columns if c not in excluded]
    body = [[row.get(c, "") for c in shown] for _, row in sorted(rows.items())]
    return [renames.get(c, c) for c in shown], body


@dataclass
class PanelReport:
    title: str
    kind: str
    series: int
    error: str | None


def render(
    dashboard_path: Path,
    prometheus: Prometheus,
    window: Window,
    out: Path,
    *,
    chosen: Mapping[str, str] | None = None,
    note: str = "",
) -> list[PanelReport]:
    """Draw ``dashboard_path`` over ``window`` into the PNG ``out``; returns what each panel got."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Legends and titles hold PromQL and "$variable" text, never mathtext.
    with plt.rc_context({"text.parse_math": False}):
        return _render(dashboard_path, prometheus, window, out, chosen=chosen, note=note)


def _render(
    dashboard_path: Path,
    prometheus: Prometheus,
    window: Window,
    out: Path,
    *,
    chosen: Mapping[str, str] | None,
    note: str,
) -> list[PanelReport]:
    import matplotlib.pyplot as plt

    try:
        dashboard = json.loads(dashboard_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DashboardError(f"cannot read dashboard {dashboard_path}: {exc}") from exc
    from devkit.dashboard_panels import DRAWERS, Canvas, draw_row, frame, message

    panels = panels_of(dashboard)
    variables = template_values(dashboard, chosen or {})
    variables.update(builtin_values(window.start, window.end, window.step, window.scrape_s))
    units = grid_height(panels)
    canvas = Canvas(plt.figure(figsize=(FIGURE_WIDTH_IN, figure_height(units))), units, window)
    canvas.figure.patch.set_facecolor(PAGE)
    start, end = (datetime.fromtimestamp(t, UTC) for t in (window.start, window.end))
    shown_vars = ", ".join(
        f"${name} = {'All' if value == '.*' else value}"
        for name, value in variables.items()
        if not name.startswith("__")
    )
    top = 1 - 0.12 / canvas.height_in
    canvas.figure.text(
        0.006,
        top,
        dashboard.get("title", dashboard_path.stem),
        color=TEXT,
        fontsize=18,
        fontweight="bold",
        va="top",
    )
    canvas.figure.text(
        0.006,
        top - 0.42 / canvas.height_in,
        f"{start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC ({duration(window.end - window.start)})"
        f"   {shown_vars}   $__rate_interval = {variables['__rate_interval']}",
        color=MUTED,
        fontsize=10,
        va="top",
    )
    canvas.figure.text(0.006, 0.15 / canvas.height_in, note, color=MUTED, fontsize=9, va="bottom")
    reports = []
    for panel in panels:
        box = panel_box(panel["gridPos"], units)
        kind = panel.get("type", "")
        if kind == "row":
            draw_row(canvas, box, panel)
            continue
        frame(canvas, box, panel.get("title", ""))
        answers = panel_answers(panel, prometheus, window, variables)
        drawer = DRAWERS.get(kind)
        if drawer is None:
            message(canvas, box, f"panel type {kind!r} is not drawn by devkit/dashboards.py")
        else:
            drawer(canvas, box, panel, answers)
        errors = [a.error for a in answers if a.error]
        series = sum(len(a.series) for a in answers)
        reports.append(
            PanelReport(panel.get("title", ""), kind, series, errors[0] if errors else None)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.figure.savefig(out, dpi=80, facecolor=PAGE)
    plt.close(canvas.figure)
    return reports


def window_for(start: float, end: float, scrape_s: float, points: int = 400) -> Window:
    """Grafana's step: the range over the panel's data points, never under the scrape interval."""
    return Window(start, end, max(scrape_s, round((end - start) / points)), scrape_s)
