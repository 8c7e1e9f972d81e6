"""The alert rules, the scrape config and the Alertmanager config, checked by the tools that load
them: promtool (Debian's ``prometheus``) and amtool (``prometheus-alertmanager``), which
``warden stack up`` installs (deploy/stack/install.py) like the stack's other packages.

A missing tool fails these tests, naming the package: `make test` installs it first, so a
missing one means the install step is broken, and a skip would hide exactly that.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from deploy.stack.install import PACKAGES

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager"
RULE_FILES = ("alerts.yml", "recording.yml")
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
SEVERITIES = {"critical", "warning", "info"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = PACKAGES[name]
        pytest.fail(
            f"{name} is not installed: `warden stack up` installs it (Debian package {package}),"
            f" or run: apt-get install -y {package}"
        )
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def rules(name: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / name).read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules("alerts.yml") if "alert" in rule]


def test_the_rule_files_are_valid() -> None:
    done = run(tool("promtool"), "check", "rules", *RULE_FILES, cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_yml_is_valid_and_loads_both_rule_files() -> None:
    done = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 rule files found" in done.stdout
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == list(RULE_FILES)
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_the_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no deploy/prometheus/tests/*.test.yml"
    names = [str(path.relative_to(PROMETHEUS)) for path in RULE_TESTS]
    done = run(tool("promtool"), "test", "rules", *names, cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_a_rule_that_no_longer_fires_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: with a failed action no longer alerting (threshold raised),
    the delivery tests fail, and promtool says which alert."""
    for name in RULE_FILES:
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    shutil.copytree(PROMETHEUS / "tests", tmp_path / "tests")
    alerts_yml = tmp_path / "alerts.yml"
    rule = 'increase(warden_actions_total{status="failed"}[10m])) > 0'
    text = alerts_yml.read_text()
    assert text.count(rule) == 1
    alerts_yml.write_text(text.replace(rule, rule[:-1] + "5"))
    done = run(tool("promtool"), "test", "rules", "tests/delivery.test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "alertname: WardenActionsFailing" in done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts no test fires"
    assert names - quiet == set(), "alerts no test shows quiet"
    assert fired <= names, "tests of alerts that do not exist"


def test_every_recording_rule_has_a_unit_test() -> None:
    tested: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested.update(check["expr"] for check in case.get("promql_expr_test", []))
    records = {rule["record"] for rule in rules("recording.yml")}
    assert {r for r in records if not any(expr.startswith(r) for expr in tested)} == set()


def test_every_alert_says_what_happened_and_what_to_do() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert len(annotations.get(key, "").strip()) >= 20, (rule["alert"], key)


def test_alertmanager_config_is_valid_and_holds_no_secret() -> None:
    done = run(tool("amtool"), "check-config", "alertmanager.yml", cwd=ALERTMANAGER)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 templates" in done.stdout
    config = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    (operators,) = [r for r in config["receivers"] if r["name"] == "operators"]
    (slack,) = operators["slack_configs"]
    # The webhook URL is a credential: read from a Docker secret, never written here.
    assert slack["api_url_file"] == "/run/secrets/alertmanager_webhook_url"
    assert "://" not in (ALERTMANAGER / "alertmanager.yml").read_text()


@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "operators"), ("warning", "operators"), ("info", "dashboards-only")],
)
def test_alerts_are_routed_by_severity(severity: str, receiver: str) -> None:
    done = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
        f"severity={severity}",
        "alertname=WardenTargetDown",
        cwd=ALERTMANAGER,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [receiver]


def test_every_severity_the_rules_use_is_routed() -> None:
    config = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    routed = {m for route in config["route"]["routes"] for m in route["matchers"]}
    used = {rule["labels"]["severity"] for rule in alerts()}
    # warning takes the default route; the others have their own.
    assert {f'severity="{s}"' for s in used - {"warning"}} <= routed


def test_the_message_template_renders() -> None:
    done = run(
        tool("amtool"),
        "template",
        "render",
        "--template.glob=templates/*.tmpl",
        '--template.text={{ template "chatwarden.title" . }}|{{ template "chatwarden.text" . }}',
        cwd=ALERTMANAGER,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Runbook:" in done.stdout
