"""The real server as a stdio subprocess, driven by the MCP SDK client.

The subprocess inherits only the variables that the SDK's stdio client
passes on (HOME, PATH and a few more) plus the ones each test sets, so no
API key from the developer's shell reaches it. HOME and TAKT_DATA_DIR point
into the test's temporary folder, so the ledger and the response cache start
empty. Provider traffic goes to the stub server on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import jsonschema
import mcp
import pytest
from anyio.abc import ByteReceiveStream, Process
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client

from tests.stub_server import OPENAI_MODELS, StubReply, StubServer, openai_error

# Bound on a whole client session in seconds, start-up and shutdown included.
SESSION_LIMIT_SECONDS = 60.0
SERVER_COMMAND = [sys.executable, "-m", "takt_mcp", "serve", "-v"]
REQUIRED_TOOLS = {"second_opinion", "mediate"}
QUESTION = "Should I walk or drive to the car wash 50 m away?"
PARTICIPANTS = [
    {"name": "Alice", "position": "Ship on Friday."},
    {"name": "Bob", "position": "Ship next month."},
]


class StdioSession:
    """A connected client plus what the server wrote outside the protocol."""

    def __init__(self, client: mcp.Client, stray_output: list[Exception], log: TextIO) -> None:
        self.client = client
        self.stray_output = stray_output
        self._log = log

    def stderr_text(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()


@asynccontextmanager
async def stdio_session(environ: dict[str, str], log_path: Path) -> AsyncIterator[StdioSession]:
    """Start the server as a subprocess and connect the SDK client to it over stdio."""
    stray_output: list[Exception] = []

    async def record_stray_output(message: IncomingMessage) -> None:
        # The stdio client hands each stdout line that is not JSON-RPC to the
        # message handler as an exception instead of failing the session.
        if isinstance(message, Exception):
            stray_output.append(message)

    parameters = mcp.StdioServerParameters(
        command=SERVER_COMMAND[0], args=SERVER_COMMAND[1:], env=environ
    )
    with log_path.open("w+", encoding="utf-8") as log:
        transport = stdio_client(parameters, errlog=log)
        with anyio.fail_after(SESSION_LIMIT_SECONDS):
            async with mcp.Client(transport, message_handler=record_stray_output) as client:
                yield StdioSession(client, stray_output, log)


def isolated_environment(folder: Path) -> dict[str, str]:
    """Return variables that keep the server's files inside `folder`."""
    return {"HOME": str(folder / "home"), "TAKT_DATA_DIR": str(folder / "data")}


def stub_environment(stub: StubServer, folder: Path) -> dict[str, str]:
    return {
        **isolated_environment(folder),
        "OPENAI_BASE_URL": stub.openai_base_url,
        "TAKT_MAX_RETRIES": "0",
    }


async def output_schemas(client: mcp.Client) -> dict[str, dict[str, Any]]:
    tools = (await client.list_tools()).tools
    return {tool.name: tool.output_schema or {} for tool in tools}


# --- with the stub server as an OpenAI-compatible provider ---------------------------


@pytest.mark.anyio
async def test_tools_list_shows_both_tools(stub_server: StubServer, tmp_path: Path) -> None:
    async with stdio_session(
        stub_environment(stub_server, tmp_path), tmp_path / "stderr.log"
    ) as session:
        tools = {tool.name: tool for tool in (await session.client.list_tools()).tools}

    assert set(tools) >= REQUIRED_TOOLS
    for tool in tools.values():
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
    assert tools["second_opinion"].input_schema["required"] == ["question"]
    assert tools["mediate"].input_schema["required"] == ["participants"]


@pytest.mark.anyio
async def test_second_opinion_matches_output_schema(
    stub_server: StubServer, tmp_path: Path
) -> None:
    async with stdio_session(
        stub_environment(stub_server, tmp_path), tmp_path / "stderr.log"
    ) as session:
        schemas = await output_schemas(session.client)
        result = await session.client.call_tool("second_opinion", {"question": QUESTION})

    assert result.is_error is False
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, schemas["second_opinion"])
    assert result.structured_content["metadata"]["provider"] == "openai"
    assert result.structured_content["metadata"]["model"] == OPENAI_MODELS[0]
    assert len(stub_server.requests("/v1/chat/completions")) == 1


@pytest.mark.anyio
async def test_framed_second_opinion_reports_verdict(
    stub_server: StubServer, tmp_path: Path
) -> None:
    arguments = {"question": QUESTION, "proposal": "Walk.", "user_position": "Walking is healthy."}
    async with stdio_session(
        stub_environment(stub_server, tmp_path), tmp_path / "stderr.log"
    ) as session:
        schemas = await output_schemas(session.client)
        result = await session.client.call_tool("second_opinion", arguments)

    assert result.is_error is False
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, schemas["second_opinion"])
    assert result.structured_content["verdict"] == "disagree"
    assert result.structured_content["frame_influence"] is not None
    assert len(stub_server.requests("/v1/chat/completions")) == 2


@pytest.mark.anyio
async def test_mediate_matches_output_schema(stub_server: StubServer, tmp_path: Path) -> None:
    arguments = {"participants": PARTICIPANTS, "question": "When do we ship?"}
    async with stdio_session(
        stub_environment(stub_server, tmp_path), tmp_path / "stderr.log"
    ) as session:
        schemas = await output_schemas(session.client)
        result = await session.client.call_tool("mediate", arguments)

    assert result.is_error is False
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, schemas["mediate"])
    names = [item["name"] for item in result.structured_content["participants"]]
    assert names == ["Alice", "Bob"]


@pytest.mark.anyio
async def test_provider_failure_becomes_tool_error(stub_server: StubServer, tmp_path: Path) -> None:
    denied = StubReply(status=401, body=openai_error("Invalid key.", error_type="auth"))
    stub_server.script("POST", "/v1/chat/completions", denied)
    async with stdio_session(
        stub_environment(stub_server, tmp_path), tmp_path / "stderr.log"
    ) as session:
        result = await session.client.call_tool("second_opinion", {"question": QUESTION})
        stderr = session.stderr_text()

    text = " ".join(block.text for block in result.content if block.type == "text")
    assert result.is_error is True
    assert "HTTP 401" in text
    assert "OPENAI_API_KEY" in text
    assert "provider call failed" in stderr


@pytest.mark.anyio
async def test_stdout_carries_only_protocol(stub_server: StubServer, tmp_path: Path) -> None:
    async with stdio_session(
        stub_environment(stub_server, tmp_path), tmp_path / "stderr.log"
    ) as session:
        await session.client.list_tools()
        await session.client.call_tool("second_opinion", {"question": QUESTION})
        stderr = session.stderr_text()

    assert session.stray_output == []
    assert "takt-mcp" in stderr
    assert "started with identities" in stderr


# --- with no provider configured ------------------------------------------------------


@pytest.mark.anyio
async def test_unconfigured_server_lists_tools(tmp_path: Path) -> None:
    async with stdio_session(isolated_environment(tmp_path), tmp_path / "stderr.log") as session:
        tools = (await session.client.list_tools()).tools

    assert {tool.name for tool in tools} >= REQUIRED_TOOLS


@pytest.mark.anyio
async def test_unconfigured_call_names_missing_settings(tmp_path: Path) -> None:
    async with stdio_session(isolated_environment(tmp_path), tmp_path / "stderr.log") as session:
        result = await session.client.call_tool("second_opinion", {"question": QUESTION})

    text = " ".join(block.text for block in result.content if block.type == "text")
    assert result.is_error is True
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        assert variable in text


# --- raw pipes: every stdout line is JSON-RPC -------------------------------------------


async def read_line(stream: ByteReceiveStream, buffer: bytearray) -> bytes:
    """Return the next newline-terminated line, or what is left at end of stream."""
    while b"\n" not in buffer:
        try:
            buffer.extend(await stream.receive())
        except anyio.EndOfStream:
            line = bytes(buffer)
            buffer.clear()
            return line
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line + b"\n"


async def exchange(process: Process, buffer: bytearray, message: dict[str, Any]) -> dict[str, Any]:
    assert process.stdin is not None
    assert process.stdout is not None
    await process.stdin.send(json.dumps(message).encode() + b"\n")
    while True:
        line = await read_line(process.stdout, buffer)
        reply = json.loads(line)
        # Notifications (log messages, for example) may come before the response.
        if reply.get("id") == message["id"]:
            return dict(reply)
        assert reply["jsonrpc"] == "2.0"


@pytest.mark.anyio
async def test_raw_stdout_lines_are_all_json_rpc(stub_server: StubServer, tmp_path: Path) -> None:
    environ = {"PATH": "/usr/bin:/bin", **stub_environment(stub_server, tmp_path)}
    log_path = tmp_path / "stderr.log"
    buffer = bytearray()
    with anyio.fail_after(SESSION_LIMIT_SECONDS), log_path.open("wb") as log:
        async with await anyio.open_process(SERVER_COMMAND, env=environ, stderr=log) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            initialize = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "0"},
                },
            }
            initialized = await exchange(process, buffer, initialize)
            await process.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            listed = await exchange(
                process, buffer, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            )
            called = await exchange(
                process,
                buffer,
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {"name": "second_opinion", "arguments": {"question": QUESTION}},
                },
            )
            await process.stdin.aclose()
            remaining = []
            while line := await read_line(process.stdout, buffer):
                remaining.append(line)
            exit_code = await process.wait()

    assert initialized["result"]["serverInfo"]["name"] == "takt-mcp"
    assert {tool["name"] for tool in listed["result"]["tools"]} >= REQUIRED_TOOLS
    assert called["result"]["isError"] is False
    for line in remaining:
        assert json.loads(line)["jsonrpc"] == "2.0"
    assert exit_code == 0
