"""The per-call deadline, progress notifications and client cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

import takt_mcp.server
from takt_mcp.config import Settings, load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers import Completion, ProviderRequest
from takt_mcp.providers.base import ResultT
from takt_mcp.server import build_server
from takt_mcp.store import Ledger
from tests.fakes import FakeProvider

TIMEOUT_SECONDS = 0.3
# The fake provider sleeps far longer than the deadline, so the call must end long before.
PROVIDER_DELAY_SECONDS = 20.0
MAX_ELAPSED_SECONDS = 5.0
# Bound on any wait in this file, so a broken deadline fails instead of hanging.
WAIT_LIMIT_SECONDS = 10.0
PROGRESS_INTERVAL = 0.05

CALLS = [
    pytest.param("second_opinion", {"question": "Walk or drive?"}, id="second_opinion"),
    pytest.param(
        "second_opinion",
        {"question": "Walk or drive?", "proposal": "Walk."},
        id="second_opinion framed",
    ),
    pytest.param(
        "mediate",
        {
            "participants": [
                {"name": "Ann", "position": "Ship on Friday."},
                {"name": "Ben", "position": "Wait a week."},
            ]
        },
        id="mediate",
    ),
    pytest.param("frame_check", {"draft": "Sure, Sydney is the capital."}, id="frame_check"),
]


class BlockingProvider(FakeProvider):
    """A fake whose request waits until cancelled, and records that it was."""

    def __init__(self) -> None:
        super().__init__()
        self.started = anyio.Event()
        self.cancelled = False
        self.finished = anyio.Event()

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        self.requests.append(request)
        self.started.set()
        try:
            await anyio.sleep(WAIT_LIMIT_SECONDS)
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        finally:
            self.finished.set()
        raise AssertionError("the request was not cancelled")


def data_settings(folder: Path, **environ: str) -> Settings:
    return load_settings({"TAKT_DATA_DIR": str(folder / "data"), **environ})


@asynccontextmanager
async def connect(settings: Settings, fake: FakeProvider) -> AsyncIterator[Client]:
    server = build_server(settings, IdentityRegistry.load(), lambda _: fake)
    async with Client(server) as client:
        yield client


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


def thread_count(settings: Settings) -> int:
    ledger = Ledger(settings.ledger_dir(), max_turns=10, max_threads=10)
    try:
        return ledger.count()
    finally:
        ledger.close()


# --- the deadline --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments"), CALLS)
async def test_slow_provider_times_out(
    tmp_path: Path, name: str, arguments: dict[str, Any]
) -> None:
    settings = data_settings(tmp_path, TAKT_TIMEOUT=str(TIMEOUT_SECONDS))
    fake = FakeProvider(delay=PROVIDER_DELAY_SECONDS)

    async with connect(settings, fake) as client:
        started = anyio.current_time()
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            result = await client.call_tool(name, arguments)
        elapsed = anyio.current_time() - started

    message = error_text(result)
    assert "fake" in message
    assert "'fake-model'" in message
    assert "TAKT_TIMEOUT" in message
    assert f"{TIMEOUT_SECONDS:g} s" in message
    assert elapsed < MAX_ELAPSED_SECONDS
    assert fake.requests


@pytest.mark.anyio
async def test_timed_out_call_writes_no_turn(tmp_path: Path) -> None:
    settings = data_settings(tmp_path, TAKT_TIMEOUT=str(TIMEOUT_SECONDS))
    fake = FakeProvider(delay=PROVIDER_DELAY_SECONDS)

    async with connect(settings, fake) as client:
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            result = await client.call_tool("frame_check", {"draft": "A draft."})

    assert result.is_error
    assert thread_count(settings) == 0


@pytest.mark.anyio
async def test_fast_provider_within_deadline(tmp_path: Path) -> None:
    settings = data_settings(tmp_path, TAKT_TIMEOUT="5")
    fake = FakeProvider(delay=0.05)

    async with connect(settings, fake) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    assert not result.is_error


# --- progress ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_slow_call_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(takt_mcp.server, "PROGRESS_INTERVAL_SECONDS", PROGRESS_INTERVAL)
    settings = data_settings(tmp_path, TAKT_TIMEOUT="5")
    fake = FakeProvider(delay=PROGRESS_INTERVAL * 8)
    updates: list[tuple[float, float | None, str | None]] = []

    async def record(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with connect(settings, fake) as client:
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            result = await client.call_tool(
                "second_opinion", {"question": "Walk or drive?"}, progress_callback=record
            )

    assert not result.is_error
    assert len(updates) >= 2
    progress = [update[0] for update in updates]
    assert progress == sorted(progress)
    assert all(total == 5.0 for _, total, _ in updates)
    assert "fake model fake-model" in str(updates[0][2])


@pytest.mark.anyio
async def test_quick_call_reports_no_progress(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    fake = FakeProvider()
    updates: list[float] = []

    async def record(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    async with connect(settings, fake) as client:
        result = await client.call_tool(
            "second_opinion", {"question": "Walk or drive?"}, progress_callback=record
        )

    assert not result.is_error
    assert updates == []


@pytest.mark.anyio
async def test_progress_without_callback_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(takt_mcp.server, "PROGRESS_INTERVAL_SECONDS", PROGRESS_INTERVAL)
    settings = data_settings(tmp_path)
    fake = FakeProvider(delay=PROGRESS_INTERVAL * 4)

    async with connect(settings, fake) as client:
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            result = await client.call_tool("frame_check", {"draft": "A draft."})

    assert not result.is_error


# --- cancellation ------------------------------------------------------------------------


async def call_then_cancel(
    client: Client, fake: BlockingProvider, arguments: dict[str, Any]
) -> None:
    """Start a frame_check call, wait until the provider has it, then cancel the call."""

    async def call() -> None:
        await client.call_tool("frame_check", arguments)
        raise AssertionError("the call returned although it was cancelled")

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            await fake.started.wait()
        group.cancel_scope.cancel()
    with anyio.fail_after(WAIT_LIMIT_SECONDS):
        await fake.finished.wait()


@pytest.mark.anyio
async def test_cancel_reaches_provider(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    fake = BlockingProvider()

    async with connect(settings, fake) as client:
        await call_then_cancel(client, fake, {"draft": "A draft."})

    assert fake.cancelled


@pytest.mark.anyio
async def test_cancelled_call_writes_no_turn(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    fake = BlockingProvider()

    async with connect(settings, fake) as client:
        await call_then_cancel(client, fake, {"draft": "A draft."})

    assert thread_count(settings) == 0


@pytest.mark.anyio
async def test_cancel_on_thread_keeps_turns(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    quick = FakeProvider()
    async with connect(settings, quick) as client:
        opened = await client.call_tool("frame_check", {"draft": "First draft."})
    assert opened.structured_content is not None
    thread_id = opened.structured_content["thread_id"]

    fake = BlockingProvider()
    async with connect(settings, fake) as client:
        await call_then_cancel(client, fake, {"draft": "Second draft.", "thread_id": thread_id})

    ledger = Ledger(settings.ledger_dir(), max_turns=10, max_threads=10)
    try:
        record = ledger.get(thread_id)
    finally:
        ledger.close()
    assert fake.cancelled
    assert len(record.turns) == 1


@pytest.mark.anyio
async def test_server_serves_after_cancel(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    fake = BlockingProvider()

    async with connect(settings, fake) as client:
        await call_then_cancel(client, fake, {"draft": "A draft."})
        fake.complete = FakeProvider().complete  # type: ignore[method-assign]
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            result = await client.call_tool("frame_check", {"draft": "Another draft."})

    assert not result.is_error
