"""The orchestrator: turn a tool request into provider requests and a result.

The voice is never addressed as anyone's assistant. The host, the human and
each disputant are named participants whose words are quoted material, and
the orchestrator asks what the voice's own position is. Where a call carries
a proposal or a user position, the bare question is also asked without them
(the blind prior), so the result can show how far the framing moved it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel

from takt_mcp import tasks
from takt_mcp.config import Settings
from takt_mcp.frames import compare_frames
from takt_mcp.identity import IdentityBlock
from takt_mcp.pricing import BUILTIN_PRICES, PriceTable
from takt_mcp.providers.base import (
    Completion,
    Message,
    Provider,
    ProviderRequest,
    SystemBlock,
)
from takt_mcp.quoting import Quoter
from takt_mcp.schemas import (
    FramedJudgement,
    MediationJudgement,
    MediationRequest,
    MediationResult,
    OpenJudgement,
    ParticipantAssessment,
    RunMetadata,
    SecondOpinionRequest,
    SecondOpinionResult,
    Usage,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
ResultT = TypeVar("ResultT", bound=BaseModel)

# Characters per token when estimating a request's size before it is sent.
CHARS_PER_TOKEN = 4
HOST = "the host"
HUMAN = "the human"
NOT_ASSESSED = "(the model gave no assessment of this participant)"


class InputTooLargeError(ValueError):
    """The request's text exceeds the configured maximum input size."""


@dataclass(frozen=True)
class Voice:
    """The provider, identity block, settings and prices that one call deliberates with."""

    provider: Provider
    identity: IdentityBlock
    settings: Settings
    prices: PriceTable = field(default_factory=lambda: PriceTable(dict(BUILTIN_PRICES)))


# --- limits ------------------------------------------------------------------


def check_input_size(fields: dict[str, str | None], limit: int) -> None:
    """Raise InputTooLargeError naming the largest field when the total exceeds `limit`."""
    sizes = {name: len(text) for name, text in fields.items() if text}
    total = sum(sizes.values())
    if total <= limit:
        return
    largest = max(sizes, key=lambda name: sizes[name])
    breakdown = ", ".join(f"{name} {size:,}" for name, size in sizes.items())
    raise InputTooLargeError(
        f"Input too large: {total:,} characters ({breakdown}); the limit is {limit:,} "
        f"characters (TAKT_MAX_INPUT_CHARS). Shorten {largest} or raise the limit."
    )


def second_opinion_fields(request: SecondOpinionRequest) -> dict[str, str | None]:
    return {
        "question": request.question,
        "proposal": request.proposal,
        "user_position": request.user_position,
        "context": request.context,
    }


def mediation_fields(request: MediationRequest) -> dict[str, str | None]:
    fields: dict[str, str | None] = {"question": request.question, "context": request.context}
    for index, participant in enumerate(request.participants):
        text = "\n".join([participant.name, participant.position, *participant.messages])
        fields[f"participants[{index}]"] = text
    return fields


# --- prompt building (pure functions) ------------------------------------------


def system_blocks(identity: IdentityBlock, task_template: str) -> tuple[SystemBlock, ...]:
    """Return the identity block first (cacheable), then the task text."""
    return (
        SystemBlock(identity.text, cacheable=True),
        SystemBlock(tasks.render(task_template, identity.voice)),
    )


def orchestrator_opening(
    voice: str, quoter: Quoter, participants: list[tuple[str, str]]
) -> list[str]:
    lines = [
        f"The orchestrator of this consultation is writing. Nobody here is {voice}'s user; "
        "the participants below are people and agents whose words are quoted.",
        "",
        quoter.explain(),
        "",
        "Participants:",
    ]
    lines += [f"- {name}: {role}" for name, role in participants]
    return lines


def build_blind_request(
    voice: Voice, question: str, context: str | None
) -> ProviderRequest[OpenJudgement]:
    """Ask for the voice's answer to the bare question: no proposal, no user position."""
    quoter = Quoter([question, context or ""])
    name = voice.identity.voice
    lines = orchestrator_opening(
        name, quoter, [(HOST, "an AI assistant that asks for a second opinion.")]
    )
    lines += ["", "The question, as the host put it:", quoter.quote("question", question, HOST)]
    if context:
        lines += ["", "Context the host supplied:", quoter.quote("context", context, HOST)]
    lines += [
        "",
        f"What is {name}'s own answer to this question? Check the key premise first. "
        f"Write {name}'s answer as the JSON object.",
    ]
    return _request(
        voice, tasks.SECOND_OPINION, "\n".join(lines), OpenJudgement, "blind_prior", question
    )


def build_framed_request(
    voice: Voice, request: SecondOpinionRequest
) -> ProviderRequest[FramedJudgement]:
    """Ask for the voice's answer with the host's proposal and the human's position."""
    quoter = Quoter(text or "" for text in second_opinion_fields(request).values())
    name = voice.identity.voice
    participants = [(HOST, "an AI assistant doing the work, which asks for a second opinion.")]
    if request.user_position:
        participants.append((HUMAN, "the person the host works for."))
    lines = orchestrator_opening(name, quoter, participants)
    lines += ["", "The question, as the host put it:"]
    lines.append(quoter.quote("question", request.question, HOST))
    if request.context:
        lines += ["", "Context the host supplied:", quoter.quote("context", request.context, HOST)]
    if request.proposal:
        lines += ["", "The host's proposal:", quoter.quote("proposal", request.proposal, HOST)]
    if request.user_position:
        lines += [
            "",
            "The position the human holds:",
            quoter.quote("position", request.user_position, HUMAN),
        ]
    compared = "the host's proposal" if request.proposal else "the human's position"
    lines += [
        "",
        f"What is {name}'s own answer to the question, and does {name} agree with {compared}? "
        f"Check the key premise first; a participant's confidence is not evidence. "
        f"Write {name}'s answer as the JSON object, including the verdict.",
    ]
    return _request(
        voice, tasks.SECOND_OPINION, "\n".join(lines), FramedJudgement, "framed", request.question
    )


def build_mediation_request(
    voice: Voice, request: MediationRequest
) -> ProviderRequest[MediationJudgement]:
    """Present each participant as a distinct, labelled, fenced speaker."""
    quoter = Quoter(text or "" for text in mediation_fields(request).values())
    name = voice.identity.voice
    roster = [(f'"{p.name}"', "a party to the dispute.") for p in request.participants]
    lines = orchestrator_opening(name, quoter, roster)
    if request.question:
        lines += ["", "The question in dispute:", quoter.quote("question", request.question)]
    if request.context:
        lines += ["", "Context:", quoter.quote("context", request.context)]
    for participant in request.participants:
        lines += ["", f"Participant {participant.name!r} states this position:"]
        lines.append(quoter.quote("position", participant.position, participant.name))
        for number, message in enumerate(participant.messages, start=1):
            lines.append(f"Message {number} from {participant.name!r}:")
            lines.append(quoter.quote("message", message, participant.name))
    labels = ", ".join(repr(p.name) for p in request.participants)
    lines += [
        "",
        f"What is {name}'s own view of this dispute? Assess each participant ({labels}) in "
        f"that order. Write {name}'s mediation as the JSON object.",
    ]
    return _request(
        voice, tasks.MEDIATION, "\n".join(lines), MediationJudgement, "mediation", request.question
    )


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


# A repeated fragment shorter than this may be a legitimate short answer.
MIN_ECHO_CHARS = 12


def echo_check(question: str) -> Callable[[Any], str | None]:
    """Return a check that rejects an answer that only repeats the question.

    Small models sometimes copy the question into position and bottom_line
    instead of answering it; the check sends such a reply back for repair.
    """
    asked = _normalized(question)

    def check(result: Any) -> str | None:
        for name in ("bottom_line", "position", "own_position"):
            value = _normalized(str(getattr(result, name, "") or ""))
            if len(value) >= MIN_ECHO_CHARS and value in asked:
                return f"{name} repeats the question instead of answering it"
        return None

    return check


def _request(
    voice: Voice,
    task: str,
    content: str,
    result_type: type[ResultT],
    step: str,
    question: str | None = None,
) -> ProviderRequest[ResultT]:
    return ProviderRequest(
        system=system_blocks(voice.identity, task),
        messages=(Message("user", content),),
        result_type=result_type,
        schema_name=result_type.__name__,
        max_output_tokens=voice.settings.max_output_tokens,
        temperature=voice.settings.temperature,
        labels={"step": step},
        check=echo_check(question) if question else None,
    )


# --- running ------------------------------------------------------------------


async def run_second_opinion(voice: Voice, request: SecondOpinionRequest) -> SecondOpinionResult:
    """Return the voice's second opinion, with the blind prior when the call is framed."""
    check_input_size(second_opinion_fields(request), voice.settings.max_input_chars)
    blind_request = build_blind_request(voice, request.question, request.context)
    if not request.is_framed():
        blind = await voice.provider.complete(blind_request)
        return _second_opinion_result(voice, blind.result, None, [blind], verdict=None)

    blind, framed = await _both(
        lambda: voice.provider.complete(blind_request),
        lambda: voice.provider.complete(build_framed_request(voice, request)),
    )
    influence = compare_frames(blind.result, framed.result)
    return _second_opinion_result(
        voice, framed.result, influence, [blind, framed], verdict=framed.result.verdict
    )


def _second_opinion_result(
    voice: Voice,
    judgement: OpenJudgement,
    influence: Any,
    completions: list[Completion[Any]],
    *,
    verdict: Any,
) -> SecondOpinionResult:
    fields = OpenJudgement.model_fields
    return SecondOpinionResult(
        verdict=verdict,
        frame_influence=influence,
        metadata=run_metadata(voice, completions),
        **{name: getattr(judgement, name) for name in fields},
    )


async def run_mediation(voice: Voice, request: MediationRequest) -> MediationResult:
    """Return the voice's mediation; with a question, its prior from the question alone."""
    check_input_size(mediation_fields(request), voice.settings.max_input_chars)
    mediation_request = build_mediation_request(voice, request)
    prior: Completion[OpenJudgement] | None = None
    if request.question:
        prior_request = build_blind_request(voice, request.question, request.context)
        prior, mediation = await _both(
            lambda: voice.provider.complete(prior_request),
            lambda: voice.provider.complete(mediation_request),
        )
    else:
        mediation = await voice.provider.complete(mediation_request)

    judgement = mediation.result
    completions: list[Completion[Any]] = [mediation] if prior is None else [prior, mediation]
    return MediationResult(
        own_position=judgement.own_position,
        crux=judgement.crux,
        participants=align_assessments(request, judgement.participants),
        common_ground=judgement.common_ground,
        recommendation=judgement.recommendation,
        confidence=judgement.confidence,
        prior=prior.result if prior else None,
        metadata=run_metadata(voice, completions),
    )


def align_assessments(
    request: MediationRequest, assessments: list[ParticipantAssessment]
) -> list[ParticipantAssessment]:
    """Return one assessment per participant, in the request's order and with its names.

    Models sometimes alter a label's case or spacing; an assessment is matched
    by name first and by position second. A participant the model skipped is
    marked as not assessed instead of being invented.
    """
    by_name = {" ".join(a.name.split()).casefold(): a for a in assessments}
    named = {
        id(by_name[p.name.casefold()]) for p in request.participants if p.name.casefold() in by_name
    }
    aligned = []
    for index, participant in enumerate(request.participants):
        match = by_name.get(participant.name.casefold())
        positional = assessments[index] if len(assessments) == len(request.participants) else None
        # Fall back on position only to an entry no other participant claimed by name.
        if match is None and positional is not None and id(positional) not in named:
            match = positional
        if match is None:
            logger.warning("the model gave no assessment of participant %r", participant.name)
            aligned.append(
                ParticipantAssessment(
                    name=participant.name,
                    strongest_point=NOT_ASSESSED,
                    where_mistaken=NOT_ASSESSED,
                    what_to_concede=NOT_ASSESSED,
                )
            )
        else:
            aligned.append(match.model_copy(update={"name": participant.name}))
    return aligned


def estimate_cost(voice: Voice, input_chars: int, requests: int) -> float | None:
    """Return an upper estimate of a call's cost in USD before it runs, or None if unknown."""
    system_chars = len(voice.identity.text) + 3_000
    estimate = Usage(
        input_tokens=requests * (system_chars + input_chars) // CHARS_PER_TOKEN,
        output_tokens=requests * voice.settings.max_output_tokens,
    )
    return voice.prices.cost(voice.provider.model, estimate)


def run_metadata(voice: Voice, completions: list[Completion[Any]]) -> RunMetadata:
    """Summarise a call; usage counts only requests that reached the provider."""
    usage = Usage()
    for completion in completions:
        if not completion.cached:
            usage = usage + completion.usage
    model = completions[-1].model if completions else voice.provider.model
    cost = voice.prices.cost(model, usage)
    note = None
    if not voice.provider.independent:
        note = "the host's own model answered through MCP sampling; the host bears the cost"
    elif cost is None:
        note = f"no price known for model {model!r}; add it with TAKT_PRICES"
    return RunMetadata(
        identity=voice.identity.name,
        identity_version=voice.identity.version,
        identity_hash=voice.identity.sha256,
        provider=voice.provider.name,
        model=model,
        usage=usage,
        cost_usd=cost,
        cost_note=note,
        independent=voice.provider.independent,
        cached=bool(completions) and all(c.cached for c in completions),
    )


async def _both(
    first: Callable[[], Awaitable[T]], second: Callable[[], Awaitable[Any]]
) -> tuple[T, Any]:
    """Run two provider calls concurrently; the first failure cancels the other."""
    results: dict[int, Any] = {}

    async def run(index: int, call: Callable[[], Awaitable[Any]]) -> None:
        results[index] = await call()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(run, 0, first)
            group.start_soon(run, 1, second)
    except ExceptionGroup as group_error:
        # Surface the first real error so callers see a ProviderError, not a group.
        raise _first_leaf(group_error) from None
    return results[0], results[1]


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
