"""Reliability: one stdio session under 1,000 mixed calls, and provider faults.

The server runs as a subprocess with the real OpenAI SDK pointed at a stub
on 127.0.0.1. The mixed battery uses bench/stub.py, which replies at once
with a valid result for every schema. The fault tests use
tests/stub_server.py, which can delay, hang, cut short or refuse a reply.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.stub import SchemaStub
from tests.raw_stdio import RawSession, error_text, raw_session
from tests.stub_server import StubReply, StubServer, chat_completion, openai_error

TOTAL_CALLS = 1_000
WARMUP_CALLS = 200
# Resident memory may grow this much from the end of the warm-up to the end
# of the battery. Caches and allocator arenas settle during the warm-up; a
# leak of even 20 KiB per call would exceed it.
RSS_GROWTH_LIMIT_KIB = 16 * 1024
MAX_INPUT_CHARS = 4_000
TOOLS = ("second_opinion", "mediate", "frame_check")
TWO_PARTIES = [
    {"name": "Alice", "position": "Ship on Friday."},
    {"name": "Bob", "position": "Ship next month."},
]
# The SDK's text for a tool that raised an exception it did not recognise;
# alone it means the real cause was lost.
BARE_TOOL_ERROR = "Error executing tool {tool}"


def battery_environment(folder: Path, base_url: str) -> dict[str, str]:
    return {
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        "OPENAI_BASE_URL": base_url,
        "TAKT_MODEL": "stub-model",
        "TAKT_MAX_RETRIES": "0",
        "TAKT_MAX_INPUT_CHARS": str(MAX_INPUT_CHARS),
    }


# --- the mixed battery ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One call and what must come back: success, or an error naming `names`.

    A random call may succeed or fail, but a failure must name its cause.
    """

    label: str
    method: str
    params: Any
    names: tuple[str, ...] = ()
    random: bool = False

    @property
    def valid(self) -> bool:
        return not self.names and not self.random


def tool_case(label: str, tool: Any, arguments: Any, *names: str) -> Case:
    return Case(label, "tools/call", {"name": tool, "arguments": arguments}, names)


def fixed_cases(index: int, thread_id: str) -> list[Case]:
    """Return the valid and invalid calls of the battery; `index` varies their text."""
    question = f"Walk or drive to the car wash 50 m away? ({index})"
    many = [{"name": f"P{n}", "position": "x"} for n in range(9)]
    return [
        tool_case("bare question", "second_opinion", {"question": question}),
        tool_case(
            "framed question",
            "second_opinion",
            {"question": question, "proposal": "Walk.", "user_position": "Walking is healthy."},
        ),
        tool_case(
            "context and identity",
            "second_opinion",
            {"question": question, "context": "The car is at home.", "identity": "takt"},
        ),
        tool_case(
            "JSON-looking proposal",
            "second_opinion",
            {"question": question, "proposal": {"status": 500}},
        ),
        tool_case(
            "push on a thread",
            "second_opinion",
            {"question": f"Are you sure? ({index})", "thread_id": thread_id},
        ),
        tool_case("mediation", "mediate", {"participants": TWO_PARTIES, "question": question}),
        tool_case(
            "mediation with messages",
            "mediate",
            {"participants": [{**TWO_PARTIES[0], "messages": ["Trust me."]}, TWO_PARTIES[1]]},
        ),
        tool_case("frame check of a draft", "frame_check", {"draft": f"Sure, walk. ({index})"}),
        tool_case(
            "frame check of a conversation",
            "frame_check",
            {"conversation": [{"speaker": "user", "text": question}]},
        ),
        Case("thread resource", "resources/read", {"uri": f"takt://threads/{thread_id}"}),
        Case("tool list", "tools/list", None),
        tool_case("missing question", "second_opinion", {}, "question"),
        tool_case("empty question", "second_opinion", {"question": ""}, "question"),
        tool_case("number as question", "second_opinion", {"question": 42}, "question"),
        tool_case("list as question", "second_opinion", {"question": ["a"]}, "question"),
        tool_case("null question", "second_opinion", {"question": None}, "question"),
        tool_case(
            "number as proposal", "second_opinion", {"question": "q", "proposal": 5}, "proposal"
        ),
        tool_case(
            "question over the limit",
            "second_opinion",
            {"question": "x" * (MAX_INPUT_CHARS + 1)},
            "TAKT_MAX_INPUT_CHARS",
        ),
        tool_case(
            "one MiB of context",
            "second_opinion",
            {"question": "q", "context": "y" * 2**20},
            "TAKT_MAX_INPUT_CHARS",
        ),
        tool_case("unknown tool", "ask_the_oracle", {"question": "q"}, "ask_the_oracle"),
        tool_case("number as tool name", 7, {}, "Invalid"),
        tool_case("list as arguments", "second_opinion", [question], "Invalid"),
        tool_case(
            "text as participants", "mediate", {"participants": "Alice, Bob"}, "participants"
        ),
        tool_case("one participant", "mediate", {"participants": TWO_PARTIES[:1]}, "participants"),
        tool_case("nine participants", "mediate", {"participants": many}, "participants"),
        tool_case(
            "participant without position",
            "mediate",
            {"participants": [{"name": "Alice"}, TWO_PARTIES[1]]},
            "position",
        ),
        tool_case(
            "participant with unknown field",
            "mediate",
            {"participants": [{**TWO_PARTIES[0], "role": "judge"}, TWO_PARTIES[1]]},
            "role",
        ),
        tool_case(
            "participant named twice",
            "mediate",
            {"participants": [TWO_PARTIES[0], {**TWO_PARTIES[1], "name": "ALICE"}]},
            "used twice",
        ),
        tool_case(
            "malformed thread id",
            "second_opinion",
            {"question": "q", "thread_id": "../../etc/passwd"},
            "thread_id",
        ),
        tool_case(
            "unknown thread id",
            "second_opinion",
            {"question": "q", "thread_id": "th_" + "A" * 22},
            "not found",
        ),
        tool_case(
            "unknown identity", "second_opinion", {"question": "q", "identity": "x"}, "identity"
        ),
        tool_case("empty frame check", "frame_check", {}, "draft"),
        tool_case(
            "conversation too long",
            "frame_check",
            {"conversation": [{"speaker": "user", "text": "hi"}] * 201},
            "conversation",
        ),
        Case("unknown method", "tools/destroy", {}, ("Method not found",)),
        Case(
            "unknown thread resource",
            "resources/read",
            {"uri": "takt://threads/th_nope"},
            ("th_nope",),
        ),
    ]


FIELD_NAMES = (
    "question",
    "proposal",
    "user_position",
    "context",
    "identity",
    "thread_id",
    "participants",
    "name",
    "position",
    "messages",
    "conversation",
    "speaker",
    "text",
    "draft",
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
random_arguments = (
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), json_values, max_size=5)
    | json_values
)


def random_case(draw: Callable[[Any], Any]) -> Case:
    tool = draw(st.sampled_from(TOOLS))
    params = {"name": tool, "arguments": draw(random_arguments)}
    return Case("random JSON arguments", "tools/call", params, random=True)


def check_reply(case: Case, reply: dict[str, Any]) -> None:
    """Assert that a valid call succeeded and an invalid one got an error naming the cause."""
    message = error_text(reply)
    context = f"{case.label}: {json.dumps(reply)[:600]}"
    if case.valid:
        assert message is None, context
        return
    if case.random:
        if message is None:
            assert reply["result"]["structuredContent"]["metadata"], context
            return
    else:
        assert message is not None, context
        for name in case.names:
            assert name in message, context
    tool = case.params.get("name") if isinstance(case.params, dict) else None
    assert message.strip() != BARE_TOOL_ERROR.format(tool=tool), context
    assert "Traceback" not in message, context


@given(data=st.data())
@settings(
    max_examples=1,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.anyio
async def test_thousand_mixed_calls(tmp_path: Path, data: st.DataObject) -> None:
    with SchemaStub() as stub:
        environ = battery_environment(tmp_path, stub.openai_base_url)
        async with raw_session(environ, tmp_path / "stderr.log") as session:
            first = await session.call_tool("second_opinion", {"question": "Start a thread."})
            thread_id = first["result"]["structuredContent"]["thread_id"]
            warm_rss = 0
            counts = {"valid": 0, "invalid": 0, "random": 0}
            for index in range(TOTAL_CALLS):
                if index == WARMUP_CALLS:
                    warm_rss = session.rss_kib()
                if index % 100 == 50:
                    # A line that is not JSON-RPC; the server must skip it and go on.
                    await session.send_line(b"\x00not json {{{")
                if index % 4 == 3:
                    case = random_case(data.draw)
                    counts["random"] += 1
                else:
                    cases = fixed_cases(index, thread_id)
                    case = cases[index % len(cases)]
                    counts["valid" if case.valid else "invalid"] += 1
                check_reply(case, await session.request(case.method, case.params))
            final_rss = session.rss_kib()
            listed = await session.request("tools/list")
        stderr = session.stderr_text()

    assert min(counts.values()) >= 200
    assert {tool["name"] for tool in listed["result"]["tools"]} >= set(TOOLS)
    assert final_rss - warm_rss < RSS_GROWTH_LIMIT_KIB
    assert "Traceback" not in stderr
    assert session.process.returncode == 0


# --- provider faults ------------------------------------------------------------------

FAULT_TIMEOUT_SECONDS = 2
QUESTION = "Walk or drive to the car wash 50 m away?"
COMPLETION_TEXT = json.dumps(chat_completion('{"key_premise": "x"}'))


@dataclass(frozen=True)
class Fault:
    replies: tuple[StubReply, ...]
    names: tuple[str, ...]


FAULTS = {
    "slow": Fault((StubReply(delay=FAULT_TIMEOUT_SECONDS + 2, body={}),), ("TAKT_TIMEOUT",)),
    "hanging": Fault((StubReply(hang=True),), ("TAKT_TIMEOUT", "no result within")),
    "truncated body": Fault(
        (StubReply(body=COMPLETION_TEXT[:70].encode()),), ("not valid JSON", "Retry")
    ),
    "truncated model output": Fault(
        (
            StubReply(body=chat_completion('{"key_premise": "The car', finish_reason="length")),
            StubReply(body=chat_completion('{"key_premise": "The car', finish_reason="length")),
        ),
        ("OpenJudgement", "TAKT_MAX_OUTPUT_TOKENS"),
    ),
    "429 with Retry-After": Fault(
        (
            StubReply(
                status=429,
                body=openai_error("Rate limit reached.", error_type="rate_limit"),
                headers={"retry-after": "7"},
            ),
        ),
        ("HTTP 429", "Retry after 7 s"),
    ),
    # A compatible server's 500 to the json_schema format is retried once in
    # json_object mode, because llama.cpp rejects that format with 500.
    "500": Fault(
        (StubReply(status=500, body=openai_error("Boom.", error_type="server_error")),) * 2,
        ("HTTP 500", "Retry later"),
    ),
    "connection closed": Fault((StubReply(close=True),), ("could not connect",)),
}


def fault_environment(folder: Path, base_url: str) -> dict[str, str]:
    return {
        **battery_environment(folder, base_url),
        "TAKT_TIMEOUT": str(FAULT_TIMEOUT_SECONDS),
        # Each call must reach the stub, so nothing may come from the cache.
        "TAKT_CACHE_TTL": "0",
    }


async def assert_fault_then_service(
    session: RawSession, names: tuple[str, ...], fault: str
) -> None:
    failed = await session.call_tool("second_opinion", {"question": QUESTION})
    message = error_text(failed)

    assert message is not None, fault
    for name in names:
        assert name in message, f"{fault}: {message}"
    assert "openai" in message, f"{fault}: {message}"
    recovered = await session.call_tool("second_opinion", {"question": QUESTION + " Again."})
    assert error_text(recovered) is None, f"{fault}: {json.dumps(recovered)[:400]}"


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_provider_fault_gives_tool_error(
    fault: str, stub_server: StubServer, tmp_path: Path
) -> None:
    stub_server.script("POST", "/v1/chat/completions", *FAULTS[fault].replies)
    environ = fault_environment(tmp_path, stub_server.openai_base_url)
    async with raw_session(environ, tmp_path / "stderr.log") as session:
        await assert_fault_then_service(session, FAULTS[fault].names, fault)
    stderr = session.stderr_text()

    assert "provider call failed" in stderr or "timed out" in stderr
    assert "Traceback" not in stderr
    assert session.process.returncode == 0


class ResettingServer:
    """Accepts connections on 127.0.0.1 and resets each one (TCP RST) after reading a request."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.resets = 0

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError):
                connection.settimeout(5)
                connection.recv(65536)
                # SO_LINGER with a zero timeout makes close() send RST, not FIN.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
            self.resets += 1

    def __enter__(self) -> ResettingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()


@pytest.fixture
def resetting_server() -> Iterator[ResettingServer]:
    with ResettingServer() as server:
        yield server


@pytest.mark.anyio
async def test_connection_reset_gives_tool_error(
    resetting_server: ResettingServer, tmp_path: Path
) -> None:
    environ = fault_environment(tmp_path, resetting_server.openai_base_url)
    async with raw_session(environ, tmp_path / "stderr.log") as session:
        first = await session.call_tool("second_opinion", {"question": QUESTION})
        second = await session.call_tool("second_opinion", {"question": QUESTION + " Again."})
    first_message = error_text(first)
    second_message = error_text(second)

    assert resetting_server.resets >= 2
    assert first_message is not None
    assert "could not connect" in first_message
    assert second_message is not None
    assert "could not connect" in second_message
    assert session.process.returncode == 0


# --- start-up ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tool_list_opens_no_store(tmp_path: Path) -> None:
    environ = battery_environment(tmp_path, "http://127.0.0.1:9/v1")
    async with raw_session(environ, tmp_path / "stderr.log") as session:
        listed = await session.request("tools/list")
        data_before_call = (tmp_path / "data").exists()
        await session.call_tool("second_opinion", {"question": "q", "thread_id": "th_" + "C" * 22})
        data_after_call = (tmp_path / "data" / "ledger").exists()

    assert {tool["name"] for tool in listed["result"]["tools"]} >= set(TOOLS)
    assert data_before_call is False
    assert data_after_call is True
