"""The surface a host reads: tools/list size, prompts, identity resources, loose arguments."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, TextResourceContents

from takt_mcp.config import Settings, load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.server import build_server
from tests.fakes import FakeProvider

# Every host pays for tools/list in context on every conversation.
MAX_TOOLS_LIST_TOKENS = 1_500
# A rough token count for English and JSON: about four characters per token.
CHARS_PER_TOKEN = 4
TOOLS = {"second_opinion", "mediate", "frame_check"}


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return load_settings({"TAKT_DATA_DIR": str(tmp_path / "data")})


@asynccontextmanager
async def connect(settings: Settings, fake: FakeProvider | None = None) -> AsyncIterator[Client]:
    provider = fake or FakeProvider()
    server = build_server(settings, IdentityRegistry.load(), lambda _: provider)
    async with Client(server) as client:
        yield client


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


def prompt_of(fake: FakeProvider, index: int = 0) -> str:
    return fake.requests[index].messages[0].content


# --- tools/list ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_tools_list_fits_token_budget(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        listed = await client.list_tools()

    serialized = listed.model_dump_json(by_alias=True, exclude_none=True)
    tokens = len(serialized) / CHARS_PER_TOKEN
    print(f"tools/list: {len(serialized)} characters, about {tokens:.0f} tokens")
    assert {tool.name for tool in listed.tools} == TOOLS
    assert tokens <= MAX_TOOLS_LIST_TOKENS


@pytest.mark.anyio
async def test_tool_schemas_carry_no_titles(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        listed = await client.list_tools()

    for tool in listed.tools:
        assert '"title"' not in json.dumps(tool.input_schema), tool.name
        assert '"title"' not in json.dumps(tool.output_schema), tool.name


# --- prompts -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_prompts_list_shows_three_prompts(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        listed = await client.list_prompts()

    arguments = {
        prompt.name: [(argument.name, argument.required) for argument in prompt.arguments or []]
        for prompt in listed.prompts
    }
    assert arguments == {
        "second_opinion": [("question", True), ("proposal", False)],
        "mediate": [("dispute", True)],
        "frame_check": [("draft", False)],
    }
    assert all(prompt.description for prompt in listed.prompts)


PROMPT_CASES = [
    pytest.param(
        "second_opinion",
        {"question": "Walk or drive to the car wash?", "proposal": "Walk, it is 100 m."},
        ["second_opinion", "`question`", "`proposal`", "`user_position`"],
        id="second_opinion",
    ),
    pytest.param(
        "second_opinion",
        {"question": "Walk or drive to the car wash?"},
        ["second_opinion", "`question`"],
        id="second_opinion without proposal",
    ),
    pytest.param(
        "mediate",
        {"dispute": "Ann wants to ship on Friday; Ben wants another week of testing."},
        ["mediate", "participant", "name", "position"],
        id="mediate",
    ),
    pytest.param(
        "frame_check",
        {"draft": "Sure, the exemption covers wholesale."},
        ["frame_check", "`conversation`", "`draft`", "'user'", "'assistant'"],
        id="frame_check",
    ),
    pytest.param(
        "frame_check", {}, ["frame_check", "`conversation`"], id="frame_check without draft"
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments", "mentions"), PROMPT_CASES)
async def test_prompt_renders_tool_and_arguments(
    server_settings: Settings, name: str, arguments: dict[str, str], mentions: list[str]
) -> None:
    async with connect(server_settings) as client:
        rendered = await client.get_prompt(name, arguments)

    [message] = rendered.messages
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    text = message.content.text
    for value in arguments.values():
        assert value in text, value
    for mention in mentions:
        assert mention in text, mention


@pytest.mark.anyio
async def test_prompt_without_proposal_omits_it(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        rendered = await client.get_prompt("second_opinion", {"question": "Walk or drive?"})

    content = rendered.messages[0].content
    assert isinstance(content, TextContent)
    assert "`proposal`" not in content.text


@pytest.mark.anyio
async def test_prompt_missing_argument_is_error(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        with pytest.raises(MCPError):
            await client.get_prompt("second_opinion", {})


# --- identity resources ----------------------------------------------------------------


async def read_text(client: Client, uri: str) -> TextResourceContents:
    result = await client.read_resource(uri)
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    return contents


@pytest.mark.anyio
async def test_identities_resource_lists_blocks(server_settings: Settings) -> None:
    block = IdentityRegistry.load().get("takt")

    async with connect(server_settings) as client:
        contents = await read_text(client, "takt://identities")

    assert contents.mime_type == "text/plain"
    assert f"takt  {block.version}  {block.short_hash}  {block.description}" in contents.text


@pytest.mark.anyio
async def test_identity_resource_has_text_and_hash(server_settings: Settings) -> None:
    block = IdentityRegistry.load().get("takt")

    async with connect(server_settings) as client:
        contents = await read_text(client, "takt://identities/takt")

    assert contents.mime_type == "text/markdown"
    assert block.text in contents.text
    assert f'sha256 = "{block.sha256}"' in contents.text
    assert f'version = "{block.version}"' in contents.text


@pytest.mark.anyio
async def test_identity_resources_are_listed(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        resources = await client.list_resources()
        templates = await client.list_resource_templates()

    assert "takt://identities" in {str(resource.uri) for resource in resources.resources}
    uris = {template.uri_template for template in templates.resource_templates}
    assert "takt://identities/{name}" in uris


@pytest.mark.anyio
async def test_unknown_identity_resource_lists_available(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource("takt://identities/nobody")

    assert "'nobody'" in str(raised.value)
    assert "Available identities: takt" in str(raised.value)


# --- loosely typed arguments -----------------------------------------------------------
#
# Some hosts send a list or an object as a JSON-encoded string. The MCP SDK
# (mcp 2.3, FuncMetadata.pre_parse_json) decodes a string argument as JSON when
# the parameter's annotation is not exactly `str` and the decoded value is not
# a string or a number. The tools take only strings and lists, so no check for
# numbers or booleans sent as strings applies.


@pytest.mark.anyio
async def test_participants_as_json_string_accepted(server_settings: Settings) -> None:
    fake = FakeProvider()
    participants = [
        {"name": "Ann", "position": "Ship on Friday."},
        {"name": "Ben", "position": "Wait a week."},
    ]

    async with connect(server_settings, fake) as client:
        result = await client.call_tool("mediate", {"participants": json.dumps(participants)})

    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert [p["name"] for p in result.structured_content["participants"]] == ["Ann", "Ben"]
    assert 'speaker="Ann"' in prompt_of(fake)


@pytest.mark.anyio
async def test_conversation_as_json_string_accepted(server_settings: Settings) -> None:
    fake = FakeProvider()
    conversation = [
        {"speaker": "user", "text": "Is 1 prime?"},
        {"speaker": "assistant", "text": "No, 1 is not prime."},
    ]

    async with connect(server_settings, fake) as client:
        result = await client.call_tool("frame_check", {"conversation": json.dumps(conversation)})

    assert not result.is_error, result.content
    text = prompt_of(fake)
    assert 'turn 1 speaker="user"]]\nIs 1 prime?' in text
    assert 'turn 2 speaker="assistant"]]\nNo, 1 is not prime.' in text


@pytest.mark.anyio
async def test_messages_inside_json_string_accepted(server_settings: Settings) -> None:
    fake = FakeProvider()
    participants = [
        {"name": "Ann", "position": "Ship.", "messages": ["The client is waiting."]},
        {"name": "Ben", "position": "Wait.", "messages": []},
    ]

    async with connect(server_settings, fake) as client:
        result = await client.call_tool("mediate", {"participants": json.dumps(participants)})

    assert not result.is_error, result.content
    assert "The client is waiting." in prompt_of(fake)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        ("frame_check", {"draft": 42}, "draft"),
        ("frame_check", {"conversation": "not JSON at all"}, "conversation"),
        ("mediate", {"participants": '{"name": "Ann"}'}, "participants"),
        ("second_opinion", {"question": "Q?", "proposal": False}, "proposal"),
    ],
)
async def test_wrong_types_name_the_field(
    server_settings: Settings, name: str, arguments: dict[str, Any], field: str
) -> None:
    fake = FakeProvider()

    async with connect(server_settings, fake) as client:
        result = await client.call_tool(name, arguments)

    assert field in error_text(result)
    assert fake.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "text"),
    [
        ("second_opinion", {"question": "Why 500?", "context": '{"status": 500}'}, "500"),
        ("frame_check", {"draft": '["step one", "step two"]'}, "step one"),
    ],
    ids=["context object", "draft array"],
)
async def test_json_looking_text_is_kept_as_text(
    server_settings: Settings, name: str, arguments: dict[str, str], text: str
) -> None:
    fake = FakeProvider()

    async with connect(server_settings, fake) as client:
        result = await client.call_tool(name, arguments)

    assert not result.is_error, result.content
    assert text in prompt_of(fake)
