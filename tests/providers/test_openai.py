"""OpenAIProvider with the real openai SDK against the stub server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from takt_mcp import tasks
from takt_mcp.config import DEFAULT_OPENAI_MODEL, Settings, load_settings
from takt_mcp.deliberation import Voice, build_blind_request, build_framed_request
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
from takt_mcp.providers import openai as openai_module
from takt_mcp.providers.base import schema_instruction, strict_json_schema
from takt_mcp.providers.openai import OpenAIProvider
from takt_mcp.schemas import FramedJudgement, OpenJudgement, SecondOpinionRequest
from tests.fakes import FakeProvider, open_judgement
from tests.stub_server import (
    OPENAI_MODELS,
    StubReply,
    StubServer,
    chat_completion,
    model_list,
    openai_error,
)

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"
SECRET_KEY = "sk-test-SECRET123"
QUESTION = "Should I walk or drive to the car wash 50 m away?"
# Bound on one provider call in a test, in seconds. The stub replies in milliseconds.
CALL_LIMIT_SECONDS = 15.0
# TAKT_TIMEOUT for calls that the stub leaves hanging, in seconds.
HANG_TIMEOUT = "0.5"


@pytest.fixture(autouse=True)
def forget_learned_formats() -> Iterator[None]:
    """Clear the per-base-URL response format memory, which is process-wide."""
    openai_module._FORMAT_BY_BASE_URL.clear()
    yield
    openai_module._FORMAT_BY_BASE_URL.clear()


def make_settings(stub: StubServer, **environ: str) -> Settings:
    values = {"OPENAI_BASE_URL": stub.openai_base_url, "TAKT_MAX_RETRIES": "0"}
    values.update(environ)
    return load_settings(values)


def make_voice(settings: Settings) -> Voice:
    identity = IdentityRegistry.load().get("takt")
    return Voice(provider=FakeProvider(), identity=identity, settings=settings)


def blind_request(settings: Settings) -> ProviderRequest[OpenJudgement]:
    return build_blind_request(make_voice(settings), QUESTION, None)


@asynccontextmanager
async def open_provider(settings: Settings) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(settings)
    try:
        yield provider
    finally:
        await provider.aclose()


async def complete(provider: OpenAIProvider, request: ProviderRequest[Any]) -> Any:
    with anyio.fail_after(CALL_LIMIT_SECONDS):
        return await provider.complete(request)


async def complete_error(provider: OpenAIProvider, request: ProviderRequest[Any]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await complete(provider, request)
    return caught.value


def error_reply(status: int, message: str, error_type: str, **headers: str) -> StubReply:
    return StubReply(
        status=status, body=openai_error(message, error_type=error_type), headers=headers
    )


# --- the request ----------------------------------------------------------------


@pytest.mark.anyio
async def test_request_asks_for_strict_json_schema(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    response_format = stub_server.requests(CHAT)[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "OpenJudgement"
    assert response_format["json_schema"]["schema"] == strict_json_schema(OpenJudgement)


@pytest.mark.anyio
async def test_system_text_is_identity_then_task(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    identity = IdentityRegistry.load().get("takt")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    messages = stub_server.requests(CHAT)[0].body["messages"]
    task_text = tasks.render(tasks.SECOND_OPINION, identity.voice)
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(identity.text)
    assert messages[0]["content"] == f"{identity.text}\n\n{task_text}"
    assert messages[1]["role"] == "user"
    assert QUESTION in messages[1]["content"]


@pytest.mark.anyio
async def test_compatible_server_gets_max_tokens(stub_server: StubServer) -> None:
    settings = make_settings(stub_server, TAKT_MAX_OUTPUT_TOKENS="777")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    body = stub_server.requests(CHAT)[0].body
    assert body["max_tokens"] == 777
    assert "max_completion_tokens" not in body


@pytest.mark.anyio
async def test_official_api_gets_max_completion_tokens(stub_server: StubServer) -> None:
    settings = make_settings(stub_server, OPENAI_API_KEY=SECRET_KEY, TAKT_MODEL="gpt-test")
    async with open_provider(settings) as provider:
        # The client still sends to the stub; the provider now treats it as api.openai.com.
        provider.base_url = None
        await complete(provider, blind_request(settings))

    body = stub_server.requests(CHAT)[0].body
    assert body["max_completion_tokens"] == settings.max_output_tokens
    assert "max_tokens" not in body


@pytest.mark.anyio
async def test_official_api_never_falls_back(stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, error_reply(400, "Invalid schema.", "invalid_request_error"))
    settings = make_settings(stub_server, OPENAI_API_KEY=SECRET_KEY, TAKT_MODEL="gpt-test")
    async with open_provider(settings) as provider:
        provider.base_url = None
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderBadRequestError)
    assert len(stub_server.requests(CHAT)) == 1


@pytest.mark.anyio
async def test_temperature_sent_only_when_set(stub_server: StubServer) -> None:
    unset = make_settings(stub_server)
    set_to_half = make_settings(stub_server, TAKT_TEMPERATURE="0.5")
    async with open_provider(unset) as provider:
        await complete(provider, blind_request(unset))
        await complete(provider, blind_request(set_to_half))

    first, second = stub_server.requests(CHAT)
    assert "temperature" not in first.body
    assert second.body["temperature"] == 0.5


@pytest.mark.anyio
async def test_api_key_sent_as_bearer_token(stub_server: StubServer) -> None:
    settings = make_settings(stub_server, OPENAI_API_KEY=SECRET_KEY)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    assert stub_server.requests(CHAT)[0].headers["authorization"] == f"Bearer {SECRET_KEY}"


@pytest.mark.anyio
async def test_keyless_compatible_server_gets_placeholder_key(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    assert stub_server.requests(CHAT)[0].headers["authorization"] == "Bearer not-needed"


def test_no_key_and_no_base_url_is_rejected() -> None:
    with pytest.raises(ProviderAuthenticationError) as caught:
        OpenAIProvider(load_settings({"TAKT_PROVIDER": "openai"}))

    assert "OPENAI_API_KEY" in str(caught.value)
    assert "OPENAI_BASE_URL" in str(caught.value)


# --- the reply --------------------------------------------------------------------


@pytest.mark.anyio
async def test_reply_becomes_validated_completion(stub_server: StubServer) -> None:
    reply = chat_completion(
        json.dumps(open_judgement("Drive.")),
        model="stub-served-model",
        prompt_tokens=1_000,
        completion_tokens=200,
        cached_tokens=640,
    )
    stub_server.script("POST", CHAT, StubReply(body=reply))
    settings = make_settings(stub_server, TAKT_MODEL="stub-model-b")
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert completion.result == OpenJudgement.model_validate(open_judgement("Drive."))
    assert completion.model == "stub-served-model"
    # prompt_tokens 1,000 include 640 cached tokens; Usage keeps them apart.
    assert completion.usage.input_tokens == 360
    assert completion.usage.output_tokens == 200
    assert completion.usage.cache_read_tokens == 640
    assert completion.usage.requests == 1


@pytest.mark.anyio
async def test_framed_request_returns_verdict(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    request = build_framed_request(
        make_voice(settings), SecondOpinionRequest(question=QUESTION, proposal="Walk.")
    )
    async with open_provider(settings) as provider:
        completion = await complete(provider, request)

    body = stub_server.requests(CHAT)[0].body
    assert body["response_format"]["json_schema"]["name"] == "FramedJudgement"
    assert isinstance(completion.result, FramedJudgement)
    assert completion.result.verdict == "disagree"


@pytest.mark.anyio
async def test_refusal_raises_bad_request(stub_server: StubServer) -> None:
    refused = chat_completion(None, refusal="I can't help with that.")
    stub_server.script("POST", CHAT, StubReply(body=refused))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderBadRequestError)
    assert "I can't help with that." in str(error)


@pytest.mark.anyio
async def test_reply_without_choices_raises_unavailable(stub_server: StubServer) -> None:
    empty = {**chat_completion("{}"), "choices": []}
    stub_server.script("POST", CHAT, StubReply(body=empty))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderUnavailableError)
    assert "no choices" in str(error)


# --- the model from GET /v1/models ------------------------------------------------


@pytest.mark.anyio
async def test_model_comes_from_models_list(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))
        await complete(provider, blind_request(settings))

    assert provider.model == OPENAI_MODELS[0]
    assert completion.model == OPENAI_MODELS[0]
    assert [request.body["model"] for request in stub_server.requests(CHAT)] == [
        OPENAI_MODELS[0],
        OPENAI_MODELS[0],
    ]
    assert len(stub_server.requests(MODELS, "GET")) == 1


@pytest.mark.anyio
async def test_concurrent_calls_list_models_once(stub_server: StubServer) -> None:
    settings = make_settings(stub_server)
    stub_server.script("GET", MODELS, StubReply(body=model_list(["slow-model"]), delay=0.2))
    async with open_provider(settings) as provider, anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(complete, provider, blind_request(settings))

    assert len(stub_server.requests(MODELS, "GET")) == 1
    assert {request.body["model"] for request in stub_server.requests(CHAT)} == {"slow-model"}


@pytest.mark.anyio
async def test_takt_model_skips_models_list(stub_server: StubServer) -> None:
    settings = make_settings(stub_server, TAKT_MODEL="chosen-model")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    assert stub_server.requests(MODELS) == []
    assert stub_server.requests(CHAT)[0].body["model"] == "chosen-model"


def test_openai_without_base_url_defaults_model() -> None:
    provider = OpenAIProvider(load_settings({"OPENAI_API_KEY": SECRET_KEY}))

    assert provider.model == DEFAULT_OPENAI_MODEL


@pytest.mark.anyio
async def test_empty_models_list_raises_bad_request(stub_server: StubServer) -> None:
    stub_server.script("GET", MODELS, StubReply(body=model_list([])))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderBadRequestError)
    assert stub_server.openai_base_url in str(error)
    assert "TAKT_MODEL" in str(error)
    assert stub_server.requests(CHAT) == []


@pytest.mark.anyio
async def test_models_list_failure_is_mapped(stub_server: StubServer) -> None:
    stub_server.script("GET", MODELS, error_reply(401, "Invalid API key.", "invalid_request_error"))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderAuthenticationError)
    assert "(unresolved)" in str(error)
    assert "HTTP 401" in str(error)


# --- json_schema rejected: the json_object fallback ---------------------------------


@pytest.mark.anyio
async def test_rejected_json_schema_falls_back(stub_server: StubServer) -> None:
    stub_server.script(
        "POST", CHAT, error_reply(500, "json_schema is not supported", "server_error")
    )
    settings = make_settings(stub_server)
    request = blind_request(settings)
    async with open_provider(settings) as provider:
        completion = await complete(provider, request)

    rejected, retried = stub_server.requests(CHAT)
    schema = strict_json_schema(OpenJudgement)
    assert rejected.body["response_format"]["type"] == "json_schema"
    assert retried.body["response_format"] == {"type": "json_object", "schema": schema}
    assert retried.body["messages"][0]["content"].endswith(schema_instruction(request))
    assert completion.result == OpenJudgement.model_validate(open_judgement())


@pytest.mark.anyio
async def test_json_object_fallback_is_remembered(stub_server: StubServer) -> None:
    stub_server.script(
        "POST", CHAT, error_reply(500, "json_schema is not supported", "server_error")
    )
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    formats = [request.body["response_format"]["type"] for request in stub_server.requests(CHAT)]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert openai_module._FORMAT_BY_BASE_URL[stub_server.openai_base_url] == "json_object"


@pytest.mark.anyio
async def test_json_object_fallback_is_per_base_url(stub_server: StubServer) -> None:
    stub_server.script(
        "POST", CHAT, error_reply(500, "json_schema is not supported", "server_error")
    )
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    with StubServer() as other_server:
        other_settings = make_settings(other_server)
        async with open_provider(other_settings) as provider:
            await complete(provider, blind_request(other_settings))
        other_body = other_server.requests(CHAT)[0].body

    assert other_body["response_format"]["type"] == "json_schema"


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 404, 415, 422, 500, 501])
async def test_each_rejection_status_triggers_fallback(
    stub_server: StubServer, status: int
) -> None:
    stub_server.script("POST", CHAT, error_reply(status, "unsupported", "invalid_request_error"))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    formats = [request.body["response_format"]["type"] for request in stub_server.requests(CHAT)]
    assert formats == ["json_schema", "json_object"]


@pytest.mark.anyio
async def test_failed_fallback_is_not_remembered(stub_server: StubServer) -> None:
    failure = error_reply(500, "The server had an error.", "server_error")
    stub_server.script("POST", CHAT, failure, failure)
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderUnavailableError)
    assert len(stub_server.requests(CHAT)) == 2
    assert stub_server.openai_base_url not in openai_module._FORMAT_BY_BASE_URL


@pytest.mark.anyio
async def test_auth_failure_does_not_trigger_fallback(stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, error_reply(401, "Invalid API key.", "invalid_request_error"))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        await complete_error(provider, blind_request(settings))

    assert len(stub_server.requests(CHAT)) == 1


# --- invalid output and the repair round --------------------------------------------


@pytest.mark.anyio
async def test_invalid_json_gets_one_repair(stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, StubReply(body=chat_completion("Drive, obviously.")))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    first, repair = stub_server.requests(CHAT)
    assert len(repair.body["messages"]) == len(first.body["messages"]) + 2
    assert repair.body["messages"][-2] == {"role": "assistant", "content": "Drive, obviously."}
    assert repair.body["messages"][-1]["role"] == "user"
    assert "That reply cannot be used" in repair.body["messages"][-1]["content"]
    assert completion.result == OpenJudgement.model_validate(open_judgement())
    assert completion.usage.requests == 2


@pytest.mark.anyio
async def test_invalid_json_twice_raises_invalid_output(stub_server: StubServer) -> None:
    stub_server.script(
        "POST",
        CHAT,
        StubReply(body=chat_completion("Drive.")),
        StubReply(body=chat_completion('{"position": "Drive."}')),
    )
    settings = make_settings(stub_server, TAKT_MODEL="stub-model-b")
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, InvalidOutputError)
    assert "openai" in str(error)
    assert "'stub-model-b'" in str(error)
    assert "OpenJudgement" in str(error)
    assert len(stub_server.requests(CHAT)) == 2


@pytest.mark.anyio
async def test_fenced_json_needs_no_repair(stub_server: StubServer) -> None:
    fenced = "```json\n" + json.dumps(open_judgement()) + "\n```"
    stub_server.script("POST", CHAT, StubReply(body=chat_completion(fenced)))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert len(stub_server.requests(CHAT)) == 1
    assert completion.raw_text == fenced


# --- HTTP errors, timeouts and dropped connections -----------------------------------

ERROR_CASES = [
    pytest.param(
        error_reply(401, "Incorrect API key provided: sk-test-*****123.", "invalid_request_error"),
        ProviderAuthenticationError,
        ["HTTP 401", "authentication failed", "Check OPENAI_API_KEY."],
        id="401",
    ),
    pytest.param(
        error_reply(429, "Rate limit reached for requests.", "requests", **{"retry-after": "7"}),
        ProviderRateLimitError,
        ["HTTP 429", "rate limited", "Retry after 7 s."],
        id="429",
    ),
    pytest.param(
        error_reply(500, "The server had an error processing your request.", "server_error"),
        ProviderUnavailableError,
        ["HTTP 500", "server error", "Retry later."],
        id="500",
    ),
    pytest.param(
        error_reply(503, "The engine is currently overloaded.", "server_error"),
        ProviderUnavailableError,
        ["HTTP 503", "server error", "Retry later."],
        id="503",
    ),
    pytest.param(
        error_reply(404, "The model 'stub-model-b' does not exist.", "invalid_request_error"),
        ProviderBadRequestError,
        ["HTTP 404", "not found", "Check TAKT_MODEL and OPENAI_BASE_URL."],
        id="404",
    ),
    pytest.param(
        StubReply(close=True),
        ProviderUnavailableError,
        ["could not connect", "Check OPENAI_BASE_URL"],
        id="connection-closed",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("reply", "error_type", "phrases"), ERROR_CASES)
async def test_http_failure_maps_to_provider_error(
    stub_server: StubServer, reply: StubReply, error_type: type[ProviderError], phrases: list[str]
) -> None:
    # Twice, because some statuses first trigger the json_object fallback.
    stub_server.script("POST", CHAT, reply, reply)
    settings = make_settings(stub_server, TAKT_MODEL="stub-model-b")
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert type(error) is error_type
    assert error.provider == "openai"
    assert error.model == "stub-model-b"
    assert str(error).startswith("openai model 'stub-model-b'")
    for phrase in phrases:
        assert phrase in str(error)


@pytest.mark.anyio
async def test_http_error_keeps_status(stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, error_reply(429, "Slow down.", "requests"))
    settings = make_settings(stub_server)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert error.status == 429


@pytest.mark.anyio
async def test_hanging_server_raises_timeout(stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, StubReply(hang=True))
    settings = make_settings(stub_server, TAKT_TIMEOUT=HANG_TIMEOUT, TAKT_MODEL="stub-model-b")
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert isinstance(error, ProviderTimeoutError)
    assert str(error).startswith("openai model 'stub-model-b'")
    assert "timed out" in str(error)
    assert "Raise TAKT_TIMEOUT" in str(error)
    assert len(stub_server.requests(CHAT)) == 1


@pytest.mark.anyio
async def test_sdk_retries_server_error_when_allowed(stub_server: StubServer) -> None:
    failure = error_reply(
        500, "The server had an error.", "server_error", **{"retry-after-ms": "1"}
    )
    stub_server.script("POST", CHAT, failure)
    # Retries apply once the server's format is known; the first request is a probe.
    openai_module._FORMAT_BY_BASE_URL[stub_server.openai_base_url] = "json_schema"
    settings = make_settings(stub_server, TAKT_MAX_RETRIES="1")
    async with open_provider(settings) as provider:
        completion = await complete(provider, blind_request(settings))

    assert len(stub_server.requests(CHAT)) == 2
    retry = stub_server.requests(CHAT)[1]
    assert retry.headers["x-stainless-retry-count"] == "1"
    assert retry.body["response_format"]["type"] == "json_schema"
    assert completion.usage.requests == 1


@pytest.mark.anyio
async def test_sdk_retries_rate_limit_when_allowed(stub_server: StubServer) -> None:
    limited = error_reply(429, "Slow down.", "requests", **{"retry-after": "0.05"})
    stub_server.script("POST", CHAT, limited)
    openai_module._FORMAT_BY_BASE_URL[stub_server.openai_base_url] = "json_schema"
    settings = make_settings(stub_server, TAKT_MAX_RETRIES="1")
    async with open_provider(settings) as provider:
        started = anyio.current_time()
        await complete(provider, blind_request(settings))
        elapsed = anyio.current_time() - started

    assert len(stub_server.requests(CHAT)) == 2
    assert elapsed >= 0.05


# --- secrets ---------------------------------------------------------------------

SECRET_CASES = [
    pytest.param(
        error_reply(401, f"Incorrect API key provided: {SECRET_KEY}.", "invalid_request_error"),
        id="401-echoing-key",
    ),
    pytest.param(
        error_reply(429, f"Rate limit reached for key {SECRET_KEY}.", "requests"), id="429"
    ),
    pytest.param(error_reply(500, f"Failed for {SECRET_KEY}.", "server_error"), id="500"),
    pytest.param(StubReply(close=True), id="connection-closed"),
    pytest.param(StubReply(hang=True), id="timeout"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("reply", SECRET_CASES)
async def test_api_key_never_in_error_message(stub_server: StubServer, reply: StubReply) -> None:
    stub_server.script("POST", CHAT, reply, reply)
    settings = make_settings(stub_server, OPENAI_API_KEY=SECRET_KEY, TAKT_TIMEOUT=HANG_TIMEOUT)
    async with open_provider(settings) as provider:
        error = await complete_error(provider, blind_request(settings))

    assert stub_server.requests(CHAT)[0].headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert SECRET_KEY not in str(error)
    assert SECRET_KEY not in repr(error)
    assert SECRET_KEY not in error.detail


@pytest.mark.anyio
async def test_format_probe_is_sent_without_retries(stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, error_reply(500, "json_schema unsupported", "server_error"))
    settings = make_settings(stub_server, TAKT_MAX_RETRIES="2")
    async with open_provider(settings) as provider:
        await complete(provider, blind_request(settings))

    formats = [r.body["response_format"]["type"] for r in stub_server.requests(CHAT)]
    assert formats == ["json_schema", "json_object"]
