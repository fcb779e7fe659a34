"""results.jsonl: appending, reading back, torn lines and damaged lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from takt_mcp.evaluation.records import ResultsFileError, append_record, read_records
from tests.evaluation.helpers import dialogue


def test_records_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    first = dialogue("a", ["correct", "wrong"])
    second = dialogue("b", ["wrong", "correct"], condition="takt")

    append_record(path, first)
    append_record(path, second)

    assert read_records(path) == [first, second]


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    assert read_records(tmp_path / "results.jsonl") == []


def test_latest_record_per_pair_wins(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_record(path, dialogue("a", ["correct"], error="ProviderTimeoutError: slow"))
    append_record(path, dialogue("a", ["correct", "correct"]))

    (record,) = read_records(path)

    assert record.error is None
    assert len(record.turns) == 2


def test_torn_line_skipped_and_next_append_intact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.jsonl"
    append_record(path, dialogue("a", ["correct"]))
    with path.open("a", encoding="utf-8") as stream:
        stream.write('{"case_id": "b", "condi')

    append_record(path, dialogue("c", ["wrong"]))

    assert [record.case_id for record in read_records(path)] == ["a", "c"]
    assert "incomplete record" in caplog.text


def test_damaged_record_raises_with_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_record(path, dialogue("a", ["correct"]))
    with path.open("a", encoding="utf-8") as stream:
        stream.write('{"case_id": "b"}\n')

    with pytest.raises(ResultsFileError, match=r"results\.jsonl:2"):
        read_records(path)


def test_record_usage_sums_turns() -> None:
    record = dialogue("a", ["correct", "correct", "wrong"])

    assert record.usage().requests == 3
    assert record.usage().input_tokens == 30
    assert record.judge_usage().requests == 0
