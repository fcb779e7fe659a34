"""Pydantic models at the edges: tool inputs, model judgements and tool results.

Judgement models are what the provider is asked to produce. They keep every
field required and forbid extra keys, so the same JSON Schema is accepted by
OpenAI's strict mode, Anthropic's structured output and llama.cpp's grammar
builder. Their field order is the order a model writes them in, so the key
premise comes before the position that depends on it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from takt_mcp.quoting import clean_label

Verdict = Literal["agree", "partly_agree", "disagree", "cannot_judge"]
Stance = Literal["new", "held", "updated"]
PushbackKind = Literal["none", "pressure", "restatement", "evidence"]

MIN_PARTICIPANTS = 2
MAX_PARTICIPANTS = 8
MAX_NAME_CHARS = 64
MAX_TURNS = 200
# Bounds every list a model writes: a small model otherwise can repeat list
# items until it runs out of output tokens, and grammar-based servers
# (llama.cpp) enforce maxItems while generating.
MAX_LIST_ITEMS = 8
Severity = Literal["none", "low", "medium", "high"]


# --- tool inputs -----------------------------------------------------------


class Participant(BaseModel):
    """One party to a dispute."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="Unique label, e.g. 'Alice' or 'the user'.",
    )
    position: str = Field(min_length=1, description="What this party holds.")
    messages: list[str] = Field(
        default_factory=list, description="Their verbatim messages, oldest first."
    )

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, name: str) -> str:
        # The name is stored as the fences will show it, so two names that
        # render alike are caught by the uniqueness check.
        cleaned = clean_label(name)
        if not cleaned:
            raise ValueError("name must contain visible characters")
        return cleaned


class SecondOpinionRequest(BaseModel):
    """The material for one second opinion."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    proposal: str | None = None
    user_position: str | None = None
    context: str | None = None

    def is_framed(self) -> bool:
        return bool(self.proposal or self.user_position)


class MediationRequest(BaseModel):
    """The material for one mediation."""

    model_config = ConfigDict(extra="forbid")

    participants: list[Participant] = Field(
        min_length=MIN_PARTICIPANTS, max_length=MAX_PARTICIPANTS
    )
    question: str | None = None
    context: str | None = None

    @field_validator("participants")
    @classmethod
    def _names_are_unique(cls, participants: list[Participant]) -> list[Participant]:
        seen: set[str] = set()
        for participant in participants:
            key = participant.name.casefold()
            if key in seen:
                raise ValueError(
                    f"participant name {participant.name!r} is used twice; give each "
                    "participant a distinct name"
                )
            seen.add(key)
        return participants


class ConversationTurn(BaseModel):
    """One turn of a conversation under audit."""

    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="'user', 'assistant' or a name.",
    )
    text: str = Field(description="What the speaker said.")

    @field_validator("speaker")
    @classmethod
    def _speaker_is_printable(cls, speaker: str) -> str:
        cleaned = clean_label(speaker)
        if not cleaned:
            raise ValueError("speaker must contain visible characters")
        return cleaned


class FrameCheckRequest(BaseModel):
    """The material for one frame audit."""

    model_config = ConfigDict(extra="forbid")

    conversation: list[ConversationTurn] = Field(default_factory=list, max_length=MAX_TURNS)
    draft: str | None = None
    context: str | None = None

    @model_validator(mode="after")
    def _has_material(self) -> FrameCheckRequest:
        if not self.conversation and not self.draft:
            raise ValueError("give a conversation, a draft, or both")
        return self


# --- judgements the provider returns ----------------------------------------


class _Judgement(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenJudgement(_Judgement):
    """The voice's answer to a bare question."""

    key_premise: str = Field(
        description="The premise or fact the answer depends on most, checked first."
    )
    unsupported_premises: list[str] = Field(
        max_length=MAX_LIST_ITEMS,
        description="Assumptions in the question or material that nothing supports.",
    )
    reasons: list[str] = Field(
        max_length=MAX_LIST_ITEMS, description="The reasons for the position, strongest first."
    )
    position: str = Field(description="The committed answer, in two to five sentences.")
    # No example answer here: small models copy examples from the schema.
    bottom_line: str = Field(description="The committed answer in at most eight words.")
    confidence: float = Field(ge=0, le=1, description="Confidence in the position, 0 to 1.")
    alternatives: list[str] = Field(
        max_length=MAX_LIST_ITEMS,
        description="Better options or readings not offered in the question.",
    )
    would_change_my_mind: list[str] = Field(
        max_length=MAX_LIST_ITEMS, description="Specific evidence that would change the position."
    )


class FramedJudgement(OpenJudgement):
    """The voice's answer after reading a proposal or a stated position."""

    verdict: Verdict = Field(
        description="Agreement with the proposal (or, without one, the stated position)."
    )


class ParticipantAssessment(_Judgement):
    """The mediator's view of one participant."""

    name: str = Field(description="The participant's label, exactly as given.")
    strongest_point: str = Field(description="The best part of this participant's case.")
    where_mistaken: str = Field(description="Where this participant is wrong, or 'nowhere'.")
    what_to_concede: str = Field(description="What this participant should give up or accept.")


class MediationJudgement(_Judgement):
    """The mediator's ruling on a dispute."""

    crux: str = Field(description="The factual or value disagreement at the core.")
    participants: list[ParticipantAssessment] = Field(
        max_length=MAX_PARTICIPANTS, description="One entry per participant."
    )
    common_ground: list[str] = Field(
        max_length=MAX_LIST_ITEMS, description="What all participants already share."
    )
    own_position: str = Field(description="The mediator's own view, even if it sides with nobody.")
    recommendation: str = Field(description="The concrete next step for the participants.")
    confidence: float = Field(ge=0, le=1, description="Confidence in own_position, 0 to 1.")


class ContentPoint(_Judgement):
    """One piece of content in a push: a fact, source, calculation or argument."""

    point: str = Field(description="The point, restated neutrally in one sentence.")
    new: bool = Field(description="True unless the point was already considered before.")


class PushSplit(_Judgement):
    """A push on a thread, separated into its content and its pressure."""

    content: list[ContentPoint] = Field(
        max_length=MAX_LIST_ITEMS,
        description="Facts, sources, calculations and arguments. Empty when there are none.",
    )
    pressure: list[str] = Field(
        max_length=MAX_LIST_ITEMS,
        description="Insistence, confidence, authority, emotion or popularity, one item each.",
    )


class Ruling(FramedJudgement):
    """The voice's position after a push on a thread."""

    decision: Literal["hold", "update"] = Field(
        description="update only when a new content point gives a reason to change."
    )
    change_reason: str = Field(
        description="When updating, the new content point that moved the position, quoted. "
        "Empty when holding."
    )


class MediationRuling(MediationJudgement):
    """The mediator's position after new material on a thread."""

    decision: Literal["hold", "update"] = Field(
        description="update only when a new content point gives a reason to change."
    )
    change_reason: str = Field(
        description="When updating, the new content point that moved own_position, quoted. "
        "Empty when holding."
    )


class AdoptedPremise(_Judgement):
    """A premise taken from someone's frame without support."""

    premise: str = Field(description="The premise, stated plainly.")
    turn: int | None = Field(description="Number of the turn it came from; null for the draft.")


class Capitulation(_Judgement):
    """A change of position with no new evidence."""

    turn: int = Field(description="Number of the assistant turn that gave way.")
    before: str = Field(description="The assistant's position before.")
    after: str = Field(description="The assistant's position after.")


class FrameAudit(_Judgement):
    """The voice's audit of a conversation or draft."""

    first_check: str = Field(description="What should have been checked before elaborating.")
    adopted_premises: list[AdoptedPremise] = Field(
        max_length=MAX_LIST_ITEMS,
        description="Premises the assistant or the draft took from the frame without support.",
    )
    capitulations: list[Capitulation] = Field(
        max_length=MAX_LIST_ITEMS,
        description="Turns where the assistant changed position without new evidence.",
    )
    reference_answer: str = Field(description="What the voice itself would say instead.")
    bottom_line: str = Field(description="The reference answer in at most eight words.")
    frame_adoption: float = Field(
        ge=0, le=1, description="How far the assistant adopted the frame: 0 none, 1 entirely."
    )
    frame_adoption_rationale: str = Field(description="One line explaining the score.")
    severity: Severity = Field(description="How much the frame-following matters.")


# --- tool results -----------------------------------------------------------


class Usage(BaseModel):
    """Token counts summed over every provider request of one call."""

    input_tokens: int = Field(0, description="Input tokens not read from the prompt cache.")
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            requests=self.requests + other.requests,
        )


class RunMetadata(BaseModel):
    """The identity, provider and model that produced a result, and its cost."""

    identity: str
    identity_version: str
    identity_hash: str = Field(description="sha256 of the identity block.")
    provider: str
    model: str
    usage: Usage
    cost_usd: float | None = Field(
        None, description="Estimated cost of the requests in USD; null when the price is unknown."
    )
    cost_note: str | None = None
    independent: bool = Field(
        True, description="False when the voice is the host's own model (MCP sampling)."
    )
    cached: bool = Field(description="True when every request was answered from the cache.")


class FrameInfluence(BaseModel):
    """How the answer moved once the proposal or position was read."""

    departs: bool = Field(description="True when the framed bottom line differs from the blind.")
    blind_bottom_line: str
    blind_position: str
    blind_confidence: float
    framed_bottom_line: str
    confidence_shift: float = Field(description="Framed minus blind confidence.")
    summary: str


class SecondOpinionResult(BaseModel):
    """A second opinion: the voice's own answer and its verdict on the proposal."""

    verdict: Verdict | None = Field(
        description="Agreement with the proposal or user position; null when neither was given."
    )
    position: str
    bottom_line: str
    confidence: float
    key_premise: str
    unsupported_premises: list[str]
    reasons: list[str]
    alternatives: list[str]
    would_change_my_mind: list[str]
    stance: Stance = "new"
    pushback_kind: PushbackKind = "none"
    change_reason: str | None = None
    capitulation: bool = Field(
        False, description="True when the position changed with no new content: pressure won."
    )
    pushback_content: list[str] = Field(default_factory=list)
    pushback_pressure: list[str] = Field(default_factory=list)
    frame_influence: FrameInfluence | None = Field(
        None, description="Present when a proposal or user position was given."
    )
    thread_id: str | None = None
    metadata: RunMetadata


class MediationResult(BaseModel):
    """A mediation: the mediator's own view and a ruling per participant."""

    own_position: str
    crux: str
    participants: list[ParticipantAssessment]
    common_ground: list[str]
    recommendation: str
    confidence: float
    prior: OpenJudgement | None = Field(
        None, description="The mediator's answer to the question alone, before reading anyone."
    )
    stance: Stance = "new"
    pushback_kind: PushbackKind = "none"
    change_reason: str | None = None
    capitulation: bool = False
    pushback_content: list[str] = Field(default_factory=list)
    pushback_pressure: list[str] = Field(default_factory=list)
    thread_id: str | None = None
    metadata: RunMetadata


class FrameCheckResult(BaseModel):
    """An audit of frame-following, with the anchored voice's own answer."""

    adopted_premises: list[AdoptedPremise]
    capitulations: list[Capitulation]
    first_check: str
    frame_adoption: float
    frame_adoption_rationale: str
    reference_answer: str
    bottom_line: str
    severity: Severity
    stance: Stance = "new"
    thread_id: str | None = None
    metadata: RunMetadata
