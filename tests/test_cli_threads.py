"""`takt-mcp threads`: list, show, export, delete and prune on a ledger in TAKT_DATA_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import diskcache
import pytest

from takt_mcp.cli import EXIT_FAILURE, EXIT_USAGE, main
from takt_mcp.store import Ledger, ThreadRecord, Turn

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UNKNOWN_ID = "th_" + "A" * 22
QUESTION = "I need to wash my car. The car wash is 100 metres away. Walk or drive?"
SUBPROCESS_TIMEOUT_SECONDS = 60


def make_turn(minutes: int, **changes: Any) -> Turn:
    values: dict[str, Any] = {
        "index": 0,
        "time": BASE_TIME + timedelta(minutes=minutes),
        "tool": "second_opinion",
        "input_digest": f"{minutes:064d}",
        "question": QUESTION,
        "stance": "new",
        "pushback_kind": "none",
        "position": "Drive. The car must be at the wash.",
        "bottom_line": "Drive.",
        "confidence": 0.8,
        "key_premise": "The car has to be at the car wash.",
        "result": {"bottom_line": "Drive."},
        "identity": "takt",
        "identity_hash": "a" * 64,
        "provider": "fake",
        "model": "fake-model",
    }
    values.update(changes)
    return Turn.model_validate(values)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point TAKT_DATA_DIR at tmp_path, so no command reaches the user's data folder."""
    folder = tmp_path / "data"
    monkeypatch.setenv("TAKT_DATA_DIR", str(folder))
    return folder


def open_ledger(data_dir: Path) -> Ledger:
    return Ledger(data_dir / "ledger", max_turns=100, max_threads=100)


@pytest.fixture
def ledger(data_dir: Path) -> Iterator[Ledger]:
    opened = open_ledger(data_dir)
    yield opened
    opened.close()


def store_disputed_thread(ledger: Ledger, minutes: int = 0) -> ThreadRecord:
    """Store a thread that opens, holds, updates on evidence and then capitulates."""
    thread_id = ledger.start(make_turn(minutes)).thread_id
    ledger.append(
        thread_id,
        make_turn(minutes + 1, stance="held", pushback_kind="pressure", pressure=["Insists."]),
    )
    ledger.append(
        thread_id,
        make_turn(
            minutes + 2,
            stance="updated",
            pushback_kind="evidence",
            content=["The wash collects cars from home."],
            change_reason="The wash collects the car.",
            bottom_line="Let the wash collect it.",
        ),
    )
    return ledger.append(
        thread_id,
        make_turn(
            minutes + 3,
            stance="updated",
            pushback_kind="pressure",
            capitulation=True,
            bottom_line="Walk.",
        ),
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["threads", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- list -----------------------------------------------------------------------------


def test_list_prints_one_line_per_thread(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    older = ledger.start(make_turn(0)).thread_id
    newer = ledger.start(make_turn(10)).thread_id

    code, out, _ = run(capsys, "list")

    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [newer, older]


def test_list_shows_the_last_stance(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    store_disputed_thread(ledger)

    _, out, _ = run(capsys, "list")

    assert "4 turns" in out
    assert "updated: Walk." in out


@pytest.mark.usefixtures("data_dir")
def test_list_without_threads_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list")

    assert code == 0
    assert out == ""
    assert "No threads" in err


def test_list_uses_takt_data_dir(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "list")

    assert (data_dir / "ledger").is_dir()


# --- show -----------------------------------------------------------------------------


def test_show_prints_the_timeline(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    record = store_disputed_thread(ledger)

    code, out, _ = run(capsys, "show", record.thread_id)

    assert code == 0
    assert out.startswith(f"Thread {record.thread_id}")
    assert "HELD" in out
    assert "UPDATED" in out
    assert "CAPITULATION" in out


def test_show_marks_only_the_capitulation(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    record = store_disputed_thread(ledger)

    _, out, _ = run(capsys, "show", record.thread_id)
    marked = [line.split()[0] for line in out.splitlines() if "CAPITULATION" in line]

    assert marked == ["#3"]


# --- export ---------------------------------------------------------------------------


def test_export_prints_the_ledger_json(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    record = store_disputed_thread(ledger)

    code, out, _ = run(capsys, "export", record.thread_id)

    assert code == 0
    assert ThreadRecord.model_validate(json.loads(out)) == record


# --- delete and prune -------------------------------------------------------------------


def test_delete_removes_the_thread(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    remaining = ledger.start(make_turn(0)).thread_id
    deleted = ledger.start(make_turn(1)).thread_id

    code, _, err = run(capsys, "delete", deleted)

    assert code == 0
    assert deleted in err
    assert [record.thread_id for record in ledger.threads()] == [remaining]


def test_prune_keeps_the_most_recent(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [ledger.start(make_turn(minutes)).thread_id for minutes in range(4)]

    code, _, err = run(capsys, "prune", "--keep", "1")

    assert code == 0
    assert "Deleted 3 threads" in err
    assert [record.thread_id for record in ledger.threads()] == [ids[3]]


def test_prune_rejects_a_negative_keep(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    ledger.start(make_turn(0))

    code, _, err = run(capsys, "prune", "--keep", "-1")

    assert code == EXIT_USAGE
    assert "--keep" in err
    assert ledger.count() == 1


def test_prune_requires_keep(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["threads", "prune"])

    assert exit_info.value.code == EXIT_USAGE
    assert "--keep" in capsys.readouterr().err


# --- errors -----------------------------------------------------------------------------


@pytest.mark.usefixtures("ledger")
@pytest.mark.parametrize("action", ["show", "export", "delete"])
def test_unknown_id_fails_with_its_name(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, action, UNKNOWN_ID)

    assert code == EXIT_FAILURE
    assert out == ""
    assert UNKNOWN_ID in err
    assert "not found" in err


@pytest.mark.usefixtures("ledger")
def test_malformed_id_fails_with_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "../../etc/passwd")

    assert code != 0
    assert out == ""
    assert "../../etc/passwd" in err


def test_damaged_ledger_fails_naming_its_path(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "ledger").mkdir(parents=True)
    (data_dir / "ledger" / "cache.db").write_bytes(b"not a database\n" * 100)

    code, out, err = run(capsys, "list")

    assert code == EXIT_FAILURE
    assert out == ""
    assert str(data_dir / "ledger") in err


def store_unreadable_record(data_dir: Path, thread_id: str) -> None:
    raw = diskcache.Cache(str(data_dir / "ledger"))
    try:
        raw.set("thread:" + thread_id, '{"thread_id": "truncated')
    finally:
        raw.close()


def test_unreadable_thread_fails_with_its_name(
    ledger: Ledger, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_unreadable_record(data_dir, UNKNOWN_ID)

    code, _, err = run(capsys, "show", UNKNOWN_ID)

    assert code == EXIT_FAILURE
    assert UNKNOWN_ID in err


def test_unreadable_thread_advice_works(
    ledger: Ledger, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_unreadable_record(data_dir, UNKNOWN_ID)
    _, _, advice = run(capsys, "show", UNKNOWN_ID)

    code, _, _ = run(capsys, "export", UNKNOWN_ID)

    assert "threads export" not in advice or code == 0, advice


def test_list_skips_an_unreadable_thread(
    ledger: Ledger, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readable = ledger.start(make_turn(0)).thread_id
    store_unreadable_record(data_dir, UNKNOWN_ID)

    code, out, _ = run(capsys, "list")

    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [readable]


def test_unreadable_thread_can_be_deleted(
    ledger: Ledger, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_unreadable_record(data_dir, UNKNOWN_ID)

    code, _, _ = run(capsys, "delete", UNKNOWN_ID)

    assert code == 0
    assert ledger.count() == 0


# --- the installed command --------------------------------------------------------------


def installed_command() -> Path:
    """Return the `takt-mcp` script installed next to this Python."""
    return Path(sys.executable).parent / "takt-mcp"


def test_installed_command_shows_a_thread(ledger: Ledger, data_dir: Path, tmp_path: Path) -> None:
    record = store_disputed_thread(ledger)
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TAKT_DATA_DIR": str(data_dir),
    }

    completed = subprocess.run(
        [str(installed_command()), "threads", "show", record.thread_id],
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "CAPITULATION" in completed.stdout


def test_installed_command_rejects_unknown_id(data_dir: Path, tmp_path: Path) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TAKT_DATA_DIR": str(data_dir),
    }

    completed = subprocess.run(
        [str(installed_command()), "threads", "show", UNKNOWN_ID],
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )

    assert completed.returncode == EXIT_FAILURE
    assert completed.stderr.startswith("takt-mcp: error: ")
    assert UNKNOWN_ID in completed.stderr
