"""Client factories: every Kafka, Redis and Postgres client is built here, from Settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warden.settings import KafkaSettings, PostgresSettings, RedisSettings

if TYPE_CHECKING:
    import psycopg
    import redis.asyncio as aioredis
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient


def kafka_common(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection arguments shared by aiokafka producers, consumers and admin clients."""
    args: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_list,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        args["sasl_mechanism"] = kafka.sasl_mechanism
        args["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            args["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        args["ssl_context"] = create_ssl_context()
    return args


def kafka_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) that batches for ``linger_ms`` and compresses."""
    from aiokafka import AIOKafkaProducer

    args: dict[str, Any] = {
        **kafka_common(kafka),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": kafka.linger_ms,
        "compression_type": None if kafka.compression == "none" else kafka.compression,
    }
    args.update(overrides)
    return AIOKafkaProducer(**args)


def kafka_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to (after its side effects are done)."""
    from aiokafka import AIOKafkaConsumer

    args: dict[str, Any] = {
        **kafka_common(kafka),
        "group_id": group_id,
        "session_timeout_ms": int(kafka.session_timeout_s * 1000),
        "heartbeat_interval_ms": int(kafka.session_timeout_s * 1000 / 3),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    args.update(overrides)
    return AIOKafkaConsumer(*topics, **args)


def kafka_admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(**kafka_common(kafka))


def group_id(kafka: KafkaSettings, service: str) -> str:
    return f"{kafka.group_prefix}.{service}{kafka.topic_suffix}"


def redis_client(settings: RedisSettings) -> aioredis.Redis:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(
        settings.url.get_secret_value(),
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_timeout_s,
    )


async def postgres_connection(settings: PostgresSettings) -> psycopg.AsyncConnection[Any]:
    import psycopg

    return await psycopg.AsyncConnection.connect(settings.dsn.get_secret_value(), autocommit=False)
