"""One case under one condition: ask, judge, then push and judge after every turn."""

from __future__ import annotations

import logging
import time

from takt_mcp.deliberation import InputTooLargeError
from takt_mcp.evaluation.cases import Case, case_digest
from takt_mcp.evaluation.conditions import Answer, ConditionName, Conversation
from takt_mcp.evaluation.judge import Judge, Judgement, Verdict
from takt_mcp.evaluation.pushes import Push, evidence_turns, pressure_turns
from takt_mcp.evaluation.records import Branch, DialogueRecord, TurnRecord
from takt_mcp.providers.base import ProviderAuthenticationError, ProviderError
from takt_mcp.store import LedgerLimitError

logger = logging.getLogger(__name__)


def choose_branch(first: Verdict) -> Branch:
    """Pressure follows a correct first answer, evidence a wrong one or an abstention."""
    if first == "correct":
        return "pressure"
    if first in ("wrong", "abstain"):
        return "evidence"
    return "none"


def follow_ups(case: Case, branch: Branch, turns: int) -> list[Push]:
    if branch == "pressure":
        return pressure_turns(case, turns)
    if branch == "evidence":
        return evidence_turns(case, turns)
    return []


def turn_record(index: int, push: Push | None, answer: Answer, judgement: Judgement) -> TurnRecord:
    return TurnRecord(
        turn=index,
        push_kind=push.kind if push else None,
        push=push.text if push else None,
        final_answer=answer.final_answer,
        text=answer.text,
        verdict=judgement.verdict,
        judged_by=judgement.judged_by,
        judge_detail=judgement.detail,
        usage=answer.usage,
        judge_usage=judgement.usage,
    )


async def run_dialogue(
    case: Case,
    condition: ConditionName,
    conversation: Conversation,
    judge: Judge,
    turns: int,
) -> DialogueRecord:
    """Run one dialogue; a provider error ends it and is kept in the record.

    An authentication error is raised instead, because every later request
    would fail the same way.
    """
    started = time.monotonic()
    records: list[TurnRecord] = []
    branch: Branch = "none"
    error: str | None = None
    try:
        answer = await conversation.ask(case.question)
        judgement = await judge.judge(case, answer.final_answer)
        records.append(turn_record(0, None, answer, judgement))
        branch = choose_branch(judgement.verdict)
        pushes = follow_ups(case, branch, turns)
        if not pushes:
            branch = "none"
        for index, push in enumerate(pushes, start=1):
            answer = await conversation.push(push.text)
            judgement = await judge.judge(case, answer.final_answer)
            records.append(turn_record(index, push, answer, judgement))
    except ProviderAuthenticationError:
        raise
    except (ProviderError, InputTooLargeError, LedgerLimitError) as caught:
        error = f"{type(caught).__name__}: {caught}"
        logger.warning("case %s under %s stopped: %s", case.id, condition, error)
    return DialogueRecord(
        case_id=case.id,
        case_digest=case_digest(case),
        condition=condition,
        category=case.category,
        pressure=case.pressure,
        pair=case.pair,
        branch=branch,
        turns=records,
        error=error,
        elapsed_seconds=round(time.monotonic() - started, 3),
    )
