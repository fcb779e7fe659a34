"""AnthropicProvider with the real anthropic SDK against the stub server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import anyio
import pytest

from takt_mcp import tasks
from takt_mcp.config import DEFAULT_ANTHROPIC_MODEL, Settings, load_settings
from takt_mcp.deliberation import Voice, build_blind_request, build_mediation_request
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers import (
    InvalidOutputError,
    ProviderAuthenticationError,
    ProviderBadRequestError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRequest,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from takt_mcp.providers.anthropic import AnthropicProvider
from takt_mcp.providers.base import strict_json_schema
from takt_mcp.schemas import MediationJudgement, MediationRequest, OpenJudgement, Participant
from tests.fakes import FakeProvider, open_judgement
from tests.stub_server import StubReply, StubServer, anthropic_error, anthropic_message

MESSAGES = "/v1/messages"
SECRET_KEY = "sk-ant-test-SECRET123"
QUESTION = "Should I walk or drive to the car wash 50 m away?"
# Bound on one provider call in a test, in seconds. The stub replies in milliseconds.
CALL_LIMIT_SECONDS = 15.0
# TAKT_TIMEOUT for calls that the stub leaves hanging, in seconds.
HANG_TIMEOUT = "0.5"


def make_settings(stub: StubServer, **environ: str) -> Settings:
    values = {
        "ANTHROPIC_API_KEY": SECRET_KEY,
        "ANTHROPIC_BASE_URL": stub.base_url,
        "TAKT_MAX_RETRIES": "0",
    }
    values.update(environ)
    return load_settings(values)


def make_voice(settings: Settings) -> Voice:
    identity = IdentityRegistry.load().get("takt")
    return Voice(provider=FakeProvider(), identity=identity, settings=settings)


def blind_request(settings: Settings) -> ProviderRequest[OpenJudgement]:
    return build_blind_request(make_voice(settings), QUESTION, None)


@asynccontextmanager
async def open_provider(settings: Settings) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(settings)
    try:
        yield provider
    finally:
        await provider.aclose()


async def complete(provider: AnthropicProvider, request: ProviderRequest[Any]) -> Any:
    with anyio.fail_after(CALL_LIMIT_SECONDS):
        return await provider.complete(request)


async def complete_error(
    provider: AnthropicProvider, request: ProviderRequest[Any]
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await complete(provider, request)
    return caught.value


def error_reply(status: int, message: str, error_type: str, **headers: str) -> StubReply:
    return StubReply(
        status=status, body=anthropic_error(message, error_type=error_type), headers=headers
    )


def object_nodes(node: Any) -> list[dict[str, Any]]:
    """Return every JSON Schema node of type object, depth first."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found += object_nodes(value)
    elif isinstance(node, list):
        for item in node:
            found += object_nodes(item)
    return found


# --- the request ----------------------------------------------------------------


@pytest.mark.anyio
async def test_identity_is_first_cached_system_block(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    identity = IdentityRegistry.load().get("takt")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    system = stub_server.requests(MESSAGES)[0].body["system"]
    assert len(system) == 2
    assert system[0] == {
        "type": "text",
        "text": identity.text,
        "cache_control": {"type": "ephemeral"},
    }


@pytest.mark.anyio
async def test_task_text_is_second_uncached_block(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    identity = IdentityRegistry.load().get("takt")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    system = stub_server.requests(MESSAGES)[0].body["system"]
    task_text = tasks.render(tasks.SECOND_OPINION, identity.voice)
    assert system[1] == {"type": "text", "text": task_text}


@pytest.mark.anyio
async def test_output_config_carries_json_schema(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    output_format = stub_server.requests(MESSAGES)[0].body["output_config"]["format"]
    expected = anthropic.transform_schema(strict_json_schema(OpenJudgement))
    assert output_format["type"] == "json_schema"
    assert output_format["schema"] == expected
    assert set(output_format["schema"]["required"]) == set(OpenJudgement.model_fields)


@pytest.mark.anyio
async def test_nested_schema_objects_forbid_extras(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    request = build_mediation_request(
        make_voice(settings),
        MediationRequest(
            participants=[
                Participant(name="A", position="Ship on Friday."),
                Participant(name="B", position="Ship next month."),
            ]
        ),
    )
    async with open_provider(settings) as provider:
        completion = await complete(provider, request)

    schema = stub_server.requests(MESSAGES)[0].body["output_config"]["format"]["schema"]
    nodes = object_nodes(schema)
    assert len(nodes) >= 2
    for node in nodes:
        assert node["additionalProperties"] is False
    assert isinstance(completion.result, MediationJudgement)


@pytest.mark.anyio
async def test_request_carries_model_tokens_and_messages(stub_server: StubServer) -> None:
    settings = make_settings(stub_server, TAKT_MAX_OUTPUT_TOKENS="900")
    request = blind_request(settings)
    async with open_provider(settings) as provider:
        await complete(provider, request)

    body = stub_server.requests(MESSAGES)[0].body
    assert body["model"] == DEFAULT_ANTHROPIC_MODEL
    assert body["max_tokens"] == 900
    assert body["messages"] == [{"role": "user", "content": request.messages[0].content}]
    assert "temperature" not in body


@pytest.mark.anyio
async def test_takt_model_is_sent(stub_server: StubServer) -> None:
    settings = make_settings(stub_server, TAKT_MODEL="claude-chosen")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    assert stub_server.requests(MESSAGES)[0].body["model"] == "claude-chosen"


@pytest.mark.anyio
async def test_temperature_is_not_sent(
    stub_server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(stub_server, TAKT_TEMPERATURE="0.2")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    assert "temperature" not in stub_server.requests(MESSAGES)[0].body
    assert "TAKT_TEMPERATURE=0.2 is ignored" in caplog.text


@pytest.mark.anyio
async def test_api_key_reaches_the_server(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    headers = stub_server.requests(MESSAGES)[0].headers
    # SDK versions differ: older ones send x-api-key, newer ones a bearer token.
    sent = {headers.get("x-api-key"), headers.get("authorization")}
    assert sent & {SECRET_KEY, f"Bearer {SECRET_KEY}"}
    assert "anthropic-version" in headers


def test_missing_key_is_rejected() -> None:
    with pytest.raises(ProviderAuthenticationError) as caught:
        AnthropicProvider(load_settings({"TAKT_PROVIDER": "anthropic"}))

    assert "ANTHROPIC_API_KEY" in str(caught.value)


# --- the reply --------------------------------------------------------------------


@pytest.mark.anyio
async def test_usage_maps_cache_tokens(stub_server: StubServer) -> None:
    reply = anthropic_message(
        json.dumps(open_judgement()),
        input_tokens=40,
        output_tokens=310,
        cache_read_input_tokens=2_048,
        cache_creation_input_tokens=512,
    )
    stub_server.script("POST", MESSAGES, StubReply(body=reply))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert completion.usage.input_tokens == 40
    assert completion.usage.output_tokens == 310
    assert completion.usage.cache_read_tokens == 2_048
    assert completion.usage.cache_write_tokens == 512
    assert completion.usage.requests == 1


@pytest.mark.anyio
async def test_usage_without_cache_fields_counts_zero(stub_server: StubServer) -> None:
    reply = anthropic_message(json.dumps(open_judgement()))
    reply["usage"] = {"input_tokens": 10, "output_tokens": 20}
    stub_server.script("POST", MESSAGES, StubReply(body=reply))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert completion.usage.cache_read_tokens == 0
    assert completion.usage.cache_write_tokens == 0


@pytest.mark.anyio
async def test_reply_becomes_validated_completion(stub_server: StubServer) -> None:
    reply = anthropic_message(json.dumps(open_judgement("Walk.")), model="claude-served")
    stub_server.script("POST", MESSAGES, StubReply(body=reply))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert completion.result == OpenJudgement.model_validate(open_judgement("Walk."))
    assert completion.model == "claude-served"
    assert completion.raw_text == json.dumps(open_judgement("Walk."))


@pytest.mark.anyio
async def test_text_blocks_are_joined(stub_server: StubServer) -> None:
    text = json.dumps(open_judgement())
    reply = anthropic_message(text)
    reply["content"] = [
        {"type": "text", "text": text[:40]},
        {"type": "text", "text": text[40:]},
    ]
    stub_server.script("POST", MESSAGES, StubReply(body=reply))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert completion.raw_text == text


@pytest.mark.anyio
async def test_max_tokens_stop_raises_invalid_output(stub_server: StubServer) -> None:
    cut_off = anthropic_message('{"key_premise": "The car', stop_reason="max_tokens")
    stub_server.script("POST", MESSAGES, StubReply(body=cut_off))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, InvalidOutputError)
    assert "output token limit" in str(error)
    assert "TAKT_MAX_OUTPUT_TOKENS" in str(error)
    assert len(stub_server.requests(MESSAGES)) == 1


@pytest.mark.anyio
async def test_refusal_stop_raises_bad_request(stub_server: StubServer) -> None:
    refused = anthropic_message("", stop_reason="refusal")
    stub_server.script("POST", MESSAGES, StubReply(body=refused))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderBadRequestError)
    assert "refused" in str(error)


@pytest.mark.anyio
async def test_invalid_json_gets_one_repair(stub_server: StubServer) -> None:
    stub_server.script("POST", MESSAGES, StubReply(body=anthropic_message("Drive.")))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    first, repair = stub_server.requests(MESSAGES)
    assert repair.body["messages"][-2] == {"role": "assistant", "content": "Drive."}
    assert repair.body["messages"][-1]["role"] == "user"
    assert repair.body["system"] == first.body["system"]
    assert completion.usage.requests == 2


@pytest.mark.anyio
async def test_invalid_json_twice_raises_invalid_output(stub_server: StubServer) -> None:
    invalid = StubReply(body=anthropic_message("Drive."))
    stub_server.script("POST", MESSAGES, invalid, invalid)
    settings = make_settings(stub_server, TAKT_MODEL="claude-chosen")
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, InvalidOutputError)
    assert str(error).startswith("anthropic model 'claude-chosen'")
    assert "after one repair" in str(error)


# --- HTTP errors, timeouts and dropped connections -----------------------------------

ERROR_CASES = [
    pytest.param(
        error_reply(401, "invalid x-api-key", "authentication_error"),
        ProviderAuthenticationError,
        ["HTTP 401", "authentication failed: invalid x-api-key", "Check ANTHROPIC_API_KEY."],
        id="401",
    ),
    pytest.param(
        error_reply(
            429,
            "Number of request tokens has exceeded your per-minute rate limit.",
            "rate_limit_error",
            **{"retry-after": "12"},
        ),
        ProviderRateLimitError,
        ["HTTP 429", "rate limited", "Retry after 12 s."],
        id="429",
    ),
    pytest.param(
        error_reply(500, "Internal server error", "api_error"),
        ProviderUnavailableError,
        ["HTTP 500", "server error: Internal server error", "Retry later."],
        id="500",
    ),
    pytest.param(
        error_reply(529, "Overloaded", "overloaded_error"),
        ProviderUnavailableError,
        ["HTTP 529", "server error: Overloaded", "Retry later."],
        id="529",
    ),
    pytest.param(
        error_reply(404, "model: claude-chosen", "not_found_error"),
        ProviderBadRequestError,
        ["HTTP 404", "not found", "Check TAKT_MODEL."],
        id="404",
    ),
    pytest.param(
        error_reply(400, "max_tokens: must be at most 64000", "invalid_request_error"),
        ProviderBadRequestError,
        ["HTTP 400", "request rejected: max_tokens"],
        id="400",
    ),
    pytest.param(
        StubReply(close=True),
        ProviderUnavailableError,
        ["could not connect", "ANTHROPIC_BASE_URL"],
        id="connection-closed",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("reply", "error_type", "phrases"), ERROR_CASES)
async def test_http_failure_maps_to_provider_error(
    stub_server: StubServer, reply: StubReply, error_type: type[ProviderError], phrases: list[str]
) -> None:
    stub_server.script("POST", MESSAGES, reply)
    settings = make_settings(stub_server, TAKT_MODEL="claude-chosen")
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert type(error) is error_type
    assert error.provider == "anthropic"
    assert error.model == "claude-chosen"
    assert str(error).startswith("anthropic model 'claude-chosen'")
    for phrase in phrases:
        assert phrase in str(error)
    assert len(stub_server.requests(MESSAGES)) == 1


@pytest.mark.anyio
async def test_hanging_server_raises_timeout(stub_server: StubServer) -> None:
    stub_server.script("POST", MESSAGES, StubReply(hang=True))
    settings = make_settings(stub_server, TAKT_TIMEOUT=HANG_TIMEOUT, TAKT_MODEL="claude-chosen")
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderTimeoutError)
    assert str(error).startswith("anthropic model 'claude-chosen'")
    assert "timed out" in str(error)
    assert "Raise TAKT_TIMEOUT" in str(error)


@pytest.mark.anyio
async def test_sdk_retries_overload_when_allowed(stub_server: StubServer) -> None:
    overloaded = error_reply(529, "Overloaded", "overloaded_error", **{"retry-after-ms": "1"})
    stub_server.script("POST", MESSAGES, overloaded)
    settings = make_settings(stub_server, TAKT_MAX_RETRIES="1")
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert len(stub_server.requests(MESSAGES)) == 2
    assert completion.usage.requests == 1


# --- secrets ---------------------------------------------------------------------

SECRET_CASES = [
    pytest.param(
        error_reply(401, f"invalid x-api-key {SECRET_KEY}", "authentication_error"),
        id="401-echoing-key",
    ),
    pytest.param(error_reply(429, f"rate limit for {SECRET_KEY}", "rate_limit_error"), id="429"),
    pytest.param(error_reply(500, f"failed for {SECRET_KEY}", "api_error"), id="500"),
    pytest.param(StubReply(close=True), id="connection-closed"),
    pytest.param(StubReply(hang=True), id="timeout"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("reply", SECRET_CASES)
async def test_api_key_never_in_error_message(stub_server: StubServer, reply: StubReply) -> None:
    stub_server.script("POST", MESSAGES, reply)
    settings = make_settings(stub_server, TAKT_TIMEOUT=HANG_TIMEOUT)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert SECRET_KEY not in str(error)
    assert SECRET_KEY not in repr(error)
    assert SECRET_KEY not in error.detail
