"""The Grafana dashboards and the Prometheus rules query metrics that exist, with labels they
have, and every metric family the code registers is charted or alerted on.

The code's metric families are read from the source (every ``Counter``/``Gauge``/``Histogram``
whose name starts with ``warden_``, with its label names), so a renamed metric, a typo in a
panel, a label a metric does not carry or a new metric nobody looks at fails here, not on an
operator's empty panel. The dashboards' expressions are also parsed by promtool, with Grafana's
variables filled in.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from deploy.stack.install import PACKAGES

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
NOT_CODE = {"tests", "build", "dist", "node_modules"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Prometheus's own series that the rules and panels use.
BUILTIN = {"up": frozenset(), "ALERTS": frozenset({"alertname", "alertstate", "severity"})}
# Grafana's variables, as promtool should see them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$service": ".*",
    "$community": ".*",
    "$kind": "text",
}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SELECTOR = re.compile(r"\b(warden[a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LABEL_REPLACE = re.compile(r'label_replace\(.*?,\s*"([a-zA-Z_][a-zA-Z0-9_]*)"', re.S)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter, gauge, histogram, summary
    labels: frozenset[str]
    where: str

    def samples(self) -> dict[str, frozenset[str]]:
        """Series names this family exposes, each with its label names."""
        if self.kind == "counter":
            base = self.name.removesuffix("_total")
            return {f"{base}_total": self.labels, f"{base}_created": self.labels}
        if self.kind == "histogram":
            return {
                f"{self.name}_bucket": self.labels | {"le"},
                f"{self.name}_sum": self.labels,
                f"{self.name}_count": self.labels,
            }
        if self.kind == "summary":
            return {self.name: self.labels | {"quantile"}, f"{self.name}_sum": self.labels}
        return {self.name: self.labels}


@functools.cache
def code_families() -> dict[str, Family]:
    families: dict[str, Family] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in NOT_CODE or any(p.startswith(".") or p.endswith(".egg-info") for p in parts):
            continue
        text = path.read_text()
        if '"warden_' not in text:
            continue  # parse only the modules that may define a family (the scan's cost)
        for node in ast.walk(ast.parse(text, str(path))):
            family = _family(node, f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}")
            if family is not None:
                assert family.name not in families, f"{family.name} defined twice"
                families[family.name] = family
    return families


def _family(node: ast.AST, where: str) -> Family | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = node.args[0]
    if kind not in {"Counter", "Gauge", "Histogram", "Summary"}:
        return None
    if not (isinstance(first, ast.Constant) and str(first.value).startswith("warden_")):
        return None
    labels_node = node.args[2] if len(node.args) > 2 else None
    for keyword in node.keywords:
        if keyword.arg == "labelnames":
            labels_node = keyword.value
    labels: frozenset[str] = frozenset()
    if labels_node is not None:
        value = ast.literal_eval(labels_node)
        labels = frozenset(value)
    return Family(str(first.value), kind.lower(), labels, where)


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target, dashboard variable and rule."""
    found: list[tuple[str, str]] = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                found.append((f"{name}: {panel['title']}", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":  # a custom variable lists its values instead
                found.append((f"{name}: ${variable['name']}", variable["definition"]))
    for rules_file in ("alerts.yml", "recording.yml"):
        for group in yaml.safe_load((PROMETHEUS / rules_file).read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                found.append((f"{rules_file}: {name}", rule["expr"]))
    return found


def recorded() -> dict[str, frozenset[str]]:
    """Recording rules' series names, with the labels their outermost grouping keeps."""
    records: dict[str, frozenset[str]] = {}
    for group in yaml.safe_load((PROMETHEUS / "recording.yml").read_text())["groups"]:
        for rule in group["rules"]:
            grouping = GROUPING.findall(rule["expr"])
            records[rule["record"]] = frozenset(
                label.strip() for label in grouping[0].split(",") if label.strip()
            )
    return records


def known_series() -> dict[str, frozenset[str]]:
    series: dict[str, frozenset[str]] = {}
    for family in code_families().values():
        series.update(family.samples())
    series.update(recorded())
    return series


def metrics_in(expr: str) -> set[str]:
    return {
        name for name in IDENTIFIER.findall(STRING.sub('""', expr)) if name.startswith("warden")
    }


def test_the_scan_finds_the_code_s_metrics() -> None:
    """The source scan itself: it finds families of the core, of a service module and of the
    drift monitor, with their labels (a scan that found nothing would pass everything)."""
    families = code_families()
    assert families["warden_errors_total"].labels == {"service", "kind"}
    assert families["warden_actions_total"].where.startswith("actioners/dispatch.py")
    assert families["warden_verdict_p_toxic"].kind == "histogram"
    assert "warden_drift_score" in families
    assert len(families) >= 40


def test_every_queried_metric_exists() -> None:
    series = known_series()
    unknown = [
        (where, name)
        for where, expr in queries()
        for name in metrics_in(expr)
        if name not in series
    ]
    assert unknown == []


def test_every_selector_uses_labels_the_metric_has() -> None:
    series = known_series()
    wrong: list[tuple[str, str, str]] = []
    for where, expr in queries():
        for name, matchers in SELECTOR.findall(STRING.sub('""', expr)):
            for label in MATCHER.findall(matchers):
                if name in series and label not in series[name] | TARGET_LABELS:
                    wrong.append((where, name, label))
        for name, label in re.findall(r"label_values\((\w+),\s*(\w+)\)", expr):
            if label not in series[name]:
                wrong.append((where, name, label))
    assert wrong == []


def test_every_grouping_names_labels_of_its_metrics() -> None:
    """`sum by (communty)` of a metric without that label is an empty panel, not an error."""
    series = known_series()
    wrong: list[tuple[str, str]] = []
    for where, expr in queries():
        names = metrics_in(expr) & series.keys()
        available = set(TARGET_LABELS).union(*(series[n] for n in names))
        available.update(*(BUILTIN[n] for n in IDENTIFIER.findall(expr) if n in BUILTIN))
        available.update(LABEL_REPLACE.findall(expr))
        for grouping in GROUPING.findall(expr):
            for label in (part.strip() for part in grouping.split(",")):
                if label and label not in available:
                    wrong.append((where, label))
    assert wrong == []


def test_a_typo_is_caught() -> None:
    """The checks above can fail: a misspelt metric and a label the metric lacks."""
    series = known_series()
    expr = 'sum by (community) (rate(warden_verdict_total{severty="HIGH"}[5m]))'
    assert metrics_in(expr) - series.keys() == {"warden_verdict_total"}
    ((name, matchers),) = SELECTOR.findall('warden_verdicts_total{severty="HIGH"}')
    assert set(MATCHER.findall(matchers)) - series[name] == {"severty"}


def test_every_metric_family_is_charted_or_alerted_on() -> None:
    """A metric nobody looks at is a metric nobody notices breaking."""
    families = code_families()
    by_series = {s: f.name for f in families.values() for s in f.samples()}
    used = {
        by_series[name] for _, expr in queries() for name in metrics_in(expr) if name in by_series
    }
    unused = sorted(f"{name} ({families[name].where})" for name in families.keys() - used)
    assert unused == []


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        package = PACKAGES["promtool"]
        pytest.fail(
            f"promtool is not installed: `warden stack up` installs it (Debian package "
            f"{package}), or run: apt-get install -y {package}"
        )
    return path


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query (Grafana's variables filled in) as a recording rule."""
    rules = []
    for index, (where, expr) in enumerate(queries()):
        if not where.split(":")[0].endswith(".json") or expr.startswith("label_values("):
            continue
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(variable, value)
        assert "$" not in expr, (where, expr)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    assert len(rules) > 50
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboards_are_provisioned_and_well_formed() -> None:
    boards = dashboards()
    assert set(boards) >= {"chatwarden.json", "outcomes.json"}
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "chatwarden.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    uids = [board["uid"] for board in boards.values()]
    assert len(uids) == len(set(uids))
    for name, board in boards.items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), name
        for panel in panels(board):
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24, (name, panel["title"])
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == uid, (name, panel["title"])


def test_the_outcomes_dashboard_follows_its_community_and_kind_variables() -> None:
    board = dashboards()["outcomes.json"]
    community, kind = board["templating"]["list"]
    assert community["name"] == "community"
    assert community["definition"] == "label_values(warden_verdicts_total, community)"
    # Text verdicts unless the viewer picks image ones (or both).
    assert kind["name"] == "kind" and kind["current"]["value"] == "text"
    assert [option["value"] for option in kind["options"]] == ["text", "image"]
    verdict_series = (
        "warden_verdicts_total",
        "warden_verdict_labels_total",
        "warden_verdict_p_toxic_bucket",
        "warden:flag_rate:ratio_rate5m",
        "warden:verdicts:rate5m",
    )
    for panel in panels(board):
        for target in panel.get("targets", []):
            assert 'community=~"$community"' in target["expr"], panel["title"]
            for name, matchers in SELECTOR.findall(target["expr"]):
                if name in verdict_series:
                    assert 'kind=~"$kind"' in matchers, panel["title"]
    charted = {
        name for p in panels(board) for t in p.get("targets", []) for name in metrics_in(t["expr"])
    }
    assert charted >= {
        "warden_verdicts_total",
        "warden_verdict_labels_total",
        "warden_verdict_p_toxic_bucket",
        "warden_community_actions_total",
        "warden_disputes_total",
        "warden_reviews_total",
        "warden:flag_rate:ratio_rate5m",
        "warden:overturn_rate:ratio_increase1d",
    }
