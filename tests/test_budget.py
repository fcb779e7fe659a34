"""The daily spend cap (TAKT_BUDGET_USD) through the MCP server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from takt_mcp.budget import BudgetExceededError, SpendTracker
from takt_mcp.config import Settings, load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.server import build_server
from tests.fakes import FakeProvider

MILLION = 1_000_000
# USD per million tokens for the fake model. The fake reports 100 input and 50
# output tokens per request, so one request costs (100 * 2 + 50 * 4) / 1e6.
INPUT_PRICE = 2.0
OUTPUT_PRICE = 4.0
REQUEST_COST = (100 * INPUT_PRICE + 50 * OUTPUT_PRICE) / MILLION
BUDGET_USD = 1.0

CALLS = [
    pytest.param("second_opinion", {"question": "Walk or drive?"}, id="second_opinion"),
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


def budget_settings(folder: Path, *, priced: bool = True, **environ: str) -> Settings:
    values = {
        "TAKT_DATA_DIR": str(folder / "data"),
        "TAKT_BUDGET_USD": str(BUDGET_USD),
        **environ,
    }
    if priced:
        prices = folder / "prices.json"
        prices.write_text(
            json.dumps({"fake-model": {"input": INPUT_PRICE, "output": OUTPUT_PRICE}}),
            encoding="utf-8",
        )
        values["TAKT_PRICES"] = str(prices)
    return load_settings(values)


@asynccontextmanager
async def connect(settings: Settings, fake: FakeProvider) -> AsyncIterator[Client]:
    server = build_server(settings, IdentityRegistry.load(), lambda _: fake)
    async with Client(server) as client:
        yield client


def spent(settings: Settings) -> float:
    tracker = SpendTracker(settings.spend_dir(), BUDGET_USD)
    try:
        return tracker.spent()
    finally:
        tracker.close()


def record_spend(settings: Settings, amount: float) -> None:
    tracker = SpendTracker(settings.spend_dir(), BUDGET_USD)
    try:
        tracker.record(amount)
    finally:
        tracker.close()


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


def cost_of(result: CallToolResult) -> float:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    cost = result.structured_content["metadata"]["cost_usd"]
    assert isinstance(cost, float)
    return cost


# --- spend is recorded ---------------------------------------------------------------


@pytest.mark.anyio
async def test_call_records_its_cost(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path)

    async with connect(settings, FakeProvider()) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    assert cost_of(result) == pytest.approx(REQUEST_COST)
    assert spent(settings) == pytest.approx(REQUEST_COST)


@pytest.mark.anyio
async def test_spend_survives_new_server(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path)

    async with connect(settings, FakeProvider()) as client:
        first = await client.call_tool("second_opinion", {"question": "Walk or drive?"})
    after_first = spent(settings)
    async with connect(settings, FakeProvider()) as client:
        second = await client.call_tool("frame_check", {"draft": "A different call."})

    assert after_first == pytest.approx(cost_of(first))
    assert spent(settings) == pytest.approx(cost_of(first) + cost_of(second))


@pytest.mark.anyio
async def test_framed_call_records_both_requests(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path)
    fake = FakeProvider()

    async with connect(settings, fake) as client:
        result = await client.call_tool(
            "second_opinion", {"question": "Walk or drive?", "proposal": "Walk."}
        )

    assert len(fake.requests) == 2
    assert cost_of(result) == pytest.approx(2 * REQUEST_COST)
    assert spent(settings) == pytest.approx(2 * REQUEST_COST)


# --- the cap -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments"), CALLS)
async def test_call_over_cap_is_refused_before_request(
    tmp_path: Path, name: str, arguments: dict[str, Any]
) -> None:
    settings = budget_settings(tmp_path)
    record_spend(settings, BUDGET_USD - 0.001)
    fake = FakeProvider()

    async with connect(settings, fake) as client:
        result = await client.call_tool(name, arguments)

    message = error_text(result)
    assert "TAKT_BUDGET_USD" in message
    assert "Daily budget reached" in message
    assert fake.requests == []
    assert spent(settings) == pytest.approx(BUDGET_USD - 0.001)


@pytest.mark.anyio
async def test_call_under_cap_runs(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path)
    record_spend(settings, BUDGET_USD / 2)
    fake = FakeProvider()

    async with connect(settings, fake) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    assert not result.is_error
    assert len(fake.requests) == 1


@pytest.mark.anyio
async def test_unpriced_model_is_refused_naming_prices(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path, priced=False)
    fake = FakeProvider()

    async with connect(settings, fake) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    message = error_text(result)
    assert "TAKT_PRICES" in message
    assert "'fake-model'" in message
    assert fake.requests == []


@pytest.mark.anyio
async def test_no_budget_runs_unpriced_model(tmp_path: Path) -> None:
    settings = load_settings({"TAKT_DATA_DIR": str(tmp_path / "data")})
    fake = FakeProvider()

    async with connect(settings, fake) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    assert not result.is_error
    assert not settings.spend_dir().exists()


def test_tracker_check_raises_over_budget(tmp_path: Path) -> None:
    tracker = SpendTracker(tmp_path / "spend", 0.01)
    try:
        tracker.record(0.006)
        tracker.check(0.004)
        with pytest.raises(BudgetExceededError) as raised:
            tracker.check(0.005)
    finally:
        tracker.close()

    assert "$0.0060 spent today" in str(raised.value)


def test_tracker_keeps_days_apart(tmp_path: Path) -> None:
    tracker = SpendTracker(tmp_path / "spend", 1.0)
    try:
        tracker.record(0.25)
        assert tracker.spent("1999-12-31") == 0.0
    finally:
        tracker.close()


# --- the cache -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_cached_result_costs_nothing(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path)
    fake = FakeProvider()
    arguments = {"question": "Walk or drive?"}

    async with connect(settings, fake) as client:
        first = await client.call_tool("second_opinion", arguments)
        after_first = spent(settings)
        second = await client.call_tool("second_opinion", arguments)

    assert second.structured_content is not None
    assert second.structured_content["metadata"]["cached"] is True
    assert cost_of(second) == 0.0
    assert len(fake.requests) == 1
    assert after_first == pytest.approx(cost_of(first))
    assert spent(settings) == pytest.approx(after_first)
