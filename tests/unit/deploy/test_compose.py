"""docker-compose.yml (and deploy/compose.secrets.yml) and the Kafka set-up, checked statically:
no Docker engine runs here.

- The files are valid against the Compose Specification's JSON schema (deploy/compose-spec.json,
  vendored from compose-spec/compose-go v2.16.2, Apache-2.0; deploy/README.md says how to
  refresh it), the schema `docker compose` itself validates with.
- Our rules on top: every service has a healthcheck (one-shot jobs say they have none), no
  secret has a default, the image is built once, scalable services have no fixed name or host
  port, every variable a ChatWarden container gets is a real setting, every path setting points
  into a writable mount, every mounted file exists, every command is a real `warden` command.
- The Kafka identities: one per service, and only the scorer writes verdicts, only the
  actioner actions (docs/security.md records the run against a real broker with the scripts).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]
from deploykit import (
    ROOT,
    compose,
    image_env,
    interpolate,
    is_path_setting,
    mount_targets,
    service_environment,
    setting_field,
)

from schemas.topics import CHAT_MESSAGES, VERDICTS

COMPOSE = ROOT / "docker-compose.yml"
SECRETS_OVERRIDE = ROOT / "deploy" / "compose.secrets.yml"
SCHEMA = ROOT / "deploy" / "compose-spec.json"
SETUP = ROOT / "deploy" / "kafka" / "secure-setup.sh"
BROKER = ROOT / "deploy" / "kafka" / "secure-broker.sh"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
IMAGE = "${WARDEN_IMAGE:-chatwarden:latest}"
# Service -> its Kafka user.
SERVICES = {
    "ingest-replay": "ingest",
    "ingest-discord": "ingest",
    "ingest-slack": "ingest",
    "ingest-twitch": "ingest",
    "ingest-webhook": "ingest",
    "scorer": "scorer",
    "scorer-gpu": "scorer",
    "images": "scorer",
    "actioner": "actioner",
    "explainer": "explainer",
    "review": "review",
    "drift": "drift",
    "init": "admin",
}
# Consumer-group workers that `--scale` may multiply, and the topic whose partitions bound them.
SCALABLE = {
    "scorer": CHAT_MESSAGES,
    "scorer-gpu": CHAT_MESSAGES,
    "images": CHAT_MESSAGES,
    "actioner": VERDICTS,
    "explainer": VERDICTS,
}
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


def _services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def _ours() -> dict[str, dict[str, Any]]:
    """The services that run the ChatWarden image."""
    return {n: s for n, s in _services().items() if "chatwarden" in str(s.get("image", ""))}


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("path", [COMPOSE, SECRETS_OVERRIDE], ids=lambda p: p.name)
def test_valid_against_the_compose_specification(path: Path) -> None:
    errors = sorted(
        _validator().iter_errors(yaml.safe_load(path.read_text())), key=lambda e: e.json_path
    )
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_the_schema_catches_what_compose_would_refuse() -> None:
    # The check above can fail: a misspelt key and a wrong type are both errors.
    broken = copy.deepcopy(compose())
    broken["services"]["scorer"]["healthchek"] = broken["services"]["scorer"].pop("healthcheck")
    broken["services"]["review"]["ports"] = 8090
    paths = {e.json_path for e in _validator().iter_errors(broken)}
    assert "$.services.scorer" in paths
    assert "$.services.review.ports" in paths


def test_every_service_has_a_healthcheck_and_jobs_say_they_have_none() -> None:
    services = _services()
    waited_on = {
        dep
        for service in services.values()
        if isinstance(service.get("depends_on"), dict)
        for dep, how in service["depends_on"].items()
        if how.get("condition") == "service_completed_successfully"
    }
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if check.get("disable"):
            # Only a one-shot job that others wait on to *complete* may go without one.
            assert service.get("restart") == "no" and name in waited_on, name
        else:
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_our_healthchecks_probe_readiness_on_the_service_own_metrics() -> None:
    for name, service in _ours().items():
        test = service["healthcheck"].get("test")
        if test is None:
            continue
        assert test[:3] == ["CMD", "warden", "health"], name
        probed = test[3]
        command = service["command"]
        # The probe asks the service it runs (ingest adapters all report as "ingest").
        expected = "ingest" if command[0] == "ingest" else command[0]
        assert probed == expected, (name, probed, command)


def test_no_secret_has_a_default() -> None:
    for path in (COMPOSE, SECRETS_OVERRIDE):
        text = path.read_text()
        variables = set(re.findall(r"\$\{([A-Za-z_]+)", text))
        secrets = {v for v in variables if any(word in v for word in SECRET_WORDS)}
        for secret in secrets:
            uses = re.findall(r"\$\{" + secret + r"(:?[?-])?", text)
            assert uses and all(use == ":?" for use in uses), f"{secret} must be required (:?)"
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    assert required >= {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "REVIEW_SESSION_SECRET",
        *(f"KAFKA_{user.upper()}_PASSWORD" for user in set(SERVICES.values())),
    }
    # Alertmanager's receiver address comes from a Docker secret compose fills from the
    # environment (and refuses to start without).
    assert compose()["secrets"]["alertmanager_webhook_url"] == {
        "environment": "ALERTMANAGER_WEBHOOK_URL"
    }
    assert _services()["alertmanager"]["secrets"] == ["alertmanager_webhook_url"]
    # Tokens are passed through (set or absent), never given a value here.
    for name, service in _ours().items():
        for variable, value in service_environment(service).items():
            field = setting_field(variable)
            if field is not None and "SecretStr" in str(field.annotation):
                # Passed through, or built only from required variables.
                ops = re.findall(r"\$\{[A-Za-z_]+(:?[?-])?", value or "")
                assert value is None or (ops and all(op == ":?" for op in ops)), (name, variable)


def test_the_image_is_built_once() -> None:
    builders: dict[str, list[str]] = {}
    for name, service in _services().items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert builders.pop(IMAGE) == ["init"]
    assert list(builders.values()) == [["scorer-gpu"]]  # the GPU variant: its own tag
    for name, service in _ours().items():
        if "build" not in service:
            assert service["image"] == IMAGE, name
            # Never pulled: `up` builds it with init (compose skips pulling an image that
            # another service builds, and this makes it explicit).
            assert service["pull_policy"] == "never", name


def test_scalable_services_have_no_fixed_name_or_host_port() -> None:
    services = _services()
    for name in SCALABLE:
        assert "ports" not in services[name], name
    for name, service in services.items():
        assert "container_name" not in service, name
    # Scale is bounded by the input topic's partitions, which the file documents.
    text = COMPOSE.read_text()
    for topic in {t.name for t in SCALABLE.values()}:
        assert topic in text
    assert CHAT_MESSAGES.partitions == VERDICTS.partitions == 6
    assert "up to chat.messages.v1's 6 partitions" in text


def test_every_variable_a_chatwarden_container_gets_is_a_setting() -> None:
    for variable in image_env():
        if variable.startswith("WARDEN_"):
            assert setting_field(variable) is not None, f"Dockerfile ENV {variable}"
    overrides = yaml.safe_load(SECRETS_OVERRIDE.read_text())["services"]
    for name, service in _ours().items():
        variables = [*service_environment(service), *service_environment(overrides.get(name, {}))]
        for variable in variables:
            assert variable.startswith("WARDEN_"), (name, variable)
            assert setting_field(variable) is not None, f"{name}: {variable} is no setting"


def test_paths_a_service_writes_are_mounted_writable() -> None:
    for name, service in _ours().items():
        assert service["read_only"] is True, f"{name}: root file system must be read-only"
        mounts = mount_targets(service)
        assert "/tmp" in mounts, name
        for variable, value in service_environment(service).items():
            if value is not None and is_path_setting(variable) and variable != "WARDEN_SECRETS_DIR":
                path = interpolate(value)
                assert any(path == m or path.startswith(m + "/") for m in mounts), (name, path)


def test_scorer_replicas_share_the_model_cache() -> None:
    services = _services()
    for name in ("scorer", "scorer-gpu", "explainer"):
        assert "model-cache:/var/cache/chatwarden" in services[name]["volumes"], name
        assert services[name]["environment"]["WARDEN_MODEL__CACHE_DIR"] == "/var/cache/chatwarden"
    # faust's state is per replica (a tmpfs), never in the shared volume.
    assert "/var/lib/chatwarden/faust" in services["scorer"]["tmpfs"]
    assert "model-cache" in compose()["volumes"]


def test_mounted_files_exist() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def test_every_command_is_a_warden_command() -> None:
    from warden.cli import main

    ctx = click.Context(main)
    for name, service in _ours().items():
        if name == "init":
            continue  # sh -c "warden migrate && warden topics create"
        words = [str(word) for word in service["command"]]
        command: Any = main.get_command(ctx, words[0])
        assert command is not None, (name, words)
        if isinstance(command, click.Group):
            assert command.get_command(ctx, words[1]) is not None, (name, words)
    assert _services()["init"]["command"] == ["warden migrate && warden topics create"]


def test_each_ingest_adapter_is_its_own_optional_service() -> None:
    services = _services()
    adapters = {
        words[1]
        for service in services.values()
        if (words := service.get("command") or [""])[0] == "ingest"
    }
    assert adapters == {"replay", "discord", "slack", "twitch", "webhook"}
    for name, service in services.items():
        if (service.get("command") or [""])[0] == "ingest":
            assert service.get("profiles"), f"{name} must be behind a profile"
            assert "ingest" in service["networks"]["default"]["aliases"], name


def test_prometheus_finds_every_scraped_name() -> None:
    services = _services()
    names = set(services)
    for service in services.values():
        for network in (service.get("networks") or {}).values():
            names.update((network or {}).get("aliases") or [])
    config = yaml.safe_load(PROMETHEUS.read_text())
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs") or []:
            for host in sd["names"]:
                assert host in names, f"prometheus job {job['job_name']}: no service {host}"
    for alerting in (config.get("alerting") or {}).get("alertmanagers") or []:
        for static in alerting.get("static_configs") or []:
            for target in static["targets"]:
                assert target.split(":")[0] in names, target


def test_platform_settings_and_the_executor_reach_the_actioner() -> None:
    env = _services()["actioner"]["environment"]
    assert env["WARDEN_ACTIONER__EXECUTOR"] == "${WARDEN_ACTIONER__EXECUTOR:-log}"
    for variable in (
        "WARDEN_PLATFORMS__DISCORD__TOKEN",
        "WARDEN_PLATFORMS__SLACK__BOT_TOKEN",
        "WARDEN_PLATFORMS__TWITCH__API_TOKEN",
        "WARDEN_PLATFORMS__TWITCH__CLIENT_ID",
        "WARDEN_PLATFORMS__WEBHOOK__URL",
    ):
        assert variable in env and env[variable] is None, variable


def test_each_service_has_its_own_kafka_identity() -> None:
    services = _services()
    for name, user in SERVICES.items():
        env = services[name]["environment"]
        assert env["WARDEN_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["WARDEN_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["WARDEN_KAFKA__SASL_USERNAME"] == user
        assert env["WARDEN_KAFKA__SASL_PASSWORD"].startswith(f"${{KAFKA_{user.upper()}_PASSWORD:?")
    users = set(re.findall(r"^set_password (\w+) ", SETUP.read_text(), re.MULTILINE))
    assert users == set(SERVICES.values()) - {"admin"}


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
    # One `acl` call may go on over continuation lines and name several topics.
    script = SETUP.read_text().replace("\\\n", " ")
    for line in script.splitlines():
        match = re.match(r"acl (\w+) (.*)", line.strip())
        if match and ("Write" in match.group(2) or "All" in match.group(2)):
            for topic in re.findall(r'--topic "\$(\w+)"', match.group(2)):
                writers.setdefault(topic, set()).add(match.group(1))
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
    assert writers["drift"] == {"drift"}
    assert writers["deadletters"] == {"ingest", "scorer", "actioner", "explainer", "review"}
