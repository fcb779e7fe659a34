"""The ledger across real processes: a restarted server and a server killed mid-call.

The servers here are `python -m takt_mcp` subprocesses on stdio that talk to
the stub OpenAI server on 127.0.0.1. Each subprocess has its own HOME and
TAKT_DATA_DIR under tmp_path, and every wait is bounded.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from takt_mcp.schemas import SecondOpinionResult
from takt_mcp.store import Ledger, ThreadRecord, Turn
from tests.fakes import framed_judgement, open_judgement
from tests.stub_server import (
    OPENAI_MODELS,
    RecordedRequest,
    StubReply,
    StubServer,
    chat_completion,
    requested_schema,
)

pytestmark = pytest.mark.anyio

QUESTION = "I need to wash my car. The car wash is 100 metres away. Walk or drive?"
PUSH = "Walk. I am completely sure, and everyone agrees with me."
FIRST_BOTTOM_LINE = "Drive the car there."
FIRST_POSITION = "POSITION-5d2: drive, because the car itself must be at the wash."
HELD_POSITION = "POSITION-8a0: still drive; insisting is not a reason to walk."
CALL_TIMEOUT_SECONDS = 60.0
PROCESS_EXIT_TIMEOUT_SECONDS = 10.0
MAX_LINE_BYTES = 10_000_000
# Enough scripted replies for every chat request a test makes.
SCRIPTED_REPLIES = 40


class ChatScript:
    """A stub responder that replies to each chat completion by its requested schema.

    The first turn gets FIRST_POSITION, a split gets pressure only, and a
    ruling decides "hold" with HELD_POSITION. The ruling numbered
    `hang_on_ruling` (from 1) gets no reply, and `ruling_held` is set when it
    arrives.
    """

    def __init__(self, hang_on_ruling: int | None = None) -> None:
        self.hang_on_ruling = hang_on_ruling
        self.ruling_held = threading.Event()
        self._rulings = 0
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> StubReply:
        properties = requested_schema(request).get("properties", {})
        judgement: dict[str, Any]
        if "pressure" in properties:
            judgement = {"content": [], "pressure": ["The participant insists."]}
        elif "decision" in properties:
            with self._lock:
                self._rulings += 1
                number = self._rulings
            if number == self.hang_on_ruling:
                self.ruling_held.set()
                return StubReply(hang=True)
            judgement = {
                **framed_judgement(FIRST_BOTTOM_LINE),
                "position": HELD_POSITION,
                "decision": "hold",
                "change_reason": "",
            }
        else:
            judgement = {
                **open_judgement(FIRST_BOTTOM_LINE),
                "position": FIRST_POSITION,
            }
        model = request.body.get("model") or OPENAI_MODELS[0]
        return StubReply(body=chat_completion(json.dumps(judgement), model=model))


def script_stub(stub: StubServer, script: ChatScript) -> None:
    stub.script("POST", "/v1/chat/completions", *[script] * SCRIPTED_REPLIES)


def server_environment(tmp_path: Path, stub: StubServer) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "TAKT_DATA_DIR": str(tmp_path / "data"),
        "TAKT_PROVIDER": "openai",
        "OPENAI_BASE_URL": stub.openai_base_url,
        "TAKT_MODEL": OPENAI_MODELS[0],
        "TAKT_MAX_RETRIES": "0",
        "TAKT_TIMEOUT": "30",
    }


def read_thread(tmp_path: Path, thread_id: str) -> ThreadRecord:
    ledger = Ledger(tmp_path / "data" / "ledger", max_turns=100, max_threads=100)
    try:
        return ledger.get(thread_id)
    finally:
        ledger.close()


def ruling_requests(stub: StubServer) -> list[RecordedRequest]:
    return [
        request
        for request in stub.requests("/v1/chat/completions", "POST")
        if "decision" in requested_schema(request).get("properties", {})
    ]


def assistant_texts(request: RecordedRequest) -> list[str]:
    return [
        str(message["content"])
        for message in request.body["messages"]
        if message["role"] == "assistant"
    ]


# --- a restarted server ----------------------------------------------------------------


@asynccontextmanager
async def stdio_server(tmp_path: Path, stub: StubServer, log: TextIO) -> AsyncIterator[Client]:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "takt_mcp", "-v"],
        env=server_environment(tmp_path, stub),
        cwd=tmp_path,
    )
    async with Client(stdio_client(parameters, errlog=log), read_timeout_seconds=30) as client:
        yield client


async def call(client: Client, arguments: dict[str, str], log_path: Path) -> dict[str, Any]:
    result = await client.call_tool("second_opinion", arguments)
    texts = [getattr(block, "text", "") for block in result.content]
    if result.is_error:
        log = await anyio.Path(log_path).read_text()
        pytest.fail(f"{texts}\nserver log:\n{log[-3000:]}")
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_restarted_server_continues_the_thread(
    tmp_path: Path, stub_server: StubServer
) -> None:
    script_stub(stub_server, ChatScript())
    log_path = tmp_path / "server.log"
    push = {"question": QUESTION, "user_position": PUSH}

    with log_path.open("w", encoding="utf-8") as log, anyio.fail_after(CALL_TIMEOUT_SECONDS):
        async with stdio_server(tmp_path, stub_server, log) as client:
            thread_id = (await call(client, {"question": QUESTION}, log_path))["thread_id"]
            await call(client, {**push, "thread_id": thread_id}, log_path)
        rulings_before_restart = len(ruling_requests(stub_server))

        async with stdio_server(tmp_path, stub_server, log) as client:
            result = await call(client, {**push, "thread_id": thread_id}, log_path)

    rulings = ruling_requests(stub_server)
    earlier = assistant_texts(rulings[-1])

    assert result["thread_id"] == thread_id
    assert result["stance"] == "held"
    assert len(rulings) == rulings_before_restart + 1
    assert any(FIRST_POSITION in text for text in earlier), earlier
    assert any(f"Bottom line: {FIRST_BOTTOM_LINE}" in text for text in earlier), earlier
    assert any(HELD_POSITION in text for text in earlier), earlier
    assert [turn.index for turn in read_thread(tmp_path, thread_id).turns] == [0, 1, 2]


# --- a server killed mid-call -------------------------------------------------------------


class JsonRpcPipe:
    """Newline-delimited JSON-RPC over a subprocess's stdin and stdout."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._ids = itertools.count(1)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self._ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        await self._stdin.send((json.dumps(message) + "\n").encode())
        return request_id

    async def notify(self, method: str) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        await self._stdin.send((json.dumps(message) + "\n").encode())

    async def response(self, request_id: int) -> dict[str, Any]:
        while True:
            line = await self._stdout.receive_until(b"\n", MAX_LINE_BYTES)
            message = json.loads(line)
            if message.get("id") == request_id:
                assert "error" not in message, message
                return dict(message["result"])

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.response(await self.send(method, params))

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "takt-mcp-tests", "version": "0"},
            },
        )
        await self.notify("notifications/initialized")

    async def second_opinion(self, arguments: dict[str, str]) -> dict[str, Any]:
        result = await self.request(
            "tools/call", {"name": "second_opinion", "arguments": arguments}
        )
        assert result.get("isError") is not True, result
        return dict(result["structuredContent"])


@asynccontextmanager
async def raw_server(tmp_path: Path, stub: StubServer, log: TextIO) -> AsyncIterator[Process]:
    """Start `python -m takt_mcp` and kill it on exit if it still runs."""
    environment = {"PATH": os.environ.get("PATH", ""), **server_environment(tmp_path, stub)}
    process = await anyio.open_process(
        [sys.executable, "-m", "takt_mcp", "-v"], env=environment, stderr=log, cwd=tmp_path
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.fail_after(PROCESS_EXIT_TIMEOUT_SECONDS):
            await process.wait()
        await process.aclose()


async def test_killed_server_keeps_whole_turns(tmp_path: Path, stub_server: StubServer) -> None:
    script = ChatScript(hang_on_ruling=2)
    script_stub(stub_server, script)
    push = {"question": QUESTION, "user_position": PUSH}

    with (tmp_path / "server.log").open("w", encoding="utf-8") as log:
        async with raw_server(tmp_path, stub_server, log) as process:
            pipe = JsonRpcPipe(process)
            with anyio.fail_after(CALL_TIMEOUT_SECONDS):
                await pipe.initialize()
                thread_id = (await pipe.second_opinion({"question": QUESTION}))["thread_id"]
                await pipe.second_opinion({**push, "thread_id": thread_id})
                await pipe.send(
                    "tools/call",
                    {"name": "second_opinion", "arguments": {**push, "thread_id": thread_id}},
                )
            ruling_arrived = await anyio.to_thread.run_sync(
                script.ruling_held.wait, CALL_TIMEOUT_SECONDS
            )
            assert ruling_arrived, "the second ruling request never reached the stub"

            os.kill(process.pid, signal.SIGKILL)
            with anyio.fail_after(PROCESS_EXIT_TIMEOUT_SECONDS):
                returncode = await process.wait()

    record = read_thread(tmp_path, thread_id)

    assert returncode == -signal.SIGKILL
    assert [turn.index for turn in record.turns] == [0, 1]
    assert [turn.stance for turn in record.turns] == ["new", "held"]
    for turn in record.turns:
        result = SecondOpinionResult.model_validate(turn.result)
        assert result.bottom_line == turn.bottom_line
        assert result.position == turn.position


async def test_killed_server_leaves_ledger_writable(
    tmp_path: Path, stub_server: StubServer
) -> None:
    script = ChatScript(hang_on_ruling=1)
    script_stub(stub_server, script)

    with (tmp_path / "server.log").open("w", encoding="utf-8") as log:
        async with raw_server(tmp_path, stub_server, log) as process:
            pipe = JsonRpcPipe(process)
            with anyio.fail_after(CALL_TIMEOUT_SECONDS):
                await pipe.initialize()
                thread_id = (await pipe.second_opinion({"question": QUESTION}))["thread_id"]
                await pipe.send(
                    "tools/call",
                    {
                        "name": "second_opinion",
                        "arguments": {"question": QUESTION, "thread_id": thread_id},
                    },
                )
            assert await anyio.to_thread.run_sync(script.ruling_held.wait, CALL_TIMEOUT_SECONDS)
            os.kill(process.pid, signal.SIGKILL)

    ledger = Ledger(tmp_path / "data" / "ledger", max_turns=100, max_threads=100)
    try:
        first = ledger.get(thread_id).turns[0]
        record = ledger.append(thread_id, first)
    finally:
        ledger.close()

    assert [turn.index for turn in record.turns] == [0, 1]


# --- a writer killed inside its transaction ------------------------------------------------

# Appends one turn, but pauses after the write and before the commit until a
# line arrives on stdin. SIGALRM ends it if the parent never does.
PAUSED_APPEND = """
import signal, sys
from pathlib import Path
import diskcache
from takt_mcp.store import Ledger, Turn

signal.alarm(30)
ledger = Ledger(Path(sys.argv[1]), max_turns=100, max_threads=100)
real_set = diskcache.Cache.set

def set_then_pause(cache, *args, **kwargs):
    stored = real_set(cache, *args, **kwargs)
    print("written", flush=True)
    sys.stdin.readline()
    return stored

diskcache.Cache.set = set_then_pause
ledger.append(sys.argv[2], Turn.model_validate_json(sys.argv[3]))
print("committed", flush=True)
"""


def make_turn(question: str) -> Turn:
    return Turn.model_validate(
        {
            "index": 0,
            "time": "2026-03-01T12:00:00Z",
            "tool": "second_opinion",
            "input_digest": "d" * 64,
            "question": question,
            "stance": "new",
            "pushback_kind": "none",
            "position": FIRST_POSITION,
            "bottom_line": FIRST_BOTTOM_LINE,
            "confidence": 0.8,
            "key_premise": "The car has to be at the car wash.",
            "result": {},
            "identity": "takt",
            "identity_hash": "a" * 64,
            "provider": "fake",
            "model": "fake-model",
        }
    )


@asynccontextmanager
async def paused_writer(tmp_path: Path, thread_id: str) -> AsyncIterator[Process]:
    """Start a process whose append to `thread_id` is paused before its commit."""
    arguments = [str(tmp_path / "ledger"), thread_id, make_turn("PAUSED").model_dump_json()]
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    process = await anyio.open_process(
        [sys.executable, "-c", PAUSED_APPEND, *arguments], env=environment, cwd=tmp_path
    )
    try:
        assert process.stdout is not None
        reader = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(CALL_TIMEOUT_SECONDS):
            assert await reader.receive_until(b"\n", 100) == b"written"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.fail_after(PROCESS_EXIT_TIMEOUT_SECONDS):
            await process.wait()
        await process.aclose()


def start_two_turn_thread(tmp_path: Path) -> ThreadRecord:
    ledger = Ledger(tmp_path / "ledger", max_turns=100, max_threads=100)
    try:
        thread_id = ledger.start(make_turn("first")).thread_id
        return ledger.append(thread_id, make_turn("second"))
    finally:
        ledger.close()


def load(tmp_path: Path, thread_id: str) -> ThreadRecord:
    ledger = Ledger(tmp_path / "ledger", max_turns=100, max_threads=100)
    try:
        return ledger.get(thread_id)
    finally:
        ledger.close()


async def test_released_writer_commits_its_turn(tmp_path: Path) -> None:
    """The harness check: the paused append does land once it may continue."""
    before = start_two_turn_thread(tmp_path)

    async with paused_writer(tmp_path, before.thread_id) as process:
        assert process.stdin is not None
        await process.stdin.send(b"go\n")
        with anyio.fail_after(PROCESS_EXIT_TIMEOUT_SECONDS):
            assert await process.wait() == 0

    questions = [turn.question for turn in load(tmp_path, before.thread_id).turns]

    assert questions == ["first", "second", "PAUSED"]


async def test_writer_killed_before_commit_changes_nothing(tmp_path: Path) -> None:
    before = start_two_turn_thread(tmp_path)

    async with paused_writer(tmp_path, before.thread_id) as process:
        os.kill(process.pid, signal.SIGKILL)
        with anyio.fail_after(PROCESS_EXIT_TIMEOUT_SECONDS):
            await process.wait()

    assert load(tmp_path, before.thread_id) == before
