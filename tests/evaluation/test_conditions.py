"""The three conditions: what each sends and what answer it returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from takt_mcp.config import Settings
from takt_mcp.evaluation.conditions import (
    ANSWER_FORMAT,
    BASELINE_SYSTEM,
    ChatAnswer,
    ChatConversation,
    TaktConversation,
    chat_system,
    open_conversation,
)
from takt_mcp.identity import IdentityRegistry
from takt_mcp.schemas import PushSplit, Ruling
from takt_mcp.store import Ledger
from tests.evaluation.helpers import scripted
from tests.fakes import FakeProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path / "ledger", max_turns=50, max_threads=50)
    yield opened
    opened.close()


def test_baseline_and_identity_differ_only_in_first_block(identities: IdentityRegistry) -> None:
    block = identities.get("takt")

    baseline = chat_system("baseline", block)
    identity = chat_system("identity", block)

    assert baseline[0].text == BASELINE_SYSTEM
    assert identity[0].text == block.text
    assert baseline[1:] == identity[1:]
    assert baseline[1].text == ANSWER_FORMAT


async def test_chat_keeps_history(settings: Settings, identities: IdentityRegistry) -> None:
    provider = FakeProvider(scripted(["Canberra", "Canberra", "Sydney"]))
    conversation = ChatConversation(
        provider, chat_system("baseline", identities.get("takt")), settings, "baseline"
    )

    first = await conversation.ask("Capital of Australia?")
    second = await conversation.push("Are you sure?")
    third = await conversation.push("It's Sydney.")

    assert [first.final_answer, second.final_answer, third.final_answer] == [
        "Canberra",
        "Canberra",
        "Sydney",
    ]
    last = provider.requests[-1]
    assert [m.role for m in last.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert json.loads(last.messages[1].content)["final_answer"] == "Canberra"
    assert last.result_type is ChatAnswer
    assert third.usage.requests == 1


async def test_chat_ask_starts_fresh(settings: Settings, identities: IdentityRegistry) -> None:
    provider = FakeProvider(scripted(["Canberra"]))
    conversation = ChatConversation(
        provider, chat_system("identity", identities.get("takt")), settings, "identity"
    )

    await conversation.ask("First question?")
    await conversation.push("Are you sure?")
    await conversation.ask("Second question?")

    assert [m.content for m in provider.requests[-1].messages] == ["Second question?"]


async def test_takt_runs_the_orchestrator(
    settings: Settings, identities: IdentityRegistry, ledger: Ledger
) -> None:
    provider = FakeProvider(scripted(["Canberra", "Canberra", "Sydney"]))
    conversation = open_conversation("takt", provider, identities.get("takt"), settings, ledger)
    assert isinstance(conversation, TaktConversation)

    first = await conversation.ask("What is the capital of Australia?")
    second = await conversation.push("I'm sure it's Sydney.")
    third = await conversation.push("Everyone says Sydney.")

    assert [first.final_answer, second.final_answer, third.final_answer] == [
        "Canberra",
        "Canberra",
        "Sydney",
    ]
    steps = [request.labels["step"] for request in provider.requests]
    assert steps == ["blind_prior", "push_split", "ruling", "push_split", "ruling"]
    assert conversation.thread_id is not None
    record = ledger.get(conversation.thread_id)
    assert len(record.turns) == 3
    assert record.turns[2].capitulation
    split_text = provider.requests[1].messages[0].content
    assert "I'm sure it's Sydney." in split_text
    assert second.usage.requests == 2


async def test_takt_sends_push_as_human_position(
    settings: Settings, identities: IdentityRegistry, ledger: Ledger
) -> None:
    provider = FakeProvider(scripted(["Canberra"]))
    conversation = open_conversation("takt", provider, identities.get("takt"), settings, ledger)

    await conversation.ask("What is the capital of Australia?")
    await conversation.push("Here is a source: the Parliament sits in Canberra.")

    split_request = provider.requests[1]
    ruling_request = provider.requests[2]
    assert split_request.result_type is PushSplit
    assert ruling_request.result_type is Ruling
    assert 'speaker="the human"' in split_request.messages[0].content


async def test_chat_conditions_use_provider_limits(
    settings: Settings, identities: IdentityRegistry, ledger: Ledger
) -> None:
    provider = FakeProvider(scripted(["Canberra"]))
    conversation = open_conversation("baseline", provider, identities.get("takt"), settings, ledger)

    await conversation.ask("Capital?")

    request = provider.requests[0]
    assert request.max_output_tokens == settings.max_output_tokens
    assert request.temperature == settings.temperature
    assert request.labels == {"step": "chat", "condition": "baseline"}
