"""Fetching attachment URLs, which are untrusted input.

Anyone in a chat can post a URL, and a fetcher running inside our network is a way in
(server-side request forgery): ``http://169.254.169.254/`` is the cloud's metadata service,
``http://127.0.0.1:26379/`` our Redis. So, for every URL and every redirect hop:

- ``https`` only (``scheme``), except hosts in ``WARDEN_IMAGES__HTTP_HOSTS_ALLOWED`` (dev and
  tests); no user:password in the URL (``bad_url``);
- the host must be on ``WARDEN_IMAGES__ALLOWED_HOSTS`` (``host_not_allowed``): the platform CDNs;
- every address the host resolves to must be public (``private_address``): not loopback,
  private, link-local (169.254.169.254), CGNAT, multicast, reserved or unspecified, nor an IPv6
  form of those (IPv4-mapped, 6to4, NAT64) nor unique-local or site-local IPv6. It is checked
  where the connection is made, on the addresses actually connected to: the connector's resolver
  refuses a name with any non-public address, and its socket factory refuses to open a socket to
  a non-public address whatever the path to it, so a DNS answer that changes between a check and
  the connection (DNS rebinding) cannot slip through. ``WARDEN_IMAGES__PRIVATE_HOSTS_ALLOWED``
  names the ``host:port`` pairs exempt (local development and tests; empty in production);
- redirects are followed by hand, at most ``WARDEN_IMAGES__MAX_REDIRECTS``
  (``too_many_redirects``), each target checked as above; a redirect without a usable Location
  or from https down to http is refused (``redirect_not_allowed``);
- the answer must be an image: ``image/*``, or ``application/octet-stream`` from the hosts of
  ``WARDEN_IMAGES__OCTET_STREAM_HOSTS`` (``bad_content_type``), not content-encoded; at most
  ``WARDEN_IMAGES__MAX_BYTES`` (``too_large``): a Content-Length over it is refused before the
  body is read, and the body is read in chunks up to the cap (a server may send no length, or
  lie);
- the whole fetch, redirects and body included, is bounded by ``WARDEN_IMAGES__FETCH_TIMEOUT_S``
  and each connection by ``WARDEN_IMAGES__CONNECT_TIMEOUT_S``.

Slack's files need ``Authorization: Bearer <bot token>``: it is added only to requests to
``files.slack.com`` itself, per hop (never carried to a redirect's other host), and never
logged. No cookies are kept, no proxy or .netrc is read from the environment.

``FetchRejected`` (not retriable) says a URL or response is refused; ``FetchFailed``
(retriable: ``timeout``, ``connection``, ``http_5xx``, ``rate_limited``) that it may work later.
Other 4xx answers are ``http_4xx`` (refused).
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import SecretStr
from yarl import URL

from core.errors import AttachmentError, FetchFailed, FetchRejected
from core.image_settings import ImageSettings, normalize_host, split_host_port
from core.settings import Settings

logger = logging.getLogger(__name__)

RejectReason = Literal[
    "bad_url",
    "scheme",
    "host_not_allowed",
    "private_address",
    "redirect_not_allowed",
    "too_many_redirects",
    "too_large",
    "bad_content_type",
    "http_4xx",
]
FailReason = Literal["timeout", "connection", "http_5xx", "rate_limited"]

SLACK_FILES_HOST: Final = "files.slack.com"
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# Statuses that say "later", like a 5xx: worth another try.
RETRY_LATER_STATUSES: Final = frozenset({408, 425, 429})
READ_CHUNK: Final = 64 * 1024
MAX_URL_LENGTH: Final = 4096
USER_AGENT: Final = "ChatWarden-images"
# The well-known NAT64 prefix (RFC 6052): 64:ff9b::a.b.c.d reaches IPv4 a.b.c.d.
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")

# The addresses a fetch's socket factory refused: set per fetch (a list shared with the tasks
# the connector starts, which copy the context), read when the connection then fails.
_refused: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "attachment_fetch_refused", default=None
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchedImage:
    """An attachment's bytes, as fetched."""

    data: bytes
    content_type: str | None  # the response's media type, lower case, no parameters
    url: str  # where the bytes came from: the last hop after redirects


def is_public_address(address: str | IPAddress) -> bool:
    """True for an address on the public internet; False for loopback, private, link-local,
    CGNAT, multicast, reserved, unspecified and documentation ranges, IPv6 unique-local and
    site-local, and for IPv6 addresses that embed a non-public IPv4 (mapped, 6to4, NAT64).
    An unparseable address is not public."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
    )


def safe_url(url: URL | str) -> str:
    """A URL as it may appear in logs and dead letters: no credentials, no query (signed CDN
    links carry their signature there), no fragment."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<unparseable URL>"


class HostRules:
    """What the settings allow, as decisions on one URL's host (no network involved)."""

    def __init__(self, settings: ImageSettings) -> None:
        self.allowed = frozenset(settings.allowed_hosts)
        self.octet_stream = frozenset(settings.octet_stream_hosts)
        self.http = frozenset(settings.http_hosts_allowed)
        self.private = frozenset(split_host_port(item) for item in settings.private_hosts_allowed)

    @staticmethod
    def _listed(host: str, hosts: frozenset[str]) -> bool:
        if host in hosts:
            return True
        # "*.example.com" covers a.example.com and a.b.example.com, not example.com itself.
        parts = host.split(".")
        return any("*." + ".".join(parts[i:]) in hosts for i in range(1, len(parts)))

    def host_allowed(self, host: str) -> bool:
        return self._listed(host, self.allowed)

    def octet_stream_allowed(self, host: str) -> bool:
        return self._listed(host, self.octet_stream)

    def http_allowed(self, host: str) -> bool:
        return host in self.http

    def private_allowed(self, host: str, port: int) -> bool:
        return (host, port) in self.private

    def check(self, url: URL) -> tuple[str, int]:
        """The URL's (host, port) if it may be requested; FetchRejected otherwise."""
        shown = safe_url(url)
        scheme = url.scheme.lower()
        if scheme not in ("https", "http"):
            raise FetchRejected("scheme", f"{shown}: only https is fetched")
        if not url.raw_host:
            raise FetchRejected("bad_url", f"{shown}: no host")
        if url.user is not None or url.password is not None:
            raise FetchRejected("bad_url", f"{shown}: credentials in the URL")
        try:
            host = normalize_host(url.raw_host)
        except ValueError as exc:
            raise FetchRejected("bad_url", f"{shown}: {exc}") from exc
        if scheme == "http" and not self.http_allowed(host):
            raise FetchRejected("scheme", f"{shown}: only https is fetched")
        if not self.host_allowed(host):
            raise FetchRejected(
                "host_not_allowed", f"{host} is not on WARDEN_IMAGES__ALLOWED_HOSTS"
            )
        port = url.port or (443 if scheme == "https" else 80)
        if _is_ip(host) and not is_public_address(host) and not self.private_allowed(host, port):
            raise FetchRejected("private_address", f"{host} is not a public address")
        return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _AddressBlocked(OSError):
    """A socket the factory refused to open (a non-public address)."""


class _GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses a name that has any non-public address (a name with
    one public and one private address would otherwise get through on the public one, and be
    connected to on the other), unless its host:port is exempt. Exempt answers are remembered
    for the socket factory."""

    def __init__(
        self, inner: AbstractResolver, rules: HostRules, exempt: set[tuple[IPAddress, int]]
    ) -> None:
        self.inner = inner
        self.rules = rules
        self.exempt = exempt

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        results = await self.inner.resolve(host, port, family)
        if not results:
            raise OSError(f"{name} has no address")
        if self.rules.private_allowed(name, port):
            for result in results:
                if _is_ip(result["host"]):
                    self.exempt.add((ipaddress.ip_address(result["host"]), result["port"]))
            return results
        refused = [result["host"] for result in results if not is_public_address(result["host"])]
        if refused:
            # Not an OSError: aiohttp hands it on as it is, not as a connection error.
            raise FetchRejected(
                "private_address", f"{name} resolves to {', '.join(refused)}: not public"
            )
        return results

    async def close(self) -> None:
        await self.inner.close()


class AttachmentFetcher:
    """Fetches attachment URLs under the rules of this module, on one shared HTTP session.

    ``resolver`` replaces DNS (tests map names to local servers); the checks on its answers
    are the same. Use ``async with AttachmentFetcher(settings) as fetcher`` or ``close()``.
    """

    def __init__(self, settings: Settings, *, resolver: AbstractResolver | None = None) -> None:
        self.config: ImageSettings = settings.images
        self.rules = HostRules(self.config)
        self._slack_token: SecretStr | None = settings.platforms.slack.bot_token
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        # Addresses that may be connected to although not public: the literal IPs of
        # WARDEN_IMAGES__PRIVATE_HOSTS_ALLOWED, and what its names resolved to.
        self._exempt: set[tuple[IPAddress, int]] = {
            (ipaddress.ip_address(host), port) for host, port in self.rules.private if _is_ip(host)
        }

    async def __aenter__(self) -> AttachmentFetcher:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("AttachmentFetcher is closed")
        if self._session is None:
            inner = self._resolver or DefaultResolver()
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(inner, self.rules, self._exempt),
                socket_factory=self._socket,
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self.config.connect_timeout_s,
                    sock_connect=self.config.connect_timeout_s,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing carried from one host to another
                auto_decompress=False,  # a gzip bomb stays compressed (and is refused)
                trust_env=False,  # no proxy or .netrc credentials from the environment
            )
        return self._session

    def _socket(self, addr_info: AddrInfoType) -> socket.socket:
        """The connector's socket factory: the last word on the address actually connected to."""
        family, type_, proto, _, sockaddr = addr_info
        address, port = str(sockaddr[0]), int(sockaddr[1])
        try:
            ip: IPAddress | None = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is None or not (is_public_address(ip) or (ip, port) in self._exempt):
            refused = _refused.get()
            if refused is not None:
                refused.append(f"{address}:{port}")
            raise _AddressBlocked(f"refused to connect to {address}:{port}: not a public address")
        return socket.socket(family=family, type=type_, proto=proto)

    def request_headers(self, url: URL) -> dict[str, str]:
        """The headers of one request: the Slack bot token only to Slack's file host."""
        headers = {"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": USER_AGENT}
        host = (url.raw_host or "").lower().rstrip(".")
        if host == SLACK_FILES_HOST and self._slack_token is not None:
            headers["Authorization"] = f"Bearer {self._slack_token.get_secret_value()}"
        return headers

    async def fetch(self, url: str) -> FetchedImage:
        """The attachment's bytes, or FetchRejected / FetchFailed saying why not."""
        session = self._open()
        if len(url) > MAX_URL_LENGTH:
            raise FetchRejected("bad_url", f"URL of {len(url)} characters")
        try:
            current = URL(url)
        except (ValueError, TypeError) as exc:
            raise FetchRejected("bad_url", f"{safe_url(url)}: {exc}") from exc
        refused: list[str] = []
        token = _refused.set(refused)
        timeout = self.config.fetch_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(session, current, refused)
        except TimeoutError as exc:
            raise FetchFailed("timeout", f"{safe_url(url)}: no answer within {timeout} s") from exc
        finally:
            _refused.reset(token)

    async def _follow(
        self, session: aiohttp.ClientSession, url: URL, refused: list[str]
    ) -> FetchedImage:
        redirects = 0
        while True:
            host, _ = self.rules.check(url)
            logger.debug("fetching %s", safe_url(url))
            try:
                async with session.get(
                    url, headers=self.request_headers(url), allow_redirects=False
                ) as response:
                    if response.status in REDIRECT_STATUSES:
                        target = redirect_target(url, response.headers.get("Location"))
                        redirects += 1
                        if redirects > self.config.max_redirects:
                            raise FetchRejected(
                                "too_many_redirects",
                                f"{safe_url(url)}: more than {self.config.max_redirects} redirects",
                            )
                        logger.debug("%s redirects to %s", safe_url(url), safe_url(target))
                        url = target
                        continue
                    self._check_status(url, response.status)
                    content_type = self._check_content_type(url, host, response)
                    data = await self._read(url, response)
                    return FetchedImage(data=data, content_type=content_type, url=str(url))
            except AttachmentError:
                raise
            except aiohttp.ClientConnectorError as exc:
                if refused:
                    raise FetchRejected(
                        "private_address", f"{safe_url(url)}: {', '.join(refused)} is not public"
                    ) from exc
                raise FetchFailed("connection", f"{safe_url(url)}: {_reason(exc)}") from exc
            except aiohttp.ServerTimeoutError as exc:
                raise FetchFailed("timeout", f"{safe_url(url)}: {_reason(exc)}") from exc
            except aiohttp.ClientError as exc:
                raise FetchFailed("connection", f"{safe_url(url)}: {_reason(exc)}") from exc

    @staticmethod
    def _check_status(url: URL, status: int) -> None:
        shown = safe_url(url)
        if 200 <= status < 300:
            return
        if status >= 500:
            raise FetchFailed("http_5xx", f"{shown}: HTTP {status}")
        if status in RETRY_LATER_STATUSES:
            raise FetchFailed("rate_limited", f"{shown}: HTTP {status}")
        if 300 <= status < 400:
            raise FetchRejected("redirect_not_allowed", f"{shown}: HTTP {status}")
        raise FetchRejected("http_4xx", f"{shown}: HTTP {status}")

    def _check_content_type(self, url: URL, host: str, response: aiohttp.ClientResponse) -> str:
        shown = safe_url(url)
        raw = response.headers.get("Content-Type")
        media = (raw or "").split(";", 1)[0].strip().lower()
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchRejected("bad_content_type", f"{shown}: Content-Encoding {encoding}")
        if media.startswith("image/"):
            return media
        if media in ("", "application/octet-stream") and self.rules.octet_stream_allowed(host):
            return media or "application/octet-stream"
        raise FetchRejected(
            "bad_content_type", f"{shown}: {media or 'no content type'}, not an image"
        )

    async def _read(self, url: URL, response: aiohttp.ClientResponse) -> bytes:
        cap = self.config.max_bytes
        shown = safe_url(url)
        declared = response.content_length
        if declared is not None and declared > cap:
            raise FetchRejected("too_large", f"{shown}: {declared} bytes declared, limit {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            size += len(chunk)
            if size > cap:
                response.close()  # the rest is never read: the connection is not reused
                raise FetchRejected("too_large", f"{shown}: over {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def redirect_target(url: URL, location: str | None) -> URL:
    """Where a redirect from ``url`` leads (a relative Location resolved against it); refused
    without a Location, or from https down to http. The target is then checked like any URL."""
    shown = safe_url(url)
    if not location:
        raise FetchRejected("redirect_not_allowed", f"{shown}: redirect without a Location")
    try:
        target = url.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise FetchRejected("redirect_not_allowed", f"{shown}: bad Location") from exc
    if url.scheme.lower() == "https" and target.scheme.lower() != "https":
        raise FetchRejected(
            "redirect_not_allowed", f"{shown}: redirect from https to {target.scheme or '?'}"
        )
    return target


def _reason(exc: BaseException) -> str:
    """An aiohttp error as one short line (its own message may span several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
