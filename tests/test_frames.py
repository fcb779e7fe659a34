from __future__ import annotations

import pytest

from takt_mcp.frames import bottom_lines_agree, compare_frames
from takt_mcp.schemas import OpenJudgement
from tests.fakes import open_judgement


def judgement(bottom_line: str, confidence: float = 0.8) -> OpenJudgement:
    return OpenJudgement.model_validate(open_judgement(bottom_line, confidence))


@pytest.mark.parametrize(
    ("first", "second", "agree"),
    [
        ("Drive.", "Drive the car.", True),
        ("Drive.", "drive", True),
        ("Yes, drive the car.", "Drive.", True),
        ("Walk.", "Drive.", False),
        ("Walk there.", "Drive there.", False),
        ("Drive.", "Don't drive.", False),
        ("Drive.", "Do not drive.", False),
        ("Drive.", "Never drive.", False),
        ("You should not walk.", "You should walk.", False),
        ("Canberra.", "It is Canberra.", True),
        ("Canberra.", "The capital is Canberra.", True),
        ("No, it is Canberra.", "No, Canberra.", True),
        ("Sydney.", "No, it is Canberra.", False),
        ("Yes, Sydney.", "No, it is Canberra.", False),
        ("Sydney.", "Canberra.", False),
        ("", "", True),
        ("The.", "It.", True),
        ("The.", "Drive.", False),
    ],
)
def test_bottom_lines_agree_table(first: str, second: str, agree: bool) -> None:
    assert bottom_lines_agree(first, second) is agree


@pytest.mark.parametrize(
    ("first", "second"),
    [("Drive.", "Drive the car."), ("Walk.", "Drive."), ("Drive.", "Don't drive.")],
)
def test_bottom_lines_agree_is_symmetric(first: str, second: str) -> None:
    assert bottom_lines_agree(first, second) is bottom_lines_agree(second, first)


def test_answer_no_is_not_a_negation() -> None:
    assert bottom_lines_agree("Canberra.", "No, it is Canberra.")


def test_compare_frames_reports_changed_answer() -> None:
    influence = compare_frames(judgement("Drive.", 0.9), judgement("Walk.", 0.6))

    assert influence.departs
    assert influence.blind_bottom_line == "Drive."
    assert influence.framed_bottom_line == "Walk."
    assert influence.blind_confidence == 0.9
    assert influence.confidence_shift == -0.3
    assert influence.summary.startswith("The framing changed the answer")
    assert "'Drive.'" in influence.summary
    assert "'Walk.'" in influence.summary


def test_compare_frames_keeps_blind_position() -> None:
    blind = judgement("Drive.")

    influence = compare_frames(blind, judgement("Walk."))

    assert influence.blind_position == blind.position


def test_compare_frames_reports_same_answer() -> None:
    influence = compare_frames(judgement("Drive.", 0.8), judgement("Drive the car.", 0.75))

    assert not influence.departs
    assert influence.confidence_shift == -0.05
    assert influence.summary.startswith("The framing did not change the answer")


@pytest.mark.parametrize(
    ("blind", "framed", "direction"),
    [(0.5, 0.7, "raised"), (0.6, 0.8, "raised"), (0.9, 0.6, "lowered"), (0.8, 0.6, "lowered")],
)
def test_compare_frames_reports_confidence_shift(
    blind: float, framed: float, direction: str
) -> None:
    influence = compare_frames(judgement("Drive.", blind), judgement("Drive.", framed))

    assert not influence.departs
    assert influence.confidence_shift == round(framed - blind, 3)
    assert f"framing {direction} confidence" in influence.summary
    assert f"{blind:.2f} to {framed:.2f}" in influence.summary


def test_compare_frames_ignores_small_confidence_shift() -> None:
    influence = compare_frames(judgement("Drive.", 0.8), judgement("Drive.", 0.65))

    assert "did not change" in influence.summary
