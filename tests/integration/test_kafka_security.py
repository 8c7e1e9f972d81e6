"""The production Kafka security of docs/security.md, checked on a real broker.

One throwaway broker per module, started with the very scripts docker-compose.yml runs in the
apache/kafka image (deploy/kafka/secure-broker.sh, then deploy/kafka/secure-setup.sh), against a
fake KAFKA_HOME whose bin/ wrappers run the cached jars of the local stack (the version pinned in
deploy/pom.xml, the same as the compose image's). The topics are then created as admin, as the
compose `init` job does. Every client below is built by core.clients from KafkaSettings, as the
services build theirs: each allowed operation of the ACL table must work and each forbidden one
must fail with the broker's authorization error.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from kit import REPO, service_env
from pydantic import SecretStr

from core.clients import kafka_admin, kafka_consumer, kafka_producer
from core.net import free_port
from core.settings import KafkaSettings, Settings, load_settings
from core.topic_admin import create_topics
from schemas.events import ChatMessage, Verdict
from schemas.topics import (
    ACTIONS,
    CHAT_MESSAGES,
    DEADLETTER,
    DRIFT,
    EXPLANATIONS,
    FEEDBACK,
    RAIDS,
    TOPICS,
    VERDICTS,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BROKER_SCRIPT = REPO / "deploy" / "kafka" / "secure-broker.sh"
SETUP_SCRIPT = REPO / "deploy" / "kafka" / "secure-setup.sh"
COMPOSE = REPO / "docker-compose.yml"

# The tools the two scripts call, as the apache/kafka image's bin/ names them, and the class
# each runs (what Kafka's own bin/*.sh wrappers run).
KAFKA_TOOLS = {
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-server-start.sh": "kafka.Kafka",
    "kafka-broker-api-versions.sh": "kafka.admin.BrokerApiVersionsCommand",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
    "kafka-acls.sh": "kafka.admin.AclCommand",
}
# A 2-core CI box starts about 27 JVMs here: the client tools' JIT and GC are cut down to start
# fast; the broker keeps a small heap.
TOOL_JVM = "-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"
BROKER_JVM = "-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"
LOG4J = """\
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""
START_TIMEOUT_S = 90.0
SETUP_TIMEOUT_S = 150.0
CLIENT_TIMEOUT_S = 20.0
SERVICES = ("ingest", "scorer", "actioner", "explainer", "review", "drift")

MESSAGES = CHAT_MESSAGES.name_for("")
VERDICTS_TOPIC = VERDICTS.name_for("")
ACTIONS_TOPIC = ACTIONS.name_for("")
DEADLETTERS = DEADLETTER.name_for("")
RAIDS_TOPIC = RAIDS.name_for("")
EXPLANATIONS_TOPIC = EXPLANATIONS.name_for("")
FEEDBACK_TOPIC = FEEDBACK.name_for("")
DRIFT_TOPIC = DRIFT.name_for("")
# faust's own topics are named after the scorer's app id; the scorer may create and use them.
FAUST_TOPIC = "warden.scorer-acl-check"

# Who may write where: docs/security.md's ACL table, written out by hand (not read from the
# script) so that a change to secure-setup.sh that widens or narrows a grant fails here.
MAY_WRITE = {
    ("ingest", MESSAGES),
    ("ingest", DEADLETTERS),
    ("ingest", FEEDBACK_TOPIC),
    ("scorer", VERDICTS_TOPIC),
    ("scorer", RAIDS_TOPIC),
    ("scorer", DEADLETTERS),
    ("scorer", FAUST_TOPIC),
    ("actioner", ACTIONS_TOPIC),
    ("actioner", DEADLETTERS),
    ("explainer", EXPLANATIONS_TOPIC),
    ("explainer", DEADLETTERS),
    ("review", FEEDBACK_TOPIC),
    ("review", ACTIONS_TOPIC),
    ("review", DEADLETTERS),
    ("drift", DRIFT_TOPIC),
}
# Every topic of the catalog, so that a grant nobody listed fails too.
WRITE_CASES = [
    (user, topic, (user, topic) in MAY_WRITE)
    for user in SERVICES
    for topic in [*(spec.name_for("") for spec in TOPICS), FAUST_TOPIC]
]


@dataclass(frozen=True)
class SecureKafka:
    port: int
    passwords: dict[str, str]
    config_dir: Path
    log: Path
    setup_output: str

    def client(self, user: str | None = None, password: str | None = None) -> KafkaSettings:
        """Settings as a service gets them in compose; no user = a client without credentials."""
        bootstrap = f"127.0.0.1:{self.port}"
        if user is None:
            return KafkaSettings(bootstrap_servers=bootstrap)
        return KafkaSettings(
            bootstrap_servers=bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=SecretStr(self.passwords[user] if password is None else password),
        )


def _kafka_libs() -> Path:
    from deploy.stack import kafka_version

    libs = load_settings().stack.cache_dir.expanduser() / f"kafka-{kafka_version()}" / "libs"
    if not any(libs.glob("kafka_*.jar")):
        pytest.fail(f"no Kafka jars in {libs}: `warden stack up` fetches them")
    return libs


def _fake_kafka_home(home: Path, libs: Path) -> None:
    """bin/ wrappers with the image's script names, each running its class from the jars."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("java not found on PATH (`warden stack up` installs it)")
    (home / "bin").mkdir(parents=True)
    log4j = home / "log4j.properties"
    log4j.write_text(LOG4J)
    for name, main_class in KAFKA_TOOLS.items():
        jvm = BROKER_JVM if main_class == "kafka.Kafka" else TOOL_JVM
        wrapper = home / "bin" / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'exec "{java}" {jvm} -Dlog4j.configuration=file:{log4j} '
            f'-cp "{libs}/*" {main_class} "$@"\n'
        )
        wrapper.chmod(0o755)


def _script_env(home: Path, tmp: Path, **values: str) -> dict[str, str]:
    # Nothing of the caller's Kafka or warden set-up may leak into the scripts.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "WARDEN_"))
        and k not in ("CLUSTER_ID", "TOPIC_SUFFIX", "JAVA_TOOL_OPTIONS")
    }
    return {**inherited, "KAFKA_HOME": str(home), "TMPDIR": str(tmp), **values}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """TERM the process group (bash execs the wrapper, which execs java), KILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


async def _admin_answers(kafka: KafkaSettings) -> bool:
    admin = kafka_admin(kafka)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


def _wait_for_broker(
    process: subprocess.Popen[bytes], log: Path, port: int, admin: KafkaSettings
) -> None:
    import socket

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"secure-broker.sh exited with {process.returncode}:\n{_tail(log)}")
        with socket.socket() as sock:
            sock.settimeout(1)
            listening = sock.connect_ex(("127.0.0.1", port)) == 0
        if listening and asyncio.run(_admin_answers(admin)):
            return
        time.sleep(0.5)
    pytest.fail(f"the secured broker did not answer within {START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _run_setup(env: dict[str, str], log: Path) -> str:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(SETUP_SCRIPT)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=SETUP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _stop(process)
            pytest.fail(f"secure-setup.sh ran over {SETUP_TIMEOUT_S:.0f} s:\n{_tail(log)}")
    output = log.read_text(errors="replace")
    if process.returncode != 0:
        pytest.fail(f"secure-setup.sh exited with {process.returncode}:\n{output[-3000:]}")
    return output


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """The compose broker and its set-up job, on free loopback ports; stopped at teardown."""
    from deploy.stack.kafka_server import cluster_id

    root = tmp_path_factory.mktemp("secure-kafka")
    home = root / "kafka-home"
    _fake_kafka_home(home, _kafka_libs())
    port, controller_port = free_port(), free_port()
    while controller_port == port:
        controller_port = free_port()
    passwords = {user: secrets.token_hex(16) for user in ("admin", *SERVICES)}
    config_dir = root / "config"
    broker_env = _script_env(
        home,
        root,
        KAFKA_ADMIN_PASSWORD=passwords["admin"],
        CLUSTER_ID=cluster_id(),
        KAFKA_LISTEN_HOST="127.0.0.1",
        KAFKA_ADVERTISED_HOST="127.0.0.1",
        KAFKA_PORT=str(port),
        KAFKA_CONTROLLER_PORT=str(controller_port),
        KAFKA_DATA_DIR=str(root / "data"),
        KAFKA_CONFIG_DIR=str(config_dir),
    )
    log = root / "broker.log"
    with log.open("wb") as out:
        broker = subprocess.Popen(
            ["bash", str(BROKER_SCRIPT)],
            env=broker_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        kafka = SecureKafka(port, passwords, config_dir, log, setup_output="")
        admin = kafka.client("admin")
        _wait_for_broker(broker, log, port, admin)
        setup_env = _script_env(
            home,
            root,
            KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
            **{f"KAFKA_{user.upper()}_PASSWORD": password for user, password in passwords.items()},
        )
        output = _run_setup(setup_env, root / "setup.log")
        # The compose `init` job: the catalog's topics, created by the admin.
        asyncio.run(create_topics(admin, ""))
        yield SecureKafka(port, passwords, config_dir, log, setup_output=output)
    finally:
        _stop(broker)


async def produce(kafka: KafkaSettings, topic: str, value: bytes = b"{}") -> None:
    """One record, delivered (acks=all) or the client's error."""
    producer = kafka_producer(kafka, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(producer.start(), CLIENT_TIMEOUT_S)
        await asyncio.wait_for(
            producer.send_and_wait(topic, value, key=b"acl-check"), CLIENT_TIMEOUT_S
        )
    finally:
        await producer.stop()


async def consume_until(
    kafka: KafkaSettings, topic: str, group: str, wanted: bytes, timeout_s: float = 30.0
) -> int:
    """Read ``topic`` in ``group`` until the record ``wanted`` arrives, commit, and return the
    offset the group committed for its partition (or the client's error)."""
    consumer = kafka_consumer(kafka, topic, group_id=group, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(consumer.start(), CLIENT_TIMEOUT_S)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                if any(record.value == wanted for record in records):
                    await consumer.commit()
                    committed = await consumer.committed(tp)
                    return committed or 0
        raise AssertionError(f"{wanted!r} not read from {topic} within {timeout_s:.0f} s")
    finally:
        await consumer.stop()


def test_the_broker_runs_the_compose_images_kafka_version() -> None:
    from deploy.stack import kafka_version

    images = set(re.findall(r"image:\s*apache/kafka:(\S+)", COMPOSE.read_text()))
    assert images == {kafka_version()}


def test_the_setup_job_reports_success_and_logs_no_password(secure_kafka: SecureKafka) -> None:
    assert (
        "SCRAM users ingest, scorer, actioner, explainer, review, drift and their ACLs are set"
        in secure_kafka.setup_output
    )
    for password in secure_kafka.passwords.values():
        assert password not in secure_kafka.setup_output
        assert password not in secure_kafka.log.read_text(errors="replace")


def test_the_broker_config_holding_the_admin_password_is_private(
    secure_kafka: SecureKafka,
) -> None:
    files = sorted(secure_kafka.config_dir.iterdir())
    assert {"admin.properties", "server.properties"} <= {f.name for f in files}
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    server = (secure_kafka.config_dir / "server.properties").read_text()
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in server
    assert "allow.everyone.if.no.acl.found=false" in server
    assert "super.users=User:admin\n" in server


@pytest.mark.parametrize("user", SERVICES)
async def test_each_service_writes_only_its_own_topics(
    secure_kafka: SecureKafka, user: str
) -> None:
    """Every topic of the catalog (and faust's), tried at once with a client of its own."""
    kafka = secure_kafka.client(user)
    cases = [(topic, allowed) for who, topic, allowed in WRITE_CASES if who == user]
    outcomes = await asyncio.gather(
        *(produce(kafka, topic) for topic, _ in cases), return_exceptions=True
    )
    wrong = {
        topic: repr(outcome)
        for (topic, allowed), outcome in zip(cases, outcomes, strict=True)
        if (outcome is None) != allowed
        or (not allowed and not isinstance(outcome, TopicAuthorizationFailedError))
    }
    assert wrong == {}, f"{user}: {wrong}"


async def test_a_client_without_credentials_cannot_connect(secure_kafka: SecureKafka) -> None:
    with pytest.raises(KafkaConnectionError):
        await produce(secure_kafka.client(), VERDICTS_TOPIC)


@pytest.mark.parametrize("user", ["scorer", "admin", "mallory"])
async def test_a_wrong_password_or_unknown_user_cannot_connect(
    secure_kafka: SecureKafka, user: str
) -> None:
    kafka = secure_kafka.client(user, password=secrets.token_hex(16))
    with pytest.raises(KafkaConnectionError):
        await produce(kafka, VERDICTS_TOPIC)


@pytest.mark.parametrize(
    ("user", "topic", "group"),
    [
        ("scorer", MESSAGES, "warden.scorer"),
        # The image scorer runs as the scorer, in a group of its own.
        ("scorer", MESSAGES, "warden.images"),
        ("actioner", VERDICTS_TOPIC, "warden.actioner"),
        ("actioner", RAIDS_TOPIC, "warden.actioner"),
        ("explainer", VERDICTS_TOPIC, "warden.explainer"),
        ("explainer", FEEDBACK_TOPIC, "warden.explainer"),
        ("review", FEEDBACK_TOPIC, "warden.review"),
        ("review", EXPLANATIONS_TOPIC, "warden.review"),
        ("drift", VERDICTS_TOPIC, "warden.drift"),
    ],
)
async def test_a_service_reads_its_input_in_its_own_groups(
    secure_kafka: SecureKafka, user: str, topic: str, group: str
) -> None:
    wanted = f"read-{uuid.uuid4().hex}".encode()
    await produce(secure_kafka.client("admin"), topic, wanted)
    # A fresh group under the service's prefix, so that each run reads from the start.
    committed = await consume_until(
        secure_kafka.client(user), topic, f"{group}.check-{uuid.uuid4().hex[:8]}", wanted
    )
    assert committed > 0


@pytest.mark.parametrize(
    ("user", "topic", "group", "error"),
    [
        # A group outside the service's prefix.
        ("scorer", MESSAGES, "someone.else", GroupAuthorizationFailedError),
        ("actioner", VERDICTS_TOPIC, "warden.scorer", GroupAuthorizationFailedError),
        # ingest produces only: it has no group at all.
        ("ingest", MESSAGES, "warden.ingest", GroupAuthorizationFailedError),
        # Its own group, but a topic it may only write.
        ("actioner", DEADLETTERS, "warden.actioner", TopicAuthorizationFailedError),
        ("scorer", VERDICTS_TOPIC, "warden.scorer", TopicAuthorizationFailedError),
        ("review", VERDICTS_TOPIC, "warden.review", TopicAuthorizationFailedError),
        ("explainer", MESSAGES, "warden.explainer", TopicAuthorizationFailedError),
        ("drift", MESSAGES, "warden.drift", TopicAuthorizationFailedError),
    ],
)
async def test_reading_outside_the_grants_is_refused(
    secure_kafka: SecureKafka, user: str, topic: str, group: str, error: type[KafkaError]
) -> None:
    wanted = f"secret-{uuid.uuid4().hex}".encode()
    await produce(secure_kafka.client("admin"), topic, wanted)
    with pytest.raises(error):
        await consume_until(
            secure_kafka.client(user), topic, f"{group}.check-{uuid.uuid4().hex[:8]}", wanted
        )


def _chat_message() -> ChatMessage:
    tag = uuid.uuid4().hex[:12]
    return ChatMessage.model_validate(
        {
            "message_id": f"acl-{tag}",
            "platform": "twitch",
            "community": f"acl-{tag}",
            "channel": "#main",
            "user": f"u-{tag}",
            "text": "hello from the secured broker",
            "sent_at": "2026-11-30T10:00:00+00:00",
            "received_at": "2026-11-30T10:00:00.010000+00:00",
        }
    )


def _verdict_for(value: bytes | None, message_id: str) -> Verdict | None:
    # The verdicts topic also holds the other tests' raw records: skip what is not JSON.
    try:
        record = json.loads(value or b"null")
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("message_id") == message_id:
        return Verdict.model_validate(record)
    return None


def _start_scorer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "warden", "scorer"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_the_scorer_service_runs_with_its_own_credentials(
    secure_kafka: SecureKafka, stack: Settings, tmp_path: Path
) -> None:
    """`warden scorer` (faust app warden.scorer) as user scorer: it joins its group, reads what
    ingest wrote and delivers a verdict that the actioner can read. Redis is the local stack's;
    the lexical model, because the model plays no part in what is checked here."""
    message = _chat_message()
    await produce(secure_kafka.client("ingest"), MESSAGES, message.to_json_bytes())
    settings = stack.model_copy(update={"kafka": secure_kafka.client("scorer")})
    env = service_env(
        settings,
        WARDEN_KAFKA__SECURITY_PROTOCOL="SASL_PLAINTEXT",
        WARDEN_KAFKA__SASL_MECHANISM="SCRAM-SHA-512",
        WARDEN_KAFKA__SASL_USERNAME="scorer",
        WARDEN_KAFKA__SASL_PASSWORD=secure_kafka.passwords["scorer"],
        WARDEN_MODEL__KIND="lexical",
        WARDEN_STACK__DIR=str(tmp_path / "stack"),
    )
    log = tmp_path / "scorer.log"
    scorer = await asyncio.to_thread(_start_scorer, env, log)
    try:
        consumer = kafka_consumer(
            secure_kafka.client("actioner"),
            VERDICTS_TOPIC,
            group_id=f"warden.actioner.check-{uuid.uuid4().hex[:8]}",
        )
        await consumer.start()
        verdict: Verdict | None = None
        try:
            deadline = time.monotonic() + 60
            while verdict is None and time.monotonic() < deadline:
                assert scorer.poll() is None, f"the scorer died:\n{_tail(log)}"
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        verdict = verdict or _verdict_for(record.value, message.message_id)
        finally:
            await consumer.stop()
        assert verdict is not None, f"no verdict within 60 s; scorer log:\n{_tail(log)}"
    finally:
        await asyncio.to_thread(_stop, scorer)
    assert secure_kafka.passwords["scorer"] not in log.read_text(errors="replace")
