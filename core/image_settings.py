"""The ``images`` section of the one Settings object (``WARDEN_IMAGES__*``): image moderation.

It lives in a module of its own because ``core/settings.py`` is at the 800-line limit;
``core.settings.Settings.images`` is this class, read and validated with all the others (a bad
value fails at start naming its variable). Host lists are JSON lists, for example
``WARDEN_IMAGES__ALLOWED_HOSTS='["cdn.discordapp.com", "files.slack.com"]'``.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# One DNS label: letters, digits, hyphens (and underscores, which some CDN names use).
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def normalize_host(value: str, *, wildcard: bool = False) -> str:
    """A host name as the fetcher compares it: lower case, no trailing dot; an IP literal in
    its canonical form. ``*.example.com`` (any subdomain) where ``wildcard``. ValueError for
    anything else (a scheme, a path, a port, an empty label)."""
    host = value.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host[2:] if wildcard and host.startswith("*.") else host
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a host name (no scheme, port or path)")
    if wildcard and host.startswith("*.") and len(labels) < 2:
        raise ValueError(f"{value!r}: a wildcard needs a domain under it (*.example.com)")
    return host


def split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (normalized host, port); ValueError otherwise."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, [::1]:8080")
    return normalize_host(host), int(port)


class ImageSettings(BaseModel):
    """Image moderation: the image consumer (``scorers.images``) and ``warden score-image``.

    Attachment URLs and bytes are untrusted input: the first fields bound what is fetched
    (``scorers.images.fetch``) and decoded (``imagery.decoding``)."""

    # Unknown keys are errors, as in every section (core.settings.Section: not imported here,
    # core.settings imports this module).
    model_config = ConfigDict(extra="forbid")

    # --- Fetching and decoding attachments -------------------------------------------------
    # Off: attachments are neither fetched nor scored.
    enabled: bool = True
    # The only hosts attachments are fetched from (exact names; "*.example.com" for any of
    # its subdomains). The defaults are the platforms' CDNs:
    #   cdn.discordapp.com    Discord message attachments (the attachment's url)
    #   media.discordapp.net  Discord's media proxy (the same files, resized: proxy_url)
    #   files.slack.com       Slack files (url_private: fetched with the bot token,
    #                         WARDEN_PLATFORMS__SLACK__BOT_TOKEN, which needs files:read)
    #   static-cdn.jtvnw.net  Twitch's static CDN (emotes, badges, profile pictures)
    allowed_hosts: list[str] = Field(
        default_factory=lambda: [
            "cdn.discordapp.com",
            "media.discordapp.net",
            "files.slack.com",
            "static-cdn.jtvnw.net",
        ],
        max_length=100,
    )
    # Hosts whose files may come as application/octet-stream (a file uploaded without an
    # image extension; the decoder's magic-byte check decides what it is). Every other host
    # must answer with an image/* content type.
    octet_stream_hosts: list[str] = Field(
        default_factory=lambda: ["cdn.discordapp.com", "files.slack.com"], max_length=100
    )
    # Development and tests only (empty in production): "host:port" pairs that may resolve to
    # private, loopback or link-local addresses (any other URL must resolve to public
    # addresses only), and hosts that may be fetched over plain http (else https only).
    private_hosts_allowed: list[str] = Field(default_factory=list, max_length=100)
    http_hosts_allowed: list[str] = Field(default_factory=list, max_length=100)
    # Per attachment: bytes downloaded or read, and pixels decoded (the header's width x
    # height, checked before any pixel is; at most Pillow's own limit, 89,478,485).
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    max_pixels: int = Field(default=40_000_000, ge=64, le=89_478_485)
    # Attachments scored per message (the rest are skipped, and counted).
    max_per_message: int = Field(default=4, ge=1, le=50)
    # Seconds allowed for a whole fetch (every redirect and the body), and per connection.
    fetch_timeout_s: float = Field(default=15.0, gt=0, le=300)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Redirects followed per fetch, each hop checked like the first URL (0: none).
    max_redirects: int = Field(default=3, ge=0, le=10)

    # --- Scoring (scorers.images, warden score-image) --------------------------------------
    # A fetch that failed in a way that may pass (time-out, 5xx, connection) is tried this
    # many times in all before the attachment becomes a dead letter.
    fetch_attempts: int = Field(default=3, ge=1, le=10)
    # Fetches in flight at once per worker.
    fetch_concurrency: int = Field(default=8, ge=1, le=256)
    # Chat records read per batch: their images are fetched together and scored in one call.
    batch_records: int = Field(default=200, ge=1, le=10_000)
    # Entries of each cache (URL -> content hash, content hash -> score).
    cache_size: int = Field(default=20_000, ge=0, le=10_000_000)
    # ONNX Runtime threads of the image model (one per scorer process).
    threads: int = Field(default=1, ge=1, le=64)
    # Label scores (imagery.base.ImageThresholds): sexual_explicit is named, MEDIUM, from
    # explicit_medium and HIGH from explicit_high; other labels (sexual_suggestive) are named,
    # LOW, from label_threshold.
    label_threshold: float = Field(default=0.5, gt=0, le=1)
    explicit_medium: float = Field(default=0.35, gt=0, le=1)
    explicit_high: float = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _explicit_ascending(self) -> ImageSettings:
        if self.explicit_medium > self.explicit_high:
            raise ValueError("explicit_medium must not be above explicit_high")
        return self

    @field_validator("allowed_hosts", "octet_stream_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [normalize_host(host, wildcard=True) for host in value]

    @field_validator("http_hosts_allowed")
    @classmethod
    def _exact_hosts(cls, value: list[str]) -> list[str]:
        return [normalize_host(host) for host in value]

    @field_validator("private_hosts_allowed")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        pairs = (split_host_port(item) for item in value)
        return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in pairs]
