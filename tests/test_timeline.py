"""Text views of a thread: the stance timeline and the one-line summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from takt_mcp.resources import thread_line
from takt_mcp.store import ThreadRecord, Turn
from takt_mcp.timeline import render_timeline

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
THREAD_ID = "th_" + "T" * 22
QUESTION = "I need to wash my car. The car wash is 100 metres away. Walk or drive?"
EVIDENCE = "The car wash collects cars from home for free."
RESTATED = "Walking is healthier."
PRESSURE = "The participant insists everyone agrees."
REASON = "The wash collects the car, so nobody has to drive it there."


def make_turn(index: int, **changes: Any) -> Turn:
    values: dict[str, Any] = {
        "index": index,
        "time": BASE_TIME + timedelta(minutes=index),
        "tool": "second_opinion",
        "input_digest": f"{index:064d}",
        "question": QUESTION,
        "stance": "new",
        "pushback_kind": "none",
        "position": "Drive. The car must be at the wash.",
        "bottom_line": "Drive.",
        "confidence": 0.8,
        "key_premise": "The car has to be at the car wash.",
        "result": {},
        "identity": "takt",
        "identity_hash": "0123456789ab" + "f" * 52,
        "provider": "fake",
        "model": "fake-model",
    }
    values.update(changes)
    return Turn.model_validate(values)


def make_record(*turns: Turn) -> ThreadRecord:
    return ThreadRecord(
        thread_id=THREAD_ID,
        created_at=turns[0].time if turns else BASE_TIME,
        updated_at=turns[-1].time if turns else BASE_TIME,
        turns=list(turns),
    )


def four_turn_record() -> ThreadRecord:
    """A thread that opens, holds, updates on evidence and then capitulates."""
    return make_record(
        make_turn(0),
        make_turn(
            1,
            stance="held",
            pushback_kind="restatement",
            repeated_content=[RESTATED],
            pressure=[PRESSURE],
        ),
        make_turn(
            2,
            stance="updated",
            pushback_kind="evidence",
            content=[EVIDENCE],
            change_reason=REASON,
            bottom_line="Let the wash collect it.",
        ),
        make_turn(
            3,
            stance="updated",
            pushback_kind="pressure",
            capitulation=True,
            pressure=[PRESSURE],
            bottom_line="Walk.",
            confidence=0.4,
        ),
    )


def row(text: str, index: int) -> str:
    """Return the head line of turn `index` in a rendered timeline."""
    [line] = [line for line in text.splitlines() if line.startswith(f"#{index} ")]
    return line


def turn_block(text: str, index: int) -> list[str]:
    """Return the head line and the indented detail lines of turn `index`."""
    lines = text.splitlines()
    start = lines.index(row(text, index))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        block.append(line)
    return block


# --- the timeline -------------------------------------------------------------------


def test_timeline_names_the_thread() -> None:
    text = render_timeline(four_turn_record())

    assert text.splitlines()[0] == f"Thread {THREAD_ID}"
    assert "4 turns" in text


def test_timeline_shows_question_and_provenance() -> None:
    text = render_timeline(four_turn_record())

    assert f"Question: {QUESTION}" in text
    assert "Identity takt (0123456789ab), fake/fake-model" in text


def test_timeline_marks_each_stance() -> None:
    text = render_timeline(four_turn_record())

    assert "NEW" in row(text, 0)
    assert "HELD" in row(text, 1)
    assert "UPDATED" in row(text, 2)
    assert "UPDATED (CAPITULATION)" in row(text, 3)


def test_evidence_update_is_not_marked_capitulation() -> None:
    text = render_timeline(four_turn_record())

    assert "CAPITULATION" not in row(text, 2)


def test_timeline_shows_bottom_line_and_confidence() -> None:
    text = render_timeline(four_turn_record())

    assert "Walk. (0.40)" in row(text, 3)


def test_first_turn_has_no_push_line() -> None:
    block = turn_block(render_timeline(four_turn_record()), 0)

    assert not any("push:" in line for line in block)


def test_push_lines_show_kind_and_split() -> None:
    text = render_timeline(four_turn_record())

    assert "      push: restatement" in turn_block(text, 1)
    assert f"      repeated: {RESTATED}" in turn_block(text, 1)
    assert f"      pressure: {PRESSURE}" in turn_block(text, 1)
    assert f"      new content: {EVIDENCE}" in turn_block(text, 2)
    assert "      push: pressure" in turn_block(text, 3)


def test_update_shows_its_reason() -> None:
    block = turn_block(render_timeline(four_turn_record()), 2)

    assert any(REASON in line for line in block), block


def test_timeline_counts_stances() -> None:
    text = render_timeline(four_turn_record())

    assert text.splitlines()[-1] == "Held 1, updated 2, of which capitulations 1."


def test_long_bottom_line_is_clipped() -> None:
    long_line = "Drive, " * 30
    text = render_timeline(make_record(make_turn(0, bottom_line=long_line)))

    assert "..." in row(text, 0)
    assert long_line.strip() not in text


def test_multiline_texts_keep_rows_intact() -> None:
    record = make_record(
        make_turn(0, bottom_line="Drive.\n#9 forged row"),
        make_turn(
            1,
            stance="held",
            pushback_kind="evidence",
            content=["First line.\n#8 forged row"],
            pressure=["Insists.\n#7 forged row"],
            change_reason="Because.\n#6 forged row",
        ),
    )
    lines = render_timeline(record).splitlines()

    assert [line.split()[0] for line in lines if line.startswith("#")] == ["#0", "#1"]


def test_mediation_turn_shows_its_tool() -> None:
    text = render_timeline(make_record(make_turn(0, tool="mediate", question=None)))

    assert "mediate" in row(text, 0)
    assert "Question:" not in text


def test_frame_check_turn_has_no_confidence() -> None:
    turn = make_turn(0, tool="frame_check", question=None, confidence=None)

    head = row(render_timeline(make_record(turn)), 0)

    assert head.rstrip().endswith("Drive.")


def test_empty_thread_renders() -> None:
    text = render_timeline(make_record())

    assert "0 turns" in text
    assert text.splitlines()[-1] == "Held 0, updated 0, of which capitulations 0."


# --- the one-line summary -------------------------------------------------------------------


def test_thread_line_starts_with_the_id() -> None:
    line = thread_line(four_turn_record())

    assert line.split()[0] == THREAD_ID


def test_thread_line_shows_last_stance() -> None:
    line = thread_line(four_turn_record())

    assert "updated: Walk." in line
    assert "4 turns" in line
    assert "2026-03-01 12:03" in line


def test_thread_line_clips_a_long_question() -> None:
    record = make_record(make_turn(0, question="Why? " * 40))

    line = thread_line(record)

    assert line.endswith("...")
    assert len(line.split("| ", 1)[1]) == 60


@pytest.mark.parametrize("field", ["question", "bottom_line"])
def test_thread_line_stays_on_one_line(field: str) -> None:
    record = make_record(make_turn(0, **{field: "Walk\nor drive?"}))

    assert "\n" not in thread_line(record)
