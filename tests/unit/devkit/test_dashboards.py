"""devkit/dashboards.py, which draws the Grafana dashboards from their own queries for the README:
Grafana's variables filled in as Grafana fills them, the 24-column grid laid out without
overlaps, Grafana's units, tables merged per target, and instant versus range queries."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.dashboard_panels import legend_entries
from devkit.dashboard_snapshots import prometheus_config
from devkit.dashboards import (
    DASHBOARDS,
    RULES,
    Answer,
    Prometheus,
    Series,
    builtin_values,
    format_value,
    grid_height,
    legend,
    panel_answers,
    panel_box,
    panels_of,
    rate_interval,
    render,
    substitute,
    table_rows,
    template_values,
    window_for,
)

REPO_DASHBOARDS = sorted(DASHBOARDS.glob("*.json"))


def test_substitute_fills_every_grafana_spelling_and_leaves_regex_anchors() -> None:
    values = {"community": ".*", "__rate_interval": "8s", "__range": "150s"}
    expr = (
        'rate(x{community=~"$community"}[$__rate_interval]) + '
        'y{c=~"${community}", d=~"${community:regex}", e=~"[[community]]"}[$__range] '
        '+ z{f=~"^ab$", g="$unknown"}'
    )
    assert substitute(expr, values) == (
        'rate(x{community=~".*"}[8s]) + y{c=~".*", d=~".*", e=~".*"}[150s] '
        '+ z{f=~"^ab$", g="$unknown"}'
    )


def test_template_values_follow_the_saved_default_or_the_chosen_value() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "community", "multi": True, "includeAll": True, "allValue": ".*",
                 "current": {"value": ["$__all"]}},
                {"name": "service", "multi": True, "includeAll": True,
                 "current": {"value": ["scorer", "actioner"]}},
                {"name": "env", "current": {"value": "prod"}},
            ]
        }
    }  # fmt: skip
    assert template_values(dashboard, {}) == {
        "community": ".*",
        "service": "(scorer|actioner)",
        "env": "prod",
    }
    # A chosen value is regex-escaped, the backslash doubled for the PromQL string literal.
    chosen = template_values(dashboard, {"community": "eu.chat", "service": ".*"})
    assert chosen["community"] == "eu\\\\.chat"
    assert chosen["service"] == ".*"


def test_rate_interval_and_range_as_grafana_computes_them() -> None:
    assert rate_interval(scrape_s=2, step_s=2) == 8
    assert rate_interval(scrape_s=15, step_s=60) == 75
    window = window_for(1000.0, 1150.4, scrape_s=2)
    assert window.step == 2  # 150 s over 400 points is under the scrape interval
    values = builtin_values(window.start, window.end, window.step, window.scrape_s)
    assert values["__rate_interval"] == "8s"
    assert values["__range"] == "150s"
    assert window_for(0, 86_400, scrape_s=15).step == 216


@pytest.mark.parametrize("path", REPO_DASHBOARDS, ids=lambda p: p.name)
def test_every_query_of_the_repo_dashboards_is_left_without_variables(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    values = template_values(dashboard, {})
    values.update(builtin_values(0, 150, 2, 2))
    exprs = [t["expr"] for p in panels_of(dashboard) for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        assert not re.search(r"\$\{?\w|\[\[", substitute(expr, values)), expr


def test_panel_box_places_the_grid_in_figure_fractions() -> None:
    units = 10
    left = panel_box({"x": 0, "y": 0, "w": 12, "h": 8}, units, gap_in=0)
    right = panel_box({"x": 12, "y": 0, "w": 12, "h": 8}, units, gap_in=0)
    below = panel_box({"x": 0, "y": 8, "w": 24, "h": 2}, units, gap_in=0)
    assert left.left == 0 and right.left == pytest.approx(0.5)
    assert left.width == pytest.approx(0.5) and below.width == pytest.approx(1)
    assert left.bottom == pytest.approx(right.bottom)
    # y counts down: the panel below ends where the upper ones start, heights in proportion.
    assert below.bottom + below.height == pytest.approx(left.bottom)
    assert left.height == pytest.approx(4 * below.height)


@pytest.mark.parametrize("path", REPO_DASHBOARDS, ids=lambda p: p.name)
def test_repo_dashboards_lay_out_inside_the_figure_without_overlaps(path: Path) -> None:
    panels = panels_of(json.loads(path.read_text()))
    units = grid_height(panels)
    boxes = [panel_box(p["gridPos"], units) for p in panels]
    for box in boxes:
        assert box.left >= 0 and box.left + box.width <= 1
        assert box.bottom > 0 and box.bottom + box.height < 1  # header and footnote stay clear
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart_x = a.left + a.width <= b.left or b.left + b.width <= a.left
            apart_y = a.bottom + a.height <= b.bottom or b.bottom + b.height <= a.bottom
            assert apart_x or apart_y, (a, b)


def test_values_in_grafanas_units_and_legends_from_legend_format() -> None:
    assert format_value(0.0123, "s") == "12.3 ms"
    assert format_value(95, "s") == "1.58 min"
    assert format_value(0.25, "percentunit") == "25%"
    assert format_value(0.6, "percentunit") == "60%"
    assert format_value(0, "s") == "0 s"
    assert format_value(1500, "short") == "1.50 K"
    assert format_value(3.0, "ops") == "3 ops/s"
    assert format_value(7.25, "short", decimals=0) == "7"
    assert format_value(math.nan, "s") == "NaN"
    labels = {"service": "scorer", "dependency": "redis", "instance": "h:1"}
    assert legend("{{service}} → {{ dependency }}", labels, "e") == "scorer → redis"
    assert legend(None, {"__name__": "up", "job": "x"}, "up") == '{job="x"}'
    assert legend("", {}, "sum(up)") == "sum(up)"


def test_a_crowded_legend_lists_the_series_that_moved_and_counts_the_rest() -> None:
    moving = [Series({"k": str(i)}, [1, 2], [0.0, 1.0]) for i in (1, 4)]
    flat = [Series({"k": str(i)}, [1, 2], [0.0, math.nan]) for i in (0, 2, 3, 5, 6)]
    series = [flat[0], moving[0], *flat[1:3], moving[1], *flat[3:]]
    assert legend_entries(series, fits=10) == (list(range(7)), "")
    assert legend_entries(series, fits=4) == ([1, 4], "... and 5 more series (at zero throughout)")
    assert legend_entries(series, fits=2) == ([1], "... and 6 more series")


def test_merged_table_has_a_column_per_target_renamed_and_time_dropped() -> None:
    a = Answer(
        "A",
        "a",
        None,
        [Series({"community": "x"}, [1], [12.0]), Series({"community": "y"}, [1], [3.0])],
    )
    b = Answer("B", "b", None, [Series({"community": "x"}, [1], [2.0])])
    transformations: list[dict[str, Any]] = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "Verdicts", "Value #B": "Flagged"},
            },
        },
    ]
    columns, rows = table_rows([a, b], transformations)
    assert columns == ["community", "Verdicts", "Flagged"]
    assert rows == [["x", "12", "2"], ["y", "3", ""]]


def _fake_prometheus(seen: list[tuple[str, dict[str, str]]]) -> Prometheus:
    """Prometheus's HTTP API answering every query with one series (or an error for 'bad')."""

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append((request.url.path, params))
        if "bad" in params["query"]:
            body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            return httpx.Response(400, json=body)
        labels = {"service": "scorer", "le": "0.5"}
        if request.url.path.endswith("query_range"):
            start, end = float(params["start"]), float(params["end"])
            data: list[dict[str, Any]] = [{"metric": labels, "values": [[start, "1"], [end, "3"]]}]
            return httpx.Response(
                200, json={"status": "success", "data": {"resultType": "matrix", "result": data}}
            )
        data = [{"metric": labels, "value": [float(params["time"]), "0.5"]}]  # instant vector
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": data}}
        )

    return Prometheus("http://prometheus", httpx.Client(transport=httpx.MockTransport(handle)))


def test_stat_and_table_panels_query_instant_at_the_end_the_others_a_range() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    prometheus = _fake_prometheus(seen)
    window = window_for(1000.0, 1150.0, scrape_s=2)
    stat = {"type": "stat", "targets": [{"expr": 'up{service=~"$service"}', "refId": "A"}]}
    series = {"type": "timeseries", "targets": [{"expr": "rate(x[$__rate_interval])"}]}
    bad = {"type": "timeseries", "targets": [{"expr": "bad("}]}
    assert panel_answers(stat, prometheus, window, {"service": ".*"})[0].series[0].values == [0.5]
    assert panel_answers(series, prometheus, window, {"__rate_interval": "8s"})[0].series[
        0
    ].values == [1, 3]
    (failed,) = panel_answers(bad, prometheus, window, {})
    assert failed.error == "bad_data: parse error" and failed.series == []
    assert seen[0] == ("/api/v1/query", {"query": 'up{service=~".*"}', "time": "1150.000"})
    ranged = {"query": "rate(x[8s])", "start": "1000.000", "end": "1150.000", "step": "2"}
    assert seen[1] == ("/api/v1/query_range", ranged)


def test_render_draws_every_panel_type_into_a_png(tmp_path: Path) -> None:
    dashboard = {
        "title": "T",
        "panels": [
            {"type": "row", "title": "Row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
            {"type": "stat", "title": "S", "gridPos": {"x": 0, "y": 1, "w": 6, "h": 4},
             "targets": [{"expr": "up", "legendFormat": "{{service}}"}]},
            {"type": "table", "title": "Tb", "gridPos": {"x": 6, "y": 1, "w": 6, "h": 4},
             "targets": [{"expr": "up", "instant": True}]},
            {"type": "bargauge", "title": "B", "gridPos": {"x": 12, "y": 1, "w": 12, "h": 4},
             "targets": [{"expr": "up", "instant": True}]},
            {"type": "timeseries", "title": "Ts", "gridPos": {"x": 0, "y": 5, "w": 12, "h": 8},
             "fieldConfig": {"defaults": {"unit": "s"}}, "targets": [{"expr": "x"}]},
            {"type": "heatmap", "title": "H", "gridPos": {"x": 12, "y": 5, "w": 12, "h": 8},
             "targets": [{"expr": "h", "format": "heatmap"}]},
            {"type": "timeseries", "title": "E", "gridPos": {"x": 0, "y": 13, "w": 24, "h": 4},
             "targets": [{"expr": "bad("}]},
        ],
    }  # fmt: skip
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    out = tmp_path / "d.png"
    reports = render(path, _fake_prometheus([]), window_for(1000.0, 1150.0, 2), out, note="n")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [(r.title, r.series, r.error) for r in reports] == [
        ("S", 1, None), ("Tb", 1, None), ("B", 1, None), ("Ts", 1, None), ("H", 1, None),
        ("E", 0, "bad_data: parse error"),
    ]  # fmt: skip


def test_prometheus_config_scrapes_each_target_and_loads_the_repo_rules() -> None:
    config = json.loads(prometheus_config({"scorer": "127.0.0.1:5000"}, 2, RULES))
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
    assert config["scrape_configs"] == [
        {"job_name": "scorer", "static_configs": [{"targets": ["127.0.0.1:5000"]}]}
    ]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in config["rule_files"])
    assert any(p.endswith("recording.yml") for p in config["rule_files"])
