"""The streamable HTTP transport: a real server process on 127.0.0.1 and a real HTTP client.

One server with a bearer token runs for the whole module, with the stub
server as its OpenAI-compatible provider. Request checks that need another
bind address (a wildcard or a LAN address) are tested on the middleware
directly, since tests listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from takt_mcp.http import (
    MIN_TOKEN_CHARS,
    HttpBindError,
    RequestGuard,
    allowed_hosts,
    authority_host,
    check_bind,
    is_loopback,
    origin_host,
)
from tests.stub_server import StubServer

TOKEN = "test-token-3f9a1c7e5b2d4f6a8c0e"
SERVER_COMMAND = [sys.executable, "-m", "takt_mcp", "serve", "--transport", "http", "--port", "0"]
# Bound in seconds on the server's start-up and on its stop after a signal.
START_LIMIT_SECONDS = 30.0
STOP_LIMIT_SECONDS = 15.0
CLIENT_LIMIT_SECONDS = 30.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "http-test", "version": "0"},
    },
}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@dataclass
class HttpServer:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def stderr_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def server_environment(folder: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        "TAKT_MAX_RETRIES": "0",
        **extra,
    }


def start_server(environ: dict[str, str], log: Path, *extra_args: str) -> HttpServer:
    """Start `takt-mcp serve --transport http` and wait for the address it prints."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*SERVER_COMMAND, *extra_args],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + START_LIMIT_SECONDS
    while time.monotonic() < deadline:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("takt-mcp: serving MCP at "):
                url = line.removeprefix("takt-mcp: serving MCP at ").strip()
                port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
                wait_until_listening(port, deadline)
                return HttpServer(process, url, port, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"the HTTP server did not start:\n{log.read_text()}")


def wait_until_listening(port: int, deadline: float) -> None:
    # The address is printed before uvicorn runs the lifespan and accepts.
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return
        except httpx2.TransportError:
            time.sleep(0.05)


def stop_server(server: HttpServer, signal_number: int = signal.SIGTERM) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal_number)
        try:
            server.process.wait(timeout=STOP_LIMIT_SECONDS)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One HTTP server with a bearer token for the module, stopped at its end."""
    folder = tmp_path_factory.mktemp("http")
    environ = server_environment(
        folder, OPENAI_BASE_URL=stub.openai_base_url, TAKT_HTTP_TOKEN=TOKEN
    )
    running = start_server(environ, folder / "stderr.log")
    yield running
    stop_server(running)


def post_initialize(server: HttpServer, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(
        server.url, content=json.dumps(INITIALIZE), headers={**MCP_HEADERS, **headers}, timeout=10
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def list_tools(url: str, headers: dict[str, str]) -> set[str]:
    async with httpx2.AsyncClient(headers=headers, timeout=CLIENT_LIMIT_SECONDS) as http_client:
        transport = streamable_http_client(url, http_client=http_client)
        with anyio.fail_after(CLIENT_LIMIT_SECONDS):
            async with mcp.Client(transport) as client:
                return {tool.name for tool in (await client.list_tools()).tools}


# --- the running server ---------------------------------------------------------------


@pytest.mark.anyio
async def test_token_lists_tools(server: HttpServer) -> None:
    tools = await list_tools(server.url, bearer(TOKEN))

    assert {"second_opinion", "mediate", "frame_check"} <= tools


@pytest.mark.anyio
async def test_tool_call_over_http(server: HttpServer, stub: StubServer) -> None:
    before = len(stub.requests("/v1/chat/completions"))
    async with httpx2.AsyncClient(headers=bearer(TOKEN), timeout=CLIENT_LIMIT_SECONDS) as http:
        with anyio.fail_after(CLIENT_LIMIT_SECONDS):
            async with mcp.Client(streamable_http_client(server.url, http_client=http)) as client:
                result = await client.call_tool(
                    "second_opinion", {"question": "Walk or drive to the car wash 50 m away?"}
                )

    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["metadata"]["provider"] == "openai"
    assert len(stub.requests("/v1/chat/completions")) == before + 1


def test_missing_token_is_401(server: HttpServer) -> None:
    response = post_initialize(server, {})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="shorter"),
        pytest.param(f"Bearer {TOKEN.upper()}", id="other case"),
        pytest.param("Bearer", id="scheme only"),
        pytest.param(f"Basic {TOKEN}", id="basic scheme"),
        pytest.param(TOKEN, id="no scheme"),
    ],
)
def test_wrong_token_is_401(server: HttpServer, authorization: str) -> None:
    response = post_initialize(server, {"authorization": authorization})

    assert response.status_code == 401


def test_token_scheme_ignores_case(server: HttpServer) -> None:
    response = post_initialize(server, {"authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200


def test_every_path_needs_token(server: HttpServer) -> None:
    response = httpx2.get(f"http://127.0.0.1:{server.port}/other", timeout=10)

    assert response.status_code == 401


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("evil.example", id="foreign name"),
        pytest.param("evil.example:{port}", id="foreign name with port"),
        pytest.param("127.0.0.1.evil.example:{port}", id="loopback prefix"),
        pytest.param("evil.example@127.0.0.1:{port}", id="user info"),
        pytest.param("192.168.1.20:{port}", id="LAN address"),
        pytest.param("", id="empty"),
    ],
)
def test_foreign_host_is_rejected(server: HttpServer, host: str) -> None:
    response = post_initialize(server, {**bearer(TOKEN), "host": host.format(port=server.port)})

    assert response.status_code == 421


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("http://evil.example", id="foreign"),
        pytest.param("http://evil.example:{port}", id="foreign with port"),
        pytest.param("null", id="null"),
        pytest.param("file://", id="file"),
        pytest.param("http://127.0.0.1.evil.example", id="loopback prefix"),
    ],
)
def test_foreign_origin_is_rejected(server: HttpServer, origin: str) -> None:
    headers = {**bearer(TOKEN), "origin": origin.format(port=server.port)}

    response = post_initialize(server, headers)

    assert response.status_code == 403


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:3000"])
def test_loopback_origin_is_accepted(server: HttpServer, origin: str) -> None:
    headers = {**bearer(TOKEN), "origin": origin.format(port=server.port)}

    response = post_initialize(server, headers)

    assert response.status_code == 200


def test_localhost_host_is_accepted(server: HttpServer) -> None:
    headers = {**bearer(TOKEN), "host": f"localhost:{server.port}"}

    response = post_initialize(server, headers)

    assert response.status_code == 200


def test_rejections_never_log_tokens(server: HttpServer) -> None:
    post_initialize(server, {"authorization": "Bearer guess-0123456789abcdef"})

    log = server.stderr_text()
    assert "rejected an HTTP request" in log
    assert TOKEN not in log
    assert "guess-0123456789abcdef" not in log


# --- start-up and shutdown --------------------------------------------------------------


@pytest.mark.anyio
async def test_no_token_serves_loopback(tmp_path: Path) -> None:
    running = start_server(server_environment(tmp_path), tmp_path / "stderr.log")
    try:
        tools = await list_tools(running.url, {})
    finally:
        stop_server(running)

    assert "second_opinion" in tools
    assert running.url.startswith("http://127.0.0.1:")


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    running = start_server(server_environment(tmp_path), tmp_path / "stderr.log")

    exit_code = stop_server(running, signal.SIGINT)

    assert exit_code == 0
    assert "Traceback" not in running.stderr_text()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_public_bind_without_token_is_refused(tmp_path: Path, host: str) -> None:
    completed = subprocess.run(
        [*SERVER_COMMAND, "--host", host],
        env=server_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_LIMIT_SECONDS,
    )

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "TAKT_HTTP_TOKEN" in completed.stderr


def test_short_token_is_refused(tmp_path: Path) -> None:
    completed = subprocess.run(
        SERVER_COMMAND,
        env=server_environment(tmp_path, TAKT_HTTP_TOKEN="short-token"),
        capture_output=True,
        text=True,
        timeout=START_LIMIT_SECONDS,
    )

    assert completed.returncode == 2
    assert "TAKT_HTTP_TOKEN" in completed.stderr
    assert "short-token" not in completed.stderr


def test_stdio_rejects_port_option(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "takt_mcp", "serve", "--port", "8000"],
        env=server_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_LIMIT_SECONDS,
    )

    assert completed.returncode == 2
    assert "--transport http" in completed.stderr


def test_busy_port_fails_with_one_line(tmp_path: Path, server: HttpServer) -> None:
    completed = subprocess.run(
        [*SERVER_COMMAND[:-1], str(server.port)],
        env=server_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_LIMIT_SECONDS,
    )

    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines()[-1].startswith("takt-mcp: error: Cannot listen")


# --- the checks as functions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_bind_accepts_loopback_without_token() -> None:
    check_bind("127.0.0.1", None)


def test_check_bind_accepts_public_with_token() -> None:
    check_bind("0.0.0.0", "x" * MIN_TOKEN_CHARS)


def test_check_bind_rejects_public_without_token() -> None:
    with pytest.raises(HttpBindError, match="TAKT_HTTP_TOKEN"):
        check_bind("0.0.0.0", None)


def test_check_bind_rejects_short_token() -> None:
    with pytest.raises(HttpBindError, match="at least"):
        check_bind("127.0.0.1", "x" * (MIN_TOKEN_CHARS - 1))


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8000", "::1"),
        ("example.com", "example.com"),
        ("evil.example@127.0.0.1", None),
        ("127.0.0.1/path", None),
        ("127.0.0.1:80:80", None),
        ("::1", None),
        ("", None),
        ("exa mple.com", None),
    ],
)
def test_authority_host(header: str, host: str | None) -> None:
    assert authority_host(header) == host


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:3000", "127.0.0.1"),
        ("https://localhost", "localhost"),
        ("http://[::1]:8000", "::1"),
        ("null", None),
        ("file://", None),
        ("chrome-extension://abcdef", None),
        ("http://user@127.0.0.1", None),
    ],
)
def test_origin_host(origin: str, host: str | None) -> None:
    assert origin_host(origin) == host


def test_allowed_hosts_add_bind_address() -> None:
    hosts = allowed_hosts("192.168.1.20")

    assert hosts is not None
    assert "192.168.1.20" in hosts
    assert "localhost" in hosts


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]"])
def test_wildcard_bind_has_no_host_list(host: str) -> None:
    assert allowed_hosts(host) is None


# --- the middleware on a wildcard bind, without a socket ----------------------------------


async def guarded_status(guard: RequestGuard, headers: dict[str, str]) -> int:
    """Send one request scope through the guard and return the response status."""
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "client": ("192.0.2.7", 50000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    starts = [message for message in sent if message["type"] == "http.response.start"]
    assert len(starts) == 1
    return int(starts[0]["status"])


async def accept(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


WILDCARD_GUARD = RequestGuard(accept, hosts=None, token=TOKEN)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"host": "myhost.lan:8000", **bearer(TOKEN)}, 204, id="any host with token"),
        pytest.param({"host": "myhost.lan:8000"}, 401, id="any host without token"),
        pytest.param(
            {"host": "myhost.lan:8000", "origin": "http://myhost.lan:8000", **bearer(TOKEN)},
            204,
            id="same-origin page",
        ),
        pytest.param(
            {"host": "myhost.lan:8000", "origin": "http://evil.example", **bearer(TOKEN)},
            403,
            id="foreign origin",
        ),
        pytest.param({"host": "a b", **bearer(TOKEN)}, 421, id="malformed host"),
    ],
)
async def test_wildcard_guard(headers: dict[str, str], status: int) -> None:
    assert await guarded_status(WILDCARD_GUARD, headers) == status


@pytest.mark.anyio
async def test_guard_closes_rejected_websocket() -> None:
    sent: list[Message] = []
    scope: Scope = {"type": "websocket", "path": "/mcp", "headers": [(b"host", b"127.0.0.1")]}

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestGuard(accept, hosts=allowed_hosts("127.0.0.1"), token=TOKEN)(scope, receive, send)

    assert [message["type"] for message in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


@pytest.mark.anyio
async def test_guard_passes_lifespan() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await RequestGuard(app, hosts=None, token=TOKEN)({"type": "lifespan"}, receive, send)

    assert seen == ["lifespan"]


def test_guard_reports_reason_without_token() -> None:
    guard = RequestGuard(accept, hosts=allowed_hosts("127.0.0.1"), token=TOKEN)
    rejection = guard.check(Headers({"host": "127.0.0.1:1", "authorization": "Bearer no"}))

    assert rejection is not None
    assert rejection[0] == 401
    assert TOKEN not in rejection[1]
