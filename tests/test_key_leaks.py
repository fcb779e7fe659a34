"""Keys never reach logs, results, ledgers or error messages.

Each test runs with recognisable fake keys (a fixed prefix and 32 random hex
characters) and makes a stub provider echo them back in error bodies. The
server logs at debug level. The test then searches every output: the
JSON-RPC lines on stdout, stderr, command output and every file the server
wrote. Any 10 characters in a row of a key's random part count as a leak, so
a cut-off echo is caught too.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.raw_stdio import SERVER_COMMAND, RawSession, error_text, raw_session
from tests.stub_server import (
    StubReply,
    StubServer,
    anthropic_error,
    chat_completion,
    openai_error,
)
from tests.test_http import start_server, stop_server

FRAGMENT_CHARS = 10
COMMAND_LIMIT_SECONDS = 60
QUESTION = "Walk or drive to the car wash 50 m away?"
PARTIES = [{"name": "Alice", "position": "Walk."}, {"name": "Bob", "position": "Drive."}]


@dataclass(frozen=True)
class Keys:
    openai: str
    anthropic: str
    http_token: str

    def all(self) -> tuple[str, str, str]:
        return (self.openai, self.anthropic, self.http_token)


@pytest.fixture
def keys() -> Keys:
    return Keys(
        openai=f"sk-proj-leaktest-{secrets.token_hex(16)}",
        anthropic=f"sk-ant-api03-leaktest-{secrets.token_hex(16)}",
        http_token=f"http-leaktest-{secrets.token_hex(16)}",
    )


def fragments(key: str) -> list[str]:
    """Return every run of FRAGMENT_CHARS characters in the key's random part."""
    random_part = key.rsplit("-", 1)[1]
    return [random_part[i : i + FRAGMENT_CHARS] for i in range(len(random_part) - 9)]


def leaked(keys: Keys, text: str) -> list[str]:
    """Return the fragments of any key found in `text`."""
    return [piece for key in keys.all() for piece in fragments(key) if piece in text]


def written_files(folder: Path) -> dict[str, str]:
    """Return every file under `folder` as text, SQLite databases included."""
    return {
        str(path.relative_to(folder)): path.read_bytes().decode("utf-8", "replace")
        for path in folder.rglob("*")
        if path.is_file()
    }


def assert_no_leaks(keys: Keys, outputs: dict[str, str]) -> None:
    for source, text in outputs.items():
        assert leaked(keys, text) == [], source


def base_environment(folder: Path, keys: Keys) -> dict[str, str]:
    return {
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        "OPENAI_API_KEY": keys.openai,
        "ANTHROPIC_API_KEY": keys.anthropic,
        "TAKT_HTTP_TOKEN": keys.http_token,
        "TAKT_MAX_RETRIES": "0",
        "TAKT_CACHE_TTL": "0",
    }


def openai_environment(folder: Path, keys: Keys, stub: StubServer) -> dict[str, str]:
    return {
        **base_environment(folder, keys),
        "TAKT_PROVIDER": "openai",
        "OPENAI_BASE_URL": stub.openai_base_url,
        "TAKT_MODEL": "stub-model-a",
    }


def anthropic_environment(folder: Path, keys: Keys, stub: StubServer) -> dict[str, str]:
    return {
        **base_environment(folder, keys),
        "TAKT_PROVIDER": "anthropic",
        "ANTHROPIC_BASE_URL": stub.base_url,
    }


def echoing_openai_errors(key: str) -> list[tuple[StubReply, ...]]:
    """Return, per failing call, error replies that repeat the key, as a careless server might.

    A compatible server's 400 or 500 is retried once in json_object mode, so
    those calls take two replies.
    """
    html = f"<html>proxy error for {key}</html>".encode()
    bad_request = StubReply(
        status=400, body=openai_error(f"Bad request with key {key}.", error_type="x")
    )
    return [
        (
            StubReply(
                status=401,
                body=openai_error(f"Incorrect API key provided: {key}.", error_type="auth"),
            ),
        ),
        (
            StubReply(
                status=429,
                body=openai_error(f"Rate limit for key {key} reached.", error_type="rate_limit"),
                headers={"retry-after": "1"},
            ),
        ),
        (StubReply(status=500, body=html), StubReply(status=500, body=html)),
        (bad_request, bad_request),
        (StubReply(body=json.dumps(chat_completion("{}"))[:40].encode() + key.encode()),),
    ]


def echoing_anthropic_errors(key: str) -> list[tuple[StubReply, ...]]:
    return [
        (
            StubReply(
                status=401,
                body=anthropic_error(f"invalid x-api-key {key}", error_type="authentication_error"),
            ),
        ),
        (
            StubReply(
                status=429,
                body=anthropic_error(f"rate limited: {key}", error_type="rate_limit_error"),
                headers={"retry-after": "1"},
            ),
        ),
        (
            StubReply(
                status=529,
                body=anthropic_error(f"overloaded {key}", error_type="overloaded_error"),
            ),
        ),
        (
            StubReply(
                status=400, body=anthropic_error(f"bad {key}", error_type="invalid_request_error")
            ),
        ),
        (StubReply(body=b'{"id": "msg_' + key.encode()),),
    ]


async def exercise_server(
    session: RawSession, stub: StubServer, path: str, failures: list[tuple[StubReply, ...]]
) -> list[str]:
    """Make successful calls of every kind, then one failing call per entry of `failures`.

    Returns the error messages of the failing calls.
    """
    first = await session.call_tool("second_opinion", {"question": QUESTION})
    thread_id = first["result"]["structuredContent"]["thread_id"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("second_opinion", {"question": QUESTION, "proposal": "Walk.", "user_position": "Walk!"}),
        ("second_opinion", {"question": "Are you sure?", "thread_id": thread_id}),
        ("mediate", {"participants": PARTIES, "question": QUESTION}),
        ("frame_check", {"draft": "Sure, walk."}),
    ]
    for tool, arguments in calls:
        await session.call_tool(tool, arguments)
    await session.request("resources/read", {"uri": f"takt://threads/{thread_id}"})
    await session.request("resources/read", {"uri": "takt://threads"})
    messages = []
    for index, replies in enumerate(failures):
        stub.script("POST", path, *replies)
        reply = await session.call_tool("second_opinion", {"question": f"{QUESTION} {index}"})
        messages.append(error_text(reply) or "")
    # Invalid arguments and an unknown thread fail before any provider request.
    await session.call_tool("second_opinion", {"question": 5})
    await session.call_tool("second_opinion", {"question": "q", "thread_id": "th_" + "B" * 22})
    return messages


def session_outputs(session: RawSession, folder: Path) -> dict[str, str]:
    transcript = b"\n".join(session.transcript).decode("utf-8", "replace")
    return {"stdout": transcript, "stderr": session.stderr_text(), **written_files(folder)}


@pytest.mark.anyio
async def test_openai_key_never_leaks(keys: Keys, stub_server: StubServer, tmp_path: Path) -> None:
    failures = echoing_openai_errors(keys.openai)
    environ = openai_environment(tmp_path, keys, stub_server)
    async with raw_session(environ, tmp_path / "stderr.log", [*SERVER_COMMAND, "-vv"]) as session:
        messages = await exercise_server(session, stub_server, "/v1/chat/completions", failures)
    sent = [request.headers.get("authorization") for request in stub_server.requests()]

    assert f"Bearer {keys.openai}" in sent
    assert all(messages)
    assert_no_leaks(keys, {f"error {i}": text for i, text in enumerate(messages)})
    assert_no_leaks(keys, session_outputs(session, tmp_path))


@pytest.mark.anyio
async def test_anthropic_key_never_leaks(
    keys: Keys, stub_server: StubServer, tmp_path: Path
) -> None:
    failures = echoing_anthropic_errors(keys.anthropic)
    environ = anthropic_environment(tmp_path, keys, stub_server)
    async with raw_session(environ, tmp_path / "stderr.log", [*SERVER_COMMAND, "-vv"]) as session:
        messages = await exercise_server(session, stub_server, "/v1/messages", failures)
    # SDK versions differ: older ones send x-api-key, newer ones a bearer token.
    sent = {
        value
        for request in stub_server.requests()
        for value in (request.headers.get("x-api-key"), request.headers.get("authorization"))
    }

    assert sent & {keys.anthropic, f"Bearer {keys.anthropic}"}
    assert all(messages)
    assert_no_leaks(keys, {f"error {i}": text for i, text in enumerate(messages)})
    assert_no_leaks(keys, session_outputs(session, tmp_path))


def run_command(arguments: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "takt_mcp", *arguments],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ},
        capture_output=True,
        text=True,
        timeout=COMMAND_LIMIT_SECONDS,
    )


def test_commands_never_print_keys(keys: Keys, stub_server: StubServer, tmp_path: Path) -> None:
    environ = openai_environment(tmp_path, keys, stub_server)
    stub_server.script("POST", "/v1/chat/completions", *echoing_openai_errors(keys.openai)[0])
    outputs: dict[str, str] = {}
    commands = [
        ["-vv", "ask", QUESTION],
        ["-vv", "doctor"],
        ["-vv", "ask", QUESTION, "--json"],
        ["-vv", "mediate", "--participant", "A: walk", "--participant", "B: drive", "--json"],
        ["threads", "list"],
        ["identities"],
    ]
    for arguments in commands:
        completed = run_command(arguments, environ)
        outputs[f"{arguments} stdout"] = completed.stdout
        outputs[f"{arguments} stderr"] = completed.stderr
    thread_ids = [line.split()[0] for line in outputs["['threads', 'list'] stdout"].splitlines()]
    for thread_id in thread_ids:
        exported = run_command(["threads", "export", thread_id], environ)
        outputs[f"export {thread_id}"] = exported.stdout

    assert "HTTP 401" in outputs[f"{commands[0]} stderr"]
    assert thread_ids
    assert_no_leaks(keys, outputs)
    assert_no_leaks(keys, written_files(tmp_path))


def test_http_token_never_leaks(keys: Keys, stub_server: StubServer, tmp_path: Path) -> None:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **openai_environment(tmp_path, keys, stub_server),
    }
    server = start_server(environ, tmp_path / "stderr.log", "-vv")
    try:
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        }
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "leak-test", "version": "0"},
                },
            }
        )
        statuses = []
        for authorization in (f"Bearer {keys.http_token}", f"Bearer {keys.http_token}x", ""):
            response = httpx2.post(
                server.url,
                content=body,
                headers={**headers, "authorization": authorization},
                timeout=10,
            )
            statuses.append(response.status_code)
            assert leaked(keys, response.text) == []
    finally:
        stop_server(server)

    assert statuses == [200, 401, 401]
    assert_no_leaks(keys, {"stderr": server.stderr_text(), **written_files(tmp_path)})
