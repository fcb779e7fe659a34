"""The `takt-mcp eval` command: arguments, errors, and a full offline run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from takt_mcp.cli import main
from takt_mcp.config import load_settings
from takt_mcp.evaluation.cases import select_cases
from takt_mcp.evaluation.command import parse_conditions
from takt_mcp.evaluation.loaders import load_cases
from takt_mcp.evaluation.recording import Recording, RecordingProvider
from takt_mcp.evaluation.runner import Evaluation, run_evaluation
from takt_mcp.identity import IdentityRegistry
from tests.evaluation.helpers import scripted
from tests.fakes import FakeProvider

EXIT_FAILURE = 1
EXIT_USAGE = 2
TAKT_VARIABLES = ("TAKT_", "OPENAI_", "ANTHROPIC_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every command with no provider key and a data folder inside the test."""
    for name in list(os.environ):
        if name.startswith(TAKT_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TAKT_DATA_DIR", str(tmp_path / "data"))


def test_conditions_parsed_in_standard_order() -> None:
    assert parse_conditions("takt, baseline") == ("baseline", "takt")


def test_unknown_condition_rejected() -> None:
    with pytest.raises(ValueError, match="unknown plain"):
        parse_conditions("baseline,plain")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--conditions", "none"], "--conditions"),
        (["--turns", "0"], "--turns 0"),
        (["--limit", "0"], "--limit 0"),
        (["--concurrency", "0"], "--concurrency 0"),
    ],
)
def test_invalid_numbers_are_usage_errors(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", *arguments]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_record_and_replay_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["eval", "--record", "a.jsonl", "--replay", "b.jsonl"])

    assert caught.value.code == EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


def test_no_provider_names_the_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "--limit", "1", "--out", str(tmp_path / "out")])

    assert code == EXIT_FAILURE
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err


def test_missing_cases_file_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--cases", str(tmp_path / "absent.jsonl"), "--out", str(tmp_path)])

    assert code == EXIT_FAILURE
    assert "Cases not found" in capsys.readouterr().err


def test_missing_recording_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--replay", str(tmp_path / "absent.jsonl"), "--out", str(tmp_path)])

    assert code == EXIT_FAILURE
    assert "not found" in capsys.readouterr().err


def test_unknown_identity_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--identity", "nobody", "--replay", "x.jsonl", "--out", str(tmp_path)])

    assert code == EXIT_FAILURE
    assert "Unknown identity 'nobody'" in capsys.readouterr().err


async def record_fake_run(path: Path, cases: str) -> None:
    """Record a scripted run's exchanges, as --record would against a real server."""
    recording = Recording(path, writable=True)
    inner = FakeProvider(scripted(["Canberra", "Canberra", "Sydney"]))
    subject = RecordingProvider(inner, recording, "subject")
    judge = RecordingProvider(inner, recording, "judge")
    selected = select_cases(load_cases(cases)[0], None, 0)
    await run_evaluation(
        Evaluation(
            cases=selected,
            cases_label=cases,
            conditions=("baseline", "identity", "takt"),
            identity=IdentityRegistry.load().get("takt"),
            settings=load_settings({}),
            subject=subject,
            judge=judge,
            judge_label="fake",
            turns=2,
            concurrency=1,
            seed=0,
            out=path.parent / "recorded-run",
            command="recorded",
        )
    )


@pytest.mark.anyio
async def test_replay_reproduces_recorded_run(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps(
            {
                "id": "capital",
                "question": "What is the capital city of Australia?",
                "gold": "Canberra",
                "judge": {"type": "regex", "correct": "canberra", "wrong": "sydney"},
                "wrong_answer": "Sydney",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    recording = tmp_path / "exchanges.jsonl"
    await record_fake_run(recording, str(cases))
    out = tmp_path / "replayed"

    code = await _run_main_in_thread(
        [
            "eval",
            "--cases",
            str(cases),
            "--turns",
            "2",
            "--replay",
            str(recording),
            "--out",
            str(out),
        ]
    )

    assert code == 0
    original = (tmp_path / "recorded-run" / "summary.json").read_text(encoding="utf-8")
    replayed = (out / "summary.json").read_text(encoding="utf-8")
    assert json.loads(replayed)["conditions"] == json.loads(original)["conditions"]


async def _run_main_in_thread(arguments: list[str]) -> int:
    # main() starts its own event loop, so it cannot run inside this test's loop.
    return await anyio.to_thread.run_sync(main, arguments)
