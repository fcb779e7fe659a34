from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from takt_mcp.config import Settings, load_settings
from takt_mcp.identity import IdentityRegistry
from tests.stub_server import StubServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any connection to a host other than loopback, so no test can reach the network."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        is_ip = self.family in (socket.AF_INET, socket.AF_INET6)
        if is_ip and host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"tests must not reach the network (tried {address!r})")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield


@pytest.fixture
def settings() -> Settings:
    return load_settings({})


@pytest.fixture
def identities() -> IdentityRegistry:
    return IdentityRegistry.load()


@pytest.fixture
def stub_server() -> Iterator[StubServer]:
    """A scriptable OpenAI and Anthropic stand-in on 127.0.0.1, stopped after the test."""
    with StubServer() as server:
        yield server
