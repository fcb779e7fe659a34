"""The MCP server: tool registration and lifespan. Tools only validate, call
the orchestrator and shape errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from takt_mcp import __version__
from takt_mcp.audit import run_frame_check
from takt_mcp.caching import CachingProvider
from takt_mcp.compact import compact_schema, outline_schema
from takt_mcp.config import Settings
from takt_mcp.deliberation import InputTooLargeError, Voice
from takt_mcp.identity import IdentityRegistry, UnknownIdentityError
from takt_mcp.providers import (
    Provider,
    ProviderError,
    ProviderNotConfiguredError,
    create_provider,
)
from takt_mcp.resources import register_resources
from takt_mcp.schemas import (
    MAX_PARTICIPANTS,
    MAX_TURNS,
    MIN_PARTICIPANTS,
    ConversationTurn,
    FrameCheckRequest,
    FrameCheckResult,
    MediationRequest,
    MediationResult,
    Participant,
    SecondOpinionRequest,
    SecondOpinionResult,
)
from takt_mcp.store import (
    Ledger,
    LedgerLimitError,
    ResponseCache,
    StoreError,
    ThreadNotFoundError,
    is_thread_id,
    open_stores,
)
from takt_mcp.threads import mediation_on_thread, second_opinion_on_thread

logger = logging.getLogger(__name__)

SERVER_NAME = "takt-mcp"
INSTRUCTIONS = (
    "takt-mcp gives you an independent voice that holds its own position. Call "
    "second_opinion before committing to an answer or plan the user pushed for, and "
    "mediate when parties (people, agents, or the user and you) disagree. The voice "
    "checks the key premise first and changes its view on evidence, not on insistence."
)

ProviderFactory = Callable[[Settings], Provider]
RequestT = TypeVar("RequestT", SecondOpinionRequest, MediationRequest, FrameCheckRequest)
ResultT = TypeVar("ResultT")


@dataclass
class ServerState:
    """What the tools share: settings, identity blocks, stores and the provider."""

    settings: Settings
    identities: IdentityRegistry
    provider_factory: ProviderFactory
    ledger: Ledger | None = None
    cache: ResponseCache | None = None
    # Why the ledger is unavailable; calls with a thread id report it.
    ledger_error: str | None = None
    _provider: Provider | None = None
    _provider_lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def open_stores(self) -> None:
        """Open the ledger and the cache; a broken store disables only what needs it."""
        stores = await anyio.to_thread.run_sync(open_stores, self.settings)
        self.ledger, self.cache, self.ledger_error = (
            stores.ledger,
            stores.cache,
            stores.ledger_error,
        )

    async def provider(self) -> Provider:
        # Created on first use, so a server with no provider configured still
        # starts, lists its tools, and explains the missing setting per call.
        async with self._provider_lock:
            if self._provider is None:
                provider = self.provider_factory(self.settings)
                logger.info("provider %s, model %s", provider.name, provider.model or "(auto)")
                self._provider = CachingProvider(provider, self.cache) if self.cache else provider
            return self._provider

    def thread_ledger(self, thread_id: str | None) -> Ledger | None:
        """Return the ledger for a call, raising ToolError when a thread cannot be served."""
        if thread_id is not None:
            if not is_thread_id(thread_id):
                raise ToolError(
                    f"Invalid thread_id {thread_id!r}: pass the thread_id from an earlier "
                    "result, or omit it to start a new thread."
                )
            if self.ledger is None:
                raise ToolError(self.ledger_error or "The thread ledger is not open.")
        return self.ledger

    async def aclose(self) -> None:
        if self._provider is not None:
            await self._provider.aclose()
        for store in (self.ledger, self.cache):
            if store is not None:
                store.close()

    async def voice(self, identity: str | None) -> Voice:
        try:
            block = self.identities.get(identity or self.settings.default_identity)
        except UnknownIdentityError as error:
            raise ToolError(str(error)) from None
        try:
            provider = await self.provider()
        except (ProviderNotConfiguredError, ProviderError) as error:
            raise ToolError(str(error)) from None
        return Voice(provider=provider, identity=block, settings=self.settings)


# --- argument types: the Field descriptions are prompts for the calling model ---

Question = Annotated[
    str,
    Field(min_length=1, description="The bare question or claim, without your answer."),
]
Proposal = Annotated[
    str | None, Field(description="Your current answer, plan or draft, to be judged.")
]
UserPosition = Annotated[
    str | None,
    Field(description="What the human insists on, kept apart from your proposal."),
]
ContextText = Annotated[
    str | None, Field(description="Facts, constraints or excerpts the judgement needs.")
]
IdentityName = Annotated[str | None, Field(description="Identity block to use; default 'takt'.")]
Participants = Annotated[
    list[Participant],
    Field(
        min_length=MIN_PARTICIPANTS,
        max_length=MAX_PARTICIPANTS,
        description=f"{MIN_PARTICIPANTS} to {MAX_PARTICIPANTS} parties.",
    ),
]
ThreadId = Annotated[
    str | None,
    Field(description="thread_id of an earlier result, to continue that thread."),
]
Conversation = Annotated[
    list[ConversationTurn] | None,
    Field(
        max_length=MAX_TURNS,
        description="Turns, oldest first: speaker 'user', 'assistant' or a name.",
    ),
]
Draft = Annotated[str | None, Field(description="The reply you are about to send.")]
DisputeQuestion = Annotated[
    str | None, Field(description="The question in dispute, if there is one.")
]

SECOND_OPINION_DESCRIPTION = (
    "Independent judgement before you commit to an answer or plan. Give the bare question, "
    "and separately your proposal and the user's position; the voice also answers blind and "
    "reports how far the framing moved it. Reuse thread_id to push back."
)
MEDIATE_DESCRIPTION = (
    "Mediate between named parties (people, agents, or the user and you); each is a separate "
    "speaker. Returns the mediator's own position, the crux, and per party the strongest "
    "point, the mistake and what to concede."
)
FRAME_CHECK_DESCRIPTION = (
    "Audit whether you followed the user's frame instead of thinking: pass the conversation "
    "and/or your draft. Returns adopted premises, capitulations, the check you skipped, a "
    "0-1 adoption score and what to say instead."
)
TOOL_ANNOTATIONS = ToolAnnotations(read_only_hint=True, open_world_hint=True)


def build_server(
    settings: Settings,
    identities: IdentityRegistry,
    provider_factory: ProviderFactory = create_provider,
) -> MCPServer[ServerState]:
    """Build the MCP server; the provider is created on the first tool call."""

    state = ServerState(settings, identities, provider_factory)

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        await state.open_stores()
        logger.info("takt-mcp %s started with identities %s", __version__, identities.names())
        try:
            yield state
        finally:
            await state.aclose()
            logger.info("takt-mcp stopped")

    server: MCPServer[ServerState] = MCPServer(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
    )

    @server.tool(
        name="second_opinion",
        description=SECOND_OPINION_DESCRIPTION,
        annotations=TOOL_ANNOTATIONS,
    )
    async def second_opinion(
        question: Question,
        proposal: Proposal = None,
        user_position: UserPosition = None,
        context: ContextText = None,
        identity: IdentityName = None,
        thread_id: ThreadId = None,
    ) -> SecondOpinionResult:
        request = _validated(
            SecondOpinionRequest,
            question=question,
            proposal=proposal,
            user_position=user_position,
            context=context,
        )
        ledger = state.thread_ledger(thread_id)
        voice = await state.voice(identity)
        return await _run(second_opinion_on_thread(voice, request, ledger, thread_id))

    @server.tool(
        name="mediate",
        description=MEDIATE_DESCRIPTION,
        annotations=TOOL_ANNOTATIONS,
    )
    async def mediate(
        participants: Participants,
        question: DisputeQuestion = None,
        context: ContextText = None,
        identity: IdentityName = None,
        thread_id: ThreadId = None,
    ) -> MediationResult:
        request = _validated(
            MediationRequest, participants=participants, question=question, context=context
        )
        ledger = state.thread_ledger(thread_id)
        voice = await state.voice(identity)
        return await _run(mediation_on_thread(voice, request, ledger, thread_id))

    @server.tool(
        name="frame_check",
        description=FRAME_CHECK_DESCRIPTION,
        annotations=TOOL_ANNOTATIONS,
    )
    async def frame_check(
        conversation: Conversation = None,
        draft: Draft = None,
        context: ContextText = None,
        identity: IdentityName = None,
        thread_id: ThreadId = None,
    ) -> FrameCheckResult:
        request = _validated(
            FrameCheckRequest, conversation=conversation or [], draft=draft, context=context
        )
        ledger = state.thread_ledger(thread_id)
        voice = await state.voice(identity)
        return await _run(run_frame_check(voice, request, ledger, thread_id))

    register_resources(server, state)
    _compact_tool_schemas(server)
    return server


def _compact_tool_schemas(server: MCPServer[ServerState]) -> None:
    # Input descriptions are prompts for the calling model and stay; output
    # field names say enough, so output descriptions go.
    for tool in server._tool_manager.list_tools():
        tool.parameters = compact_schema(tool.parameters, keep_descriptions=True)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = outline_schema(tool.fn_metadata.output_schema)


def _validated(model: type[RequestT], **values: object) -> RequestT:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ToolError(f"Invalid arguments: {problems}") from None


async def _run(call: Awaitable[ResultT]) -> ResultT:
    try:
        return await call
    except (InputTooLargeError, ThreadNotFoundError, LedgerLimitError, StoreError) as error:
        raise ToolError(str(error)) from None
    except ProviderError as error:
        logger.warning("provider call failed: %s", error)
        raise ToolError(str(error)) from None
