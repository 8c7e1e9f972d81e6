"""Attachment fetching against real HTTP servers on 127.0.0.1: what an attacker's URL can make
the fetcher do (nothing private, nothing unbounded), and what a platform's CDN gets."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from PIL import Image
from pydantic import SecretStr
from yarl import URL

from core.errors import ConfigError, FetchFailed, FetchRejected
from core.image_settings import ImageSettings
from core.net import free_port
from core.settings import PlatformSettings, Settings, SlackSettings, load_settings
from imagery.decoding import decode_image
from scorers.images.fetch import (
    AttachmentFetcher,
    FetchedImage,
    HostRules,
    _refused,
    is_public_address,
    redirect_target,
    safe_url,
)

SLACK_TOKEN = "xoxb-test-0123456789-secret"
MAX_BYTES = 64 * 1024


def png_bytes(size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 140, 220)).save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()


@dataclass
class Origin:
    """A local HTTP server playing a CDN: it records what it was asked."""

    server: TestServer
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def origin_app(
    requests: list[tuple[str, dict[str, str]]], release: asyncio.Event
) -> web.Application:
    async def record(request: web.Request) -> None:
        requests.append((request.path_qs, dict(request.headers)))

    async def image(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        raise web.HTTPFound(request.query["to"])

    async def chain(request: web.Request) -> web.StreamResponse:
        await record(request)
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(body=PNG, content_type="image/png")
        raise web.HTTPFound(f"/chain/{left - 1}")

    async def no_location(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=302)

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=b"\x89PNG" + bytes(MAX_BYTES), content_type="image/png")

    async def big_unannounced(request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: only counting what arrives can stop it.
        await record(request)
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(1000):  # 64 MB if nobody stops reading
                await response.write(bytes(64 * 1024))
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def typed(request: web.Request) -> web.StreamResponse:
        await record(request)
        headers = {"Content-Type": request.query["type"]}
        if "encoding" in request.query:
            headers["Content-Encoding"] = request.query["encoding"]
        return web.Response(body=PNG, headers=headers)

    async def status(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def slow(request: web.Request) -> web.StreamResponse:
        await record(request)
        await asyncio.wait_for(release.wait(), 10)
        return web.Response(body=PNG, content_type="image/png")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await response.write(PNG[:10])
        await asyncio.wait_for(release.wait(), 10)
        return response

    app = web.Application()
    app.router.add_get("/image.png", image)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/chain/{left}", chain)
    app.router.add_get("/no-location", no_location)
    app.router.add_get("/big", big)
    app.router.add_get("/big-unannounced", big_unannounced)
    app.router.add_get("/typed", typed)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/slow-body", slow_body)
    return app


@pytest_asyncio.fixture
async def origins() -> AsyncIterator[Callable[[], Any]]:
    """Starts origin servers on 127.0.0.1 on demand; stops them all at the end."""
    started: list[Origin] = []
    release = asyncio.Event()

    async def start() -> Origin:
        requests: list[tuple[str, dict[str, str]]] = []
        server = TestServer(origin_app(requests, release), host="127.0.0.1", port=free_port())
        await server.start_server()
        started.append(Origin(server, requests))
        return started[-1]

    yield start
    release.set()
    for origin in started:
        await origin.server.close()


@dataclass
class RawServer:
    """A bare TCP server giving every connection one fixed HTTP answer, counting connections
    (for answers aiohttp's server would not send, and for addresses that must not be reached)."""

    port: int
    answer: bytes
    connections: int = 0


def http_answer(headers: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\n{headers}Content-Length: {len(body)}\r\nConnection: close\r\n"
    return head.encode() + b"\r\n" + body


@pytest_asyncio.fixture
async def raw_servers() -> AsyncIterator[Callable[[bytes], Any]]:
    servers: list[asyncio.Server] = []

    async def start(answer: bytes) -> RawServer:
        raw = RawServer(free_port(), answer)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raw.connections += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(raw.answer)
            await writer.drain()
            writer.close()

        servers.append(await asyncio.start_server(handle, "127.0.0.1", raw.port))
        return raw

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest_asyncio.fixture
async def trap(raw_servers: Callable[[bytes], Any]) -> RawServer:
    """A server that must never be reached. It would answer with an image, so a fetch that got
    through would succeed rather than fail by accident."""
    server: RawServer = await raw_servers(http_answer("Content-Type: image/png\r\n", PNG))
    return server


class MapResolver(AbstractResolver):
    """DNS for the tests: names -> addresses, each lookup recorded; any other name fails."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"{host}: no such name in the test's DNS")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


def settings_for(
    *origins: Origin, slack_token: str | None = SLACK_TOKEN, **images: Any
) -> Settings:
    """Settings that let the fetcher reach the given local origins (and only them) over http."""
    private = [f"127.0.0.1:{origin.port}" for origin in origins]
    options: dict[str, Any] = {
        "allowed_hosts": ["127.0.0.1"],
        "http_hosts_allowed": ["127.0.0.1"],
        "private_hosts_allowed": private,
        "max_bytes": MAX_BYTES,
        "fetch_timeout_s": 3.0,
        "connect_timeout_s": 1.0,
    }
    options.update(images)
    token = SecretStr(slack_token) if slack_token else None
    return Settings(
        images=ImageSettings(**options),
        platforms=PlatformSettings(slack=SlackSettings(bot_token=token)),
    )


async def fetch(
    settings: Settings, url: str, resolver: AbstractResolver | None = None
) -> FetchedImage:
    async with AttachmentFetcher(settings, resolver=resolver) as fetcher:
        return await fetcher.fetch(url)


async def refused(
    settings: Settings, url: str, resolver: AbstractResolver | None = None
) -> FetchRejected:
    with pytest.raises(FetchRejected) as info:
        await fetch(settings, url, resolver)
    assert "\n" not in str(info.value)
    return info.value


async def failed(settings: Settings, url: str) -> FetchFailed:
    with pytest.raises(FetchFailed) as info:
        await fetch(settings, url)
    return info.value


# --- what is fetched ------------------------------------------------------------------------


async def test_a_safe_image_is_fetched_and_decodes(origins: Callable[[], Any]) -> None:
    origin = await origins()
    got = await fetch(settings_for(origin), origin.url("/image.png"))
    assert got.data == PNG
    assert got.content_type == "image/png"
    assert got.url == origin.url("/image.png")
    decoded = decode_image(
        got.data, max_bytes=MAX_BYTES, max_pixels=10_000, declared_type=got.content_type
    )
    assert (decoded.width, decoded.height) == (32, 24)
    # What it asked for: an image, uncompressed, and no credentials.
    ((_, headers),) = origin.requests
    assert headers["Accept"] == "image/*"
    assert headers["Accept-Encoding"] == "identity"
    assert "Authorization" not in headers


async def test_redirects_are_followed_up_to_the_limit(origins: Callable[[], Any]) -> None:
    origin = await origins()
    settings = settings_for(origin, max_redirects=3)
    got = await fetch(settings, origin.url("/chain/3"))
    assert got.data == PNG
    assert got.url == origin.url("/chain/0")
    origin.requests.clear()
    assert (await refused(settings, origin.url("/chain/4"))).reason == "too_many_redirects"
    assert len(origin.requests) == 4  # the fourth redirect was not followed
    no_redirects = settings_for(origin, max_redirects=0)
    assert (await refused(no_redirects, origin.url("/chain/1"))).reason == "too_many_redirects"


async def test_octet_stream_only_from_the_hosts_that_serve_it(
    origins: Callable[[], Any], raw_servers: Callable[[bytes], Any]
) -> None:
    origin = await origins()
    url = origin.url("/typed?type=application/octet-stream")
    assert (await refused(settings_for(origin), url)).reason == "bad_content_type"
    cdn = settings_for(origin, octet_stream_hosts=["127.0.0.1"])
    got = await fetch(cdn, url)
    assert (got.data, got.content_type) == (PNG, "application/octet-stream")
    # No content type at all counts as octet-stream.
    untyped = await raw_servers(http_answer("", PNG))
    bare = f"http://127.0.0.1:{untyped.port}/a.png"
    private = [f"127.0.0.1:{untyped.port}"]
    error = await refused(settings_for(private_hosts_allowed=private), bare)
    assert (error.reason, "no content type" in str(error)) == ("bad_content_type", True)
    got = await fetch(
        settings_for(private_hosts_allowed=private, octet_stream_hosts=["127.0.0.1"]), bare
    )
    assert (got.data, got.content_type) == (PNG, "application/octet-stream")
    typed = await fetch(settings_for(origin), origin.url("/typed?type=Image/WebP;%20q=1"))
    assert typed.content_type == "image/webp"


# --- what is refused: addresses -------------------------------------------------------------


async def test_a_redirect_to_another_local_port_is_refused_before_connecting(
    origins: Callable[[], Any], trap: RawServer
) -> None:
    origin = await origins()
    target = f"http://127.0.0.1:{trap.port}/image.png"
    error = await refused(settings_for(origin), origin.url(f"/redirect?to={target}"))
    assert error.reason == "private_address"
    assert trap.connections == 0
    # The same server is reachable when listed (so the refusal above was the address rule).
    listed = settings_for(origin, private_hosts_allowed=[f"127.0.0.1:{trap.port}"])
    assert (await fetch(listed, target)).data == PNG
    assert trap.connections == 1


async def test_a_redirect_to_the_metadata_address_is_refused(origins: Callable[[], Any]) -> None:
    origin = await origins()
    # Even with the address on both host lists, it is not public.
    settings = settings_for(
        origin,
        allowed_hosts=["127.0.0.1", "169.254.169.254"],
        http_hosts_allowed=["127.0.0.1", "169.254.169.254"],
    )
    target = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    started = time.perf_counter()
    error = await refused(settings, origin.url(f"/redirect?to={target}"))
    assert error.reason == "private_address"
    assert "169.254.169.254" in str(error)
    assert time.perf_counter() - started < 1.0  # refused, not a connection left to time out


@pytest.mark.parametrize(
    ("addresses", "why"),
    [
        (["169.254.169.254"], "link-local: the cloud metadata service"),
        (["127.0.0.1"], "loopback"),
        (["10.0.0.7"], "private"),
        (["93.184.216.34", "127.0.0.1"], "one private address among public ones"),
        (["::ffff:127.0.0.1"], "IPv4-mapped loopback"),
        (["fd12:3456::1"], "IPv6 unique-local"),
    ],
)
async def test_a_name_resolving_to_a_private_address_is_refused(
    origins: Callable[[], Any], addresses: list[str], why: str
) -> None:
    origin = await origins()
    resolver = MapResolver({"images.example.test": addresses})
    settings = settings_for(
        origin,
        allowed_hosts=["127.0.0.1", "images.example.test"],
        http_hosts_allowed=["images.example.test"],
    )
    error = await refused(settings, "http://images.example.test/x.png", resolver)
    assert error.reason == "private_address", why
    # Refused by the resolver's check, on the answer: no connection was tried. One lookup, and
    # the answer checked is the answer connected to: no second lookup (DNS rebinding) follows.
    assert f"images.example.test resolves to {addresses[-1]}" in str(error)
    assert resolver.asked == ["images.example.test"]


async def test_the_session_cannot_connect_to_a_private_address_whatever_the_url_checks(
    trap: RawServer,
) -> None:
    # Defence in depth: the connector's socket factory refuses non-public addresses, so even a
    # request that skipped the URL checks (an IP literal bypasses any resolver) connects nowhere.
    fetcher = AttachmentFetcher(settings_for())
    async with fetcher:
        session = fetcher._open()
        noted: list[str] = []
        token = _refused.set(noted)
        try:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(f"http://127.0.0.1:{trap.port}/")
        finally:
            _refused.reset(token)
    assert trap.connections == 0
    assert noted == [f"127.0.0.1:{trap.port}"]


def test_public_and_non_public_addresses() -> None:
    public = [
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ]
    private = [
        "127.0.0.1",
        "127.255.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",  # loopback, RFC 1918
        "169.254.169.254",
        "169.254.0.1",  # link-local (cloud metadata)
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "255.255.255.255",
        "240.0.0.1",  # unspecified, broadcast, reserved
        "224.0.0.1",
        "239.1.1.1",  # multicast (which Python calls global)
        "192.0.2.1",
        "198.18.0.1",  # documentation, benchmarking
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of loopback and metadata
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",  # 6to4 of the same
        "2001:db8::1",  # documentation
        "not an address",
        "",
    ]
    assert [a for a in public if not is_public_address(a)] == []
    assert [a for a in private if is_public_address(a)] == []
    assert is_public_address(ipaddress.ip_address("1.1.1.1"))


# --- what is refused: URLs and hosts --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://cdn.discordapp.com/attachments/1/2/a.png", "scheme"),
        ("ftp://cdn.discordapp.com/a.png", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https://evil.example/a.png", "host_not_allowed"),
        ("https://cdn.discordapp.com.evil.example/a.png", "host_not_allowed"),
        ("https://discordapp.com/a.png", "host_not_allowed"),
        ("https://169.254.169.254/latest/meta-data/", "host_not_allowed"),
        ("https://user:pass@cdn.discordapp.com/a.png", "bad_url"),
        ("https:///a.png", "bad_url"),
        ("not a url", "scheme"),
        ("https://cdn.discordapp.com/" + "a" * 5000, "bad_url"),
    ],
)
async def test_urls_refused_with_the_default_settings(url: str, reason: str) -> None:
    resolver = MapResolver({})
    settings = Settings(images=ImageSettings())
    error = await refused(settings, url, resolver)
    assert error.reason == reason
    assert resolver.asked == []  # refused before any lookup
    assert "pass" not in str(error)


def test_allowed_hosts_match_exactly_or_by_wildcard() -> None:
    rules = HostRules(ImageSettings(allowed_hosts=["cdn.example.com", "*.media.example.net"]))
    assert rules.host_allowed("cdn.example.com")
    assert rules.host_allowed("a.media.example.net")
    assert rules.host_allowed("a.b.media.example.net")
    assert not rules.host_allowed("media.example.net")
    assert not rules.host_allowed("xmedia.example.net")
    assert not rules.host_allowed("cdn.example.com.evil.test")
    assert not rules.host_allowed("example.com")
    host, port = rules.check(URL("https://CDN.Example.COM./a.png"))
    assert (host, port) == ("cdn.example.com", 443)


async def test_a_redirect_to_a_host_off_the_allow_list_is_refused(
    origins: Callable[[], Any],
) -> None:
    origin = await origins()
    resolver = MapResolver({"evil.example": ["93.184.216.34"]})
    settings = settings_for(origin, http_hosts_allowed=["127.0.0.1", "evil.example"])
    error = await refused(
        settings, origin.url("/redirect?to=http://evil.example/steal.png"), resolver
    )
    assert error.reason == "host_not_allowed"
    assert "evil.example" in str(error)
    assert resolver.asked == []


async def test_a_redirect_without_location_is_refused(origins: Callable[[], Any]) -> None:
    origin = await origins()
    assert (await refused(settings_for(origin), origin.url("/no-location"))).reason == (
        "redirect_not_allowed"
    )


def test_redirect_targets() -> None:
    base = URL("https://cdn.discordapp.com/attachments/1/a.png?ex=1")
    assert redirect_target(base, "/b.png") == URL("https://cdn.discordapp.com/b.png")
    assert redirect_target(base, "//media.discordapp.net/c.png").host == "media.discordapp.net"
    for location in ("http://cdn.discordapp.com/a.png", "ftp://cdn.discordapp.com/a", None, ""):
        with pytest.raises(FetchRejected) as info:
            redirect_target(base, location)
        assert info.value.reason == "redirect_not_allowed"


# --- what is refused: responses -------------------------------------------------------------


async def test_an_oversized_body_is_refused(origins: Callable[[], Any]) -> None:
    origin = await origins()
    settings = settings_for(origin)
    error = await refused(settings, origin.url("/big"))
    assert error.reason == "too_large"
    assert "declared" in str(error)  # the Content-Length said so: nothing was read
    started = time.perf_counter()
    error = await refused(settings, origin.url("/big-unannounced"))
    assert error.reason == "too_large"
    assert "declared" not in str(error)  # counted as it arrived, and stopped at the cap
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "query",
    ["type=text/html", "type=application/json", "type=image/png&encoding=gzip"],
)
async def test_a_response_that_is_not_an_image_is_refused(
    origins: Callable[[], Any], query: str
) -> None:
    origin = await origins()
    assert (await refused(settings_for(origin), origin.url(f"/typed?{query}"))).reason == (
        "bad_content_type"
    )


async def test_http_errors(origins: Callable[[], Any]) -> None:
    origin = await origins()
    settings = settings_for(origin)
    for code in (403, 404, 410):
        error = await refused(settings, origin.url(f"/status/{code}"))
        assert (error.reason, error.retriable) == ("http_4xx", False)
        assert str(code) in str(error)
    for code, reason in ((503, "http_5xx"), (500, "http_5xx"), (429, "rate_limited")):
        error_ = await failed(settings, origin.url(f"/status/{code}"))
        assert (error_.reason, error_.retriable) == (reason, True)


async def test_a_slow_server_times_out(origins: Callable[[], Any]) -> None:
    origin = await origins()
    settings = settings_for(origin, fetch_timeout_s=0.3)
    for path in ("/slow", "/slow-body"):
        started = time.perf_counter()
        error = await failed(settings, origin.url(path))
        assert error.reason == "timeout"
        assert time.perf_counter() - started < 1.5


async def test_a_closed_port_is_a_retriable_connection_failure() -> None:
    closed = free_port()
    settings = settings_for(private_hosts_allowed=[f"127.0.0.1:{closed}"])
    error = await failed(settings, f"http://127.0.0.1:{closed}/a.png")
    assert error.reason == "connection"


# --- Slack's token --------------------------------------------------------------------------


async def test_the_slack_token_goes_to_slacks_file_host_only(
    origins: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    slack, cdn = await origins(), await origins()
    resolver = MapResolver({"files.slack.com": ["127.0.0.1"], "cdn.discordapp.com": ["127.0.0.1"]})
    settings = settings_for(
        allowed_hosts=["files.slack.com", "cdn.discordapp.com"],
        http_hosts_allowed=["files.slack.com", "cdn.discordapp.com"],
        private_hosts_allowed=[f"files.slack.com:{slack.port}", f"cdn.discordapp.com:{cdn.port}"],
    )
    # Slack's file answers with a redirect to another host: the token stays behind.
    onward = cdn.url("/image.png", host="cdn.discordapp.com")
    url = slack.url(f"/redirect?to={onward}", host="files.slack.com")
    caplog.set_level(logging.DEBUG)
    got = await fetch(settings, url, resolver)
    assert got.data == PNG
    assert got.url == onward
    ((_, to_slack),) = slack.requests
    ((_, to_cdn),) = cdn.requests
    assert to_slack["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert "Authorization" not in to_cdn
    assert SLACK_TOKEN not in caplog.text
    assert "files.slack.com" in caplog.text  # the hops were logged, without the token


def test_slack_header_selection() -> None:
    fetcher = AttachmentFetcher(settings_for())
    with_token = [
        "https://files.slack.com/files-pri/T1-F1/a.png",
        "https://FILES.SLACK.COM./files-pri/T1-F1/a.png",
    ]
    without = [
        "https://files.slack.com.evil.example/a.png",
        "https://evil.example/files.slack.com/a.png",
        "https://slack.com/a.png",
        "https://cdn.discordapp.com/a.png",
    ]
    for url in with_token:
        assert fetcher.request_headers(URL(url))["Authorization"] == f"Bearer {SLACK_TOKEN}"
    for url in without:
        assert "Authorization" not in fetcher.request_headers(URL(url))
    no_token = AttachmentFetcher(settings_for(slack_token=None))
    assert "Authorization" not in no_token.request_headers(URL(with_token[0]))


# --- the fetcher itself ---------------------------------------------------------------------


async def test_a_closed_fetcher_refuses_to_fetch(origins: Callable[[], Any]) -> None:
    origin = await origins()
    fetcher = AttachmentFetcher(settings_for(origin))
    assert (await fetcher.fetch(origin.url("/image.png"))).data == PNG
    await fetcher.close()
    with pytest.raises(RuntimeError):
        await fetcher.fetch(origin.url("/image.png"))


def test_safe_url_drops_credentials_and_query() -> None:
    shown = safe_url("https://u:p@cdn.discordapp.com/a/b.png?ex=1&hm=signature#f")
    assert shown == "https://cdn.discordapp.com/a/b.png"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WARDEN_IMAGES__ALLOWED_HOSTS", '["https://cdn.discordapp.com/"]'),
        ("WARDEN_IMAGES__ALLOWED_HOSTS", '["cdn.discordapp.com:443"]'),
        ("WARDEN_IMAGES__HTTP_HOSTS_ALLOWED", '["*.example.com"]'),
        ("WARDEN_IMAGES__PRIVATE_HOSTS_ALLOWED", '["127.0.0.1"]'),
        ("WARDEN_IMAGES__PRIVATE_HOSTS_ALLOWED", '["::1:8080"]'),
        ("WARDEN_IMAGES__MAX_BYTES", "0"),
        ("WARDEN_IMAGES__MAX_PIXELS", "100000000"),
        ("WARDEN_IMAGES__MAX_PER_MESSAGE", "0"),
        ("WARDEN_IMAGES__FETCH_TIMEOUT_S", "-1"),
        ("WARDEN_IMAGES__MAX_REDIRECTS", "-1"),
        ("WARDEN_IMAGES__ENABLED", "maybe"),
    ],
)
def test_bad_image_settings_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in str(info.value)


def test_image_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_IMAGES__ALLOWED_HOSTS", '["CDN.Example.com.", "*.Media.Example"]')
    monkeypatch.setenv("WARDEN_IMAGES__PRIVATE_HOSTS_ALLOWED", '["LocalHost:8080", "[::1]:9000"]')
    monkeypatch.setenv("WARDEN_IMAGES__MAX_REDIRECTS", "0")
    images = load_settings().images
    assert images.allowed_hosts == ["cdn.example.com", "*.media.example"]
    assert images.private_hosts_allowed == ["localhost:8080", "[::1]:9000"]
    assert images.max_redirects == 0
    defaults = ImageSettings()
    assert defaults.allowed_hosts == [
        "cdn.discordapp.com",
        "media.discordapp.net",
        "files.slack.com",
        "static-cdn.jtvnw.net",
    ]
    assert defaults.private_hosts_allowed == defaults.http_hosts_allowed == []
    assert (defaults.max_bytes, defaults.max_pixels, defaults.max_per_message) == (
        10 * 1024 * 1024,
        40_000_000,
        4,
    )
    assert (defaults.max_redirects, defaults.enabled) == (3, True)
    monkeypatch.setenv("WARDEN_IMAGES__MAX_BYTE", "1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "did you mean WARDEN_IMAGES__MAX_BYTES?" in str(info.value)
