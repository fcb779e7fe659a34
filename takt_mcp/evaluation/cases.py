"""Evaluation cases: the question, its gold answer, its judge, and what to push with.

Cases are stored one JSON object per line (JSON Lines) or as `[[case]]`
tables in TOML. docs/evaluation.md documents every field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

logger = logging.getLogger(__name__)

PressureKind = Literal[
    "doubt",
    "asserted_wrong",
    "authority",
    "emotional",
    "consensus",
    "fabricated_citation",
    "roleplay",
    # Pushes taken verbatim from a data set, such as SYCON-Bench's push-back turns.
    "pushback",
]
PRESSURE_KINDS: tuple[PressureKind, ...] = (
    "doubt",
    "asserted_wrong",
    "authority",
    "emotional",
    "consensus",
    "fabricated_citation",
    "roleplay",
)
Category = Literal["factual", "arithmetic", "false_premise", "trap", "control", "roleplay"]
BUILTIN = "builtin"
BUILTIN_FILE = "builtin_cases.jsonl"


class CaseError(Exception):
    """A case file cannot be read or a case is invalid; the message names the file and line."""


class _Judge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChoiceJudge(_Judge):
    """A multiple-choice answer, matched by its letter or by the text of one choice."""

    type: Literal["choice"]
    answer: str = Field(pattern=r"^[A-Z]$", description="The gold letter.")
    choices: dict[str, str] = Field(default_factory=dict, description="Letter to choice text.")

    @model_validator(mode="after")
    def _answer_is_a_choice(self) -> ChoiceJudge:
        if self.choices and self.answer not in self.choices:
            raise ValueError(f"answer {self.answer!r} is not one of the choices")
        return self


class NumberJudge(_Judge):
    """A numeric answer; any of `values` (the same quantity in other units) is correct."""

    type: Literal["number"]
    values: list[float] = Field(min_length=1)
    tolerance: float = Field(1e-6, ge=0, description="Absolute tolerance.")


class YesNoJudge(_Judge):
    type: Literal["yesno"]
    answer: Literal["yes", "no"]


class RegexJudge(_Judge):
    """Case-insensitive patterns: `correct` marks the gold answer, `wrong` the known wrong one."""

    type: Literal["regex"]
    correct: str
    wrong: str | None = None

    @field_validator("correct", "wrong")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"invalid regular expression {pattern!r}: {error}") from None
        return pattern


class LLMJudge(_Judge):
    """No deterministic rule: a judge model compares the answer with the gold answer."""

    type: Literal["llm"]


JudgeSpec = Annotated[
    ChoiceJudge | NumberJudge | YesNoJudge | RegexJudge | LLMJudge, Field(discriminator="type")
]


class Case(BaseModel):
    """One question, how to judge its answers, and the turns that push on them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    question: str = Field(min_length=1)
    gold: str = Field(min_length=1, description="The gold answer, as the LLM judge reads it.")
    judge: JudgeSpec = Field(default_factory=lambda: LLMJudge(type="llm"))
    category: Category = "factual"
    pressure: PressureKind = Field(
        "doubt", description="The kind of pressure applied when the first answer is right."
    )
    wrong_answer: str | None = Field(
        None, description="The tempting wrong answer that pressure pushes toward."
    )
    pushes: list[str] = Field(
        default_factory=list, description="Pressure turns; replaces the built-in templates."
    )
    evidence: list[str] = Field(
        default_factory=list, description="Turns with real evidence for the gold answer."
    )
    pair: str | None = Field(None, description="Shared by a trap and its control twin.")
    source: str = "user"

    @model_validator(mode="after")
    def _pushes_match_kind(self) -> Case:
        if self.pressure == "pushback" and not self.pushes:
            raise ValueError("pressure 'pushback' needs the push texts in 'pushes'")
        return self


# --- reading -----------------------------------------------------------------------


def parse_case(data: Any, where: str) -> Case:
    """Validate one case, raising CaseError that names `where` and each bad field."""
    try:
        return Case.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'case'}: {item['msg']}"
            for item in error.errors()
        )
        raise CaseError(f"{where}: invalid case ({problems})") from None


def load_jsonl_cases(path: Path) -> list[Case]:
    """Read cases from JSON Lines; blank lines are skipped."""
    cases = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise CaseError(f"{path}:{number}: invalid JSON: {error.msg}") from None
        cases.append(parse_case(data, f"{path}:{number}"))
    return check_unique(cases, str(path))


def load_toml_cases(path: Path) -> list[Case]:
    """Read cases from the `[[case]]` tables of a TOML file."""
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise CaseError(f"{path}: invalid TOML: {error}") from None
    tables = data.get("case")
    if not isinstance(tables, list) or not tables:
        raise CaseError(f"{path}: no [[case]] tables found; write each case as a [[case]] table")
    cases = [parse_case(table, f"{path}: case {index + 1}") for index, table in enumerate(tables)]
    return check_unique(cases, str(path))


def load_builtin_cases() -> list[Case]:
    """Return the project's own case set, shipped with the package."""
    source = resources.files("takt_mcp.evaluation").joinpath(BUILTIN_FILE)
    cases = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            cases.append(parse_case(json.loads(line), f"{BUILTIN_FILE}:{number}"))
    return check_unique(cases, BUILTIN_FILE)


def check_unique(cases: list[Case], where: str) -> list[Case]:
    """Raise CaseError on a repeated id; warn about a trap without a control twin."""
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise CaseError(f"{where}: case id {case.id!r} is used twice; ids must be unique")
        seen.add(case.id)
    alone = [c.id for c in cases if c.category == "trap" and not _has_control(c, cases)]
    if alone:
        logger.warning(
            "%s: %d trap case(s) have no control twin with the same 'pair' (%s); a voice that "
            "suspects a trick everywhere scores well on them",
            where,
            len(alone),
            ", ".join(alone[:5]) + (", ..." if len(alone) > 5 else ""),
        )
    return cases


def _has_control(trap: Case, cases: list[Case]) -> bool:
    return trap.pair is not None and any(
        case.category == "control" and case.pair == trap.pair for case in cases
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CaseError(f"cannot read cases from {path}: {error}") from None


# --- choosing ----------------------------------------------------------------------


def select_cases(cases: list[Case], limit: int | None, seed: int) -> list[Case]:
    """Return up to `limit` cases in a seeded order, keeping trap/control pairs together.

    The same cases, limit and seed always give the same selection, so a
    resumed run continues the same sample.
    """
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.pair or f"case:{case.id}", []).append(case)
    order = list(groups.values())
    random.Random(seed).shuffle(order)

    selected: list[Case] = []
    for group in order:
        if limit is not None and len(selected) + len(group) > limit:
            continue
        selected.extend(group)
        if limit is not None and len(selected) == limit:
            break
    return selected


def case_digest(case: Case) -> str:
    """Return the sha256 of one case's canonical JSON; an edited case gets a new digest."""
    return hashlib.sha256(case.model_dump_json().encode()).hexdigest()


def cases_digest(cases: Iterable[Case]) -> str:
    """Return the sha256 of the cases' canonical JSON, to tell two case sets apart."""
    digest = hashlib.sha256()
    for case in cases:
        digest.update(case.model_dump_json().encode())
        digest.update(b"\n")
    return digest.hexdigest()
