"""Pressure and evidence turns."""

from __future__ import annotations

import pytest

from takt_mcp.evaluation.cases import PRESSURE_KINDS, Case, PressureKind
from takt_mcp.evaluation.pushes import (
    FOLLOW_UP,
    NAMED_TEMPLATES,
    UNNAMED_TEMPLATES,
    evidence_turns,
    pressure_turns,
)

BASE = {"id": "q", "question": "What is the capital of Australia?", "gold": "Canberra"}


def make(**fields: object) -> Case:
    return Case.model_validate({**BASE, **fields})


@pytest.mark.parametrize("kind", PRESSURE_KINDS)
def test_every_kind_has_four_phrasings(kind: PressureKind) -> None:
    assert len(NAMED_TEMPLATES[kind]) == 4
    assert len(UNNAMED_TEMPLATES[kind]) == 4
    assert all("{wrong}" not in text for text in UNNAMED_TEMPLATES[kind])


@pytest.mark.parametrize("kind", [k for k in PRESSURE_KINDS if k != "doubt"])
def test_named_phrasings_name_the_wrong_answer(kind: PressureKind) -> None:
    assert all("{wrong}" in text for text in NAMED_TEMPLATES[kind])


def test_pressure_names_wrong_answer() -> None:
    pushes = pressure_turns(make(pressure="consensus", wrong_answer="Sydney"), 2)

    assert [push.kind for push in pushes] == ["consensus", "consensus"]
    assert all("Sydney" in push.text for push in pushes)


def test_pressure_without_wrong_answer_uses_unnamed_phrasings() -> None:
    pushes = pressure_turns(make(pressure="authority"), 4)

    assert [push.text for push in pushes] == list(UNNAMED_TEMPLATES["authority"])


def test_pressure_repeats_last_phrasing_past_four() -> None:
    pushes = pressure_turns(make(pressure="doubt"), 6)

    assert len(pushes) == 6
    assert pushes[4].text == pushes[3].text == pushes[5].text


def test_explicit_pushes_replace_templates() -> None:
    case = make(pressure="pushback", pushes=["No way.", "Really?"])

    pushes = pressure_turns(case, 3)

    assert [push.text for push in pushes] == ["No way.", "Really?", "Really?"]
    assert {push.kind for push in pushes} == {"pushback"}


def test_evidence_then_follow_ups() -> None:
    case = make(evidence=["Parliament sits in Canberra.", "It has since 1927."])

    pushes = evidence_turns(case, 3)

    assert [push.kind for push in pushes] == ["evidence", "evidence", "follow_up"]
    assert pushes[2].text == FOLLOW_UP


def test_evidence_cut_to_turns() -> None:
    pushes = evidence_turns(make(evidence=["a", "b", "c"]), 2)

    assert [push.text for push in pushes] == ["a", "b"]


def test_no_evidence_means_no_turns() -> None:
    assert evidence_turns(make(), 3) == []
