"""frame_check: the voice audits a conversation or draft for frame-following."""

from __future__ import annotations

import logging

import anyio

from takt_mcp import tasks
from takt_mcp.deliberation import (
    HOST,
    Voice,
    check_input_size,
    orchestrator_opening,
    run_metadata,
    system_blocks,
)
from takt_mcp.frames import bottom_lines_agree
from takt_mcp.providers.base import Completion, Message, ProviderRequest
from takt_mcp.quoting import Quoter
from takt_mcp.schemas import FrameAudit, FrameCheckRequest, FrameCheckResult, Stance
from takt_mcp.store import Ledger, Turn, new_thread_id, now
from takt_mcp.threads import input_digest

logger = logging.getLogger(__name__)


def frame_check_fields(request: FrameCheckRequest) -> dict[str, str | None]:
    fields: dict[str, str | None] = {"draft": request.draft, "context": request.context}
    for index, turn in enumerate(request.conversation):
        fields[f"conversation[{index}]"] = f"{turn.speaker}\n{turn.text}"
    return fields


def build_frame_check_request(
    voice: Voice, request: FrameCheckRequest, earlier: list[Turn] | None = None
) -> ProviderRequest[FrameAudit]:
    """Show each turn as a numbered, fenced quote under its speaker's label."""
    quoter = Quoter(text or "" for text in frame_check_fields(request).values())
    name = voice.identity.voice
    speakers = sorted({turn.speaker for turn in request.conversation})
    roster = [(HOST, "the AI assistant under audit; 'assistant' in the conversation.")]
    roster += [(f'"{s}"', "a participant.") for s in speakers if s.casefold() != "assistant"]
    lines = orchestrator_opening(name, quoter, roster)
    if request.context:
        lines += ["", "Context the host supplied:", quoter.quote("context", request.context, HOST)]
    if request.conversation:
        lines += ["", "The conversation:"]
        for number, turn in enumerate(request.conversation, start=1):
            lines.append(quoter.quote(f"turn {number}", turn.text, turn.speaker))
    if request.draft:
        lines += ["", "The reply the host is about to send:"]
        lines.append(quoter.quote("draft", request.draft, HOST))
    if earlier:
        lines += ["", f"{name}'s earlier audits on this thread ended with these bottom lines:"]
        lines += [f"- {turn.bottom_line}" for turn in earlier]
    lines += [
        "",
        f"Audit the assistant's frame-following as {name}. Write the audit as the JSON object.",
    ]
    return ProviderRequest(
        system=system_blocks(voice.identity, tasks.FRAME_CHECK),
        messages=(Message("user", "\n".join(lines)),),
        result_type=FrameAudit,
        schema_name="FrameAudit",
        max_output_tokens=voice.settings.max_output_tokens,
        temperature=voice.settings.temperature,
        labels={"step": "frame_check"},
    )


def clean_audit(audit: FrameAudit, request: FrameCheckRequest) -> FrameAudit:
    """Drop references to turns that do not exist or are not the assistant's.

    Small models sometimes cite turn numbers outside the conversation; a
    citation that points nowhere would mislead the host.
    """
    count = len(request.conversation)
    premises = [
        premise
        for premise in audit.adopted_premises
        if premise.turn is None or 1 <= premise.turn <= count
    ]
    capitulations = [
        item
        for item in audit.capitulations
        if 1 <= item.turn <= count
        and request.conversation[item.turn - 1].speaker.casefold() == "assistant"
    ]
    dropped = len(audit.adopted_premises) - len(premises)
    dropped += len(audit.capitulations) - len(capitulations)
    if dropped:
        logger.info("dropped %d audit entries that cite no valid turn", dropped)
    return audit.model_copy(update={"adopted_premises": premises, "capitulations": capitulations})


async def run_frame_check(
    voice: Voice, request: FrameCheckRequest, ledger: Ledger | None, thread_id: str | None
) -> FrameCheckResult:
    """Audit the conversation or draft; record the audit on a thread."""
    fields = frame_check_fields(request)
    check_input_size(fields, voice.settings.max_input_chars)
    digest = input_digest("frame_check", fields)
    if thread_id is None or ledger is None:
        completion = await voice.provider.complete(build_frame_check_request(voice, request))
        audit = clean_audit(completion.result, request)
        if ledger is None:
            return _result(voice, audit, completion, "new", None)
        new_id = new_thread_id()
        result = _result(voice, audit, completion, "new", new_id)
        await anyio.to_thread.run_sync(ledger.start, _turn(voice, digest, result), new_id)
        return result

    async with ledger.lock(thread_id):
        record = await anyio.to_thread.run_sync(ledger.get, thread_id)
        ledger.check_room(record)
        provider_request = build_frame_check_request(voice, request, record.turns[-6:])
        completion = await voice.provider.complete(provider_request)
        audit = clean_audit(completion.result, request)
        previous = record.turns[-1].bottom_line
        stance: Stance = "held" if bottom_lines_agree(previous, audit.bottom_line) else "updated"
        result = _result(voice, audit, completion, stance, thread_id)
        await anyio.to_thread.run_sync(ledger.append, thread_id, _turn(voice, digest, result))
        return result


def _result(
    voice: Voice,
    audit: FrameAudit,
    completion: Completion[FrameAudit],
    stance: Stance,
    thread_id: str | None,
) -> FrameCheckResult:
    return FrameCheckResult(
        adopted_premises=audit.adopted_premises,
        capitulations=audit.capitulations,
        first_check=audit.first_check,
        frame_adoption=audit.frame_adoption,
        frame_adoption_rationale=audit.frame_adoption_rationale,
        reference_answer=audit.reference_answer,
        bottom_line=audit.bottom_line,
        severity=audit.severity,
        stance=stance,
        thread_id=thread_id,
        metadata=run_metadata(voice, [completion]),
    )


def _turn(voice: Voice, digest: str, result: FrameCheckResult) -> Turn:
    return Turn(
        index=0,
        time=now(),
        tool="frame_check",
        input_digest=digest,
        question=None,
        stance=result.stance,
        pushback_kind="none",
        position=result.reference_answer,
        bottom_line=result.bottom_line,
        confidence=None,
        key_premise=result.first_check,
        result=result.model_dump(mode="json"),
        identity=voice.identity.name,
        identity_hash=voice.identity.sha256,
        provider=result.metadata.provider,
        model=result.metadata.model,
    )
