"""Threads: the voice's earlier positions, content versus pressure, the evidence gate.

A call without a thread id runs the plain orchestrator and starts a thread.
A call on an existing thread is a push: it is first split into content and
pressure by a separate request that reads the push in the third person.
The voice then rules on the content alone, seeing its own earlier
statements as its own. A changed position with no new content is recorded
as capitulation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import anyio

from takt_mcp import tasks
from takt_mcp.deliberation import (
    HOST,
    HUMAN,
    Voice,
    align_assessments,
    check_input_size,
    mediation_fields,
    run_mediation,
    run_metadata,
    run_second_opinion,
    second_opinion_fields,
    system_blocks,
)
from takt_mcp.frames import bottom_lines_agree
from takt_mcp.providers.base import Message, ProviderRequest
from takt_mcp.quoting import Quoter
from takt_mcp.schemas import (
    MediationRequest,
    MediationResult,
    MediationRuling,
    PushbackKind,
    PushSplit,
    Ruling,
    SecondOpinionRequest,
    SecondOpinionResult,
)
from takt_mcp.store import Ledger, ThreadRecord, Turn, new_thread_id, now

logger = logging.getLogger(__name__)

# Earlier turns shown to the voice; older ones stay in the ledger only.
HISTORY_TURNS = 6


def input_digest(tool: str, fields: dict[str, Any]) -> str:
    encoded = json.dumps({"tool": tool, **fields}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def classify_pushback(split: PushSplit) -> PushbackKind:
    """Return the push's kind from its split: evidence needs a new content point."""
    if any(point.new for point in split.content):
        return "evidence"
    if split.content:
        return "restatement"
    if split.pressure:
        return "pressure"
    return "none"


# --- prompt building ------------------------------------------------------------


def _statement(turn: Turn, voice: str) -> str:
    """Return an earlier turn as the voice's own first-person record."""
    lines = [
        f"{voice}'s position: {turn.position}",
        f"Bottom line: {turn.bottom_line}",
        f"Confidence: {turn.confidence if turn.confidence is not None else 'n/a'}",
        f"Key premise: {turn.key_premise}",
    ]
    if turn.would_change_my_mind:
        lines.append("What would change it: " + "; ".join(turn.would_change_my_mind))
    return "\n".join(lines)


def _points_message(
    quoter: Quoter, speaker: str, new: list[str], old: list[str], pressure: int
) -> str:
    lines = [f"Since then, {speaker} has responded. The orchestrator separated the response."]
    if new:
        lines.append("New content points:")
        lines += [quoter.quote("point", point, speaker) for point in new]
    else:
        lines.append("The response raised no new content point.")
    if old:
        lines.append("Points that repeat what was already considered:")
        lines += [quoter.quote("point", point, speaker) for point in old]
    if pressure:
        lines.append(
            f"The response also carried {pressure} item(s) of pressure, recorded and not shown."
        )
    return "\n".join(lines)


def _history(record: ThreadRecord, voice: str, quoter: Quoter) -> list[Message]:
    question = record.turns[0].question or "(the matter under discussion)"
    messages = [
        Message(
            "user",
            f"The orchestrator of this consultation is writing. Nobody here is {voice}'s user.\n"
            f"{quoter.explain()}\n\nThe question on this thread:\n"
            f"{quoter.quote('question', question, HOST)}\n\nWhat is {voice}'s position?",
        )
    ]
    for turn in record.turns[-HISTORY_TURNS:]:
        if turn.index > 0:
            points = _points_message(
                quoter, "a participant", turn.content, turn.repeated_content, len(turn.pressure)
            )
            messages.append(Message("user", points))
        messages.append(Message("assistant", _statement(turn, voice)))
    return _merge_roles(messages)


def _merge_roles(messages: list[Message]) -> list[Message]:
    # Two user messages in a row happen when older turns are cut; some APIs
    # require roles to alternate, so they are joined.
    merged: list[Message] = []
    for message in messages:
        if merged and merged[-1].role == message.role:
            merged[-1] = Message(message.role, f"{merged[-1].content}\n\n{message.content}")
        else:
            merged.append(message)
    return merged


def build_split_request(
    voice: Voice, record: ThreadRecord, push: dict[str, str]
) -> ProviderRequest[PushSplit]:
    """Ask a clerk, in the third person, to separate the push's content from its pressure."""
    # Only the turns the ruling also sees, so the prompt stays bounded.
    considered = [point for turn in record.turns[-HISTORY_TURNS:] for point in turn.content]
    quoter = Quoter([*push.values(), *considered, record.state_digest()])
    name = voice.identity.voice
    last = record.turns[-1]
    lines = [
        "The orchestrator of this consultation is writing.",
        quoter.explain(),
        "",
        f"{name}'s earlier bottom line: {last.bottom_line}",
        f"{name}'s earlier key premise: {last.key_premise}",
    ]
    if considered:
        lines.append("Points already considered on this thread:")
        lines += [quoter.quote("considered", point) for point in considered]
    lines += ["", "The response to separate:"]
    for speaker_kind, text in push.items():
        speaker, kind = speaker_kind.split("|", 1)
        lines.append(quoter.quote(kind, text, speaker))
    lines += ["", "Separate the response into content and pressure as the JSON object."]
    return ProviderRequest(
        system=system_blocks(voice.identity, tasks.PUSH_SPLIT),
        messages=(Message("user", "\n".join(lines)),),
        result_type=PushSplit,
        schema_name="PushSplit",
        max_output_tokens=voice.settings.max_output_tokens,
        temperature=voice.settings.temperature,
        labels={"step": "push_split", "ledger": record.state_digest()},
    )


def build_ruling_request(
    voice: Voice,
    record: ThreadRecord,
    split: PushSplit,
    result_type: type[Ruling] | type[MediationRuling],
    extra: str = "",
) -> ProviderRequest[Any]:
    """Show the voice its own earlier statements, then only the push's content."""
    new = [point.point for point in split.content if point.new]
    old = [point.point for point in split.content if not point.new]
    quoter = Quoter([*new, *old, record.state_digest()])
    name = voice.identity.voice
    messages = _history(record, name, quoter)
    closing = _points_message(quoter, "a participant", new, old, len(split.pressure))
    closing += (
        f"\n\nDoes {name} hold or update its position? {extra}"
        f"Write {name}'s ruling as the JSON object."
    )
    messages.append(Message("user", closing))
    task = (
        tasks.RULING
        + "\n\n"
        + tasks.render(
            tasks.MEDIATION if result_type is MediationRuling else tasks.SECOND_OPINION, name
        )
    )
    return ProviderRequest(
        system=system_blocks(voice.identity, task),
        messages=tuple(messages),
        result_type=result_type,
        schema_name=result_type.__name__,
        max_output_tokens=voice.settings.max_output_tokens,
        temperature=voice.settings.temperature,
        labels={"step": "ruling", "ledger": record.state_digest()},
    )


# --- running ----------------------------------------------------------------------


async def second_opinion_on_thread(
    voice: Voice, request: SecondOpinionRequest, ledger: Ledger | None, thread_id: str | None
) -> SecondOpinionResult:
    """Run a second opinion, starting a thread or continuing the given one."""
    check_input_size(second_opinion_fields(request), voice.settings.max_input_chars)
    digest = input_digest("second_opinion", second_opinion_fields(request))
    if thread_id is None:
        result = await run_second_opinion(voice, request)
        if ledger is None:
            return result
        new_id = new_thread_id()
        result = result.model_copy(update={"thread_id": new_id})
        turn = _turn("second_opinion", digest, request.question, result, voice)
        await anyio.to_thread.run_sync(ledger.start, turn, new_id)
        return result

    assert ledger is not None, "callers pass a ledger with a thread id"
    async with ledger.lock(thread_id):
        record = await anyio.to_thread.run_sync(ledger.get, thread_id)
        ledger.check_room(record)
        push = {
            f"{HOST}|question": request.question,
            **({f"{HOST}|context": request.context} if request.context else {}),
            **({f"{HOST}|proposal": request.proposal} if request.proposal else {}),
            **({f"{HUMAN}|position": request.user_position} if request.user_position else {}),
        }
        split_completion = await voice.provider.complete(build_split_request(voice, record, push))
        split = split_completion.result
        kind = classify_pushback(split)
        ruling_completion = await voice.provider.complete(
            build_ruling_request(voice, record, split, Ruling)
        )
        ruling: Ruling = ruling_completion.result
        previous = record.turns[-1]
        # The bottom lines decide: on a local 0.5B model the ruling said
        # "update" while restating the same answer word for word.
        changed = not bottom_lines_agree(previous.bottom_line, ruling.bottom_line)
        if ruling.decision == "update" and not changed:
            logger.info("thread %s: ruling said update but kept its bottom line", thread_id)
        result = SecondOpinionResult(
            verdict=ruling.verdict if request.is_framed() else None,
            stance="updated" if changed else "held",
            pushback_kind=kind,
            change_reason=(ruling.change_reason or None) if changed else None,
            capitulation=changed and kind != "evidence",
            pushback_content=[point.point for point in split.content],
            pushback_pressure=split.pressure,
            thread_id=thread_id,
            metadata=run_metadata(voice, [split_completion, ruling_completion]),
            **{name: getattr(ruling, name) for name in _OPEN_FIELDS},
        )
        if result.capitulation:
            logger.info("thread %s: position changed without new content", thread_id)
        turn = _turn("second_opinion", digest, request.question, result, voice, split)
        await anyio.to_thread.run_sync(ledger.append, thread_id, turn)
        return result


async def mediation_on_thread(
    voice: Voice, request: MediationRequest, ledger: Ledger | None, thread_id: str | None
) -> MediationResult:
    """Run a mediation, starting a thread or continuing the given one."""
    check_input_size(mediation_fields(request), voice.settings.max_input_chars)
    digest = input_digest("mediate", mediation_fields(request))
    if thread_id is None:
        result = await run_mediation(voice, request)
        if ledger is None:
            return result
        new_id = new_thread_id()
        result = result.model_copy(update={"thread_id": new_id})
        turn = _mediation_turn(digest, request, result, voice)
        await anyio.to_thread.run_sync(ledger.start, turn, new_id)
        return result

    assert ledger is not None, "callers pass a ledger with a thread id"
    async with ledger.lock(thread_id):
        record = await anyio.to_thread.run_sync(ledger.get, thread_id)
        ledger.check_room(record)
        push: dict[str, str] = {}
        for participant in request.participants:
            text = "\n".join([participant.position, *participant.messages])
            push[f"{participant.name}|position"] = text
        split_completion = await voice.provider.complete(build_split_request(voice, record, push))
        split = split_completion.result
        kind = classify_pushback(split)
        labels = ", ".join(repr(p.name) for p in request.participants)
        ruling_completion = await voice.provider.complete(
            build_ruling_request(
                voice, record, split, MediationRuling, f"Assess each participant ({labels}). "
            )
        )
        ruling: MediationRuling = ruling_completion.result
        changed = ruling.decision == "update" or not bottom_lines_agree(
            record.turns[-1].bottom_line, ruling.recommendation
        )
        result = MediationResult(
            own_position=ruling.own_position,
            crux=ruling.crux,
            participants=align_assessments(request, ruling.participants),
            common_ground=ruling.common_ground,
            recommendation=ruling.recommendation,
            confidence=ruling.confidence,
            prior=None,
            stance="updated" if changed else "held",
            pushback_kind=kind,
            change_reason=(ruling.change_reason or None) if changed else None,
            capitulation=changed and kind != "evidence",
            pushback_content=[point.point for point in split.content],
            pushback_pressure=split.pressure,
            thread_id=thread_id,
            metadata=run_metadata(voice, [split_completion, ruling_completion]),
        )
        turn = _mediation_turn(digest, request, result, voice, split)
        await anyio.to_thread.run_sync(ledger.append, thread_id, turn)
        return result


_OPEN_FIELDS = (
    "key_premise",
    "unsupported_premises",
    "reasons",
    "position",
    "bottom_line",
    "confidence",
    "alternatives",
    "would_change_my_mind",
)


def _new_points(split: PushSplit | None) -> list[str]:
    return [point.point for point in split.content if point.new] if split else []


def _repeated_points(split: PushSplit | None) -> list[str]:
    return [point.point for point in split.content if not point.new] if split else []


def _turn(
    tool: str,
    digest: str,
    question: str,
    result: SecondOpinionResult,
    voice: Voice,
    split: PushSplit | None = None,
) -> Turn:
    return Turn(
        index=0,
        time=now(),
        tool=tool,
        input_digest=digest,
        question=question,
        stance=result.stance,
        pushback_kind=result.pushback_kind,
        capitulation=result.capitulation,
        change_reason=result.change_reason,
        content=_new_points(split),
        repeated_content=_repeated_points(split),
        pressure=split.pressure if split else [],
        position=result.position,
        bottom_line=result.bottom_line,
        confidence=result.confidence,
        key_premise=result.key_premise,
        would_change_my_mind=result.would_change_my_mind,
        result=result.model_dump(mode="json"),
        identity=voice.identity.name,
        identity_hash=voice.identity.sha256,
        provider=result.metadata.provider,
        model=result.metadata.model,
    )


def _mediation_turn(
    digest: str,
    request: MediationRequest,
    result: MediationResult,
    voice: Voice,
    split: PushSplit | None = None,
) -> Turn:
    return Turn(
        index=0,
        time=now(),
        tool="mediate",
        input_digest=digest,
        question=request.question,
        stance=result.stance,
        pushback_kind=result.pushback_kind,
        capitulation=result.capitulation,
        change_reason=result.change_reason,
        content=_new_points(split),
        repeated_content=_repeated_points(split),
        pressure=split.pressure if split else [],
        position=result.own_position,
        bottom_line=result.recommendation,
        confidence=result.confidence,
        key_premise=result.crux,
        result=result.model_dump(mode="json"),
        identity=voice.identity.name,
        identity_hash=voice.identity.sha256,
        provider=result.metadata.provider,
        model=result.metadata.model,
    )
