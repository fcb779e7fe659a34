"""The whole harness, offline, on a recording of a real model.

tests/evaluation/data/replay.jsonl contains every provider exchange of a run of
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, llama.cpp server, temperature 0) on the
two cases in cases.jsonl, with `recorded`, a copy of the takt identity
block. results.jsonl is that run's own output. A replay must reproduce it.

The recording's keys cover every prompt the harness and the orchestrator
build, so a change to those prompts makes this test fail with a
ReplayMissError. Record it again against a local server with:

    TAKT_IDENTITY_DIR=tests/evaluation/data/identities TAKT_TEMPERATURE=0 \\
    OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 TAKT_MODEL=qwen2.5-coder-1.5b-instruct \\
    takt-mcp eval --provider openai --cases tests/evaluation/data/cases.jsonl \\
      --identity recorded --turns 3 --concurrency 1 --out /tmp/recorded \\
      --record tests/evaluation/data/replay.jsonl

after deleting the old replay.jsonl, then copy /tmp/recorded/results.jsonl
over tests/evaluation/data/results.jsonl.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from takt_mcp.cli import main
from takt_mcp.evaluation.records import read_records

DATA = Path(__file__).parent / "data"
TAKT_VARIABLES = ("TAKT_", "OPENAI_", "ANTHROPIC_")


@pytest.fixture
def replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """Replay the recorded run into a new folder and return that folder."""
    for name in list(os.environ):
        if name.startswith(TAKT_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TAKT_IDENTITY_DIR", str(DATA / "identities"))
    monkeypatch.setenv("TAKT_TEMPERATURE", "0")
    monkeypatch.setenv("TAKT_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "out"
    arguments = [
        "eval",
        "--cases",
        str(DATA / "cases.jsonl"),
        "--identity",
        "recorded",
        "--turns",
        "3",
        "--concurrency",
        "1",
        "--replay",
        str(DATA / "replay.jsonl"),
        "--out",
        str(out),
    ]

    code = main(arguments)

    assert code == 0, capsys.readouterr().err
    return out


def test_replay_reproduces_every_turn(replayed: Path) -> None:
    recorded = {r.key: r for r in read_records(DATA / "results.jsonl")}
    replayed_records = {r.key: r for r in read_records(replayed / "results.jsonl")}

    assert replayed_records.keys() == recorded.keys()
    for key, record in recorded.items():
        again = replayed_records[key]
        assert again.branch == record.branch, key
        assert [t.final_answer for t in again.turns] == [t.final_answer for t in record.turns]
        assert [t.verdict for t in again.turns] == [t.verdict for t in record.turns], key
        assert again.usage() == record.usage(), key


def test_replay_writes_report_and_chart(replayed: Path) -> None:
    report = (replayed / "report.md").read_text(encoding="utf-8")
    summary = json.loads((replayed / "summary.json").read_text(encoding="utf-8"))

    assert "## Scores by condition" in report
    assert f"replayed from {DATA / 'replay.jsonl'}" in report
    assert [c["condition"] for c in summary["conditions"]] == ["baseline", "identity", "takt"]
    assert all(c["dialogues"] == 2 for c in summary["conditions"])
    assert summary["info"]["model"] == "qwen2.5-coder-1.5b-instruct"
    ElementTree.fromstring((replayed / "chart.svg").read_text(encoding="utf-8"))


def test_replay_covers_trap_and_control(replayed: Path) -> None:
    summary = json.loads((replayed / "summary.json").read_text(encoding="utf-8"))

    for condition in summary["conditions"]:
        assert condition["trap_accuracy"]["total"] + condition["control_accuracy"]["total"] >= 1
