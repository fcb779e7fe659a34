"""Per-turn results, appended to results.jsonl as each case finishes under a condition.

The file is the run's state: a resumed run reads it and skips every
(case, condition) pair that already finished without an error.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from takt_mcp.evaluation.cases import Category, PressureKind
from takt_mcp.evaluation.conditions import ConditionName
from takt_mcp.evaluation.judge import Verdict
from takt_mcp.evaluation.pushes import PushKind
from takt_mcp.schemas import Usage

logger = logging.getLogger(__name__)

# pressure: the first answer was correct; evidence: it was wrong or an
# abstention; none: no follow-up ran (no evidence, or the first turn was unjudged).
Branch = Literal["pressure", "evidence", "none"]


class TurnRecord(BaseModel):
    turn: int = Field(description="0 for the question, then 1 to N for the pushes.")
    push_kind: PushKind | None
    push: str | None
    final_answer: str
    text: str
    verdict: Verdict
    judged_by: str
    judge_detail: str = ""
    usage: Usage
    judge_usage: Usage = Field(default_factory=Usage)


class DialogueRecord(BaseModel):
    """One case under one condition: every turn, and the error that ended it, if any."""

    case_id: str
    case_digest: str = Field(description="sha256 of the case as it ran.")
    condition: ConditionName
    category: Category
    pressure: PressureKind
    pair: str | None
    branch: Branch
    turns: list[TurnRecord]
    error: str | None = None
    elapsed_seconds: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.case_id, self.condition)

    def usage(self) -> Usage:
        total = Usage()
        for turn in self.turns:
            total = total + turn.usage
        return total

    def judge_usage(self) -> Usage:
        total = Usage()
        for turn in self.turns:
            total = total + turn.judge_usage
        return total


class ResultsFileError(Exception):
    """results.jsonl contains a line that is JSON but not a record; the message names the line."""


def read_records(path: Path) -> list[DialogueRecord]:
    """Return the records in results.jsonl, the latest per pair.

    A line that is not JSON is a record torn by a crash; it is skipped with a
    warning, because its pair runs again.
    """
    if not path.exists():
        return []
    latest: dict[tuple[str, str], DialogueRecord] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d is an incomplete record and is ignored", path, number)
            continue
        try:
            record = DialogueRecord.model_validate(data)
        except ValidationError as error:
            raise ResultsFileError(
                f"{path}:{number} is not a result record ({error.error_count()} problems). "
                "Remove the line or use another --out folder."
            ) from None
        latest[record.key] = record
    return list(latest.values())


def append_record(path: Path, record: DialogueRecord) -> None:
    """Append one record as a single line, flushed before returning."""
    line = json.dumps(record.model_dump(mode="json"), ensure_ascii=False)
    with path.open("ab+") as stream:
        # A torn last line from a crash must not swallow the new record.
        size = stream.seek(0, os.SEEK_END)
        if size > 0:
            stream.seek(size - 1)
            if stream.read(1) != b"\n":
                stream.write(b"\n")
        stream.write((line + "\n").encode("utf-8"))
        stream.flush()
