"""A raw JSON-RPC client for a stdio server subprocess, for tests that send malformed input.

The SDK client cannot send a line that is not JSON-RPC, or arguments of the
wrong shape, so these tests write the protocol lines themselves.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

SERVER_COMMAND = [sys.executable, "-m", "takt_mcp", "serve"]
PROTOCOL_VERSION = "2025-11-25"
# Bound on one reply in seconds; a provider timeout in these tests is shorter.
REPLY_LIMIT_SECONDS = 30.0


class RawSession:
    """One server subprocess, spoken to one request at a time."""

    def __init__(self, process: Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self._buffer = bytearray()
        self._next_id = 1
        # Every stdout line read, notifications included, for tests that search the output.
        self.transcript: list[bytes] = []

    async def send_line(self, line: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(line + b"\n")

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send one request and return its reply, skipping notifications before it."""
        request_id = self._next_id
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send_line(json.dumps(message).encode())
        with anyio.fail_after(REPLY_LIMIT_SECONDS):
            while True:
                reply = json.loads(await self._read_line())
                if reply.get("id") == request_id:
                    return dict(reply)

    async def call_tool(self, name: Any, arguments: Any) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        )
        await self.send_line(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')

    def rss_kib(self) -> int:
        """Return the server's resident set size in KiB, from /proc (Linux only)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line in /proc status")

    def stderr_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def _read_line(self) -> bytes:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            self._buffer.extend(await self.process.stdout.receive())
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        self.transcript.append(line)
        return line


@asynccontextmanager
async def raw_session(
    environ: dict[str, str], log_path: Path, command: list[str] = SERVER_COMMAND
) -> AsyncIterator[RawSession]:
    """Start the server, initialize it, and close its stdin at the end."""
    full_environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}
    with log_path.open("wb") as log:
        async with await anyio.open_process(command, env=full_environ, stderr=log) as process:
            session = RawSession(process, log_path)
            try:
                await session.initialize()
                yield session
            finally:
                assert process.stdin is not None
                await process.stdin.aclose()
                # Leaving the process's context kills it if it has not exited by then.
                with anyio.move_on_after(REPLY_LIMIT_SECONDS):
                    await process.wait()


def error_text(reply: dict[str, Any]) -> str | None:
    """Return the error message of a reply, or None when the call succeeded.

    A tool error is a result with isError and text content; a protocol error
    is a JSON-RPC error object.
    """
    if "error" in reply:
        error = reply["error"]
        return f"{error.get('message', '')} {error.get('data') or ''}".strip()
    result = reply["result"]
    if not result.get("isError"):
        return None
    return " ".join(block.get("text", "") for block in result.get("content", []))
