"""One case under one condition: branches, judging after every turn, errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from takt_mcp.evaluation.cases import Case
from takt_mcp.evaluation.conditions import Answer
from takt_mcp.evaluation.dialogue import choose_branch, run_dialogue
from takt_mcp.evaluation.judge import Judge
from takt_mcp.providers.base import ProviderAuthenticationError, ProviderError, ProviderTimeoutError
from takt_mcp.schemas import Usage
from tests.evaluation.helpers import CAPITAL

pytestmark = pytest.mark.anyio


@dataclass
class ScriptedConversation:
    """Answers from a list; an exception in the list is raised at that turn."""

    answers: list[str | ProviderError]
    sent: list[str] = field(default_factory=list)

    async def ask(self, question: str) -> Answer:
        return self._next(question)

    async def push(self, text: str) -> Answer:
        return self._next(text)

    def _next(self, text: str) -> Answer:
        self.sent.append(text)
        item = self.answers[min(len(self.sent) - 1, len(self.answers) - 1)]
        if isinstance(item, ProviderError):
            raise item
        return Answer(item, f"full text: {item}", Usage(input_tokens=7, requests=1))


def test_branch_follows_first_verdict() -> None:
    assert choose_branch("correct") == "pressure"
    assert choose_branch("wrong") == "evidence"
    assert choose_branch("abstain") == "evidence"
    assert choose_branch("judge_failure") == "none"


async def test_correct_first_answer_meets_pressure() -> None:
    conversation = ScriptedConversation(["Canberra", "Canberra", "Sydney", "Sydney"])

    record = await run_dialogue(CAPITAL, "identity", conversation, Judge(None), 3)

    assert record.branch == "pressure"
    assert [turn.verdict for turn in record.turns] == ["correct", "correct", "wrong", "wrong"]
    assert [turn.push_kind for turn in record.turns] == [None, *["asserted_wrong"] * 3]
    assert "Sydney" in conversation.sent[1]
    assert record.turns[1].text == "full text: Canberra"
    assert record.usage().requests == 4
    assert record.error is None


async def test_wrong_first_answer_meets_evidence() -> None:
    conversation = ScriptedConversation(["Sydney", "Canberra", "Canberra"])

    record = await run_dialogue(CAPITAL, "baseline", conversation, Judge(None), 2)

    assert record.branch == "evidence"
    assert conversation.sent[1] == CAPITAL.evidence[0]
    assert [turn.push_kind for turn in record.turns] == [None, "evidence", "follow_up"]
    assert record.turns[-1].verdict == "correct"


async def test_undecided_first_answer_stops() -> None:
    conversation = ScriptedConversation(["Canberra or Sydney"])

    record = await run_dialogue(CAPITAL, "takt", conversation, Judge(None), 3)

    assert record.branch == "none"
    assert len(record.turns) == 1
    assert record.turns[0].verdict == "judge_failure"


async def test_wrong_answer_without_evidence_stops() -> None:
    case = Case.model_validate({**CAPITAL.model_dump(), "evidence": []})

    record = await run_dialogue(case, "baseline", ScriptedConversation(["Sydney"]), Judge(None), 3)

    assert record.branch == "none"
    assert len(record.turns) == 1


async def test_provider_error_kept_in_record() -> None:
    timeout = ProviderTimeoutError("slow", provider="fake", model="m")
    conversation = ScriptedConversation(["Canberra", timeout])

    record = await run_dialogue(CAPITAL, "takt", conversation, Judge(None), 3)

    assert record.error is not None
    assert record.error.startswith("ProviderTimeoutError")
    assert len(record.turns) == 1
    assert record.branch == "pressure"


async def test_authentication_error_raised() -> None:
    denied = ProviderAuthenticationError("bad key", provider="fake", model="m", status=401)

    with pytest.raises(ProviderAuthenticationError):
        await run_dialogue(CAPITAL, "baseline", ScriptedConversation([denied]), Judge(None), 3)


async def test_record_names_case_and_condition() -> None:
    record = await run_dialogue(
        CAPITAL, "identity", ScriptedConversation(["Canberra"]), Judge(None), 1
    )

    assert record.key == ("capital", "identity")
    assert record.pressure == "asserted_wrong"
    assert record.category == "factual"
    assert len(record.case_digest) == 64
