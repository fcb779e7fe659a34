"""Compare the blind prior with the framed judgement."""

from __future__ import annotations

import re

from takt_mcp.schemas import FrameInfluence, OpenJudgement

# Words that carry no answer: "Yes, drive the car." and "Drive." agree.
_FILLER = frozenset(
    """a an the it is are was be to of and or in on at for with you your i we they this
    that there its it's should would could can will just so""".split()  # noqa: SIM905
)
_NEGATIONS = frozenset(
    "not never don't doesn't shouldn't cannot can't won't isn't".split()  # noqa: SIM905
)
# An opening "Yes," or "No," answers a yes/no question; it decides only when
# nothing else in the answer does ("No, it is Canberra." agrees with "Canberra.").
_POLARITY = frozenset(["yes", "no"])
_WORD = re.compile(r"[\w']+")
# Two bottom lines agree when this share of the shorter one's words is shared.
AGREEMENT_OVERLAP = 0.5
# A confidence move this large is reported even when the answer is the same.
NOTABLE_CONFIDENCE_SHIFT = 0.2


def _content_words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.casefold()) if word not in _FILLER}


def _polarity(text: str) -> str | None:
    words = _WORD.findall(text.casefold())
    return words[0] if words and words[0] in _POLARITY else None


def bottom_lines_agree(first: str, second: str) -> bool:
    """Return True when two short answers say the same thing.

    NOTE: a word-overlap test, not an entailment check: it catches "walk"
    versus "drive" and an added or dropped negation, but can call two
    differently worded answers different.
    """
    first_words, second_words = _content_words(first), _content_words(second)
    if bool(first_words & _NEGATIONS) != bool(second_words & _NEGATIONS):
        return False
    first_words -= _NEGATIONS | _POLARITY
    second_words -= _NEGATIONS | _POLARITY
    first_polarity, second_polarity = _polarity(first), _polarity(second)
    if first_polarity and second_polarity and first_polarity != second_polarity:
        return False
    if not first_words or not second_words:
        return first_words == second_words and first_polarity == second_polarity
    shared = len(first_words & second_words)
    return shared / min(len(first_words), len(second_words)) >= AGREEMENT_OVERLAP


def compare_frames(blind: OpenJudgement, framed: OpenJudgement) -> FrameInfluence:
    """Report where the framed judgement departs from the blind one."""
    departs = not bottom_lines_agree(blind.bottom_line, framed.bottom_line)
    shift = round(framed.confidence - blind.confidence, 3)
    if departs:
        summary = (
            f"The framing changed the answer: without the proposal or position the voice "
            f"answered {blind.bottom_line!r} ({blind.confidence:.2f}); with them, "
            f"{framed.bottom_line!r} ({framed.confidence:.2f})."
        )
    elif abs(shift) >= NOTABLE_CONFIDENCE_SHIFT:
        direction = "raised" if shift > 0 else "lowered"
        summary = (
            f"Same answer with and without the framing ({framed.bottom_line!r}), but the "
            f"framing {direction} confidence from {blind.confidence:.2f} "
            f"to {framed.confidence:.2f}."
        )
    else:
        summary = f"The framing did not change the answer ({framed.bottom_line!r})."
    return FrameInfluence(
        departs=departs,
        blind_bottom_line=blind.bottom_line,
        blind_position=blind.position,
        blind_confidence=blind.confidence,
        framed_bottom_line=framed.bottom_line,
        confidence_shift=shift,
        summary=summary,
    )
