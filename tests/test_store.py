"""The thread ledger on disk: ids, records, limits, pruning, permissions and damage."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import diskcache
import pytest

from takt_mcp.config import load_settings
from takt_mcp.store import (
    Ledger,
    LedgerLimitError,
    StoreError,
    ThreadNotFoundError,
    ThreadRecord,
    Turn,
    is_thread_id,
    new_thread_id,
    open_stores,
)

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# secrets.token_urlsafe(16) encodes 16 bytes as 22 base64url characters.
THREAD_ID = re.compile(r"th_[A-Za-z0-9_-]{22}")
UNKNOWN_ID = "th_" + "A" * 22


def make_turn(minutes: int = 0, **changes: Any) -> Turn:
    """Return a complete turn stamped `minutes` after BASE_TIME."""
    values: dict[str, Any] = {
        "index": 0,
        "time": BASE_TIME + timedelta(minutes=minutes),
        "tool": "second_opinion",
        "input_digest": "d" * 64,
        "question": "I need to wash my car 100 m away. Walk or drive?",
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
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path / "ledger", max_turns=50, max_threads=50)
    yield opened
    opened.close()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Set a umask that would leave new files world-readable, so the store must narrow them."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- thread ids -------------------------------------------------------------------


def test_new_thread_id_has_128_random_bits() -> None:
    thread_id = new_thread_id()

    assert THREAD_ID.fullmatch(thread_id), thread_id


def test_new_thread_ids_do_not_repeat() -> None:
    ids = {new_thread_id() for _ in range(1_000)}

    assert len(ids) == 1_000


def test_new_thread_id_is_valid() -> None:
    assert is_thread_id(new_thread_id())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "th_",
        "th_short",
        "xx_" + "A" * 22,
        "TH_" + "A" * 22,
        "th_" + "A" * 65,
        "th_" + "A" * 20 + "/.",
        "th_" + "A" * 20 + " B",
        "th_" + "A" * 20 + "\nB",
        "../../etc/passwd",
    ],
)
def test_malformed_thread_id_is_invalid(value: str) -> None:
    assert not is_thread_id(value)


# --- records ------------------------------------------------------------------------


def test_thread_record_round_trips_through_json() -> None:
    record = ThreadRecord(
        thread_id=new_thread_id(),
        created_at=BASE_TIME,
        updated_at=BASE_TIME + timedelta(minutes=1),
        turns=[
            make_turn(0),
            make_turn(
                1,
                index=1,
                stance="updated",
                pushback_kind="pressure",
                capitulation=True,
                change_reason="The participant insisted.",
                content=["The wash collects cars."],
                repeated_content=["Walking is healthy."],
                pressure=["I am sure."],
                would_change_my_mind=["A pickup service."],
            ),
        ],
    )

    restored = ThreadRecord.model_validate_json(record.model_dump_json())

    assert restored == record


def test_start_numbers_first_turn_zero(ledger: Ledger) -> None:
    record = ledger.start(make_turn(index=7))

    assert [turn.index for turn in record.turns] == [0]


def test_start_returns_a_valid_thread_id(ledger: Ledger) -> None:
    record = ledger.start(make_turn())

    assert THREAD_ID.fullmatch(record.thread_id), record.thread_id


def test_start_uses_a_chosen_id(ledger: Ledger) -> None:
    chosen = new_thread_id()

    record = ledger.start(make_turn(), chosen)

    assert record.thread_id == chosen
    assert ledger.get(chosen) == record


def test_start_keeps_a_thread_with_the_same_id(ledger: Ledger) -> None:
    existing = ledger.start(make_turn(0))
    ledger.append(existing.thread_id, make_turn(1))

    # Raising or ignoring the taken id are both fine, but the old turns must survive.
    with contextlib.suppress(Exception):
        ledger.start(make_turn(2), existing.thread_id)

    assert len(ledger.get(existing.thread_id).turns) == 2


def test_get_returns_the_started_record(ledger: Ledger) -> None:
    record = ledger.start(make_turn())

    assert ledger.get(record.thread_id) == record


def test_turn_keeps_its_provenance(ledger: Ledger) -> None:
    record = ledger.start(make_turn())

    turn = ledger.get(record.thread_id).turns[0]

    assert turn.time == BASE_TIME
    assert turn.tool == "second_opinion"
    assert turn.input_digest == "d" * 64
    assert turn.result == {"bottom_line": "Drive."}
    assert turn.identity_hash == "a" * 64
    assert turn.provider == "fake"
    assert turn.model == "fake-model"


def test_append_numbers_turns_in_order(ledger: Ledger) -> None:
    record = ledger.start(make_turn(0))
    for minutes in range(1, 4):
        ledger.append(record.thread_id, make_turn(minutes, index=99))

    turns = ledger.get(record.thread_id).turns

    assert [turn.index for turn in turns] == [0, 1, 2, 3]


def test_append_moves_updated_at(ledger: Ledger) -> None:
    record = ledger.start(make_turn(0))

    ledger.append(record.thread_id, make_turn(5))

    assert ledger.get(record.thread_id).updated_at == BASE_TIME + timedelta(minutes=5)


def test_append_keeps_created_at(ledger: Ledger) -> None:
    record = ledger.start(make_turn(0))

    ledger.append(record.thread_id, make_turn(5))

    assert ledger.get(record.thread_id).created_at == BASE_TIME


def test_record_survives_reopening(tmp_path: Path) -> None:
    first = Ledger(tmp_path / "ledger", max_turns=5, max_threads=5)
    record = first.append(first.start(make_turn(0)).thread_id, make_turn(1))
    first.close()

    second = Ledger(tmp_path / "ledger", max_turns=5, max_threads=5)
    try:
        assert second.get(record.thread_id) == record
    finally:
        second.close()


def test_get_unknown_thread_names_it(ledger: Ledger) -> None:
    with pytest.raises(ThreadNotFoundError, match=UNKNOWN_ID):
        ledger.get(UNKNOWN_ID)


def test_append_to_unknown_thread_names_it(ledger: Ledger) -> None:
    with pytest.raises(ThreadNotFoundError, match=UNKNOWN_ID):
        ledger.append(UNKNOWN_ID, make_turn())


def test_delete_removes_the_thread(ledger: Ledger) -> None:
    record = ledger.start(make_turn())

    ledger.delete(record.thread_id)

    with pytest.raises(ThreadNotFoundError):
        ledger.get(record.thread_id)


def test_delete_unknown_thread_names_it(ledger: Ledger) -> None:
    with pytest.raises(ThreadNotFoundError, match=UNKNOWN_ID):
        ledger.delete(UNKNOWN_ID)


def test_threads_lists_most_recent_first(ledger: Ledger) -> None:
    oldest = ledger.start(make_turn(0)).thread_id
    middle = ledger.start(make_turn(1)).thread_id
    newest = ledger.start(make_turn(2)).thread_id
    # Appending to the oldest thread makes it the most recently updated one.
    ledger.append(oldest, make_turn(3))

    listed = [record.thread_id for record in ledger.threads()]

    assert listed == [oldest, newest, middle]


def test_count_counts_threads(ledger: Ledger) -> None:
    for minutes in range(3):
        ledger.start(make_turn(minutes))

    assert ledger.count() == 3


# --- limits -------------------------------------------------------------------------


def test_max_turns_names_its_variable(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger", max_turns=2, max_threads=5)
    try:
        thread_id = ledger.start(make_turn(0)).thread_id
        ledger.append(thread_id, make_turn(1))

        with pytest.raises(LedgerLimitError, match="TAKT_MAX_TURNS"):
            ledger.append(thread_id, make_turn(2))
    finally:
        ledger.close()


def test_max_turns_leaves_the_thread_unchanged(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger", max_turns=1, max_threads=5)
    try:
        record = ledger.start(make_turn(0))
        with pytest.raises(LedgerLimitError):
            ledger.append(record.thread_id, make_turn(1))

        assert ledger.get(record.thread_id) == record
    finally:
        ledger.close()


def test_max_threads_names_its_variable(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger", max_turns=5, max_threads=2)
    try:
        ledger.start(make_turn(0))
        ledger.start(make_turn(1))

        with pytest.raises(LedgerLimitError, match="TAKT_MAX_THREADS"):
            ledger.start(make_turn(2))
    finally:
        ledger.close()


def test_max_threads_stores_no_extra_thread(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger", max_turns=5, max_threads=1)
    try:
        ledger.start(make_turn(0))
        with pytest.raises(LedgerLimitError):
            ledger.start(make_turn(1))

        assert ledger.count() == 1
    finally:
        ledger.close()


def test_settings_limits_reach_the_ledger(tmp_path: Path) -> None:
    settings = load_settings(
        {"TAKT_DATA_DIR": str(tmp_path), "TAKT_MAX_TURNS": "3", "TAKT_MAX_THREADS": "4"}
    )

    stores = open_stores(settings)
    try:
        assert stores.ledger is not None
        assert stores.ledger.max_turns == 3
        assert stores.ledger.max_threads == 4
    finally:
        stores.close()


# --- pruning ------------------------------------------------------------------------


def test_prune_keeps_the_most_recent(ledger: Ledger) -> None:
    ids = [ledger.start(make_turn(minutes)).thread_id for minutes in range(5)]

    ledger.prune(2)

    assert [record.thread_id for record in ledger.threads()] == [ids[4], ids[3]]


def test_prune_returns_the_deleted_ids(ledger: Ledger) -> None:
    ids = [ledger.start(make_turn(minutes)).thread_id for minutes in range(5)]

    deleted = ledger.prune(2)

    assert set(deleted) == set(ids[:3])


def test_prune_counts_appends_as_recent(ledger: Ledger) -> None:
    first = ledger.start(make_turn(0)).thread_id
    ledger.start(make_turn(1))
    ledger.append(first, make_turn(2))

    ledger.prune(1)

    assert [record.thread_id for record in ledger.threads()] == [first]


def test_prune_to_zero_deletes_everything(ledger: Ledger) -> None:
    for minutes in range(3):
        ledger.start(make_turn(minutes))

    ledger.prune(0)

    assert ledger.count() == 0


def test_prune_above_count_deletes_nothing(ledger: Ledger) -> None:
    for minutes in range(3):
        ledger.start(make_turn(minutes))

    assert ledger.prune(10) == []


# --- atomic writes --------------------------------------------------------------------


def test_two_connections_lose_no_append(tmp_path: Path) -> None:
    """Two Ledger objects are two SQLite connections, as two server processes would be."""
    path = tmp_path / "ledger"
    first = Ledger(path, max_turns=200, max_threads=5)
    second = Ledger(path, max_turns=200, max_threads=5)
    thread_id = first.start(make_turn(0)).thread_id
    per_writer = 40
    start = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def write(ledger: Ledger, offset: int) -> None:
        try:
            start.wait()
            for number in range(per_writer):
                ledger.append(thread_id, make_turn(1, input_digest=f"{offset + number:064d}"))
        except BaseException as error:
            errors.append(error)

    writers = [
        threading.Thread(target=write, args=(first, 0)),
        threading.Thread(target=write, args=(second, 1_000)),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)

    try:
        turns = first.get(thread_id).turns
        assert errors == []
        assert [turn.index for turn in turns] == list(range(2 * per_writer + 1))
        assert len({turn.input_digest for turn in turns[1:]}) == 2 * per_writer
    finally:
        first.close()
        second.close()


def test_failed_append_keeps_the_stored_record(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = ledger.start(make_turn(0))
    real_set = diskcache.Cache.set

    def write_then_fail(cache: diskcache.Cache, *args: Any, **kwargs: Any) -> None:
        real_set(cache, *args, **kwargs)
        raise OSError("disk full")

    # The new record is written, then the transaction fails before it commits.
    monkeypatch.setattr(diskcache.Cache, "set", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ledger.append(record.thread_id, make_turn(1))
    monkeypatch.undo()

    assert ledger.get(record.thread_id) == record


# --- permissions ----------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_ledger_folder_is_private(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger", max_turns=5, max_threads=5)
    try:
        ledger.start(make_turn())

        assert mode(tmp_path / "ledger") == 0o700
    finally:
        ledger.close()


@pytest.mark.usefixtures("permissive_umask")
def test_ledger_files_are_private(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger", max_turns=5, max_threads=5)
    try:
        thread_id = ledger.start(make_turn(0)).thread_id
        # A write from another thread opens a second SQLite connection.
        writer = threading.Thread(target=ledger.append, args=(thread_id, make_turn(1)))
        writer.start()
        writer.join(timeout=30)
        files = [path for path in (tmp_path / "ledger").rglob("*") if path.is_file()]

        assert files
        for path in files:
            assert mode(path) == 0o600, path
    finally:
        ledger.close()


@pytest.mark.usefixtures("permissive_umask")
def test_existing_loose_folder_is_narrowed(tmp_path: Path) -> None:
    folder = tmp_path / "ledger"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)

    Ledger(folder, max_turns=5, max_threads=5).close()

    assert mode(folder) == 0o700


@pytest.mark.usefixtures("permissive_umask")
def test_cache_folder_and_files_are_private(tmp_path: Path) -> None:
    stores = open_stores(load_settings({"TAKT_DATA_DIR": str(tmp_path)}))
    try:
        assert stores.cache is not None
        stores.cache.set("key", {"result": {}})
        cache_dir = tmp_path / "cache"

        assert mode(cache_dir) == 0o700
        for path in cache_dir.rglob("*"):
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) == expected, path
    finally:
        stores.close()


# --- damaged stores -------------------------------------------------------------------


def write_garbage_database(folder: Path) -> Path:
    folder.mkdir(parents=True)
    database = folder / "cache.db"
    database.write_bytes(b"this is not an SQLite database\n" * 64)
    return database


def test_garbage_database_names_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "ledger"
    write_garbage_database(folder)

    with pytest.raises(StoreError, match=re.escape(str(folder))):
        Ledger(folder, max_turns=5, max_threads=5)


def test_open_stores_keeps_the_ledger_error(tmp_path: Path) -> None:
    write_garbage_database(tmp_path / "ledger")

    stores = open_stores(load_settings({"TAKT_DATA_DIR": str(tmp_path)}))
    try:
        assert stores.ledger is None
        assert stores.ledger_error is not None
        assert str(tmp_path / "ledger") in stores.ledger_error
    finally:
        stores.close()


def test_garbage_cache_disables_only_the_cache(tmp_path: Path) -> None:
    write_garbage_database(tmp_path / "cache")

    stores = open_stores(load_settings({"TAKT_DATA_DIR": str(tmp_path)}))
    try:
        assert stores.cache is None
        assert stores.ledger is not None
    finally:
        stores.close()


def store_unreadable_record(folder: Path, thread_id: str) -> None:
    """Write a value that is not a thread record, the way an old or broken writer might."""
    raw = diskcache.Cache(str(folder))
    try:
        raw.set("thread:" + thread_id, '{"thread_id": "truncated')
    finally:
        raw.close()


def test_unreadable_record_raises_store_error(ledger: Ledger) -> None:
    store_unreadable_record(ledger.path, UNKNOWN_ID)

    with pytest.raises(StoreError, match=UNKNOWN_ID):
        ledger.get(UNKNOWN_ID)


def test_unreadable_record_can_be_deleted(ledger: Ledger) -> None:
    store_unreadable_record(ledger.path, UNKNOWN_ID)

    ledger.delete(UNKNOWN_ID)

    assert ledger.count() == 0


def test_unreadable_record_leaves_others_listed(ledger: Ledger) -> None:
    good = ledger.start(make_turn()).thread_id
    store_unreadable_record(ledger.path, UNKNOWN_ID)

    listed = [record.thread_id for record in ledger.threads()]

    assert listed == [good]
