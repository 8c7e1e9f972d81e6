"""One settings object for every service, read from ``WARDEN_*`` environment variables.

Nested sections use ``__`` between the section and the field, for example
``WARDEN_KAFKA__BOOTSTRAP_SERVERS=broker-1:9092``. Defaults run on one machine with the local
stack (``warden stack up``); production differs only by environment.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.errors import ConfigError
from core.image_settings import ImageSettings

ENV_PREFIX = "WARDEN_"
NESTED_DELIMITER = "__"
REPO_ROOT = Path(__file__).resolve().parent.parent


class Section(BaseModel):
    """A settings section. Unknown keys are errors: pydantic-settings hands a misspelt nested
    variable (``WARDEN_KAFKA__BOOTSTRAP_SERVER``) to its section as an extra key, and ignoring
    it would run on the default while the operator believes it set."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:29092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Appended to every topic name, so that tests and parallel environments never share data.
    topic_suffix: str = ""
    # Each service joins its own consumer group: "<group_prefix>.<service>".
    group_prefix: str = "warden"
    replication_factor: int = Field(default=1, ge=1)
    # How long a producer waits to fill a batch (not the scorer: it sends whole batches).
    linger_ms: int = Field(default=5, ge=0)
    compression: Literal["none", "gzip", "lz4", "zstd"] = "lz4"
    # lz4's level for what this process compresses (1: fast; up to 12: high compression, about
    # 7x the CPU for a 15 % smaller verdict batch). core.clients.install_lz4_level.
    lz4_level: int = Field(default=1, ge=1, le=12)
    # A group member that stops answering (killed, hung) loses its partitions after this long.
    session_timeout_s: float = Field(default=10.0, ge=1, le=300)
    # Pause between retries of a failed request (fetch, produce, coordinator look-up).
    retry_backoff_ms: int = Field(default=250, ge=1, le=60_000)
    # After a failed metadata refresh (broker unreachable) clients wait this long, doubling per
    # failure up to the max, with +-20 % jitter (core.clients.install_reconnect_backoff).
    reconnect_backoff_ms: int = Field(default=100, ge=1, le=60_000)
    reconnect_backoff_max_ms: int = Field(default=2000, ge=1, le=600_000)

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts_have_ports(cls, value: str) -> str:
        for host in value.split(","):
            name, _, port = host.strip().rpartition(":")
            if not name or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSettings:
        # Half a SASL configuration would otherwise connect without credentials (faust falls
        # back to PLAINTEXT) and fail later with an authorization error far from its cause.
        var = f"{ENV_PREFIX}KAFKA{NESTED_DELIMITER}"
        sasl = self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")
        if sasl and (
            self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs {var}SASL_MECHANISM, "
                f"{var}SASL_USERNAME and {var}SASL_PASSWORD"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs {var}SECURITY_PROTOCOL "
                "SASL_PLAINTEXT or SASL_SSL"
            )
        return self

    @property
    def bootstrap_list(self) -> list[str]:
        return [host.strip() for host in self.bootstrap_servers.split(",")]


class RedisSettings(Section):
    url: SecretStr = SecretStr("redis://127.0.0.1:26379/0")
    socket_timeout_s: float = Field(default=0.5, gt=0)


class PostgresSettings(Section):
    dsn: SecretStr = SecretStr("postgresql://warden@127.0.0.1:25432/warden")
    pool_max: int = Field(default=4, ge=1)
    # A connection attempt that takes longer counts as PostgreSQL being away.
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # While PostgreSQL is away, services reconnect with exponential back-off and full jitter:
    # each wait drawn from [0, min(reconnect_max_s, reconnect_base_s * 2^attempt)].
    reconnect_base_s: float = Field(default=0.1, gt=0)
    reconnect_max_s: float = Field(default=5.0, gt=0)


class ModelSettings(Section):
    # "lexical" is the skeleton's word-list placeholder; "hybrid" is encoder + features + XGBoost.
    kind: Literal["lexical", "hybrid"] = "hybrid"
    # A model directory written by `warden train`; None = the default model shipped in models/.
    path: Path | None = None
    # Hugging Face encoder: a local path or a name reachable offline; None = the model's own.
    encoder: str | None = None
    quantize: Literal["none", "int8"] = "int8"
    device: Literal["cpu", "cuda"] = "cpu"
    batch_size: int = Field(default=64, ge=1, le=4096)
    # int8 on the CPU: single-threaded encoder sessions run side by side, one text each;
    # None = one per core (toxicity.encoder explains why).
    encoder_workers: int | None = Field(default=None, ge=1, le=256)
    # int8: run those sessions in a child process (toxicity.encoder_process), off this
    # process's interpreter lock; None = in the scorer's workers, not elsewhere.
    encoder_process: bool | None = None
    # int8: embeddings kept by token ids, so LUL and lul cost one encoder run (0 = none kept;
    # 20,000 MiniLM embeddings are ~31 MB).
    encoder_id_cache: int = Field(default=20_000, ge=0, le=10_000_000)
    # Where the int8 encoder is built on first use (encoders/<hash>/); None =
    # WARDEN_STACK__CACHE_DIR. Scorer replicas may share it (a volume): a build is locked and
    # each file appears whole (toxicity.encoder), so a reader never sees half an encoder.
    cache_dir: Path | None = None
    # The model registry (`warden models`): its name (rows in PostgreSQL, the active-model
    # pointer in Redis), whether scorers follow its active model (None = unless `path` pins a
    # directory), and how often a scorer looks for a promotion between batches.
    registry: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    follow_registry: bool | None = None
    poll_s: float = Field(default=5.0, gt=0, le=3600)
    # Severity thresholds; None = the ones stored with the model (0.3 / 0.5 / 0.7 by default).
    low_threshold: float | None = Field(default=None, ge=0, le=1)
    medium_threshold: float | None = Field(default=None, ge=0, le=1)
    high_threshold: float | None = Field(default=None, ge=0, le=1)

    @property
    def follows_registry(self) -> bool:
        return self.follow_registry if self.follow_registry is not None else self.path is None


class DiscordSettings(Section):
    token: SecretStr | None = None
    api_base_url: str = "https://discord.com/api/v10"
    # The gateway WebSocket; None = discord.py's own (wss://gateway.discord.gg/).
    gateway_url: str | None = None
    # Actioner: seconds allowed per REST request (rate-limit waits come on top).
    request_timeout_s: float = Field(default=15.0, gt=0)
    # Actioner, raid mode: the channel slowmode (seconds between a member's messages) and the
    # guild verification level (0-4; 3 = members of the server for 10 minutes) it turns on.
    raid_slowmode_s: int = Field(default=30, ge=1, le=21600)
    raid_verification_level: int = Field(default=3, ge=1, le=4)


class SlackSettings(Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    # `warden ingest slack`: the Events API over HTTP (verified by signing_secret), or Socket
    # Mode (an app-level xapp- token; no public endpoint needed).
    mode: Literal["http", "socket"] = "http"
    app_token: SecretStr | None = None
    events_host: str = "127.0.0.1"
    events_port: int = Field(default=3000, ge=0, le=65535)
    events_path: str = "/slack/events"
    # Actioner: chat.delete of other people's messages needs a workspace admin's user token
    # (xoxp-); without one the bot token is used (it may delete only what it may delete).
    admin_token: SecretStr | None = None
    request_timeout_s: float = Field(default=15.0, gt=0)


class TwitchSettings(Section):
    """Twitch chat over IRC-on-WebSocket (without a token it reads anonymously, justinfan), and
    the Helix API the actioner acts through (``api_token``, ``client_id``)."""

    irc_url: str = "wss://irc-ws.chat.twitch.tv:443"
    nick: str = "justinfan12345"
    token: SecretStr | None = None
    # The chat token's refresh token (its account may differ from api_token's): with client_id
    # and client_secret, the chat clients trade it for a new token when Twitch refuses the login.
    token_refresh_token: SecretStr | None = None
    # Channels to join, without '#'; set as JSON: WARDEN_PLATFORMS__TWITCH__CHANNELS='["a","b"]'.
    channels: list[str] = Field(default_factory=list)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # Actioner (Helix): a user access token of the moderator account with the scopes
    # moderator:manage:chat_messages, moderator:manage:banned_users,
    # moderator:manage:chat_settings and moderator:manage:warnings, and the app's client id.
    api_token: SecretStr | None = None
    client_id: str | None = None
    # The token's user id; None = looked up from the token at start (GET /users).
    moderator_id: str | None = None
    api_base_url: str = "https://api.twitch.tv/helix"
    # User tokens expire (about 4 h): with the refresh token and the app's client secret (a
    # confidential client) the executor trades them for a new token when Helix answers 401, and
    # validates the token hourly as Twitch requires. Without them an expired token is a failed
    # action naming WARDEN_PLATFORMS__TWITCH__API_TOKEN.
    refresh_token: SecretStr | None = None
    client_secret: SecretStr | None = None
    auth_url: str = "https://id.twitch.tv/oauth2"
    validate_every_s: float = Field(default=3600.0, gt=0)
    request_timeout_s: float = Field(default=15.0, gt=0)
    # Twitch has no kick: a kick is a timeout this long (1 s: the "purge" streamers know,
    # which clears the user's lines and lets them chat again), never shortening a longer one.
    kick_timeout_s: int = Field(default=1, ge=1, le=1_209_600)
    # Raid mode: slow mode's wait (3-120 s) and how long raiders must follow (minutes).
    raid_slow_s: int = Field(default=30, ge=3, le=120)
    raid_followers_minutes: int = Field(default=10, ge=0, le=129_600)


class WebhookSettings(Section):
    url: str | None = None
    secret: SecretStr | None = None
    # Actioner: seconds allowed per signed POST.
    timeout_s: float = Field(default=10.0, gt=0)


class PlatformSettings(Section):
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    webhook: WebhookSettings = WebhookSettings()
    twitch: TwitchSettings = TwitchSettings()


# The platforms a chat message can come from (schemas.events.Platform).
PlatformName = Literal["discord", "slack", "twitch", "webhook", "replay"]


def _webhook_only() -> list[PlatformName]:
    return ["webhook"]


class WebhookCredential(Section):
    """One webhook caller and what it may speak for (``WARDEN_INGEST__WEBHOOK_CREDENTIALS``)."""

    name: str = Field(min_length=1, max_length=100)
    token: SecretStr | None = None
    hmac_secret: SecretStr | None = None
    # Items naming another platform or community are refused (422, dead-lettered).
    platforms: list[PlatformName] = Field(default_factory=_webhook_only, min_length=1)
    communities: list[str] | None = None  # None: any community

    @model_validator(mode="after")
    def _has_a_secret(self) -> WebhookCredential:
        secrets = [s for s in (self.token, self.hmac_secret) if s is not None]
        if not secrets or any(len(s.get_secret_value()) < 8 for s in secrets):
            raise ValueError(f"credential {self.name!r} needs a token or an hmac_secret (8+ chars)")
        return self


class IngestSettings(Section):
    """The adapters' shared publisher and the inbound webhook (`warden ingest ...`)."""

    # Messages accepted while the broker is unreachable wait in memory up to these limits;
    # beyond them adapters wait (back-pressure) and the webhook answers 503 + Retry-After.
    buffer_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    buffer_max_messages: int = Field(default=200_000, ge=1)
    retry_after_s: int = Field(default=5, ge=1)
    # A clean shutdown waits this long for buffered messages to reach the broker.
    shutdown_timeout_s: float = Field(default=30.0, ge=0)
    # Inbound webhook / batch API: bearer token and/or HMAC-SHA256 secret (at least one).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8080, ge=0, le=65535)
    webhook_token: SecretStr | None = None
    webhook_hmac_secret: SecretStr | None = None
    webhook_max_batch: int = Field(default=1000, ge=1)
    webhook_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Signed requests older (or newer) than this are refused: no replays of captured requests.
    signature_tolerance_s: int = Field(default=300, ge=1)
    # Within that window each signature is accepted once; at most this many are remembered
    # (beyond it signed requests get 503 until the oldest expire, rather than forgetting one).
    webhook_replay_cache_size: int = Field(default=100_000, ge=1)
    # Bodies nested deeper than this are refused (400) before they are parsed.
    webhook_max_json_depth: int = Field(default=32, ge=2, le=1000)
    # What the token / HMAC secret above may speak for: items naming another platform or
    # community are refused. Only "webhook" by default, so a caller cannot claim the users (or
    # the moderator roles) of Discord, Slack or Twitch. Communities: None = any.
    webhook_platforms: list[PlatformName] = Field(default_factory=_webhook_only, min_length=1)
    webhook_communities: list[str] | None = None
    # More callers, each with its own secret and scope: a JSON list of
    # {"name", "token" and/or "hmac_secret", "platforms", "communities"}.
    webhook_credentials: list[WebhookCredential] = Field(default_factory=list)
    # The webhook answers 503 instead of accepting more once the broker has not answered for
    # this long (what it took would only wait in memory).
    unavailable_after_s: float = Field(default=30.0, gt=0)
    # Between attempts to reach the broker, and between producers replaced after fatal producer
    # errors: exponential back-off from reconnect_base_s to reconnect_max_s, with jitter.
    reconnect_base_s: float = Field(default=0.25, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    # Users who opted out are dropped before anything is stored: a Redis set of
    # "platform:community:user" keys, re-read every opt_out_refresh_s ("none": nobody dropped).
    opt_out: Literal["none", "redis"] = "redis"
    opt_out_key: str = "warden:optout"
    opt_out_refresh_s: float = Field(default=5.0, gt=0)


class MetricsSettings(Section):
    host: str = "127.0.0.1"
    ingest_port: int = Field(default=9101, ge=0, le=65535)
    scorer_port: int = Field(default=9102, ge=0, le=65535)
    actioner_port: int = Field(default=9103, ge=0, le=65535)
    explainer_port: int = Field(default=9104, ge=0, le=65535)
    review_port: int = Field(default=9105, ge=0, le=65535)
    drift_port: int = Field(default=9106, ge=0, le=65535)
    images_port: int = Field(default=9107, ge=0, le=65535)
    # Outcome metrics (verdicts, actions, disputes) carry a `community` label for the first this
    # many communities each process sees (`platform:community`); later ones share `other`, so
    # a platform with ten thousand communities does not make ten thousand series per metric.
    communities: int = Field(default=20, ge=0, le=1000)


class ScorerSettings(Section):
    # Verdicts at or above this severity are "flagged" for the actioner.
    flag_severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    # A micro-batch closes at max_batch messages or after max_wait_ms, whichever comes first;
    # at once when no message waits and the scorer would start on it at once (idle).
    # Batches fill only while messages wait (a backlog): then the larger the batch, the less of
    # each batch's fixed work (Redis and broker round trips, faust's fetch, the booster's call)
    # a message pays; a quiet stream's batches stay small (README, Benchmark: 128 -> 512 ->
    # 1,024). A batch's detector script holds Redis 40-55 us a message (40-55 ms at 1,024).
    max_batch: int = Field(default=1024, ge=1, le=4096)
    max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    # Bytes (before compression) of one Kafka record batch of the scorer's deliveries. aiokafka
    # keeps one batch a partition in flight, so a delivery cut into faust's 16 KiB batches took
    # a broker round trip per batch; at this a batch's verdicts for a partition are one record
    # batch. The broker's and the topics' message size limit (1 MiB by default) must allow it.
    record_batch_bytes: int = Field(default=524_288, ge=16_384, le=1_000_000)
    # Text-side results kept per worker for repeated lines (0 = no cache).
    cache_size: int = Field(default=20_000, ge=0)
    # Also share them between workers through Redis, for this long.
    shared_cache: bool = False
    shared_cache_ttl_s: int = Field(default=3600, ge=1)
    # After a Redis failure, score without context for this long before trying Redis again.
    redis_retry_after_s: float = Field(default=1.0, gt=0)
    # Stream detectors (spam, flood, caps, link, emote/mention floods, split evasion, raids).
    detectors: bool = True
    # Each community's detector thresholds (mirrored to Redis by the actioner) are re-read at
    # most this often.
    detector_policy_cache_s: float = Field(default=30.0, ge=0)
    # A challenger in shadow: scores the same stream in a consumer group of its own into
    # moderation.verdicts.shadow.v1 (never actioned), with WARDEN_MODEL__PATH's model. It writes
    # no stream state (context counters, detector windows, raids) and follows no registry.
    shadow: bool = False
    # faust's worker state on disk (per replica: nothing there outlives it, state is in Redis
    # and Kafka); None = <WARDEN_STACK__DIR>/faust.
    data_dir: Path | None = None


class ActionerSettings(Section):
    """The actioner: which executor acts, how hard it may push the platforms, and retries."""

    # "log" acts on nothing (dry run); "discord", "slack", "twitch", "webhook" act through that
    # platform (verdicts of other platforms are skipped); "platform" routes each verdict by its
    # platform (discord, slack, twitch; the webhook for the rest when its url is set, else the
    # log).
    executor: Literal["log", "discord", "slack", "twitch", "webhook", "platform"] = "log"
    # The policy of a community that has none stored in PostgreSQL.
    default_preset: Literal["lenient", "balanced", "strict", "livestream"] = "balanced"
    # A community with no stored policy is in first-day mode: "shadow" decides and records
    # everything and acts on nothing until `warden policy go-live`; "off" acts at once.
    first_day: Literal["shadow", "off"] = "shadow"
    # Policies are re-read from PostgreSQL at most this often per community.
    policy_cache_s: float = Field(default=5.0, ge=0)
    # Verdicts read and decided per batch (offsets are committed per batch).
    max_batch: int = Field(default=500, ge=1, le=10_000)
    # Platform actions in flight at once: in all, and per community.
    concurrency: int = Field(default=32, ge=1, le=1024)
    community_concurrency: int = Field(default=4, ge=1, le=256)
    # Tries for transient failures (5xx, time-outs); rate-limit waits do not count as tries.
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    # An action still rate limited after this long in all fails (and goes to the dead letters).
    rate_limit_max_wait_s: float = Field(default=600.0, gt=0)
    # From this many deletes in one channel in one batch, the platform's bulk delete is used.
    bulk_delete_min: int = Field(default=3, ge=2, le=100)
    # Actions decided but not finished, at most; beyond it the actioner stops reading verdicts
    # (its offsets are committed once the actions are recorded in the ledger, not done).
    max_pending_actions: int = Field(default=5000, ge=1)
    # On shutdown or when partitions are taken away, actions under way get this long to finish
    # (what is left stays in the ledger for whoever gets the partitions next).
    drain_timeout_s: float = Field(default=30.0, ge=0)
    # How often the actioner looks for ledger entries whose time has come (a raid mode's
    # RAID_MODE_OFF after its duration_s): raid mode ends at most this late.
    due_check_s: float = Field(default=5.0, gt=0, le=3600)


class ExplainerSettings(Section):
    """The explainer service (``explainers``): LIME explanations of flagged verdicts."""

    # Perturbed texts scored per explanation (LIME's num_samples).
    samples: int = Field(default=300, ge=10, le=10_000)
    # Verdicts at or above this severity are explained as they arrive.
    min_severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    # Explanations waiting at most; beyond it the least severe, oldest are shed.
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    # Words of a message LIME perturbs; the rest of a longer one is held fixed (bounds the work).
    max_words: int = Field(default=64, ge=1, le=512)
    # Text-side rows of perturbed texts kept for reuse (0 = no cache).
    cache_size: int = Field(default=20_000, ge=0)
    # CPU threads the explainer's model may use: it shares the machine with the scorer.
    threads: int = Field(default=1, ge=1, le=256)
    # Verdicts below min_severity remembered (by message id) so that a dispute can be explained.
    recent_verdicts: int = Field(default=5_000, ge=0, le=1_000_000)


class DriftSettings(Section):
    """The drift monitor (``warden drift run``): rolling windows of each community's verdicts
    tested against a pinned reference period with Evidently (``retrain.drift``)."""

    # Where references are kept (references/) and HTML reports are written (reports/ unless
    # reports_dir says otherwise); None = <WARDEN_STACK__DIR>/drift.
    dir: Path | None = None
    reports_dir: Path | None = None
    # The newest verdicts per community in the current window, and the verdicts of the pinned
    # reference (the first this many a community sends with no reference on disk, or `warden
    # drift pin`).
    window_rows: int = Field(default=1000, ge=50, le=100_000)
    reference_rows: int = Field(default=1000, ge=50, le=100_000)
    # A community is tested once its window holds this many verdicts (fewer make PSI noisy:
    # two samples of 200 from one distribution score up to ~0.25 on a skewed column).
    min_rows: int = Field(default=500, ge=20, le=100_000)
    # Communities with a window, at most (the least recently seen is dropped; about 1 MB each
    # with its reference at the default sizes); the metrics_communities largest windows get
    # their own metric label, the rest share `other`.
    max_communities: int = Field(default=100, ge=1, le=10_000)
    metrics_communities: int = Field(default=20, ge=0, le=500)
    check_every_s: float = Field(default=60.0, gt=0, le=86_400)
    # Evidently's per-column test (a distance: higher is further from the reference) and the
    # score at which a column counts as drifted (PSI: 0.1 some change, 0.25 a major one).
    method: Literal["psi", "jensenshannon", "hellinger"] = "psi"
    column_threshold: float = Field(default=0.2, gt=0, le=10)
    # A community drifts when this share of its tested columns drifted, or when its flag rate
    # moved by at least flag_rate_shift (absolute; 1 turns that rule off).
    drift_share: float = Field(default=0.3, gt=0, le=1)
    flag_rate_shift: float = Field(default=0.1, gt=0, le=1)
    # At most one DriftEvent (and one HTML report) per community per cooldown.
    cooldown_s: float = Field(default=3600.0, ge=0)
    # Drift reports kept per community (the oldest are deleted).
    keep_reports: int = Field(default=20, ge=1, le=10_000)
    # Feature-snapshot values (Verdict.features) watched besides score, labels and text.
    features: list[str] = Field(
        default_factory=lambda: [
            "caps_ratio",
            "emote_ratio",
            "mention_count",
            "user_bad_ratio_7d",
            "hours_since_last_msg",
        ],
        max_length=32,
    )

    @field_validator("features")
    @classmethod
    def _feature_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not name.isidentifier()]
        if bad:
            raise ValueError(f"feature names are identifiers (JSON list of names), got {bad}")
        return value

    @model_validator(mode="after")
    def _min_fits_window(self) -> DriftSettings:
        if self.min_rows > self.window_rows:
            var = f"{ENV_PREFIX}DRIFT{NESTED_DELIMITER}"
            raise ValueError(
                f"{var}MIN_ROWS {self.min_rows} exceeds {var}WINDOW_ROWS {self.window_rows}: "
                "no community would ever be tested"
            )
        return self


class RetrainSettings(Section):
    """`warden retrain`: a candidate model from the base data plus reviewed feedback."""

    # What starts a retrain under `warden retrain --watch`: a DriftEvent, enough new reviews,
    # either, or nothing (run `warden retrain` by hand).
    trigger: Literal["off", "drift", "labels", "drift_or_labels"] = "labels"
    # New reviews since the last retrain that trigger one ("labels"), and the reviewed texts
    # a retrain needs at all.
    min_new_labels: int = Field(default=500, ge=1)
    min_labels: int = Field(default=50, ge=1)
    # How far back the verdict and feedback topics are read (the verdicts' retention is 14 d).
    since_days: float = Field(default=14.0, gt=0)
    # Confident unreviewed verdicts as weak labels (retrain/feedback.py says why it is off).
    weak_labels: bool = False
    # The base weight of a reviewed row (the chat rows have 4, public rows 1).
    feedback_weight: float = Field(default=4.0, gt=0)
    # Where candidate model directories go; None = <stack.cache_dir>/models.
    out_dir: Path | None = None


class ReviewSettings(Section):
    """The moderators' review queue (``warden review``): a web app with sign-in."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    # Signs session cookies; required to start the review service (never logged).
    session_secret: SecretStr | None = None
    # The address moderators open, for links in mod-log lines and bot replies. An https://
    # address also marks the session cookie Secure.
    public_url: str = "http://127.0.0.1:8090"
    # A signed-in session lasts this long.
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    # Sign-in attempts allowed per client address and per name in a window, then 429.
    login_attempts: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    # The queue's sample of automated decisions: p_toxic within `borderline_margin` of
    # `flag_threshold` (borderline) or a ban, timeout or hold (high impact), this many each.
    flag_threshold: float = Field(default=0.5, ge=0, le=1)
    borderline_margin: float = Field(default=0.1, ge=0, le=0.5)
    sample_size: int = Field(default=20, ge=0, le=500)
    sample_days: float = Field(default=7.0, gt=0)
    # The user's previous lines shown on a review page: the actioner keeps this many per user
    # per community in Redis (0: none kept), for this long after the user's last line.
    chat_lines: int = Field(default=20, ge=0, le=200)
    chat_ttl_s: int = Field(default=7 * 86400, ge=60)
    # An overturn waits this long for its reversals before showing the page (they finish in
    # the background otherwise, and the page shows them pending).
    reversal_wait_s: float = Field(default=10.0, ge=0)


class BotSettings(Section):
    """Disputes and moderator commands in chat (``actioners.bots``, the webhook's
    ``/v1/disputes``, Twitch ``!dispute``) and the mod-log line of every automated action."""

    # Discord's "Interactions Endpoint URL": requests are signed with the application's
    # Ed25519 key (hex, from the developer portal); without it the endpoint refuses everything.
    discord_public_key: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    # The application id `warden bots sync-discord` registers the commands for.
    discord_application_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")
    # Slack's signing secret (Basic Information > App Credentials) for slash commands and
    # interactivity; the Slack routes refuse to start without it.
    slack_signing_secret: SecretStr | None = None
    # Slack has no per-channel moderators: workspace admins and owners (users.info) count as
    # moderators, and so do these user ids.
    slack_moderators: list[str] = Field(default_factory=list)
    # At most dispute_limit disputes per user (platform:community:user) per dispute_window_s,
    # in each process that takes disputes; beyond it 429 / an ephemeral refusal.
    dispute_limit: int = Field(default=5, ge=1, le=10_000)
    dispute_window_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    # Mod-log: "platform:community" -> the channel that receives a line per automated action
    # (Discord channel id, Slack channel id; Twitch has no place for it). Empty: off.
    modlog_channels: dict[str, str] = Field(default_factory=dict)
    # Seconds a mod-log post may take; a slow platform never holds up the actioner longer.
    modlog_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Twitch moderator commands (`!warden strikes @user`, ...) in the channels of
    # WARDEN_PLATFORMS__TWITCH__CHANNELS, read and answered over IRC by `warden review` (or
    # `warden bots twitch`) logged in with WARDEN_PLATFORMS__TWITCH__TOKEN (chat:read, chat:edit).
    twitch_commands: bool = False
    # Replies per 30 s: Twitch allows 20 to a bot that is not a moderator of the channel, 100
    # to one that is; beyond it Twitch drops the bot's lines for 30 min, so we drop first.
    twitch_reply_limit: int = Field(default=20, ge=1, le=100)


class PrivacySettings(Section):
    """Forget, opt-out and retention (core.privacy, actioners.retention; docs/privacy.md)."""

    # Keys the pseudonym (HMAC-SHA256 of platform:community:user) of a forgotten user in the
    # audit rows kept; `forget` refuses to run without it. A new secret, new pseudonyms.
    pseudonym_secret: SecretStr | None = None
    # Days rows are kept (then purged): message-level data 28, strikes 28 after they expire,
    # the audit of actions (ledger, audit, pardons, reviews) 365; open entries stay.
    decisions_days: float = Field(default=28.0, gt=0)
    holds_days: float = Field(default=28.0, gt=0)
    explanations_days: float = Field(default=28.0, gt=0)
    disputes_days: float = Field(default=28.0, gt=0)
    strikes_days: float = Field(default=28.0, gt=0)
    ledger_days: float = Field(default=365.0, gt=0)
    audit_days: float = Field(default=365.0, gt=0)
    pardons_days: float = Field(default=365.0, gt=0)
    reviews_days: float = Field(default=365.0, gt=0)
    # The actioner purges this often (0: never), one at a time; rows per DELETE statement.
    purge_every_s: float = Field(default=3600.0, ge=0)
    purge_batch: int = Field(default=5000, ge=1, le=1_000_000)


class StackSettings(Section):
    """Where `warden stack` keeps the local servers' data, logs and pids, and their ports.

    The ports stay below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
    default): a client reconnecting in a tight loop to a port inside that range can be given
    the very port as its own source port and connect to itself (TCP self-connect), after which
    a restarted server cannot bind. `warden stack up` refuses a port inside the range.
    """

    dir: Path = REPO_ROOT / ".stack"
    cache_dir: Path = Path.home() / ".cache" / "chatwarden"
    kafka_port: int = Field(default=29092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=29093, ge=1, le=65535)
    redis_port: int = Field(default=26379, ge=1, le=65535)
    postgres_port: int = Field(default=25432, ge=1, le=65535)


class _EnvSource(EnvSettingsSource):
    """The environment, with a JSON value that does not parse named by its variable.

    pydantic-settings reports such a value as "error parsing value for field 'platforms'",
    which leaves the operator to guess which of the section's variables is wrong.
    """

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            culprit = self._culprit(field_name, field)
            raise ConfigError(f"invalid configuration: {culprit}: not valid JSON ({exc})") from exc

    def _culprit(self, field_name: str, field: FieldInfo) -> str:
        # Try the section's variables one at a time: the one that fails alone is the bad one.
        whole = f"{self.env_prefix}{field_name}".lower()
        for name, value in self.env_vars.items():
            if name != whole and not name.startswith(whole + NESTED_DELIMITER):
                continue
            try:
                if name == whole:
                    self.decode_complex_value(field_name, field, value)
                else:
                    self.explode_env_vars(field_name, field, {name: value})
            except ValueError:
                return name.upper()
        return env_name((field_name,))


SECRETS_DIR_VARIABLE = f"{ENV_PREFIX}SECRETS_DIR"
# A secret is a token or a password: a larger file is refused rather than read.
SECRET_FILE_MAX_BYTES = 64 * 1024


class _SecretFilesSource(_EnvSource):
    """Docker and Kubernetes secrets: each file named ``WARDEN_...`` in ``WARDEN_SECRETS_DIR``
    sets the variable of that name to its content (one trailing newline dropped).

    Compose mounts a service's secrets as files under /run/secrets/ and Kubernetes a Secret's
    keys as files of a volume: a token passed so never shows in the container's environment
    (``docker inspect``, /proc/<pid>/environ). A variable in the environment wins over a file;
    other files (dot files, Kubernetes' ``..data`` links, names without the prefix) are skipped.
    """

    def __init__(self, settings_cls: type[BaseSettings], directory: Path | None) -> None:
        self.directory = directory  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.directory is None:
            return {}
        if not self.directory.is_dir():
            raise ConfigError(
                f"invalid configuration: {SECRETS_DIR_VARIABLE}: {self.directory} is not a "
                "directory"
            )
        found: dict[str, str | None] = {}
        for path in sorted(self.directory.iterdir()):
            if not path.name.upper().startswith(ENV_PREFIX) or not path.is_file():
                continue
            try:
                if path.stat().st_size > SECRET_FILE_MAX_BYTES:
                    raise ValueError(f"larger than {SECRET_FILE_MAX_BYTES} bytes")
                value = path.read_bytes().decode("utf-8")
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"invalid configuration: {path.name} (secret file {path}): {exc}"
                ) from exc
            found[path.name.lower()] = value.removesuffix("\n").removesuffix("\r")
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        directory = os.environ.get(SECRETS_DIR_VARIABLE) or None
        secret_files = _SecretFilesSource(settings_cls, Path(directory) if directory else None)
        return init_settings, _EnvSource(settings_cls), secret_files, dotenv_settings

    # Where Docker or Kubernetes secrets are mounted (_SecretFilesSource); None = none.
    secrets_dir: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    postgres: PostgresSettings = PostgresSettings()
    model: ModelSettings = ModelSettings()
    platforms: PlatformSettings = PlatformSettings()
    metrics: MetricsSettings = MetricsSettings()
    scorer: ScorerSettings = ScorerSettings()
    actioner: ActionerSettings = ActionerSettings()
    stack: StackSettings = StackSettings()
    ingest: IngestSettings = IngestSettings()
    explainer: ExplainerSettings = ExplainerSettings()
    drift: DriftSettings = DriftSettings()
    retrain: RetrainSettings = RetrainSettings()
    review: ReviewSettings = ReviewSettings()
    bots: BotSettings = BotSettings()
    privacy: PrivacySettings = PrivacySettings()
    images: ImageSettings = ImageSettings()


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc`` (a pydantic error location)."""
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc)


def _problem(error: ErrorDetails) -> str:
    loc = error["loc"]
    index = next((i for i, part in enumerate(loc) if isinstance(part, int)), None)
    if index is not None:
        # Inside a JSON list: the variable holds the list, the rest is a path in its value.
        inside = ".".join(str(part) for part in loc[index + 1 :])
        where = f"item {loc[index]}" + (f", {inside}" if inside else "")
        return f"{env_name(loc[:index])} ({where}): {error['msg']}"
    name = env_name(loc)
    if error["type"] != "extra_forbidden":
        return f"{name}: {error['msg']}"
    # A misspelt variable: say so, and which one was probably meant.
    *section, _ = error["loc"]
    known = [env_name((*section, field)) for field in _fields_at(tuple(section))]
    close = difflib.get_close_matches(name, known, n=1)
    return f"{name}: no such setting" + (f" (did you mean {close[0]}?)" if close else "")


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the section at ``loc`` (empty when ``loc`` is not a section)."""
    model: Any = Settings
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise ConfigError naming every bad variable, on one line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
