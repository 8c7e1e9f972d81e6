"""The local Kafka broker: a single-node KRaft JVM run from the cached Maven jars.

The broker's configuration is rendered from the templates in ``deploy/kafka/``; the storage is
formatted once and reused by later starts.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import string
import uuid
from pathlib import Path

from core.errors import StackError
from core.settings import KafkaSettings, StackSettings
from deploy.stack.paths import DEPLOY_DIR, Paths
from deploy.stack.processes import run_step, spawn

KAFKA_TEMPLATES = DEPLOY_DIR / "kafka"
KAFKA_HEAP = ("-Xms512m", "-Xmx512m")
START_TIMEOUT_S = 90.0


def _render(template: Path, target: Path, **values: object) -> None:
    text = string.Template(template.read_text()).substitute(
        {key: str(value) for key, value in values.items()}
    )
    target.write_text(text)


def cluster_id() -> str:
    """A fresh KRaft cluster id, as ``kafka-storage random-uuid`` prints it."""
    # Kafka's Uuid.toString(): 16 random bytes, URL-safe base64 without padding; like
    # `kafka-storage random-uuid`, never starting with "-" (it would read as an option).
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):
            return value


def start(stack: StackSettings, paths: Paths) -> int:
    """Render the config, format the storage once, start the broker detached; its pid."""
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found on PATH")
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    config = paths.kafka / "server.properties"
    log4j = paths.kafka / "log4j.properties"
    _render(
        KAFKA_TEMPLATES / "server.properties",
        config,
        kafka_port=stack.kafka_port,
        controller_port=stack.kafka_controller_port,
        data_dir=paths.kafka_data,
    )
    _render(KAFKA_TEMPLATES / "log4j.properties", log4j, log_file=paths.kafka_log)
    classpath = f"{paths.libs}/*"
    jvm = [java, *KAFKA_HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
    logging_opts = [f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={paths.kafka}"]

    if not (paths.kafka_data / "meta.properties").exists():
        # Format once: a single-voter KRaft metadata log. Later starts reuse the data.
        run_step(
            [
                java,
                *logging_opts,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id(),
                "--config",
                str(config),
            ],
            f"formatting Kafka storage in {paths.kafka_data}",
            paths.install_log,
        )
    return spawn(
        [*jvm, *logging_opts, "-cp", classpath, "kafka.Kafka", str(config)],
        cwd=paths.kafka,
        # Only this run's JVM output, so that a start-up failure shows just its own error.
        out=paths.kafka_out,
        append=False,
    )


async def answers(kafka: KafkaSettings) -> bool:
    """Whether the broker at ``kafka`` lists its topics within a few seconds."""
    from core.clients import kafka_admin

    admin = kafka_admin(kafka)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        await asyncio.wait_for(admin.list_topics(), timeout=5)
        return True
    finally:
        await admin.close()
