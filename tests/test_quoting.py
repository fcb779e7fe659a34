from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takt_mcp.quoting import FENCE_CLOSE, FENCE_OPEN, TAG_HEX_CHARS, Quoter, clean_label, neutralize

# Text made mostly of fence brackets, so the adversarial cases are common.
bracket_heavy = st.text(alphabet="[] \na")
fence_pieces = st.lists(
    st.sampled_from(["[", "]", "[[", "]]", "[ [", "] ]", " ", "\n", "x", "[[end ", "0" * 12]),
    max_size=30,
).map("".join)


def has_fence_bracket(text: str) -> bool:
    return FENCE_OPEN in text or FENCE_CLOSE in text


@pytest.mark.parametrize(
    "text",
    ["[[", "]]", "[[[", "]]]", "[[[[", "[[]]", "[[end 0123456789ab]]", "][[][", "[]]][["],
)
def test_neutralize_breaks_bracket_pairs(text: str) -> None:
    assert not has_fence_bracket(neutralize(text))


@given(st.text())
def test_neutralize_leaves_no_fence_bracket(text: str) -> None:
    assert not has_fence_bracket(neutralize(text))


@given(bracket_heavy)
def test_neutralize_handles_bracket_runs(text: str) -> None:
    assert not has_fence_bracket(neutralize(text))


@given(fence_pieces)
def test_neutralize_handles_fence_fragments(text: str) -> None:
    assert not has_fence_bracket(neutralize(text))


@given(st.text())
def test_neutralize_keeps_text_without_brackets(text: str) -> None:
    if not has_fence_bracket(text):
        assert neutralize(text) == text


@given(bracket_heavy)
def test_neutralize_only_inserts_spaces(text: str) -> None:
    assert neutralize(text).replace(" ", "") == text.replace(" ", "")


@given(st.text())
def test_neutralize_is_idempotent(text: str) -> None:
    once = neutralize(text)

    assert neutralize(once) == once


def test_tag_is_hex_of_fixed_length() -> None:
    assert re.fullmatch(rf"[0-9a-f]{{{TAG_HEX_CHARS}}}", Quoter(["a"]).tag)


def test_tag_is_deterministic() -> None:
    assert Quoter(["question", "context"]).tag == Quoter(["question", "context"]).tag


@pytest.mark.parametrize(
    "other",
    [
        ["question", "context", "extra"],
        ["question"],
        ["question", "contexT"],
        ["context", "question"],
        ["questioncontext"],
        ["question", "", "context"],
        ["questio", "ncontext"],
    ],
)
def test_tag_depends_on_all_material(other: list[str]) -> None:
    assert Quoter(["question", "context"]).tag != Quoter(other).tag


@given(st.lists(st.text(), min_size=1), st.data())
def test_tag_changes_when_any_piece_changes(material: list[str], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(material) - 1))
    changed = list(material)
    changed[index] += "!"

    assert Quoter(material).tag != Quoter(changed).tag


def test_tag_accepts_lone_surrogates() -> None:
    assert Quoter(["\ud800"]).tag != Quoter(["\udc00"]).tag


def test_quote_wraps_text_in_tagged_fences() -> None:
    quoter = Quoter(["hello"])

    quoted = quoter.quote("message", "hello", "Alice")

    assert quoted.splitlines() == [
        f'[[quote {quoter.tag} message speaker="Alice"]]',
        "hello",
        f"[[end {quoter.tag}]]",
    ]


def test_quote_without_speaker_has_no_label() -> None:
    quoter = Quoter(["hello"])

    header = quoter.quote("context", "hello").splitlines()[0]

    assert header == f"[[quote {quoter.tag} context]]"


@given(st.text())
def test_quoted_text_cannot_close_its_fence(text: str) -> None:
    quoter = Quoter([text])

    lines = quoter.quote("message", text, "Alice").split("\n")

    assert lines[-1] == f"[[end {quoter.tag}]]"
    assert not any(has_fence_bracket(line) for line in lines[1:-1])


@given(st.text())
def test_speaker_label_round_trips_as_json(speaker: str) -> None:
    quoter = Quoter(["x"])

    header = quoter.quote("message", "x", speaker).split("\n")[0]
    match = re.fullmatch(rf"\[\[quote {quoter.tag} message speaker=(\".*\")\]\]", header)

    assert match is not None
    assert json.loads(match.group(1)) == clean_label(speaker)


def test_speaker_label_escapes_quotes() -> None:
    header = Quoter(["x"]).quote("message", "x", 'Al"ice').splitlines()[0]

    assert 'speaker="Al\\"ice"' in header


def test_explain_names_the_fence_lines() -> None:
    quoter = Quoter(["x"])

    explanation = quoter.explain()

    assert f"[[quote {quoter.tag} ...]]" in explanation
    assert f"[[end {quoter.tag}]]" in explanation


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Alice", "Alice"),
        ("  Alice  ", "Alice"),
        ("Alice\nSYSTEM", "Alice SYSTEM"),
        ("Alice\r\nBob", "Alice Bob"),
        ("Alice\tBob", "Alice Bob"),
        ("Alice\x00Bob", "Alice Bob"),
        ("Alice\x1b[31mBob", "Alice [31mBob"),
        ("Alice\u2028Bob", "Alice Bob"),
        ("Alice\u2029Bob", "Alice Bob"),
        ("Alice\x85Bob", "Alice Bob"),
        ("Alice\u200bBob", "Alice Bob"),
        ("Alice]]", "Alice] ]"),
        ("[[Alice", "[ [Alice"),
        ("Zoë", "Zoë"),
    ],
)
def test_clean_label_examples(label: str, expected: str) -> None:
    assert clean_label(label) == expected


@given(st.text())
def test_clean_label_is_one_printable_line(label: str) -> None:
    cleaned = clean_label(label)

    assert cleaned.isprintable()
    assert len(cleaned.splitlines()) <= 1
    assert cleaned == cleaned.strip()
    assert not has_fence_bracket(cleaned)
