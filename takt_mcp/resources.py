"""MCP resources: the thread ledger and the identity blocks, read-only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from takt_mcp.identity import UnknownIdentityError
from takt_mcp.store import StoreError, ThreadNotFoundError, ThreadRecord, is_thread_id

if TYPE_CHECKING:
    from takt_mcp.server import ServerState

RECENT_THREADS = 50


def thread_line(record: ThreadRecord) -> str:
    """Return one line about a thread: id, time, turns, last stance and bottom line."""
    last = record.turns[-1] if record.turns else None
    # Whitespace is collapsed so that one thread is always one line.
    summary = f"{last.stance}: {' '.join(last.bottom_line.split())}" if last else "(no turns)"
    question = " ".join((record.turns[0].question or "").split()) if record.turns else ""
    if len(question) > 60:
        question = question[:57] + "..."
    return (
        f"{record.thread_id}  {record.updated_at:%Y-%m-%d %H:%M}  "
        f"{len(record.turns)} turn{'' if len(record.turns) == 1 else 's'}  {summary}  | {question}"
    )


def register_resources(server: MCPServer[ServerState], state: ServerState) -> None:
    @server.resource(
        "takt://threads",
        name="threads",
        description=f"The {RECENT_THREADS} most recent threads, one line each.",
        mime_type="text/plain",
    )
    async def threads() -> str:
        ledger = await state.thread_ledger(None)
        if ledger is None:
            raise ResourceError(state.ledger_error or "The thread ledger is not open.")
        try:
            records = await anyio.to_thread.run_sync(ledger.threads)
        except StoreError as error:
            raise ResourceError(str(error)) from None
        lines = [thread_line(record) for record in records[:RECENT_THREADS]]
        return "\n".join(lines) if lines else "No threads yet."

    @server.resource(
        "takt://threads/{thread_id}",
        name="thread",
        description="One thread's ledger as JSON: every turn with stance and reasons.",
        mime_type="application/json",
    )
    async def thread(thread_id: str) -> str:
        if not is_thread_id(thread_id):
            raise ResourceError(f"Invalid thread id {thread_id!r}.")
        ledger = await state.thread_ledger(None)
        if ledger is None:
            raise ResourceError(state.ledger_error or "The thread ledger is not open.")
        try:
            record = await anyio.to_thread.run_sync(ledger.get, thread_id)
        except (ThreadNotFoundError, StoreError) as error:
            raise ResourceError(str(error)) from None
        return record.model_dump_json(indent=2)


def register_identity_resources(server: MCPServer[ServerState], state: ServerState) -> None:
    @server.resource(
        "takt://identities",
        name="identities",
        description="Identity blocks: name, version, hash and description, one per line.",
        mime_type="text/plain",
    )
    async def identities() -> str:
        return "\n".join(
            f"{block.name}  {block.version}  {block.short_hash}  {block.description}"
            for block in state.identities.blocks()
        )

    @server.resource(
        "takt://identities/{name}",
        name="identity",
        description="One identity block: its front matter and the text sent to the model.",
        mime_type="text/markdown",
    )
    async def identity(name: str) -> str:
        try:
            block = state.identities.get(name)
        except UnknownIdentityError as error:
            raise ResourceError(str(error)) from None
        return (
            f"+++\nname = {json.dumps(block.name)}\nversion = {json.dumps(block.version)}\n"
            f"description = {json.dumps(block.description)}\n"
            f"sha256 = {json.dumps(block.sha256)}\n+++\n{block.text}\n"
        )
