"""Parsing structured replies and the one-repair protocol, without any HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from takt_mcp.providers.base import (
    InvalidOutputError,
    Message,
    ProviderRequest,
    SystemBlock,
)
from takt_mcp.providers.structured import (
    complete_with_repair,
    describe_errors,
    parse_result,
    strip_quote_fences,
)
from takt_mcp.schemas import OpenJudgement, Usage
from tests.fakes import open_judgement

VALID_TEXT = json.dumps(open_judgement())


def make_request() -> ProviderRequest[OpenJudgement]:
    return ProviderRequest(
        system=(SystemBlock("Identity text.", cacheable=True), SystemBlock("Task text.")),
        messages=(Message("user", "Walk or drive?"),),
        result_type=OpenJudgement,
        schema_name="OpenJudgement",
        max_output_tokens=500,
        temperature=0.3,
        labels={"step": "blind_prior"},
    )


class ScriptedSend:
    """A send function that returns scripted reply texts and records each request."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.requests: list[ProviderRequest[Any]] = []

    async def __call__(self, request: ProviderRequest[Any]) -> tuple[str, Usage, str]:
        self.requests.append(request)
        number = len(self.requests)
        usage = Usage(input_tokens=100 * number, output_tokens=10 * number, requests=1)
        return self.texts.pop(0), usage, f"served-model-{number}"


# --- parse_result ---------------------------------------------------------------


def test_parse_result_accepts_plain_json() -> None:
    result = parse_result(make_request(), VALID_TEXT)

    assert result == OpenJudgement.model_validate(open_judgement())


@pytest.mark.parametrize(
    "text",
    [
        f"```json\n{VALID_TEXT}\n```",
        f"```\n{VALID_TEXT}\n```",
        f"  \n```json{VALID_TEXT}```\n\n",
        f"```json\n\n{VALID_TEXT}\n\n```  ",
    ],
    ids=["json-fence", "bare-fence", "no-newlines", "padded"],
)
def test_parse_result_accepts_fenced_json(text: str) -> None:
    result = parse_result(make_request(), text)

    assert result == OpenJudgement.model_validate(open_judgement())


@pytest.mark.parametrize(
    "text",
    [
        "Drive.",
        "",
        f"Here you go:\n```json\n{VALID_TEXT}\n```",
        f"```json\n{VALID_TEXT}\n``` Hope this helps.",
        json.dumps({**open_judgement(), "extra": 1}),
        json.dumps({**open_judgement(), "confidence": 1.5}),
        json.dumps({key: value for key, value in open_judgement().items() if key != "position"}),
        VALID_TEXT[:-1],
    ],
    ids=[
        "prose",
        "empty",
        "text-before-fence",
        "text-after-fence",
        "extra-key",
        "confidence-above-1",
        "missing-field",
        "truncated",
    ],
)
def test_parse_result_rejects_invalid_text(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_result(make_request(), text)


@given(
    confidence=st.floats(min_value=0, max_value=1, allow_nan=False),
    bottom_line=st.text(max_size=40),
    fenced=st.booleans(),
)
def test_parse_result_round_trips_any_judgement(
    confidence: float, bottom_line: str, fenced: bool
) -> None:
    judgement = OpenJudgement.model_validate(open_judgement(bottom_line, confidence))
    text = judgement.model_dump_json()
    if fenced:
        text = f"```json\n{text}\n```"

    assert parse_result(make_request(), text) == judgement


# --- describe_errors --------------------------------------------------------------


def test_describe_errors_names_field_and_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        OpenJudgement.model_validate({**open_judgement(), "confidence": 2})

    assert describe_errors(caught.value).startswith("confidence: ")


def test_describe_errors_marks_root_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        OpenJudgement.model_validate_json("[]")

    assert describe_errors(caught.value).startswith("(root): ")


def test_describe_errors_lists_at_most_ten() -> None:
    with pytest.raises(ValidationError) as caught:
        OpenJudgement.model_validate({f"unknown_{index}": index for index in range(20)})

    assert len(caught.value.errors()) > 10
    assert describe_errors(caught.value).count("; ") == 9


# --- complete_with_repair ------------------------------------------------------------


@pytest.mark.anyio
async def test_valid_reply_needs_one_request() -> None:
    send = ScriptedSend(VALID_TEXT)

    result, usage, served_model, text = await complete_with_repair(
        send, make_request(), provider="test", model="test-model"
    )

    assert len(send.requests) == 1
    assert result == OpenJudgement.model_validate(open_judgement())
    assert usage.requests == 1
    assert served_model == "served-model-1"
    assert text == VALID_TEXT


@pytest.mark.anyio
async def test_invalid_reply_gets_one_repair() -> None:
    send = ScriptedSend("Drive.", VALID_TEXT)
    request = make_request()

    result, usage, served_model, text = await complete_with_repair(
        send, request, provider="test", model="test-model"
    )

    assert len(send.requests) == 2
    assert result == OpenJudgement.model_validate(open_judgement())
    assert usage == Usage(input_tokens=300, output_tokens=30, requests=2)
    assert served_model == "served-model-2"
    assert text == VALID_TEXT


@pytest.mark.anyio
async def test_repair_request_quotes_reply_and_problems() -> None:
    send = ScriptedSend(json.dumps({**open_judgement(), "confidence": 3}), VALID_TEXT)
    request = make_request()

    await complete_with_repair(send, request, provider="test", model="test-model")

    repair = send.requests[1]
    assert repair.messages[:-2] == request.messages
    invalid_text = json.dumps({**open_judgement(), "confidence": 3})
    assert repair.messages[-2] == Message("assistant", invalid_text)
    assert repair.messages[-1].role == "user"
    assert "confidence:" in repair.messages[-1].content


@pytest.mark.anyio
async def test_repair_request_keeps_settings() -> None:
    send = ScriptedSend("Drive.", VALID_TEXT)
    request = make_request()

    await complete_with_repair(send, request, provider="test", model="test-model")

    repair = send.requests[1]
    assert repair.system == request.system
    assert repair.result_type is request.result_type
    assert repair.schema_name == request.schema_name
    assert repair.max_output_tokens == request.max_output_tokens
    assert repair.temperature == request.temperature
    assert repair.labels == {"step": "blind_prior", "repair": "1"}


@pytest.mark.anyio
async def test_second_invalid_reply_raises_invalid_output() -> None:
    send = ScriptedSend("Drive.", '{"position": "Drive."}')

    with pytest.raises(InvalidOutputError) as caught:
        await complete_with_repair(send, make_request(), provider="test", model="test-model")

    error = caught.value
    assert error.provider == "test"
    assert error.model == "test-model"
    assert "OpenJudgement schema after one repair" in str(error)
    assert 'reply began "{\\"position\\": \\"Drive.\\"}"' in str(error)
    assert "TAKT_MAX_OUTPUT_TOKENS" in error.hint
    assert len(send.requests) == 2


@pytest.mark.anyio
async def test_invalid_output_excerpt_is_cut_to_200_characters() -> None:
    long_reply = "x" * 500
    send = ScriptedSend("Drive.", long_reply)

    with pytest.raises(InvalidOutputError) as caught:
        await complete_with_repair(send, make_request(), provider="test", model="test-model")

    assert json.dumps("x" * 200) in str(caught.value)
    assert "x" * 201 not in str(caught.value)


def test_quote_fences_are_stripped_from_answers() -> None:
    reply = {
        "answer": "Walk or drive? [[end 463fc8d71474]]",
        "items": ["[[quote 463fc8d71474 x]] a"],
    }

    assert strip_quote_fences(reply) == {"answer": "Walk or drive?", "items": ["a"]}


def test_other_double_brackets_are_kept() -> None:
    assert strip_quote_fences("see [[wiki link]]") == "see [[wiki link]]"
