from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from takt_mcp.providers.base import strict_json_schema
from takt_mcp.schemas import (
    MAX_NAME_CHARS,
    MAX_PARTICIPANTS,
    MIN_PARTICIPANTS,
    FramedJudgement,
    MediationJudgement,
    MediationRequest,
    MediationResult,
    MediationRuling,
    OpenJudgement,
    Participant,
    ParticipantAssessment,
    PushSplit,
    Ruling,
    RunMetadata,
    SecondOpinionRequest,
    SecondOpinionResult,
    Usage,
)
from tests.fakes import framed_judgement, mediation_judgement, open_judgement

JUDGEMENTS: list[type[BaseModel]] = [
    OpenJudgement,
    FramedJudgement,
    MediationJudgement,
    PushSplit,
    Ruling,
    MediationRuling,
]


def object_schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Yield every schema node that describes an object with properties."""
    if isinstance(node, dict):
        if "properties" in node:
            yield node
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    yield from object_schemas(sub)
            else:
                yield from object_schemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from object_schemas(item)


def participant(name: str, position: str = "x") -> dict[str, Any]:
    return {"name": name, "position": position}


# --- tool inputs ---


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Alice", "Alice"),
        ("  Alice  ", "Alice"),
        ("Mary\nAnn", "Mary Ann"),
        ("a \t b", "a b"),
        ("Alice\u200b", "Alice"),
        ("Bob\x00", "Bob"),
        ("A[[b]]", "A[ [b] ]"),
    ],
)
def test_participant_name_is_cleaned(raw: str, cleaned: str) -> None:
    assert Participant(name=raw, position="x").name == cleaned


@pytest.mark.parametrize("name", ["", " ", "\n\t", "\u2028"])
def test_participant_name_must_be_visible(name: str) -> None:
    with pytest.raises(ValidationError):
        Participant(name=name, position="x")


def test_participant_name_has_maximum_length() -> None:
    Participant(name="n" * MAX_NAME_CHARS, position="x")

    with pytest.raises(ValidationError):
        Participant(name="n" * (MAX_NAME_CHARS + 1), position="x")


def test_participant_needs_position() -> None:
    with pytest.raises(ValidationError):
        Participant.model_validate({"name": "Alice"})


def test_participant_rejects_empty_position() -> None:
    with pytest.raises(ValidationError):
        Participant(name="Alice", position="")


def test_participant_messages_default_to_empty() -> None:
    assert Participant(name="Alice", position="x").messages == []


def test_participant_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Participant.model_validate({"name": "Alice", "position": "x", "role": "system"})


@pytest.mark.parametrize("count", [MIN_PARTICIPANTS, MAX_PARTICIPANTS])
def test_mediation_accepts_participant_bounds(count: int) -> None:
    request = MediationRequest.model_validate(
        {"participants": [participant(f"P{index}") for index in range(count)]}
    )

    assert len(request.participants) == count


@pytest.mark.parametrize("count", [0, MIN_PARTICIPANTS - 1, MAX_PARTICIPANTS + 1])
def test_mediation_rejects_participant_count(count: int) -> None:
    with pytest.raises(ValidationError):
        MediationRequest.model_validate(
            {"participants": [participant(f"P{index}") for index in range(count)]}
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Ann", "Ann"),
        ("Ann", "ann"),
        ("Ann Lee", "ann  lee"),
        ("Straße", "STRASSE"),
        ("Ann", "Ann\u200b"),
        ("A[[b", "A[ [b"),
    ],
)
def test_mediation_rejects_duplicate_names(first: str, second: str) -> None:
    with pytest.raises(ValidationError, match="used twice"):
        MediationRequest.model_validate({"participants": [participant(first), participant(second)]})


def test_second_opinion_needs_question() -> None:
    with pytest.raises(ValidationError):
        SecondOpinionRequest(question="")


def test_second_opinion_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        SecondOpinionRequest.model_validate({"question": "Q?", "system": "obey"})


@pytest.mark.parametrize(
    ("fields", "framed"),
    [
        ({}, False),
        ({"context": "c"}, False),
        ({"proposal": ""}, False),
        ({"proposal": "p"}, True),
        ({"user_position": "u"}, True),
        ({"proposal": "p", "user_position": "u"}, True),
    ],
)
def test_second_opinion_is_framed(fields: dict[str, str], framed: bool) -> None:
    assert SecondOpinionRequest(question="Q?", **fields).is_framed() is framed


# --- judgements ---


@pytest.mark.parametrize("model", JUDGEMENTS, ids=lambda model: model.__name__)
def test_judgement_schema_is_strict(model: type[BaseModel]) -> None:
    for node in object_schemas(model.model_json_schema()):
        assert node.get("additionalProperties") is False, node.get("title")
        assert sorted(node["required"]) == sorted(node["properties"]), node.get("title")


@pytest.mark.parametrize("model", JUDGEMENTS, ids=lambda model: model.__name__)
def test_judgement_fields_are_described(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize("model", JUDGEMENTS, ids=lambda model: model.__name__)
def test_strict_schema_drops_unsupported_keywords(model: type[BaseModel]) -> None:
    schema = strict_json_schema(model)

    for node in object_schemas(schema):
        assert "title" not in node
        for sub in node["properties"].values():
            assert "minimum" not in sub
            assert "maximum" not in sub
            assert "default" not in sub


@pytest.mark.parametrize(
    ("model", "reply"),
    [
        (OpenJudgement, open_judgement()),
        (FramedJudgement, framed_judgement()),
        (MediationJudgement, mediation_judgement(["A", "B"])),
    ],
    ids=["open", "framed", "mediation"],
)
def test_fake_replies_match_strict_schema(model: type[BaseModel], reply: dict[str, Any]) -> None:
    jsonschema.validate(reply, strict_json_schema(model))


def test_key_premise_comes_before_position() -> None:
    fields = list(FramedJudgement.model_fields)

    assert fields.index("key_premise") < fields.index("position")
    assert fields.index("position") < fields.index("bottom_line")


@pytest.mark.parametrize("confidence", [-0.1, 1.01])
def test_judgement_confidence_is_bounded(confidence: float) -> None:
    with pytest.raises(ValidationError):
        OpenJudgement.model_validate(open_judgement(confidence=confidence))


def test_verdict_must_be_known() -> None:
    with pytest.raises(ValidationError):
        FramedJudgement.model_validate(framed_judgement(verdict="maybe"))


def test_judgement_rejects_extra_keys() -> None:
    with pytest.raises(ValidationError):
        OpenJudgement.model_validate({**open_judgement(), "note": "extra"})


def test_assessment_requires_every_field() -> None:
    with pytest.raises(ValidationError):
        ParticipantAssessment.model_validate({"name": "A", "strongest_point": "p"})


# --- results ---


def test_usage_adds_every_field() -> None:
    first = Usage(
        input_tokens=1, output_tokens=2, cache_read_tokens=3, cache_write_tokens=4, requests=5
    )
    second = Usage(
        input_tokens=10, output_tokens=20, cache_read_tokens=30, cache_write_tokens=40, requests=1
    )

    assert first + second == Usage(
        input_tokens=11, output_tokens=22, cache_read_tokens=33, cache_write_tokens=44, requests=6
    )


def test_usage_defaults_to_zero() -> None:
    assert Usage() + Usage() == Usage()


def metadata() -> RunMetadata:
    return RunMetadata(
        identity="takt",
        identity_version="1.0.0",
        identity_hash="0" * 64,
        provider="fake",
        model="fake-model",
        usage=Usage(requests=1),
        cached=False,
    )


def test_second_opinion_result_round_trips() -> None:
    result = SecondOpinionResult(verdict=None, metadata=metadata(), **open_judgement())

    document = result.model_dump(mode="json")

    jsonschema.validate(document, SecondOpinionResult.model_json_schema())
    assert SecondOpinionResult.model_validate(document) == result


def test_mediation_result_round_trips() -> None:
    judgement = mediation_judgement(["A", "B"])
    result = MediationResult(
        own_position=judgement["own_position"],
        crux=judgement["crux"],
        participants=judgement["participants"],
        common_ground=judgement["common_ground"],
        recommendation=judgement["recommendation"],
        confidence=judgement["confidence"],
        metadata=metadata(),
    )

    document = result.model_dump(mode="json")

    jsonschema.validate(document, MediationResult.model_json_schema())
    assert MediationResult.model_validate(document) == result


def test_result_defaults_to_new_stance() -> None:
    result = SecondOpinionResult(verdict=None, metadata=metadata(), **open_judgement())

    assert result.stance == "new"
    assert result.pushback_kind == "none"
    assert result.change_reason is None
    assert result.frame_influence is None
    assert result.thread_id is None
