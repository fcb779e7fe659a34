"""The runner end to end with a fake provider: outputs, resume, errors and mismatches."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from takt_mcp.config import Settings, load_settings
from takt_mcp.evaluation.cases import Case, load_builtin_cases, select_cases
from takt_mcp.evaluation.records import read_records
from takt_mcp.evaluation.run_info import RunMismatchError
from takt_mcp.evaluation.runner import Evaluation, run_evaluation
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers.base import (
    ProviderAuthenticationError,
    ProviderRequest,
    ProviderTimeoutError,
)
from tests.evaluation.helpers import CAPITAL, scripted
from tests.fakes import FakeProvider, Reply

pytestmark = pytest.mark.anyio

TRAP = Case.model_validate(
    {
        "id": "wash-trap",
        "question": "I need to wash my car. The car wash is 100 m away. Walk or drive?",
        "gold": "Drive",
        "judge": {"type": "regex", "correct": r"\bdriv", "wrong": r"\bwalk"},
        "category": "trap",
        "pair": "wash",
        "wrong_answer": "walk",
        "evidence": ["The car has to be at the car wash."],
    }
)
CONTROL = Case.model_validate(
    {
        **TRAP.model_dump(),
        "id": "wash-control",
        "question": "I need bread. The bakery is 100 m away. Walk or drive?",
        "gold": "Walk",
        "judge": {"type": "regex", "correct": r"\bwalk", "wrong": r"\bdriv"},
        "category": "control",
        "wrong_answer": "drive",
    }
)


def evaluation(
    tmp_path: Path,
    settings: Settings,
    identities: IdentityRegistry,
    provider: FakeProvider,
    cases: list[Case] | None = None,
) -> Evaluation:
    return Evaluation(
        cases=cases if cases is not None else [CAPITAL, TRAP, CONTROL],
        cases_label="test cases",
        conditions=("baseline", "identity", "takt"),
        identity=identities.get("takt"),
        settings=settings,
        subject=provider,
        judge=provider,
        judge_label="fake / fake-model",
        turns=2,
        concurrency=2,
        seed=0,
        out=tmp_path / "out",
        command="takt-mcp eval --turns 2",
    )


async def test_run_writes_every_output(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    provider = FakeProvider(scripted(["Canberra", "Canberra", "Sydney"]))

    records = await run_evaluation(evaluation(tmp_path, settings, identities, provider))

    out = tmp_path / "out"
    assert {path.name for path in out.iterdir()} >= {
        "results.jsonl",
        "summary.json",
        "report.md",
        "chart.svg",
        "run.json",
        "ledger",
    }
    assert len(records) == 9
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [c["condition"] for c in summary["conditions"]] == ["baseline", "identity", "takt"]
    assert summary["info"]["identity"] == "takt"
    assert "takt-mcp eval --turns 2" in (out / "report.md").read_text(encoding="utf-8")


async def test_resume_skips_finished_pairs(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    first = FakeProvider(scripted(["Canberra"]))
    await run_evaluation(evaluation(tmp_path, settings, identities, first))

    second = FakeProvider(scripted(["Canberra"]))
    records = await run_evaluation(evaluation(tmp_path, settings, identities, second))

    assert second.requests == []
    assert len(records) == 9


async def test_errored_pairs_run_again(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    answers = scripted(["Canberra"])

    def flaky(request: ProviderRequest[Any]) -> Reply:
        if request.labels.get("condition") == "identity":
            return ProviderTimeoutError("slow", provider="fake", model="fake-model")
        return answers(request)

    first = await run_evaluation(evaluation(tmp_path, settings, identities, FakeProvider(flaky)))
    assert sum(1 for record in first if record.error) == 3

    retry = FakeProvider(answers)
    second = await run_evaluation(evaluation(tmp_path, settings, identities, retry))

    assert not any(record.error for record in second)
    conditions = {r.labels.get("condition") for r in retry.requests if r.labels["step"] != "judge"}
    assert conditions == {"identity"}


async def test_other_settings_refused(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    await run_evaluation(
        evaluation(tmp_path, settings, identities, FakeProvider(scripted(["Canberra"])))
    )
    hotter = load_settings({"TAKT_TEMPERATURE": "0.7"})
    changed = evaluation(tmp_path, hotter, identities, FakeProvider(scripted(["Canberra"])))

    with pytest.raises(RunMismatchError, match="temperature"):
        await run_evaluation(changed)


async def test_larger_limit_extends_the_run(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    cases = load_builtin_cases()
    few = select_cases(cases, 2, 0)
    more = select_cases(cases, 4, 0)
    shared = {case.id for case in few} & {case.id for case in more}
    provider = FakeProvider(scripted(["no idea at all"]))
    await run_evaluation(evaluation(tmp_path, settings, identities, provider, few))

    extended = FakeProvider(scripted(["no idea at all"]))
    records = await run_evaluation(evaluation(tmp_path, settings, identities, extended, more))

    assert {record.case_id for record in records} == {case.id for case in more}
    asked = {request.messages[0].content for request in extended.requests}
    assert not asked & {case.question for case in few if case.id in shared}


async def test_edited_case_runs_again(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    await run_evaluation(
        evaluation(tmp_path, settings, identities, FakeProvider(scripted(["Canberra"])))
    )
    edited = CAPITAL.model_copy(update={"gold": "Canberra (ACT)"})
    provider = FakeProvider(scripted(["Canberra"]))

    records = await run_evaluation(
        evaluation(tmp_path, settings, identities, provider, [edited, TRAP, CONTROL])
    )

    assert len(records) == 9
    asked = {r.messages[0].content for r in provider.requests if r.labels["step"] != "judge"}
    assert any(CAPITAL.question in text for text in asked)
    assert not any(TRAP.question in text for text in asked)
    assert len(read_records(tmp_path / "out" / "results.jsonl")) == 9


async def test_concurrency_runs_dialogues_together(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    provider = FakeProvider(scripted(["Canberra"]), delay=0.05)
    run = replace(evaluation(tmp_path, settings, identities, provider), concurrency=9)

    records = await run_evaluation(run)

    assert len(records) == 9
    assert max(record.elapsed_seconds for record in records) < 2.0


async def test_stopped_run_writes_partial_report(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    answers = scripted(["Canberra"])

    def denied_for_takt(request: ProviderRequest[Any]) -> Reply:
        if request.labels.get("step") == "blind_prior":
            return ProviderAuthenticationError("bad key", provider="fake", model="m", status=401)
        return answers(request)

    run = replace(
        evaluation(tmp_path, settings, identities, FakeProvider(denied_for_takt)), concurrency=1
    )

    with pytest.raises(ProviderAuthenticationError):
        await run_evaluation(run)

    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Dialogues finished: 2 of 9" in report
    assert "**Partial run**" in report
