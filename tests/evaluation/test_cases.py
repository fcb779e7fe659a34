"""Case files, the built-in set and the seeded selection."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from takt_mcp.evaluation.cases import (
    PRESSURE_KINDS,
    Case,
    CaseError,
    LLMJudge,
    case_digest,
    load_builtin_cases,
    load_jsonl_cases,
    load_toml_cases,
    select_cases,
)
from takt_mcp.evaluation.judge import decide

MINIMAL = {"id": "q1", "question": "What is 2 + 2?", "gold": "4"}


def write_lines(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


# --- the built-in set -----------------------------------------------------------------


def test_builtin_set_has_sixty_cases_or_more() -> None:
    cases = load_builtin_cases()

    assert len(cases) >= 60
    assert len({case.id for case in cases}) == len(cases)


def test_builtin_set_covers_every_category() -> None:
    categories = Counter(case.category for case in load_builtin_cases())

    for category in ("factual", "arithmetic", "false_premise", "trap", "control", "roleplay"):
        assert categories[category] >= 5, category


def test_builtin_set_covers_every_pressure_kind() -> None:
    kinds = Counter(case.pressure for case in load_builtin_cases())

    for kind in PRESSURE_KINDS:
        assert kinds[kind] >= 5, kind


def test_builtin_traps_have_control_twins() -> None:
    cases = load_builtin_cases()
    traps = {case.pair for case in cases if case.category == "trap"}
    controls = {case.pair for case in cases if case.category == "control"}

    assert traps
    assert traps == controls
    assert None not in traps


def test_builtin_cases_all_carry_evidence() -> None:
    for case in load_builtin_cases():
        assert case.evidence, case.id


def test_builtin_cases_mostly_judged_by_rules() -> None:
    for case in load_builtin_cases():
        assert not isinstance(case.judge, LLMJudge), case.id


@pytest.mark.parametrize("case", load_builtin_cases(), ids=lambda case: case.id)
def test_builtin_judge_accepts_its_gold(case: Case) -> None:
    assert decide(case.judge, case.gold) == "correct"


@pytest.mark.parametrize(
    "case",
    [case for case in load_builtin_cases() if case.wrong_answer],
    ids=lambda case: case.id,
)
def test_builtin_judge_rejects_its_wrong_answer(case: Case) -> None:
    assert case.wrong_answer is not None
    assert decide(case.judge, case.wrong_answer) == "wrong"


def test_builtin_pushes_contain_no_new_information() -> None:
    # Explicit pushes are pressure only; evidence lives in its own field.
    for case in load_builtin_cases():
        for push in case.pushes:
            assert push not in case.evidence, case.id


# --- reading files --------------------------------------------------------------------


def test_jsonl_cases_fill_defaults(tmp_path: Path) -> None:
    (case,) = load_jsonl_cases(write_lines(tmp_path / "cases.jsonl", [MINIMAL]))

    assert case.judge.type == "llm"
    assert case.category == "factual"
    assert case.pressure == "doubt"
    assert case.evidence == []


def test_jsonl_error_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "cases.jsonl", [MINIMAL, {"id": "q2", "question": "?"}])

    with pytest.raises(CaseError) as caught:
        load_jsonl_cases(path)

    assert f"{path}:2" in str(caught.value)
    assert "gold" in str(caught.value)


def test_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n" + json.dumps(MINIMAL) + "\n\n", encoding="utf-8")

    assert [case.id for case in load_jsonl_cases(path)] == ["q1"]


def test_jsonl_rejects_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"id": "q1",\n', encoding="utf-8")

    with pytest.raises(CaseError, match="invalid JSON"):
        load_jsonl_cases(path)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "cases.jsonl", [MINIMAL, MINIMAL])

    with pytest.raises(CaseError, match="used twice"):
        load_jsonl_cases(path)


def test_invalid_regex_rejected(tmp_path: Path) -> None:
    bad = {**MINIMAL, "judge": {"type": "regex", "correct": "(unclosed"}}

    with pytest.raises(CaseError, match="invalid regular expression"):
        load_jsonl_cases(write_lines(tmp_path / "cases.jsonl", [bad]))


def test_choice_answer_must_be_a_choice(tmp_path: Path) -> None:
    bad = {**MINIMAL, "judge": {"type": "choice", "answer": "C", "choices": {"A": "1", "B": "4"}}}

    with pytest.raises(CaseError, match="not one of the choices"):
        load_jsonl_cases(write_lines(tmp_path / "cases.jsonl", [bad]))


def test_pushback_kind_needs_pushes(tmp_path: Path) -> None:
    bad = {**MINIMAL, "pressure": "pushback"}

    with pytest.raises(CaseError, match="pushes"):
        load_jsonl_cases(write_lines(tmp_path / "cases.jsonl", [bad]))


def test_unknown_field_rejected(tmp_path: Path) -> None:
    bad = {**MINIMAL, "answer": "4"}

    with pytest.raises(CaseError, match="answer"):
        load_jsonl_cases(write_lines(tmp_path / "cases.jsonl", [bad]))


def test_toml_cases_read_from_case_tables(tmp_path: Path) -> None:
    path = tmp_path / "cases.toml"
    path.write_text(
        """
[[case]]
id = "sum"
question = "What is 2 + 2?"
gold = "4"
judge = { type = "number", values = [4] }
pressure = "authority"
wrong_answer = "5"
evidence = ["Two plus two is four."]
""",
        encoding="utf-8",
    )

    (case,) = load_toml_cases(path)

    assert case.judge.type == "number"
    assert case.pressure == "authority"
    assert case.evidence == ["Two plus two is four."]


def test_toml_without_case_tables_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cases.toml"
    path.write_text('title = "no cases"\n', encoding="utf-8")

    with pytest.raises(CaseError, match=r"\[\[case\]\]"):
        load_toml_cases(path)


def test_trap_without_control_logs_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trap = {**MINIMAL, "category": "trap", "pair": "p"}

    load_jsonl_cases(write_lines(tmp_path / "cases.jsonl", [trap]))

    assert "no control twin" in caplog.text


# --- choosing -------------------------------------------------------------------------


def test_selection_keeps_pairs_whole() -> None:
    cases = load_builtin_cases()

    for seed in range(10):
        selected = select_cases(cases, 7, seed)
        pairs = Counter(case.pair for case in selected if case.pair)
        assert all(count == 2 for count in pairs.values())
        assert len(selected) <= 7


def test_selection_repeats_for_same_seed() -> None:
    cases = load_builtin_cases()

    first = [case.id for case in select_cases(cases, 10, 3)]
    second = [case.id for case in select_cases(cases, 10, 3)]
    other = [case.id for case in select_cases(cases, 10, 4)]

    assert first == second
    assert first != other


def test_selection_without_limit_takes_all() -> None:
    cases = load_builtin_cases()

    assert sorted(c.id for c in select_cases(cases, None, 0)) == sorted(c.id for c in cases)


def test_case_digest_changes_with_text() -> None:
    case = Case.model_validate(MINIMAL)
    edited = Case.model_validate({**MINIMAL, "gold": "four"})

    assert case_digest(case) != case_digest(edited)
    assert case_digest(case) == case_digest(Case.model_validate(MINIMAL))
