from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool

from takt_mcp.config import Settings, load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers import Provider, ProviderRateLimitError
from takt_mcp.server import build_server
from tests.fakes import FakeProvider, default_reply, failing

TOOLS = ["second_opinion", "mediate"]


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    # The ledger and the response cache live under TAKT_DATA_DIR, so it points into tmp_path.
    return load_settings({"TAKT_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@asynccontextmanager
async def connect(
    settings: Settings,
    identities: IdentityRegistry,
    factory: Callable[[Settings], Provider] | None = None,
) -> AsyncIterator[Client]:
    server = (
        build_server(settings, identities, factory)
        if factory
        else build_server(settings, identities)
    )
    async with Client(server) as client:
        yield client


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


def participants(count: int) -> list[dict[str, str]]:
    return [{"name": f"P{index}", "position": f"P{index} is right."} for index in range(count)]


async def tools_by_name(client: Client) -> dict[str, Tool]:
    listed = await client.list_tools()
    return {tool.name: tool for tool in listed.tools}


# --- tools/list ---


@pytest.mark.anyio
async def test_tools_list_shows_both_tools(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        tools = await tools_by_name(client)

    assert set(TOOLS) <= set(tools)


@pytest.mark.anyio
@pytest.mark.parametrize("name", TOOLS)
async def test_tool_definition_is_complete(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider, name: str
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        tool = (await tools_by_name(client))[name]

    assert tool.description
    assert tool.input_schema["type"] == "object"
    assert tool.input_schema["properties"]
    assert tool.output_schema is not None
    assert tool.output_schema["type"] == "object"
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True
    assert tool.annotations.open_world_hint is True


@pytest.mark.anyio
async def test_second_opinion_input_schema(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        schema = (await tools_by_name(client))["second_opinion"].input_schema

    assert schema["required"] == ["question"]
    for field in ["question", "proposal", "user_position", "context", "identity"]:
        assert schema["properties"][field].get("description"), field


@pytest.mark.anyio
async def test_mediate_input_schema_bounds_participants(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        schema = (await tools_by_name(client))["mediate"].input_schema

    assert schema["required"] == ["participants"]
    assert schema["properties"]["participants"]["minItems"] == 2
    assert schema["properties"]["participants"]["maxItems"] == 8
    assert schema["properties"]["participants"].get("description")


@pytest.mark.anyio
async def test_tools_list_needs_no_provider(
    server_settings: Settings, identities: IdentityRegistry
) -> None:
    async with connect(server_settings, identities) as client:
        tools = await tools_by_name(client)

    assert set(TOOLS) <= set(tools)


# --- results ---

VALID_CALLS = [
    pytest.param("second_opinion", {"question": "Walk or drive?"}, id="bare question"),
    pytest.param(
        "second_opinion",
        {"question": "Walk or drive?", "proposal": "Walk.", "user_position": "Walk!"},
        id="framed question",
    ),
    pytest.param("mediate", {"participants": participants(2)}, id="mediation"),
    pytest.param(
        "mediate",
        {"participants": participants(8), "question": "Ship?", "context": "Two bugs."},
        id="mediation with question",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments"), VALID_CALLS)
async def test_result_matches_output_schema(
    server_settings: Settings,
    identities: IdentityRegistry,
    fake: FakeProvider,
    name: str,
    arguments: dict[str, Any],
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        tool = (await tools_by_name(client))[name]
        result = await client.call_tool(name, arguments)

    assert not result.is_error
    assert result.structured_content is not None
    assert tool.output_schema is not None
    jsonschema.validate(result.structured_content, tool.output_schema)


@pytest.mark.anyio
async def test_framed_result_carries_verdict_and_influence(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool(
            "second_opinion", {"question": "Walk or drive?", "proposal": "Walk."}
        )

    content = result.structured_content
    assert content is not None
    assert content["verdict"] == "disagree"
    assert content["frame_influence"]["blind_bottom_line"] == "Drive."
    assert content["metadata"]["identity"] == "takt"
    assert content["metadata"]["provider"] == "fake"
    assert len(fake.requests) == 2


@pytest.mark.anyio
async def test_mediation_result_names_participants(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool(
            "mediate",
            {"participants": [{"name": "Ann", "position": "x"}, {"name": "Ben", "position": "y"}]},
        )

    content = result.structured_content
    assert content is not None
    assert [p["name"] for p in content["participants"]] == ["Ann", "Ben"]


@pytest.mark.anyio
async def test_named_identity_is_used(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool("second_opinion", {"question": "Q?", "identity": "takt"})

    assert not result.is_error
    assert fake.requests[0].system[0].text == identities.get("takt").text


# --- invalid arguments ---

INVALID_CALLS = [
    pytest.param("second_opinion", {}, "question", id="missing question"),
    pytest.param("second_opinion", {"question": ""}, "question", id="empty question"),
    pytest.param("second_opinion", {"question": 3}, "question", id="question not a string"),
    pytest.param(
        "second_opinion", {"question": "Q?", "proposal": 7}, "proposal", id="proposal number"
    ),
    pytest.param("mediate", {}, "participants", id="missing participants"),
    pytest.param("mediate", {"participants": participants(1)}, "participants", id="1 participant"),
    pytest.param("mediate", {"participants": participants(9)}, "participants", id="9 participants"),
    pytest.param("mediate", {"participants": "Alice, Bob"}, "participants", id="not a list"),
    pytest.param(
        "mediate",
        {"participants": [{"name": 1, "position": "x"}, {"name": "B", "position": "y"}]},
        "name",
        id="name not a string",
    ),
    pytest.param(
        "mediate",
        {"participants": [{"name": "A"}, {"name": "B", "position": "y"}]},
        "position",
        id="missing position",
    ),
    pytest.param(
        "mediate",
        {
            "participants": [
                {"name": "A", "position": "x", "messages": "hi"},
                {"name": "B", "position": "y"},
            ]
        },
        "messages",
        id="messages not a list",
    ),
    pytest.param(
        "mediate",
        {"participants": [{"name": "Ann", "position": "x"}, {"name": "ann", "position": "y"}]},
        "participants",
        id="duplicate names",
    ),
    pytest.param(
        "mediate",
        {"participants": [{"name": "   ", "position": "x"}, {"name": "B", "position": "y"}]},
        "name",
        id="blank name",
    ),
    pytest.param(
        "mediate",
        {"participants": participants(2), "question": 5},
        "question",
        id="question not a string",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments", "field"), INVALID_CALLS)
async def test_invalid_arguments_name_the_field(
    server_settings: Settings,
    identities: IdentityRegistry,
    fake: FakeProvider,
    name: str,
    arguments: dict[str, Any],
    field: str,
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool(name, arguments)

    assert field in error_text(result)
    assert fake.requests == []


@pytest.mark.anyio
async def test_duplicate_name_is_quoted(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    arguments = {
        "participants": [{"name": "Ann", "position": "x"}, {"name": "ann", "position": "y"}]
    }
    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool("mediate", arguments)

    assert "'ann' is used twice" in error_text(result)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("second_opinion", {"question": "Q?", "identity": "nobody"}),
        ("mediate", {"participants": participants(2), "identity": "nobody"}),
    ],
)
async def test_unknown_identity_lists_available(
    server_settings: Settings,
    identities: IdentityRegistry,
    fake: FakeProvider,
    name: str,
    arguments: dict[str, Any],
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool(name, arguments)

    message = error_text(result)
    assert "'nobody'" in message
    assert "Available identities: takt" in message
    assert fake.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        ("second_opinion", {"question": "Q?", "context": "c" * 300}, "context"),
        (
            "mediate",
            {
                "participants": [
                    {"name": "A", "position": "p" * 300},
                    {"name": "B", "position": "y"},
                ]
            },
            "participants[0]",
        ),
    ],
)
async def test_oversized_input_names_field_and_limit(
    tmp_path: Path,
    identities: IdentityRegistry,
    fake: FakeProvider,
    name: str,
    arguments: dict[str, Any],
    field: str,
) -> None:
    settings = load_settings({"TAKT_DATA_DIR": str(tmp_path), "TAKT_MAX_INPUT_CHARS": "200"})

    async with connect(settings, identities, lambda _: fake) as client:
        result = await client.call_tool(name, arguments)

    message = error_text(result)
    assert f"Shorten {field}" in message
    assert "limit is 200 characters" in message
    assert fake.requests == []


# --- provider problems ---


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("second_opinion", {"question": "Q?"}),
        ("second_opinion", {"question": "Q?", "proposal": "P."}),
        ("mediate", {"participants": participants(2)}),
    ],
)
async def test_provider_error_names_provider_model_status(
    server_settings: Settings,
    identities: IdentityRegistry,
    name: str,
    arguments: dict[str, Any],
) -> None:
    error = ProviderRateLimitError(
        "rate limited: slow down", provider="anthropic", model="claude-test", status=429
    )
    fake = FakeProvider(failing(error))

    async with connect(server_settings, identities, lambda _: fake) as client:
        result = await client.call_tool(name, arguments)

    message = error_text(result)
    assert "anthropic" in message
    assert "'claude-test'" in message
    assert "HTTP 429" in message


@pytest.mark.anyio
async def test_provider_error_is_not_cached(
    server_settings: Settings, identities: IdentityRegistry
) -> None:
    error = ProviderRateLimitError("rate limited", provider="fake", model="m", status=429)
    replies: list[Any] = [error]
    fake = FakeProvider(lambda request: replies.pop() if replies else default_reply(request))

    async with connect(server_settings, identities, lambda _: fake) as client:
        first = await client.call_tool("second_opinion", {"question": "Q?"})
        second = await client.call_tool("second_opinion", {"question": "Q?"})

    assert first.is_error
    assert not second.is_error


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments"),
    [("second_opinion", {"question": "Q?"}), ("mediate", {"participants": participants(2)})],
)
async def test_missing_provider_names_the_variables(
    server_settings: Settings, identities: IdentityRegistry, name: str, arguments: dict[str, Any]
) -> None:
    assert server_settings.resolved_provider() is None

    async with connect(server_settings, identities) as client:
        result = await client.call_tool(name, arguments)

    message = error_text(result)
    assert "ANTHROPIC_API_KEY" in message
    assert "OPENAI_API_KEY" in message
    assert "OPENAI_BASE_URL" in message


# --- lifespan ---


@pytest.mark.anyio
async def test_provider_is_closed_when_server_stops(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    async with connect(server_settings, identities, lambda _: fake) as client:
        await client.call_tool("second_opinion", {"question": "Q?"})
        assert not fake.closed

    assert fake.closed


@pytest.mark.anyio
async def test_provider_is_created_once(
    server_settings: Settings, identities: IdentityRegistry, fake: FakeProvider
) -> None:
    created: list[Settings] = []

    def factory(settings: Settings) -> Provider:
        created.append(settings)
        return fake

    async with connect(server_settings, identities, factory) as client:
        await client.call_tool("second_opinion", {"question": "Q1?"})
        await client.call_tool("second_opinion", {"question": "Q2?"})

    assert created == [server_settings]


@pytest.mark.anyio
async def test_provider_is_not_created_for_tools_list(
    server_settings: Settings, identities: IdentityRegistry
) -> None:
    created: list[Settings] = []

    def factory(settings: Settings) -> Provider:
        created.append(settings)
        return FakeProvider()

    async with connect(server_settings, identities, factory) as client:
        await client.list_tools()

    assert created == []
