"""One settings object for every service, read from ``WARDEN_*`` environment variables.

Nested sections use ``__`` between the section and the field, for example
``WARDEN_KAFKA__BOOTSTRAP_SERVERS=broker-1:9092``. Defaults run on one machine with the local
stack (``warden stack up``); production differs only by environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from warden.errors import ConfigError

ENV_PREFIX = "WARDEN_"
NESTED_DELIMITER = "__"
REPO_ROOT = Path(__file__).resolve().parent.parent


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:39092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Appended to every topic name, so that tests and parallel environments never share data.
    topic_suffix: str = ""
    # Each service joins its own consumer group: "<group_prefix>.<service>".
    group_prefix: str = "warden"
    replication_factor: int = Field(default=1, ge=1)
    linger_ms: int = Field(default=5, ge=0)
    compression: Literal["none", "gzip", "lz4", "zstd"] = "lz4"

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts_have_ports(cls, value: str) -> str:
        for host in value.split(","):
            name, _, port = host.strip().rpartition(":")
            if not name or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @property
    def bootstrap_list(self) -> list[str]:
        return [host.strip() for host in self.bootstrap_servers.split(",")]


class RedisSettings(BaseModel):
    url: SecretStr = SecretStr("redis://127.0.0.1:36379/0")
    socket_timeout_s: float = Field(default=0.5, gt=0)


class PostgresSettings(BaseModel):
    dsn: SecretStr = SecretStr("postgresql://warden@127.0.0.1:35432/warden")
    pool_max: int = Field(default=4, ge=1)


class ModelSettings(BaseModel):
    # "lexical" is the skeleton's word-list placeholder; "hybrid" is encoder + features + XGBoost.
    kind: Literal["lexical", "hybrid"] = "lexical"
    # A model directory written by `warden train`; None = the default model shipped in models/.
    path: Path | None = None
    # Hugging Face encoder: a local path or a name reachable offline; None = the model's own.
    encoder: str | None = None
    quantize: Literal["none", "int8"] = "int8"
    device: Literal["cpu", "cuda"] = "cpu"
    batch_size: int = Field(default=64, ge=1, le=4096)
    # Severity thresholds; None = the ones stored with the model (0.3 / 0.5 / 0.7 by default).
    low_threshold: float | None = Field(default=None, ge=0, le=1)
    medium_threshold: float | None = Field(default=None, ge=0, le=1)
    high_threshold: float | None = Field(default=None, ge=0, le=1)


class DiscordSettings(BaseModel):
    token: SecretStr | None = None
    api_base_url: str = "https://discord.com/api/v10"


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"


class WebhookSettings(BaseModel):
    url: str | None = None
    secret: SecretStr | None = None


class PlatformSettings(BaseModel):
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    webhook: WebhookSettings = WebhookSettings()


class MetricsSettings(BaseModel):
    host: str = "127.0.0.1"
    ingest_port: int = Field(default=9101, ge=0, le=65535)
    scorer_port: int = Field(default=9102, ge=0, le=65535)
    actioner_port: int = Field(default=9103, ge=0, le=65535)


class ScorerSettings(BaseModel):
    # faust's own web server (worker status pages); 0 picks a free port.
    web_port: int = Field(default=6066, ge=0, le=65535)
    # Verdicts at or above this severity are "flagged" for the actioner.
    flag_severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    # A micro-batch closes at max_batch messages or after max_wait_ms, whichever comes first.
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_wait_ms: int = Field(default=20, ge=1, le=10_000)


class StackSettings(BaseModel):
    """Where `warden stack` keeps the local servers' data, logs and pids."""

    dir: Path = REPO_ROOT / ".stack"
    cache_dir: Path = Path.home() / ".cache" / "chatwarden"
    kafka_port: int = Field(default=39092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=39093, ge=1, le=65535)
    redis_port: int = Field(default=36379, ge=1, le=65535)
    postgres_port: int = Field(default=35432, ge=1, le=65535)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    postgres: PostgresSettings = PostgresSettings()
    model: ModelSettings = ModelSettings()
    platforms: PlatformSettings = PlatformSettings()
    metrics: MetricsSettings = MetricsSettings()
    scorer: ScorerSettings = ScorerSettings()
    stack: StackSettings = StackSettings()


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc`` (a pydantic error location)."""
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise ConfigError naming every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [f"{env_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
