"""The price table, the TAKT_PRICES override file and the cost in results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from takt_mcp.config import load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.pricing import BUILTIN_PRICES, Price, PriceTable, PricingError
from takt_mcp.schemas import Usage
from takt_mcp.server import build_server
from tests.fakes import FakeProvider

MILLION = 1_000_000
RUN_LIMIT_SECONDS = 60.0
CONSOLE_SCRIPT = Path(sys.executable).parent / "takt-mcp"
EXIT_USAGE = 2


@pytest.fixture
def builtin() -> PriceTable:
    return PriceTable.load(None)


def write_prices(folder: Path, prices: object) -> Path:
    path = folder / "prices.json"
    path.write_text(json.dumps(prices), encoding="utf-8")
    return path


# --- the built-in table --------------------------------------------------------------


def test_known_model_cost_from_table(builtin: PriceTable) -> None:
    usage = Usage(input_tokens=2 * MILLION, output_tokens=MILLION // 2)

    cost = builtin.cost("claude-sonnet-4", usage)

    assert cost == pytest.approx(2 * 3 + 0.5 * 15)


def test_cache_tokens_use_cache_prices(builtin: PriceTable) -> None:
    usage = Usage(cache_read_tokens=MILLION, cache_write_tokens=MILLION)

    cost = builtin.cost("claude-sonnet-4", usage)

    assert cost == pytest.approx(0.3 + 3.75)


def test_missing_cache_write_price_uses_input(builtin: PriceTable) -> None:
    usage = Usage(cache_write_tokens=MILLION)

    cost = builtin.cost("gpt-4o", usage)

    assert cost == pytest.approx(BUILTIN_PRICES["gpt-4o"].input)


def test_zero_usage_costs_zero(builtin: PriceTable) -> None:
    assert builtin.cost("gpt-4o", Usage()) == 0


def test_cost_is_rounded_to_micro_dollars(builtin: PriceTable) -> None:
    cost = builtin.cost("gpt-4o-mini", Usage(input_tokens=1))

    assert cost == 0.0


@pytest.mark.parametrize(
    ("model", "table_entry"),
    [
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-5-2025-08-07", "gpt-5"),
    ],
)
def test_dated_model_matches_by_prefix(builtin: PriceTable, model: str, table_entry: str) -> None:
    assert builtin.price(model) == BUILTIN_PRICES[table_entry]


@pytest.mark.parametrize(
    ("model", "table_entry"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
    ],
)
def test_longest_prefix_wins(builtin: PriceTable, model: str, table_entry: str) -> None:
    assert builtin.price(model) == BUILTIN_PRICES[table_entry]


def test_mini_and_full_prices_differ(builtin: PriceTable) -> None:
    assert builtin.price("gpt-4o-mini") != builtin.price("gpt-4o")


@pytest.mark.parametrize(
    "model",
    ["fake-model", "gpt-4omni", "claude-sonnet-45", "llama3.2:1b", "", "GPT-4O"],
)
def test_unknown_model_has_no_price(builtin: PriceTable, model: str) -> None:
    assert builtin.price(model) is None
    assert builtin.cost(model, Usage(input_tokens=10)) is None


@pytest.mark.anyio
async def test_unknown_model_gets_cost_note(tmp_path: Path) -> None:
    settings = load_settings({"TAKT_DATA_DIR": str(tmp_path / "data")})
    fake = FakeProvider(model="fake-model")
    server = build_server(settings, IdentityRegistry.load(), lambda _: fake)

    async with Client(server) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    assert result.structured_content is not None
    metadata = result.structured_content["metadata"]
    assert metadata["cost_usd"] is None
    assert "'fake-model'" in metadata["cost_note"]
    assert "TAKT_PRICES" in metadata["cost_note"]


@pytest.mark.anyio
async def test_known_model_result_has_cost(tmp_path: Path) -> None:
    settings = load_settings({"TAKT_DATA_DIR": str(tmp_path / "data")})
    fake = FakeProvider(model="gpt-4o-2024-08-06")
    server = build_server(settings, IdentityRegistry.load(), lambda _: fake)

    async with Client(server) as client:
        result = await client.call_tool("second_opinion", {"question": "Walk or drive?"})

    assert result.structured_content is not None
    metadata = result.structured_content["metadata"]
    # The fake reports 100 input and 50 output tokens per request.
    assert metadata["cost_usd"] == pytest.approx((100 * 2.5 + 50 * 10) / MILLION)
    assert "cost_note" not in metadata or metadata["cost_note"] is None


# --- the TAKT_PRICES file ----------------------------------------------------------------


def test_price_file_adds_model(tmp_path: Path) -> None:
    path = write_prices(tmp_path, {"fake-model": {"input": 1.0, "output": 2.0}})

    table = PriceTable.load(path)

    assert table.price("fake-model") == Price(input=1.0, output=2.0)
    assert table.cost("fake-model", Usage(input_tokens=MILLION, output_tokens=MILLION)) == 3.0


def test_price_file_overrides_builtin(tmp_path: Path) -> None:
    path = write_prices(tmp_path, {"gpt-4o": {"input": 1.0, "output": 1.0, "cache_read": 0.5}})

    table = PriceTable.load(path)

    assert table.price("gpt-4o-2024-08-06") == Price(input=1.0, output=1.0, cache_read=0.5)


def test_price_file_keeps_other_builtins(tmp_path: Path) -> None:
    path = write_prices(tmp_path, {"gpt-4o": {"input": 1.0, "output": 1.0}})

    table = PriceTable.load(path)

    assert table.price("claude-sonnet-4") == BUILTIN_PRICES["claude-sonnet-4"]
    assert table.price("gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]


def test_price_file_longer_prefix_beats_builtin(tmp_path: Path) -> None:
    path = write_prices(tmp_path, {"claude-sonnet-4-5": {"input": 9.0, "output": 9.0}})

    table = PriceTable.load(path)

    assert table.price("claude-sonnet-4-5-20250929") == Price(input=9.0, output=9.0)
    assert table.price("claude-sonnet-4-20250514") == BUILTIN_PRICES["claude-sonnet-4"]


@pytest.mark.anyio
async def test_price_file_prices_result(tmp_path: Path) -> None:
    path = write_prices(tmp_path, {"fake-model": {"input": 4.0, "output": 8.0}})
    settings = load_settings({"TAKT_DATA_DIR": str(tmp_path / "data"), "TAKT_PRICES": str(path)})
    server = build_server(settings, IdentityRegistry.load(), lambda _: FakeProvider())

    async with Client(server) as client:
        result = await client.call_tool("frame_check", {"draft": "A draft."})

    assert result.structured_content is not None
    metadata = result.structured_content["metadata"]
    assert metadata["cost_usd"] == pytest.approx((100 * 4.0 + 50 * 8.0) / MILLION)
    assert metadata.get("cost_note") is None


MALFORMED_FILES = [
    pytest.param("{not json", "cannot read", id="invalid JSON"),
    pytest.param("[]", "expected a JSON object", id="list at top level"),
    pytest.param('"gpt-4o"', "expected a JSON object", id="string at top level"),
    pytest.param('{"m": {"input": 1.0}}', "'m'", id="missing output"),
    pytest.param('{"m": {"input": -1.0, "output": 1.0}}', "'m'", id="negative price"),
    pytest.param('{"m": {"input": "cheap", "output": 1.0}}', "'m'", id="price not a number"),
    pytest.param('{"m": 2.5}', "'m'", id="entry not an object"),
    pytest.param(
        '{"m": {"input": 1, "output": 1, "cache_reads": 0.1}}',
        "'m'",
        id="misspelt key",
    ),
    pytest.param(
        '{"m": {"input": Infinity, "output": 1.0}}',
        "'m'",
        id="infinite price",
    ),
]


@pytest.mark.parametrize(("text", "detail"), MALFORMED_FILES)
def test_malformed_file_raises_naming_file(tmp_path: Path, text: str, detail: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(PricingError) as raised:
        PriceTable.load(path)

    assert f"TAKT_PRICES={path}" in str(raised.value)
    assert detail in str(raised.value)


def test_missing_file_raises_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(PricingError) as raised:
        PriceTable.load(path)

    assert f"TAKT_PRICES={path}" in str(raised.value)


# --- the command line ------------------------------------------------------------------


def run_cli(folder: Path, *arguments: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run takt-mcp with a minimal environment, so no key from the shell reaches it."""
    command = (
        [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "takt_mcp"]
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        **environ,
    }
    return subprocess.run(
        [*command, *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("command", ["identities", "doctor", "serve"])
def test_cli_rejects_malformed_price_file(tmp_path: Path, command: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"fake-model": {"input": 1.0}}', encoding="utf-8")

    run = run_cli(tmp_path, command, TAKT_PRICES=str(path))

    assert run.returncode == EXIT_USAGE
    assert f"TAKT_PRICES={path}" in run.stderr
    assert "'fake-model'" in run.stderr
    assert run.stdout == ""


def test_cli_accepts_valid_price_file(tmp_path: Path) -> None:
    path = write_prices(tmp_path, {"fake-model": {"input": 1.0, "output": 2.0}})

    run = run_cli(tmp_path, "identities", TAKT_PRICES=str(path))

    assert run.returncode == 0
    assert "takt" in run.stdout
