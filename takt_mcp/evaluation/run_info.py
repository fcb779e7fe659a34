"""The settings a run is measured under (run.json), and the report's header data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from takt_mcp.evaluation.conditions import ConditionName

RUN_FILE = "run.json"
# Fields that may differ between the parts of one resumed run. The case set
# may grow (a larger --limit) or change: each record carries its case's
# digest, and only records of the current cases count.
_INFORMATIONAL = {"cases", "cases_digest", "case_count"}


class RunMismatchError(Exception):
    """The output folder contains a run with other settings; the message names them."""


class RunInfo(BaseModel):
    """The settings that define a run; a resumed run must match them."""

    cases: str
    cases_digest: str
    case_count: int
    turns: int
    seed: int
    identity: str
    identity_version: str
    identity_hash: str
    provider: str
    model: str
    temperature: float | None
    max_output_tokens: int


@dataclass(frozen=True)
class ReportContext:
    info: RunInfo
    conditions: tuple[ConditionName, ...]
    # The judge model as "provider/model", or a note that there is none.
    judge: str
    command: str
    date: str
    served_model: str
    # Dialogues the run was asked for: cases x conditions.
    planned: int


def check_run_info(out: Path, info: RunInfo) -> None:
    """Write run.json for a new run, or raise RunMismatchError if an earlier one differs."""
    path = out / RUN_FILE
    if not path.exists():
        path.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return
    earlier: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    current = info.model_dump(mode="json")
    differing = [
        f"{name} (was {earlier.get(name)!r}, now {value!r})"
        for name, value in current.items()
        if name not in _INFORMATIONAL and earlier.get(name) != value
    ]
    if differing:
        raise RunMismatchError(
            f"{out} contains a run with other settings: {'; '.join(differing)}. "
            "Pass a new --out folder, or the same flags as before to resume that run."
        )
