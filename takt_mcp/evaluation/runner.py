"""Run the evaluation: every selected case under every condition, resumable, then the outputs.

The output folder contains the run's state. run.json fixes what the run
measures; results.jsonl gains one line per finished (case, condition). A
second run on the same folder skips the finished pairs and runs the rest,
and refuses to mix results from different settings.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from takt_mcp.config import Settings
from takt_mcp.evaluation.cases import Case, case_digest, cases_digest
from takt_mcp.evaluation.conditions import ConditionName, open_conversation
from takt_mcp.evaluation.dialogue import run_dialogue
from takt_mcp.evaluation.judge import Judge
from takt_mcp.evaluation.output import write_outputs
from takt_mcp.evaluation.progress import ProgressBar
from takt_mcp.evaluation.records import DialogueRecord, append_record, read_records
from takt_mcp.evaluation.run_info import ReportContext, RunInfo, check_run_info
from takt_mcp.identity import IdentityBlock
from takt_mcp.providers.base import Provider
from takt_mcp.store import Ledger

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
LEDGER_DIR = "ledger"


@dataclass(frozen=True)
class Evaluation:
    """Everything one run needs; providers are opened and closed by the caller."""

    cases: list[Case]
    cases_label: str
    conditions: tuple[ConditionName, ...]
    identity: IdentityBlock
    settings: Settings
    subject: Provider
    judge: Provider | None
    judge_label: str
    turns: int
    concurrency: int
    seed: int
    out: Path
    command: str

    def run_info(self) -> RunInfo:
        return RunInfo(
            cases=self.cases_label,
            cases_digest=cases_digest(self.cases),
            case_count=len(self.cases),
            turns=self.turns,
            seed=self.seed,
            identity=self.identity.name,
            identity_version=self.identity.version,
            identity_hash=self.identity.sha256,
            provider=self.subject.name,
            model=self.subject.model,
            temperature=self.settings.temperature,
            max_output_tokens=self.settings.max_output_tokens,
        )


async def run_evaluation(evaluation: Evaluation) -> list[DialogueRecord]:
    """Run the pairs that are not finished yet, then write the outputs from all results."""
    out = evaluation.out
    out.mkdir(parents=True, exist_ok=True)
    info = evaluation.run_info()
    check_run_info(out, info)
    results = out / RESULTS_FILE

    earlier = current_records(results, evaluation.cases)
    finished = {record.key for record in earlier if not record.error}
    pending = deque(
        (case, condition)
        for case in evaluation.cases
        for condition in evaluation.conditions
        if (case.id, condition) not in finished
    )
    total = len(evaluation.cases) * len(evaluation.conditions)
    progress = ProgressBar(total, total - len(pending))
    progress.start()

    settings = evaluation.settings
    ledger = await anyio.to_thread.run_sync(
        lambda: Ledger(
            out / LEDGER_DIR, max_turns=settings.max_turns, max_threads=settings.max_threads
        )
    )
    judge = Judge(evaluation.judge)

    async def worker() -> None:
        # Workers share one queue, so dialogues start in case order.
        while pending:
            case, condition = pending.popleft()
            conversation = open_conversation(
                condition, evaluation.subject, evaluation.identity, settings, ledger
            )
            record = await run_dialogue(case, condition, conversation, judge, evaluation.turns)
            append_record(results, record)
            label = f"{case.id} / {condition}" + (" (error)" if record.error else "")
            progress.advance(label)

    try:
        await _run_workers(worker, evaluation.concurrency)
    finally:
        progress.finish()
        ledger.close()
        # Also on an error or an interruption, so a partial run has a report.
        records = current_records(results, evaluation.cases)
        if records:
            write_outputs(out, records, _report_context(evaluation, info, total))
    return records


def current_records(results: Path, cases: list[Case]) -> list[DialogueRecord]:
    """Return the latest record of each pair whose case is selected and unchanged.

    Records that ended in an error are included, so the report counts them;
    the runner runs those pairs again.
    """
    digests = {case.id: case_digest(case) for case in cases}
    return [
        record
        for record in read_records(results)
        if digests.get(record.case_id) == record.case_digest
    ]


async def _run_workers(worker: Any, count: int) -> None:
    try:
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(worker)
    except BaseExceptionGroup as group_error:
        # Show the first real error, not the task group around it.
        error: BaseException = group_error
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise error from None


def _report_context(evaluation: Evaluation, info: RunInfo, planned: int) -> ReportContext:
    return ReportContext(
        info=info,
        conditions=evaluation.conditions,
        judge=evaluation.judge_label,
        command=evaluation.command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        served_model=evaluation.subject.model,
        planned=planned,
    )
