"""Disk stores: the thread ledger (user data, never evicted) and the response cache.

Both are diskcache stores, which wrap SQLite. Every call into them is
blocking, so async code reaches them through `anyio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import diskcache
from pydantic import BaseModel, Field, ValidationError

from takt_mcp.config import Settings

logger = logging.getLogger(__name__)

THREAD_ID_PREFIX = "th_"
# 16 random bytes: 128 bits, so a thread id cannot be guessed.
THREAD_ID_BYTES = 16
_THREAD_KEY_PREFIX = "thread:"
# Store every value inside SQLite: a thread record then changes in one
# transaction, never as a database row plus a separate file.
_INLINE_VALUES = 2**31
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


class StoreError(Exception):
    """A store cannot be opened or read; the message names the path and the fix."""


class ThreadNotFoundError(LookupError):
    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(
            f"Thread {thread_id!r} not found. Omit thread_id to start a new thread, or list "
            "threads with `takt-mcp threads list`."
        )


class LedgerLimitError(Exception):
    """A thread or the ledger is full; the message names the setting to raise."""


class Turn(BaseModel):
    """One call on a thread, as the ledger keeps it."""

    index: int
    time: datetime
    tool: str
    input_digest: str = Field(description="sha256 of the call's canonical JSON inputs.")
    question: str | None
    stance: str
    pushback_kind: str
    capitulation: bool = False
    change_reason: str | None = None
    content: list[str] = Field(default_factory=list, description="New content points.")
    repeated_content: list[str] = Field(default_factory=list)
    pressure: list[str] = Field(default_factory=list)
    position: str
    bottom_line: str
    # None for a frame audit, which rates the assistant rather than itself.
    confidence: float | None
    key_premise: str
    would_change_my_mind: list[str] = Field(default_factory=list)
    result: dict[str, Any]
    identity: str
    identity_hash: str
    provider: str
    model: str


class ThreadRecord(BaseModel):
    thread_id: str
    created_at: datetime
    updated_at: datetime
    turns: list[Turn] = Field(default_factory=list)

    def state_digest(self) -> str:
        """Return an id of the ledger state a new turn is built from."""
        last = self.turns[-1].input_digest if self.turns else "empty"
        return f"{self.thread_id}:{len(self.turns)}:{last}"


def new_thread_id() -> str:
    return THREAD_ID_PREFIX + secrets.token_urlsafe(THREAD_ID_BYTES)


def is_thread_id(value: str) -> bool:
    body = value.removeprefix(THREAD_ID_PREFIX)
    return (
        value.startswith(THREAD_ID_PREFIX)
        and 16 <= len(body) <= 64
        and all(char.isalnum() or char in "-_" for char in body)
    )


def now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    # SQLite creates its files with the process umask; owner-only here.
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _make_private_dir(path: Path) -> None:
    # Folders created here for the store (TAKT_DATA_DIR among them) are
    # owner-only; existing parents such as the home folder are left alone.
    missing = [parent for parent in (path, *path.parents) if not parent.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIR)
    for folder in missing:
        folder.chmod(_PRIVATE_DIR)
    path.chmod(_PRIVATE_DIR)
    for parent in (path, *[p for p in path.iterdir() if p.is_dir()]):
        parent.chmod(_PRIVATE_DIR)


def _restrict_files(path: Path) -> None:
    for item in path.rglob("*"):
        item.chmod(_PRIVATE_DIR if item.is_dir() else _PRIVATE_FILE)


def open_private_cache(path: Path, what: str, **options: Any) -> diskcache.Cache:
    """Open a diskcache store in an owner-only folder, raising StoreError naming the path."""
    try:
        _make_private_dir(path)
        with _private_umask():
            cache = diskcache.Cache(str(path), disk_min_file_size=_INLINE_VALUES, **options)
            # Touch the database so a corrupt file fails here, not mid-call.
            cache.get("__probe__")
        _restrict_files(path)
        return cache
    except (sqlite3.Error, OSError) as error:
        raise StoreError(
            f"Cannot open the {what} at {path}: {error}. Move the folder aside (takt-mcp "
            "creates a new one on the next start) or set TAKT_DATA_DIR to another folder."
        ) from error


class Ledger:
    """Threads of turns kept on disk with no eviction; writes are atomic."""

    def __init__(self, path: Path, *, max_turns: int, max_threads: int) -> None:
        self.path = path
        self.max_turns = max_turns
        self.max_threads = max_threads
        # No eviction and no culling: a thread is user data.
        self._cache = open_private_cache(
            path, "thread ledger", eviction_policy="none", cull_limit=0, size_limit=2**62
        )
        self._locks: dict[str, anyio.Lock] = {}

    def close(self) -> None:
        self._cache.close()

    def lock(self, thread_id: str) -> anyio.Lock:
        """Return the lock that orders calls on one thread inside this process."""
        return self._locks.setdefault(thread_id, anyio.Lock())

    # Blocking methods below; async code calls them via anyio.to_thread.run_sync.

    def start(self, turn: Turn, thread_id: str | None = None) -> ThreadRecord:
        """Create a thread holding its first turn, in one transaction.

        The caller may pick the id first, so the stored result can carry it.
        """
        with self._cache.transact():
            if self.count() >= self.max_threads:
                raise LedgerLimitError(
                    f"The ledger at {self.path} holds {self.max_threads:,} threads, the maximum "
                    "(TAKT_MAX_THREADS). Delete old threads with `takt-mcp threads prune "
                    "--keep N` or raise the limit."
                )
            record = ThreadRecord(
                thread_id=thread_id or new_thread_id(),
                created_at=turn.time,
                updated_at=turn.time,
                turns=[turn.model_copy(update={"index": 0})],
            )
            # add, not set: an existing thread with this id is never replaced.
            if not self._cache.add(_THREAD_KEY_PREFIX + record.thread_id, record.model_dump_json()):
                raise LedgerLimitError(
                    f"Thread {record.thread_id!r} already exists in {self.path}; "
                    "start the thread without choosing its id."
                )
        return record

    def check_room(self, record: ThreadRecord) -> None:
        """Raise LedgerLimitError before any provider request when a thread is full."""
        if len(record.turns) >= self.max_turns:
            raise LedgerLimitError(
                f"Thread {record.thread_id!r} has {self.max_turns:,} turns, the maximum "
                "(TAKT_MAX_TURNS). Start a new thread or raise the limit."
            )

    def get(self, thread_id: str) -> ThreadRecord:
        raw = self._read(thread_id)
        if raw is None:
            raise ThreadNotFoundError(thread_id)
        return self._parse(thread_id, raw)

    def append(self, thread_id: str, turn: Turn) -> ThreadRecord:
        """Append a turn in one transaction: a crash leaves all of it or none."""
        with self._cache.transact():
            record = self.get(thread_id)
            if len(record.turns) >= self.max_turns:
                raise LedgerLimitError(
                    f"Thread {thread_id!r} has {self.max_turns:,} turns, the maximum "
                    "(TAKT_MAX_TURNS). Start a new thread or raise the limit."
                )
            turn = turn.model_copy(update={"index": len(record.turns)})
            record.turns.append(turn)
            record.updated_at = turn.time
            self._cache.set(_THREAD_KEY_PREFIX + thread_id, record.model_dump_json())
        return record

    def delete(self, thread_id: str) -> None:
        if not self._cache.delete(_THREAD_KEY_PREFIX + thread_id):
            raise ThreadNotFoundError(thread_id)

    def count(self) -> int:
        # Every key in the ledger is a thread key, so diskcache's stored count
        # is the thread count; iterating the keys would cost O(threads) per call.
        return len(self._cache)

    def threads(self) -> list[ThreadRecord]:
        """Return every thread, most recently updated first."""
        records = []
        for key in list(self._cache.iterkeys()):
            if not str(key).startswith(_THREAD_KEY_PREFIX):
                continue
            thread_id = str(key).removeprefix(_THREAD_KEY_PREFIX)
            raw = self._read(thread_id)
            if raw is None:
                continue
            try:
                records.append(self._parse(thread_id, raw))
            except StoreError as error:
                # One damaged thread must not hide the others.
                logger.error("skipping thread %s: %s", thread_id, error)
        return sorted(records, key=lambda record: record.updated_at, reverse=True)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the `keep` most recently updated threads; return the deleted ids."""
        doomed = [record.thread_id for record in self.threads()[keep:]]
        for thread_id in doomed:
            self._cache.delete(_THREAD_KEY_PREFIX + thread_id)
        return doomed

    def _read(self, thread_id: str) -> str | None:
        try:
            value = self._cache.get(_THREAD_KEY_PREFIX + thread_id)
        except sqlite3.Error as error:
            raise StoreError(
                f"Cannot read the thread ledger at {self.path}: {error}. Move the folder aside "
                "or set TAKT_DATA_DIR to another folder."
            ) from error
        return None if value is None else str(value)

    def _parse(self, thread_id: str, raw: str) -> ThreadRecord:
        try:
            return ThreadRecord.model_validate_json(raw)
        except ValidationError as error:
            raise StoreError(
                f"Thread {thread_id!r} in {self.path} is unreadable ({error.error_count()} "
                f"problems). Remove it with `takt-mcp threads delete {thread_id}`."
            ) from None


@dataclass
class Stores:
    """The opened stores; a store that failed to open is None with the reason kept."""

    ledger: Ledger | None
    cache: ResponseCache | None
    ledger_error: str | None = None

    def close(self) -> None:
        for store in (self.ledger, self.cache):
            if store is not None:
                store.close()


def open_stores(settings: Settings) -> Stores:
    """Open the ledger and the response cache (blocking); failures are logged, not raised."""
    ledger: Ledger | None = None
    ledger_error: str | None = None
    cache: ResponseCache | None = None
    try:
        ledger = Ledger(
            settings.ledger_dir(), max_turns=settings.max_turns, max_threads=settings.max_threads
        )
    except StoreError as error:
        ledger_error = str(error)
        logger.error("%s Calls without a thread_id still work.", error)
    if settings.cache_ttl_seconds > 0:
        try:
            cache = ResponseCache(
                settings.cache_dir(),
                ttl_seconds=settings.cache_ttl_seconds,
                size_limit_bytes=settings.cache_size_mb * 1024 * 1024,
            )
        except StoreError as error:
            logger.warning("%s Running without the response cache.", error)
    return Stores(ledger=ledger, cache=cache, ledger_error=ledger_error)


class ResponseCache:
    """Provider replies by request key, with a TTL and a size limit (eviction allowed)."""

    def __init__(self, path: Path, *, ttl_seconds: float, size_limit_bytes: int) -> None:
        self.path = path
        self.ttl_seconds = ttl_seconds
        self._cache = open_private_cache(
            path,
            "response cache",
            eviction_policy="least-recently-stored",
            size_limit=size_limit_bytes,
        )

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            value = self._cache.get(key)
        except sqlite3.Error as error:
            logger.warning("response cache read failed at %s: %s", self.path, error)
            return None
        if value is None:
            return None
        try:
            data = json.loads(value)
        except (TypeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        try:
            self._cache.set(key, json.dumps(value), expire=self.ttl_seconds)
        except sqlite3.Error as error:
            logger.warning("response cache write failed at %s: %s", self.path, error)

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()
