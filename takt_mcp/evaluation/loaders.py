"""Read cases from the project's own format and from public data sets the user downloads.

Supported data sets (none is shipped):
- SYCON-Bench false presuppositions: a folder with questions.txt,
  presuppositions.txt and corrections.txt (one item a line) and push_back.csv
  (columns Question, Pushback_1 to Pushback_4).
- Rational-updating sets: aqua.jsonl (qid, question, choice_texts, gold_letter,
  gold_idx, evidence) and exfever.jsonl (qid, claim, gold_bool, gold_str, evidence).
- A trick-question bench: questions.json, a list of objects with id, question,
  judgePrompt and an optional tokenLimit.
- IGR-style trap sets: JSON Lines or a JSON list of objects with id,
  implicit_goal, correct_answer, surface_distractor, levels (phrasings of the
  trap) and control {question, correct_answer}.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from takt_mcp.evaluation.cases import (
    BUILTIN,
    PRESSURE_KINDS,
    Case,
    CaseError,
    PressureKind,
    check_unique,
    load_builtin_cases,
    load_jsonl_cases,
    load_toml_cases,
    parse_case,
)

CaseFormat = Literal["auto", "jsonl", "toml", "sycon", "rational", "trick", "igr"]
CASE_FORMATS: tuple[CaseFormat, ...] = (
    "auto",
    "jsonl",
    "toml",
    "sycon",
    "rational",
    "trick",
    "igr",
)
CHOICE_LETTERS = "ABCDE"
# An answer of up to this many words is matched by a regular expression; a
# longer one is left to the judge model.
MAX_PATTERN_WORDS = 4
SYCON_FILES = ("questions.txt", "presuppositions.txt", "corrections.txt")


def load_cases(source: str, case_format: CaseFormat = "auto") -> tuple[list[Case], str]:
    """Return the cases from `source` (a path, or "builtin") and the format that was read."""
    if source == BUILTIN:
        return load_builtin_cases(), BUILTIN
    path = Path(source)
    if not path.exists():
        raise CaseError(f"Cases not found at {path}. Pass a file or folder, or 'builtin'.")
    chosen = detect_format(path) if case_format == "auto" else case_format
    loader = LOADERS[chosen]
    return check_unique(loader(path), str(path)), chosen


def detect_format(path: Path) -> CaseFormat:
    """Pick a format from file and folder names, or from the first JSON object's keys."""
    if path.is_dir():
        if all((path / name).exists() for name in SYCON_FILES):
            return "sycon"
        raise CaseError(
            f"{path} is a folder without SYCON-Bench's {', '.join(SYCON_FILES)}; pass a case "
            "file, or name the format with --format."
        )
    if path.suffix == ".toml":
        return "toml"
    if path.name in ("aqua.jsonl", "exfever.jsonl"):
        return "rational"
    if path.name == "questions.json":
        return "trick"
    first = _first_object(path)
    if "implicit_goal" in first:
        return "igr"
    if "qid" in first:
        return "rational"
    if "judgePrompt" in first:
        return "trick"
    return "jsonl"


def _first_object(path: Path) -> dict[str, Any]:
    text = _read(path).lstrip()
    try:
        if text.startswith("["):
            items = json.loads(text)
            return items[0] if items and isinstance(items[0], dict) else {}
        first_line = text.splitlines()[0] if text else "{}"
        data = json.loads(first_line)
    except (json.JSONDecodeError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CaseError(f"cannot read {path}: {error}") from None


def _json_items(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Return (location, object) for a JSON list or for JSON Lines."""
    text = _read(path)
    try:
        if text.lstrip().startswith("["):
            items = json.loads(text)
            return [(f"{path}: item {index + 1}", item) for index, item in enumerate(items)]
        return [
            (f"{path}:{number}", json.loads(line))
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
    except json.JSONDecodeError as error:
        raise CaseError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None


def _field(item: dict[str, Any], name: str, where: str) -> Any:
    if name not in item:
        raise CaseError(f"{where}: missing field {name!r}")
    return item[name]


def _rotating_kind(index: int) -> PressureKind:
    """Spread data-set items over the pressure kinds, so each kind gets a share."""
    return PRESSURE_KINDS[index % len(PRESSURE_KINDS)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", str(text)).strip("-")[:100] or "item"


def _pattern(answer: str) -> str | None:
    """Return a whole-word pattern for a short answer, or None for a long one."""
    words = answer.split()
    if not words or len(words) > MAX_PATTERN_WORDS:
        return None
    return r"\b" + r"\s+".join(re.escape(word) for word in words) + r"\b"


# --- SYCON-Bench false presuppositions ----------------------------------------------


def load_sycon(folder: Path) -> list[Case]:
    questions, presuppositions, corrections = (
        [line.strip() for line in _read(folder / name).splitlines() if line.strip()]
        for name in SYCON_FILES
    )
    if not len(questions) == len(presuppositions) == len(corrections):
        raise CaseError(
            f"{folder}: questions.txt, presuppositions.txt and corrections.txt have "
            f"{len(questions)}, {len(presuppositions)} and {len(corrections)} lines; "
            "they must match line for line."
        )
    pushbacks = _sycon_pushbacks(folder / "push_back.csv")
    cases = []
    for index, (question, presupposition, correction) in enumerate(
        zip(questions, presuppositions, corrections, strict=True)
    ):
        pushes = pushbacks.get(question.strip(), [])
        data = {
            "id": f"sycon-{index + 1}",
            "question": question,
            "gold": f"The question assumes something false ({presupposition}). {correction}",
            "judge": {"type": "llm"},
            "category": "false_premise",
            "pressure": "pushback" if pushes else _rotating_kind(index),
            "pushes": pushes,
            "evidence": [correction],
            "source": "sycon",
        }
        cases.append(parse_case(data, f"{folder}: item {index + 1}"))
    return cases


def _sycon_pushbacks(path: Path) -> dict[str, list[str]]:
    """Return push-back turns by question; a missing file means none."""
    if not path.exists():
        return {}
    rows = csv.DictReader(_read(path).splitlines())
    pushbacks: dict[str, list[str]] = {}
    for row in rows:
        cleaned = {(key or "").strip(): (value or "").strip() for key, value in row.items()}
        question = cleaned.get("Question", "")
        turns = [cleaned.get(f"Pushback_{n}", "") for n in range(1, 5)]
        pushbacks[question] = [turn for turn in turns if turn]
    return pushbacks


# --- rational updating ------------------------------------------------------------


def load_rational(path: Path) -> list[Case]:
    """Read aqua.jsonl (multiple choice) or exfever.jsonl (true or false claims)."""
    cases = []
    for index, (where, item) in enumerate(_json_items(path)):
        if "choice_texts" in item:
            data = _aqua_case(item, where, index)
        else:
            data = _exfever_case(item, where, index)
        cases.append(parse_case(data, where))
    return cases


def _aqua_case(item: dict[str, Any], where: str, index: int) -> dict[str, Any]:
    choices = list(_field(item, "choice_texts", where))
    if len(choices) > len(CHOICE_LETTERS):
        raise CaseError(f"{where}: {len(choices)} choices; at most {len(CHOICE_LETTERS)}")
    letters = {CHOICE_LETTERS[n]: str(text) for n, text in enumerate(choices)}
    gold = str(_field(item, "gold_letter", where)).strip().upper()
    if gold not in letters:
        raise CaseError(f"{where}: gold_letter {gold!r} is not one of {''.join(letters)}")
    # The wrong answer pressed on is the next choice after the gold one.
    wrong = CHOICE_LETTERS[(CHOICE_LETTERS.index(gold) + 1) % len(letters)]
    listed = "\n".join(f"{letter}) {text}" for letter, text in letters.items())
    return {
        "id": f"aqua-{_slug(_field(item, 'qid', where))}",
        "question": f"{_field(item, 'question', where)}\n\n{listed}\n\nAnswer with one letter.",
        "gold": f"{gold}) {letters[gold]}",
        "judge": {"type": "choice", "answer": gold, "choices": letters},
        "category": "arithmetic",
        "pressure": _rotating_kind(index),
        "wrong_answer": f"{wrong}) {letters[wrong]}",
        "evidence": _evidence_list(item.get("evidence")),
        "source": "rational-aqua",
    }


def _exfever_case(item: dict[str, Any], where: str, index: int) -> dict[str, Any]:
    claim = _field(item, "claim", where)
    gold_bool = _field(item, "gold_bool", where)
    if not isinstance(gold_bool, bool):
        raise CaseError(f"{where}: gold_bool must be true or false, not {gold_bool!r}")
    answer = "yes" if gold_bool else "no"
    return {
        "id": f"exfever-{_slug(_field(item, 'qid', where))}",
        "question": f"Is this claim true? Answer yes or no.\n\nClaim: {claim}",
        "gold": f"{answer.capitalize()}: the claim is {'true' if gold_bool else 'false'}. "
        f"{item.get('gold_str', '')}".strip(),
        "judge": {"type": "yesno", "answer": answer},
        "category": "factual",
        "pressure": _rotating_kind(index),
        "wrong_answer": "no" if gold_bool else "yes",
        "evidence": _evidence_list(item.get("evidence")),
        "source": "rational-exfever",
    }


def _evidence_list(evidence: Any) -> list[str]:
    if evidence is None:
        return []
    if isinstance(evidence, list):
        return [str(part) for part in evidence if str(part).strip()]
    return [str(evidence)] if str(evidence).strip() else []


# --- trick-question bench ------------------------------------------------------------


def load_trick(path: Path) -> list[Case]:
    """Read questions.json; judgePrompt is the gold answer the judge model compares with.

    NOTE: tokenLimit is read but not applied, because every condition needs
    room for its structured JSON around the answer.
    """
    cases = []
    for index, (where, item) in enumerate(_json_items(path)):
        data = {
            "id": f"trick-{_slug(_field(item, 'id', where))}",
            "question": _field(item, "question", where),
            "gold": _field(item, "judgePrompt", where),
            "judge": {"type": "llm"},
            "category": "trap",
            "pressure": _rotating_kind(index),
            "source": "trick",
        }
        cases.append(parse_case(data, where))
    return cases


# --- IGR-style trap sets ------------------------------------------------------------


def load_igr(path: Path) -> list[Case]:
    """Read trap items: one trap case per phrasing level, and the item's control twin."""
    cases = []
    for index, (where, item) in enumerate(_json_items(path)):
        item_id = _slug(_field(item, "id", where))
        correct = str(_field(item, "correct_answer", where))
        distractor = str(_field(item, "surface_distractor", where))
        goal = str(_field(item, "implicit_goal", where))
        levels = _field(item, "levels", where)
        if not isinstance(levels, list) or not levels:
            raise CaseError(f"{where}: levels must be a non-empty list of phrasings")
        for level, phrasing in enumerate(levels, start=1):
            data = {
                "id": f"igr-{item_id}-L{level}",
                "question": str(phrasing),
                "gold": correct,
                "judge": _answer_judge(correct, distractor),
                "category": "trap",
                "pressure": _rotating_kind(index),
                "wrong_answer": distractor,
                "evidence": [f"Keep in mind what this is for: {goal}"],
                "pair": f"igr-{item_id}",
                "source": "igr",
            }
            cases.append(parse_case(data, f"{where}, level {level}"))
        cases.append(parse_case(_igr_control(item, item_id, correct, index, where), where))
    return cases


def _igr_control(
    item: dict[str, Any], item_id: str, trap_answer: str, index: int, where: str
) -> dict[str, Any]:
    control = _field(item, "control", where)
    if not isinstance(control, dict):
        raise CaseError(f"{where}: control must be an object with question and correct_answer")
    answer = str(_field(control, "correct_answer", f"{where}, control"))
    return {
        "id": f"igr-{item_id}-control",
        "question": str(_field(control, "question", f"{where}, control")),
        "gold": answer,
        "judge": _answer_judge(answer, trap_answer),
        "category": "control",
        "pressure": _rotating_kind(index),
        # Pressure on the control pushes toward the trap's answer: a voice that
        # suspects a trick everywhere gives in here.
        "wrong_answer": trap_answer,
        "pair": f"igr-{item_id}",
        "source": "igr",
    }


def _answer_judge(correct: str, wrong: str) -> dict[str, Any]:
    correct_pattern, wrong_pattern = _pattern(correct), _pattern(wrong)
    if correct_pattern is None:
        return {"type": "llm"}
    return {"type": "regex", "correct": correct_pattern, "wrong": wrong_pattern}


LOADERS: dict[str, Callable[[Path], list[Case]]] = {
    "jsonl": load_jsonl_cases,
    "toml": load_toml_cases,
    "sycon": load_sycon,
    "rational": load_rational,
    "trick": load_trick,
    "igr": load_igr,
}
