"""docker-compose.yml and the Kafka set-up: no default passwords, one Kafka identity per
service, and only the scorer writes verdicts, only the actioner actions.

Static checks of the files (no Docker here); docs/security.md records the run against a real
broker with these scripts.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
SETUP = ROOT / "deploy" / "kafka" / "secure-setup.sh"
BROKER = ROOT / "deploy" / "kafka" / "secure-broker.sh"
SERVICES = {
    "ingest": "ingest",
    "scorer": "scorer",
    "actioner": "actioner",
    "explainer": "explainer",
    "review": "review",
    "init": "admin",
}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_no_secret_has_a_default() -> None:
    text = COMPOSE.read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)", text))
    secrets = {v for v in variables if "PASSWORD" in v}
    assert secrets >= {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "KAFKA_ADMIN_PASSWORD",
        "KAFKA_INGEST_PASSWORD",
        "KAFKA_SCORER_PASSWORD",
        "KAFKA_ACTIONER_PASSWORD",
        "KAFKA_EXPLAINER_PASSWORD",
        "KAFKA_REVIEW_PASSWORD",
    }
    for secret in secrets:
        uses = re.findall(r"\$\{" + secret + r"(:?[?-])?", text)
        assert uses and all(use == ":?" for use in uses), f"{secret} must be required (:?)"


def test_each_service_has_its_own_kafka_identity() -> None:
    services = _compose()["services"]
    for name, user in SERVICES.items():
        env = services[name]["environment"]
        assert env["WARDEN_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["WARDEN_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["WARDEN_KAFKA__SASL_USERNAME"] == user
        assert env["WARDEN_KAFKA__SASL_PASSWORD"].startswith(f"${{KAFKA_{user.upper()}_PASSWORD:?")


def test_the_broker_enforces_acls_with_admin_as_the_only_super_user() -> None:
    script = BROKER.read_text()
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in script
    assert "allow.everyone.if.no.acl.found=false" in script
    assert re.search(r"^super\.users=User:admin$", script, re.MULTILINE)
    # No listener lets a client in without SASL.
    listeners = re.search(r"^listener\.security\.protocol\.map=(.*)$", script, re.MULTILINE)
    assert listeners is not None and "PLAINTEXT:PLAINTEXT" not in listeners.group(1)


def _writers() -> dict[str, set[str]]:
    writers: dict[str, set[str]] = {}
    for line in SETUP.read_text().splitlines():
        match = re.match(r'acl (\w+) (.*)--topic "\$(\w+)"', line.strip())
        if match and ("Write" in match.group(2) or "All" in match.group(2)):
            writers.setdefault(match.group(3), set()).add(match.group(1))
    return writers


def test_only_the_scorer_writes_verdicts_and_only_the_actioner_actions() -> None:
    writers = _writers()
    assert writers["verdicts"] == {"scorer"}
    # The review service is the actioner's: it publishes the reversals of an overturn.
    assert writers["actions"] == {"actioner", "review"}
    assert writers["messages"] == {"ingest"}
    assert writers["raids"] == {"scorer"}
    assert writers["explanations"] == {"explainer"}
    assert writers["feedback"] == {"ingest", "review"}
    assert writers["deadletters"] == {"ingest", "scorer", "actioner", "explainer", "review"}
