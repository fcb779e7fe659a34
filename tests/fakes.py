"""A fake provider that records every request and replies from a script."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from pydantic import BaseModel

from takt_mcp.providers.base import Completion, ProviderError, ProviderRequest, ResultT
from takt_mcp.schemas import (
    FrameAudit,
    FramedJudgement,
    MediationJudgement,
    OpenJudgement,
    ParticipantAssessment,
    Usage,
)

Reply = BaseModel | dict[str, Any] | Exception
Responder = Callable[[ProviderRequest[Any]], Reply]


def open_judgement(bottom_line: str = "Drive.", confidence: float = 0.8) -> dict[str, Any]:
    return {
        "key_premise": "The car has to be at the car wash.",
        "unsupported_premises": ["Walking is the healthy default."],
        "reasons": ["You cannot wash a car that stays at home."],
        "position": f"{bottom_line} The car must be at the wash to be washed.",
        "bottom_line": bottom_line,
        "confidence": confidence,
        "alternatives": ["Use a mobile car-wash service."],
        "would_change_my_mind": ["The wash collects cars from home."],
    }


def framed_judgement(
    bottom_line: str = "Drive.", verdict: str = "disagree", confidence: float = 0.8
) -> dict[str, Any]:
    return {**open_judgement(bottom_line, confidence), "verdict": verdict}


def mediation_judgement(names: list[str]) -> dict[str, Any]:
    return {
        "crux": "Whether the deadline can move.",
        "participants": [
            {
                "name": name,
                "strongest_point": f"{name} has a point.",
                "where_mistaken": "nowhere",
                "what_to_concede": "Some ground.",
            }
            for name in names
        ],
        "common_ground": ["Both want the project to ship."],
        "own_position": "Ship the smaller scope on time.",
        "recommendation": "Agree the scope today.",
        "confidence": 0.7,
    }


def frame_audit(
    bottom_line: str = "Check the premise first.", frame_adoption: float = 0.5
) -> dict[str, Any]:
    return {
        "first_check": "Whether the premise the plan rests on is true.",
        "adopted_premises": [],
        "capitulations": [],
        "reference_answer": f"{bottom_line} Nothing in the conversation supports it yet.",
        "bottom_line": bottom_line,
        "frame_adoption": frame_adoption,
        "frame_adoption_rationale": "The assistant elaborated before checking.",
        "severity": "medium",
    }


def default_reply(request: ProviderRequest[Any]) -> Reply:
    """Return a valid judgement of the requested type."""
    if request.result_type is FramedJudgement:
        return framed_judgement()
    if request.result_type is OpenJudgement:
        return open_judgement()
    if request.result_type is MediationJudgement:
        # Participant names are listed in the prompt's closing question.
        return mediation_judgement(["A", "B"])
    if request.result_type is FrameAudit:
        return frame_audit()
    raise AssertionError(f"no default reply for {request.result_type.__name__}")


class FakeProvider:
    """Records each request; replies come from a responder function."""

    name = "fake"
    independent = True

    def __init__(
        self,
        responder: Responder = default_reply,
        *,
        model: str = "fake-model",
        delay: float = 0.0,
    ) -> None:
        self.responder = responder
        self.model = model
        self.delay = delay
        self.requests: list[ProviderRequest[Any]] = []
        self.closed = False

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        self.requests.append(request)
        if self.delay:
            await anyio.sleep(self.delay)
        reply = self.responder(request)
        if isinstance(reply, Exception):
            raise reply
        data = reply.model_dump() if isinstance(reply, BaseModel) else reply
        result = request.result_type.model_validate(data)
        usage = Usage(input_tokens=100, output_tokens=50, requests=1)
        return Completion(result=result, usage=usage, model=self.model, raw_text=str(data))

    async def aclose(self) -> None:
        self.closed = True


def failing(error: ProviderError) -> Responder:
    def responder(request: ProviderRequest[Any]) -> Reply:
        return error

    return responder


__all__ = [
    "FakeProvider",
    "ParticipantAssessment",
    "default_reply",
    "failing",
    "frame_audit",
    "framed_judgement",
    "mediation_judgement",
    "open_judgement",
]
