"""The streamable HTTP transport, behind Host, Origin and bearer-token checks.

Any web page the user visits can send requests to a local MCP server on
127.0.0.1, directly or by rebinding its own domain name to 127.0.0.1 (DNS
rebinding). Three checks guard every request, whatever its path:

- the Host header must name this server (a loopback name, or the address it
  is bound to), so a rebound domain name is rejected with 421;
- an Origin header, which browsers send on cross-origin requests, must name
  one of those hosts too, so a foreign page is rejected with 403;
- when TAKT_HTTP_TOKEN is set, `Authorization: Bearer <token>` must match it
  (compared in constant time), else 401. A page cannot learn the token, and
  a bind to a non-loopback address requires one.

Binding to every interface (0.0.0.0 or ::) leaves no single host name to
check, so there the Host check accepts any well-formed name, an Origin must
match the request's own Host, and the token carries the protection.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import socket
import sys
from collections import Counter
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
MCP_PATH = "/mcp"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::"})
# Shorter tokens are easier to find by trying values against the port.
MIN_TOKEN_CHARS = 16
# Seconds uvicorn waits for open streams to end after a stop signal.
SHUTDOWN_GRACE_SECONDS = 5
# A Host header or an Origin's authority: a DNS name or IPv4 address, or an
# IPv6 address in brackets, then an optional port. Anything else (user info,
# paths, spaces) is rejected rather than parsed leniently.
_AUTHORITY = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::[0-9]{1,5})?")
# Log the first rejection of each kind, then one in this many, so a flood of
# bad requests cannot flood the log.
_LOG_EVERY = 100


class HttpBindError(Exception):
    """The HTTP transport cannot start with these options; the message explains why."""


def is_loopback(host: str) -> bool:
    """Return True when `host` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Raise HttpBindError for a short token, or a non-loopback bind without a token."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise HttpBindError(
            f"TAKT_HTTP_TOKEN is {len(token)} characters long; use at least "
            f'{MIN_TOKEN_CHARS}, for example the output of `python -c "import secrets; '
            'print(secrets.token_urlsafe(32))"`.'
        )
    if not is_loopback(host) and not token:
        raise HttpBindError(
            f"--host {host} is not a loopback address, so every machine that can reach it "
            "could call the tools and spend the provider account. Set TAKT_HTTP_TOKEN to a "
            "long random secret (clients send it as 'Authorization: Bearer <token>'), or "
            f"bind to {DEFAULT_HTTP_HOST}."
        )


def authority_host(value: str) -> str | None:
    """Return the lowercase host of a Host header value, without port or brackets.

    Returns None when the value is not a plain host with an optional port.
    """
    match = _AUTHORITY.fullmatch(value.strip().lower())
    if match is None:
        return None
    return match["ipv6"] or match["name"]


def origin_host(origin: str) -> str | None:
    """Return the host of an http or https Origin header, or None for any other origin."""
    scheme, separator, authority = origin.strip().lower().partition("://")
    if not separator or scheme not in ("http", "https"):
        # Includes "null", which sandboxed frames and file:// pages send.
        return None
    return authority_host(authority)


def allowed_hosts(bind_host: str) -> frozenset[str] | None:
    """Return the host names a request may address, or None for a wildcard bind."""
    name = bind_host.strip().strip("[]").lower()
    if name in WILDCARD_ADDRESSES:
        return None
    return LOOPBACK_NAMES | {name}


class RequestGuard:
    """ASGI middleware that checks Host, Origin and the bearer token on every request."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str] | None, token: str | None) -> None:
        self.app = app
        self.hosts = hosts
        self._token = token.encode() if token else None
        self._rejections: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            # The lifespan scope carries no request.
            await self.app(scope, receive, send)
            return
        rejection = self.check(Headers(scope=scope))
        if rejection is None:
            await self.app(scope, receive, send)
            return
        status, reason = rejection
        self._log_rejection(status, reason, scope)
        if scope["type"] == "websocket":
            # 1008: policy violation. The MCP app serves no WebSocket, but a
            # rejected handshake must still not reach it.
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        response = PlainTextResponse(reason, status_code=status, headers=headers)
        await response(scope, receive, send)

    def check(self, headers: Headers) -> tuple[int, str] | None:
        """Return (status, reason) for a request to reject, or None to let it through."""
        host = authority_host(headers.get("host", ""))
        if host is None or (self.hosts is not None and host not in self.hosts):
            return 421, "Invalid Host header: this server does not serve that host name."
        origin = headers.get("origin")
        if origin is not None:
            source = origin_host(origin)
            permitted = self.hosts if self.hosts is not None else {host}
            if source is None or source not in permitted:
                return 403, "Invalid Origin header: cross-origin requests are not allowed."
        if self._token is not None and not self._token_matches(headers.get("authorization")):
            return 401, "Missing or invalid bearer token (TAKT_HTTP_TOKEN)."
        return None

    def _token_matches(self, authorization: str | None) -> bool:
        assert self._token is not None
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        # compare_digest takes time independent of where the values differ.
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    def _log_rejection(self, status: int, reason: str, scope: Scope) -> None:
        self._rejections[reason] += 1
        count = self._rejections[reason]
        if count == 1 or count % _LOG_EVERY == 0:
            client = scope.get("client") or ("?", 0)
            logger.warning(
                "rejected an HTTP request from %s with %d: %s (%d so far)",
                client[0],
                status,
                reason,
                count,
            )


def build_http_app(server: MCPServer[Any], *, host: str, token: str | None) -> ASGIApp:
    """Return the streamable HTTP app for `server`, wrapped in the request checks."""
    check_bind(host, token)
    hosts = allowed_hosts(host)
    # The SDK's own DNS-rebinding check guards the MCP path as a second layer
    # where its host patterns can express the rule (not for a wildcard bind).
    if hosts is None:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    else:
        authorities = sorted(f"[{name}]" if ":" in name else name for name in hosts)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[*authorities, *(f"{name}:*" for name in authorities)],
            allowed_origins=[
                f"{scheme}://{name}{port}"
                for scheme in ("http", "https")
                for name in authorities
                for port in ("", ":*")
            ],
        )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=security, host=host
    )
    return RequestGuard(app, hosts=hosts, token=token)


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a listening-ready TCP socket bound to host and port (0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise HttpBindError(f"Cannot listen on {host} port {port}: {error.strerror}.") from None
    return sock


async def serve_http(server: MCPServer[Any], *, host: str, port: int, token: str | None) -> None:
    """Serve `server` over streamable HTTP until the process receives SIGINT or SIGTERM."""
    import uvicorn  # imported here so the stdio server never loads it

    app = build_http_app(server, host=host, token=token)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    authority = f"[{host.strip('[]')}]" if ":" in host else host
    # stdout stays free of anything but output a caller asked for; the
    # address goes to stderr, where a host or a test can read the port.
    print(f"takt-mcp: serving MCP at http://{authority}:{bound_port}{MCP_PATH}", file=sys.stderr)
    config = uvicorn.Config(
        app,
        lifespan="on",
        # None keeps the logging that the command line configured (stderr).
        log_config=None,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    await uvicorn.Server(config).serve(sockets=[sock])
