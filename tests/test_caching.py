"""The response cache: hits, misses, expiry, errors, the off switch and thread turns."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import diskcache
import pytest
from mcp import Client
from mcp.types import CallToolResult

from takt_mcp.caching import CachingProvider, request_key
from takt_mcp.config import load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers.base import (
    Message,
    ProviderRequest,
    ProviderUnavailableError,
    SystemBlock,
)
from takt_mcp.schemas import OpenJudgement, PushSplit, Ruling
from takt_mcp.server import build_server
from takt_mcp.store import ResponseCache
from tests.fakes import FakeProvider, Reply, default_reply, framed_judgement, open_judgement

pytestmark = pytest.mark.anyio

QUESTION = "I need to wash my car. The car wash is 100 metres away. Walk or drive?"
TTL_SECONDS = 60.0
OTHER_IDENTITY = """+++
name = "other"
version = "1.0.0"
description = "A second identity block for cache tests."
+++
Other is a careful voice that checks the key premise before anything else.
"""


class ShiftedClock:
    """A stand-in for the time module inside diskcache, running `offset` seconds ahead."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def advance_cache_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make diskcache see `seconds` more time passed, so entries expire without waiting."""
    monkeypatch.setattr(diskcache.core, "time", ShiftedClock(seconds))


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    opened = ResponseCache(tmp_path / "cache", ttl_seconds=TTL_SECONDS, size_limit_bytes=2**24)
    yield opened
    opened.close()


def blind_request(system_text: str = "Identity block text.", **labels: str) -> ProviderRequest[Any]:
    return ProviderRequest(
        system=(SystemBlock(system_text, cacheable=True), SystemBlock("Task text.")),
        messages=(Message("user", QUESTION),),
        result_type=OpenJudgement,
        schema_name="OpenJudgement",
        max_output_tokens=500,
        labels={"step": "blind_prior", **labels},
    )


# --- the wrapper on its own ---------------------------------------------------------


async def test_identical_request_is_served_from_cache(cache: ResponseCache) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)

    first = await provider.complete(blind_request())
    second = await provider.complete(blind_request())

    assert len(fake.requests) == 1
    assert first.cached is False
    assert second.cached is True
    assert second.result == first.result
    assert second.model == first.model


async def test_changed_identity_text_misses(cache: ResponseCache) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)

    await provider.complete(blind_request("Identity block text."))
    second = await provider.complete(blind_request("Identity block text, revised."))

    assert len(fake.requests) == 2
    assert second.cached is False


async def test_changed_identity_hash_label_misses(cache: ResponseCache) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)

    await provider.complete(blind_request(identity_hash="a" * 64))
    await provider.complete(blind_request(identity_hash="b" * 64))

    assert len(fake.requests) == 2


async def test_changed_ledger_label_misses(cache: ResponseCache) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)

    await provider.complete(blind_request(ledger="th_x:1:aaa"))
    await provider.complete(blind_request(ledger="th_x:2:bbb"))

    assert len(fake.requests) == 2


async def test_other_model_misses(cache: ResponseCache) -> None:
    first = FakeProvider(model="model-a")
    second = FakeProvider(model="model-b")

    await CachingProvider(first, cache).complete(blind_request())
    completion = await CachingProvider(second, cache).complete(blind_request())

    assert len(second.requests) == 1
    assert completion.cached is False


def test_request_key_ignores_the_step_label() -> None:
    fake = FakeProvider()
    request = blind_request()
    relabelled = replace(request, labels={"step": "framed"})

    assert request_key(fake, request) == request_key(fake, relabelled)


def test_request_key_covers_the_messages() -> None:
    fake = FakeProvider()
    request = blind_request()
    other = replace(request, messages=(Message("user", QUESTION + " Really?"),))

    assert request_key(fake, request) != request_key(fake, other)


async def test_expired_entry_misses(cache: ResponseCache, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)
    await provider.complete(blind_request())

    advance_cache_clock(monkeypatch, TTL_SECONDS + 1)
    completion = await provider.complete(blind_request())

    assert len(fake.requests) == 2
    assert completion.cached is False


async def test_entry_within_ttl_hits(cache: ResponseCache, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)
    await provider.complete(blind_request())

    advance_cache_clock(monkeypatch, TTL_SECONDS - 5)
    completion = await provider.complete(blind_request())

    assert completion.cached is True


async def test_provider_error_is_not_cached(cache: ResponseCache) -> None:
    replies: list[Reply] = [
        ProviderUnavailableError("server error", provider="fake", model="fake-model"),
        open_judgement(),
    ]
    fake = FakeProvider(lambda request: replies.pop(0))
    provider = CachingProvider(fake, cache)

    with pytest.raises(ProviderUnavailableError):
        await provider.complete(blind_request())
    completion = await provider.complete(blind_request())

    assert len(fake.requests) == 2
    assert completion.cached is False


async def test_unreadable_entry_reaches_the_provider(cache: ResponseCache) -> None:
    fake = FakeProvider()
    provider = CachingProvider(fake, cache)
    cache.set(request_key(fake, blind_request()), {"result": {"bottom_line": "truncated"}})

    completion = await provider.complete(blind_request())

    assert len(fake.requests) == 1
    assert completion.cached is False


# --- through the server ---------------------------------------------------------------


@asynccontextmanager
async def connect(data_dir: Path, fake: FakeProvider, **environment: str) -> AsyncIterator[Client]:
    """Serve takt-mcp in-process on `data_dir`, with the cache at its default settings."""
    settings = load_settings({"TAKT_DATA_DIR": str(data_dir), **environment})
    identities = IdentityRegistry.load(settings.identity_dir)
    server = build_server(settings, identities, lambda _: fake)
    async with Client(server) as client:
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, [getattr(block, "text", "") for block in result.content]
    assert result.structured_content is not None
    return dict(result.structured_content)


async def ask(client: Client, **arguments: str) -> dict[str, Any]:
    return structured(await client.call_tool("second_opinion", {"question": QUESTION, **arguments}))


async def test_repeated_call_reports_cached(tmp_path: Path) -> None:
    fake = FakeProvider()
    async with connect(tmp_path, fake) as client:
        first = await ask(client)
        second = await ask(client)

    assert len(fake.requests) == 1
    assert first["metadata"]["cached"] is False
    assert second["metadata"]["cached"] is True
    assert second["bottom_line"] == first["bottom_line"]


async def test_repeated_call_reports_zero_usage(tmp_path: Path) -> None:
    async with connect(tmp_path, FakeProvider()) as client:
        await ask(client)
        second = await ask(client)

    assert second["metadata"]["usage"]["requests"] == 0
    assert second["metadata"]["usage"]["input_tokens"] == 0
    assert second["metadata"]["usage"]["output_tokens"] == 0


async def test_repeated_framed_call_caches_both_requests(tmp_path: Path) -> None:
    fake = FakeProvider()
    async with connect(tmp_path, fake) as client:
        await ask(client, proposal="Walk: it is only 100 metres.")
        second = await ask(client, proposal="Walk: it is only 100 metres.")

    assert len(fake.requests) == 2
    assert second["metadata"]["cached"] is True


async def test_cache_survives_a_restart(tmp_path: Path) -> None:
    fake = FakeProvider()
    async with connect(tmp_path, fake) as client:
        await ask(client)
    async with connect(tmp_path, fake) as client:
        second = await ask(client)

    assert len(fake.requests) == 1
    assert second["metadata"]["cached"] is True


async def test_other_identity_misses(tmp_path: Path) -> None:
    identity_dir = tmp_path / "identities"
    identity_dir.mkdir()
    (identity_dir / "other.md").write_text(OTHER_IDENTITY, encoding="utf-8")
    fake = FakeProvider()
    async with connect(tmp_path, fake, TAKT_IDENTITY_DIR=str(identity_dir)) as client:
        await ask(client)
        second = await ask(client, identity="other")

    assert len(fake.requests) == 2
    assert second["metadata"]["cached"] is False
    assert second["metadata"]["identity"] == "other"


async def test_edited_identity_block_misses(tmp_path: Path) -> None:
    identity_dir = tmp_path / "identities"
    identity_dir.mkdir()
    block = identity_dir / "other.md"
    block.write_text(OTHER_IDENTITY, encoding="utf-8")
    fake = FakeProvider()
    async with connect(tmp_path, fake, TAKT_IDENTITY_DIR=str(identity_dir)) as client:
        first = await ask(client, identity="other")
    block.write_text(OTHER_IDENTITY + "Other never takes a side it cannot defend.\n")
    async with connect(tmp_path, fake, TAKT_IDENTITY_DIR=str(identity_dir)) as client:
        second = await ask(client, identity="other")

    assert len(fake.requests) == 2
    assert second["metadata"]["cached"] is False
    assert second["metadata"]["identity_hash"] != first["metadata"]["identity_hash"]


async def test_expired_answer_reaches_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeProvider()
    async with connect(tmp_path, fake, TAKT_CACHE_TTL="30") as client:
        await ask(client)
        advance_cache_clock(monkeypatch, 31)
        second = await ask(client)

    assert len(fake.requests) == 2
    assert second["metadata"]["cached"] is False


async def test_failed_call_is_retried_at_the_provider(tmp_path: Path) -> None:
    replies: list[Reply] = [
        ProviderUnavailableError("server error", provider="fake", model="fake-model"),
        open_judgement(),
    ]
    fake = FakeProvider(lambda request: replies.pop(0))
    async with connect(tmp_path, fake) as client:
        first = await client.call_tool("second_opinion", {"question": QUESTION})
        second = await ask(client)

    assert first.is_error
    assert len(fake.requests) == 2
    assert second["metadata"]["cached"] is False


async def test_zero_ttl_disables_the_cache(tmp_path: Path) -> None:
    fake = FakeProvider()
    async with connect(tmp_path, fake, TAKT_CACHE_TTL="0") as client:
        await ask(client)
        second = await ask(client)

    assert len(fake.requests) == 2
    assert second["metadata"]["cached"] is False
    assert second["metadata"]["usage"]["requests"] == 1


async def test_zero_ttl_creates_no_cache_folder(tmp_path: Path) -> None:
    async with connect(tmp_path, FakeProvider(), TAKT_CACHE_TTL="0") as client:
        await ask(client)

    assert not (tmp_path / "cache").exists()


# --- thread turns -------------------------------------------------------------------------


def thread_reply(request: ProviderRequest[Any]) -> Reply:
    if request.result_type is PushSplit:
        return {"content": [], "pressure": ["insists"]}
    if request.result_type is Ruling:
        return {**framed_judgement(), "decision": "hold", "change_reason": ""}
    return default_reply(request)


async def test_repeated_push_is_not_served_from_cache(tmp_path: Path) -> None:
    fake = FakeProvider(thread_reply)
    arguments = {"question": QUESTION, "user_position": "Walk. I insist."}
    async with connect(tmp_path, fake) as client:
        thread_id = (await ask(client))["thread_id"]
        await ask(client, thread_id=thread_id, **arguments)
        before = len(fake.requests)
        second = await ask(client, thread_id=thread_id, **arguments)

    assert [request.result_type for request in fake.requests[before:]] == [PushSplit, Ruling]
    assert second["metadata"]["cached"] is False
    assert second["metadata"]["usage"]["requests"] == 2


async def test_new_thread_reuses_a_cached_first_turn(tmp_path: Path) -> None:
    fake = FakeProvider(thread_reply)
    async with connect(tmp_path, fake) as client:
        first = await ask(client)
        second = await ask(client)

    assert second["metadata"]["cached"] is True
    assert second["thread_id"] != first["thread_id"]
