"""The MCP server: tool registration and lifespan. Tools only validate, call
the orchestrator and shape errors."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import InputRequiredResult, ToolAnnotations
from pydantic import BeforeValidator, Field, ValidationError

from takt_mcp import __version__
from takt_mcp.audit import frame_check_fields, run_frame_check
from takt_mcp.budget import BudgetExceededError, SpendTracker
from takt_mcp.caching import CachingProvider
from takt_mcp.compact import compact_schema, outline_schema
from takt_mcp.config import Settings
from takt_mcp.deliberation import (
    InputTooLargeError,
    Voice,
    estimate_cost,
    mediation_fields,
    second_opinion_fields,
)
from takt_mcp.identity import IdentityRegistry, UnknownIdentityError
from takt_mcp.pricing import PriceTable
from takt_mcp.prompts import register_prompts
from takt_mcp.providers import (
    Provider,
    ProviderError,
    ProviderNotConfiguredError,
    create_provider,
)
from takt_mcp.providers.sampling import (
    SamplingInputRequired,
    SamplingProvider,
    client_supports_sampling,
)
from takt_mcp.resources import register_identity_resources, register_resources
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
    RunMetadata,
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
PROGRESS_INTERVAL_SECONDS = 3.0
RequestT = TypeVar("RequestT", SecondOpinionRequest, MediationRequest, FrameCheckRequest)
ResultT = TypeVar("ResultT")


@dataclass
class ServerState:
    """The state the tools share: settings, identity blocks, stores and the provider."""

    settings: Settings
    identities: IdentityRegistry
    provider_factory: ProviderFactory
    prices: PriceTable = field(default_factory=lambda: PriceTable.load(None))
    ledger: Ledger | None = None
    cache: ResponseCache | None = None
    spend: SpendTracker | None = None
    spend_error: str | None = None
    # Why the ledger is unavailable; calls with a thread id report it.
    ledger_error: str | None = None
    _provider: Provider | None = None
    _provider_lock: anyio.Lock = field(default_factory=anyio.Lock)
    _stores_opened: bool = False
    _stores_lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def open_stores(self) -> None:
        """Open the ledger, the cache and the spend record once, on first use.

        Opening waits on the disk, so start-up leaves it out: a host's
        initialize and tools/list never wait for it. A broken store disables
        only what needs it.
        """
        if self._stores_opened:
            return
        async with self._stores_lock:
            if not self._stores_opened:
                await self._open_stores()
                self._stores_opened = True

    async def _open_stores(self) -> None:
        stores = await anyio.to_thread.run_sync(open_stores, self.settings)
        self.ledger, self.cache = stores.ledger, stores.cache
        self.ledger_error = stores.ledger_error
        budget = self.settings.budget_usd
        if budget is not None:
            try:
                self.spend = await anyio.to_thread.run_sync(
                    SpendTracker, self.settings.spend_dir(), budget
                )
            except StoreError as error:
                # Fail closed: with a budget set, no call runs without its record.
                self.spend_error = str(error)
                logger.error("%s Calls are refused until the spend record opens.", error)

    async def check_budget(self, voice: Voice, input_chars: int, requests: int) -> None:
        """Refuse a call before any request when it could exceed TAKT_BUDGET_USD."""
        if self.settings.budget_usd is None or not voice.provider.independent:
            return
        await self.open_stores()
        if self.spend is None:
            raise ToolError(self.spend_error or "The spend record is not open.")
        estimate = estimate_cost(voice, input_chars, requests)
        if estimate is None:
            raise ToolError(
                f"TAKT_BUDGET_USD is set but no price is known for model "
                f"{voice.provider.model!r}, so the cost cannot be bounded. Add the model to "
                "the TAKT_PRICES file or unset TAKT_BUDGET_USD."
            )
        try:
            await anyio.to_thread.run_sync(self.spend.check, estimate)
        except BudgetExceededError as error:
            raise ToolError(str(error)) from None

    async def record_spend(self, metadata: RunMetadata) -> None:
        if self.spend is not None and metadata.cost_usd:
            await anyio.to_thread.run_sync(self.spend.record, metadata.cost_usd)

    async def provider(self) -> Provider:
        # Created on first use, so a server with no provider configured still
        # starts, lists its tools, and explains the missing setting per call.
        await self.open_stores()
        async with self._provider_lock:
            if self._provider is None:
                provider = self.provider_factory(self.settings)
                logger.info("provider %s, model %s", provider.name, provider.model or "(auto)")
                self._provider = CachingProvider(provider, self.cache) if self.cache else provider
            return self._provider

    async def thread_ledger(self, thread_id: str | None) -> Ledger | None:
        """Return the ledger for a call, raising ToolError when a thread cannot be served."""
        if thread_id is not None and not is_thread_id(thread_id):
            raise ToolError(
                f"Invalid thread_id {thread_id!r}: pass the thread_id from an earlier "
                "result, or omit it to start a new thread."
            )
        await self.open_stores()
        if thread_id is not None and self.ledger is None:
            raise ToolError(self.ledger_error or "The thread ledger is not open.")
        return self.ledger

    async def aclose(self) -> None:
        if self._provider is not None:
            await self._provider.aclose()
        # The lock waits for an opening still in progress, so its stores close too.
        async with self._stores_lock:
            for store in (self.ledger, self.cache, self.spend):
                if store is not None:
                    store.close()

    async def voice(self, identity: str | None, ctx: Context) -> Voice:
        try:
            block = self.identities.get(identity or self.settings.default_identity)
        except UnknownIdentityError as error:
            raise ToolError(str(error)) from None
        choice = self.settings.resolved_provider()
        # Sampling is the last fallback: used when asked for, or when nothing
        # else is configured and the client offers it.
        provider: Provider
        if choice == "sampling" or (choice is None and client_supports_sampling(ctx)):
            if not client_supports_sampling(ctx):
                raise ToolError(
                    "TAKT_PROVIDER=sampling, but this client did not declare the sampling "
                    "capability. Use a host that supports MCP sampling or set a provider key."
                )
            provider = SamplingProvider(ctx)
        else:
            try:
                provider = await self.provider()
            except (ProviderNotConfiguredError, ProviderError) as error:
                raise ToolError(str(error)) from None
        return Voice(provider=provider, identity=block, settings=self.settings, prices=self.prices)


# --- argument types: the Field descriptions are prompts for the calling model ---

Question = Annotated[
    str, Field(min_length=1, description="The bare question or claim, without your answer.")
]


def _keep_as_text(value: object) -> object:
    # The SDK decodes a string argument that looks like JSON unless the type is
    # exactly str, so a pasted '{"status": 500}' would arrive as a dict.
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


OptionalText = Annotated[str | None, BeforeValidator(_keep_as_text)]
Proposal = Annotated[OptionalText, Field(description="Your answer, plan or draft, to be judged.")]
UserPosition = Annotated[OptionalText, Field(description="What the user insists on.")]
ContextText = Annotated[OptionalText, Field(description="Facts, constraints, excerpts.")]
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
    Field(description="An earlier result's thread_id, to continue it."),
]
Conversation = Annotated[
    list[ConversationTurn] | None,
    Field(
        max_length=MAX_TURNS,
        description="Turns, oldest first: speaker 'user', 'assistant' or a name.",
    ),
]
Draft = Annotated[OptionalText, Field(description="The reply you are about to send.")]
DisputeQuestion = Annotated[OptionalText, Field(description="The question in dispute, if any.")]

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

    state = ServerState(
        settings, identities, provider_factory, prices=PriceTable.load(settings.prices_file)
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
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
        ctx: Context,
        question: Question,
        proposal: Proposal = None,
        user_position: UserPosition = None,
        context: ContextText = None,
        identity: IdentityName = None,
        thread_id: ThreadId = None,
    ) -> SecondOpinionResult | InputRequiredResult:
        request = _validated(
            SecondOpinionRequest,
            question=question,
            proposal=proposal,
            user_position=user_position,
            context=context,
        )
        ledger = await state.thread_ledger(thread_id)
        voice = await state.voice(identity, ctx)
        requests = 2 if request.is_framed() or thread_id else 1
        await state.check_budget(voice, _chars(second_opinion_fields(request)), requests)
        result = await _run(second_opinion_on_thread(voice, request, ledger, thread_id), ctx, voice)
        if not isinstance(result, InputRequiredResult):
            await state.record_spend(result.metadata)
        return result

    @server.tool(
        name="mediate",
        description=MEDIATE_DESCRIPTION,
        annotations=TOOL_ANNOTATIONS,
    )
    async def mediate(
        ctx: Context,
        participants: Participants,
        question: DisputeQuestion = None,
        context: ContextText = None,
        identity: IdentityName = None,
        thread_id: ThreadId = None,
    ) -> MediationResult | InputRequiredResult:
        request = _validated(
            MediationRequest, participants=participants, question=question, context=context
        )
        ledger = await state.thread_ledger(thread_id)
        voice = await state.voice(identity, ctx)
        requests = 2 if request.question or thread_id else 1
        await state.check_budget(voice, _chars(mediation_fields(request)), requests)
        result = await _run(mediation_on_thread(voice, request, ledger, thread_id), ctx, voice)
        if not isinstance(result, InputRequiredResult):
            await state.record_spend(result.metadata)
        return result

    @server.tool(
        name="frame_check",
        description=FRAME_CHECK_DESCRIPTION,
        annotations=TOOL_ANNOTATIONS,
    )
    async def frame_check(
        ctx: Context,
        conversation: Conversation = None,
        draft: Draft = None,
        context: ContextText = None,
        identity: IdentityName = None,
        thread_id: ThreadId = None,
    ) -> FrameCheckResult | InputRequiredResult:
        request = _validated(
            FrameCheckRequest, conversation=conversation or [], draft=draft, context=context
        )
        ledger = await state.thread_ledger(thread_id)
        voice = await state.voice(identity, ctx)
        await state.check_budget(voice, _chars(frame_check_fields(request)), 1)
        result = await _run(run_frame_check(voice, request, ledger, thread_id), ctx, voice)
        if not isinstance(result, InputRequiredResult):
            await state.record_spend(result.metadata)
        return result

    register_resources(server, state)
    register_identity_resources(server, state)
    register_prompts(server)
    _compact_tool_schemas(server)
    return server


def _compact_tool_schemas(server: MCPServer[ServerState]) -> None:
    # Input descriptions are prompts for the calling model and stay; output
    # field names say enough, so output descriptions go.
    for tool in server._tool_manager.list_tools():
        tool.parameters = compact_schema(tool.parameters, keep_descriptions=True)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = outline_schema(tool.fn_metadata.output_schema)


def _chars(fields: dict[str, str | None]) -> int:
    return sum(len(text) for text in fields.values() if text)


def _validated(model: type[RequestT], **values: object) -> RequestT:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            location = ".".join(str(part) for part in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{location}: {message}" if location else message)
        raise ToolError(f"Invalid arguments: {'; '.join(problems)}") from None


async def _run(
    call: Awaitable[ResultT], ctx: Context, voice: Voice
) -> ResultT | InputRequiredResult:
    """Await a tool's work under the per-call deadline, reporting progress meanwhile.

    Client cancellation arrives as a cancellation of this task: it cancels the
    provider request, and the ledger is written only after a result exists.
    """
    outcome: ResultT | InputRequiredResult | Exception
    async with anyio.create_task_group() as group:
        group.start_soon(_report_progress, ctx, voice)
        outcome = await _within_deadline(call, voice)
        group.cancel_scope.cancel()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def _within_deadline(
    call: Awaitable[ResultT], voice: Voice
) -> ResultT | InputRequiredResult | Exception:
    # Errors are returned, not raised, so the task group does not wrap them.
    deadline = voice.settings.timeout_seconds
    try:
        with anyio.fail_after(deadline):
            return await call
    except SamplingInputRequired:
        assert isinstance(voice.provider, SamplingProvider)
        return voice.provider.input_required()
    except TimeoutError:
        logger.warning("call timed out after %g s", deadline)
        return ToolError(
            f"{voice.provider.name} model {voice.provider.model!r}: no result within "
            f"{deadline:g} s (TAKT_TIMEOUT). Retry, shorten the input, use a faster model, "
            "or raise TAKT_TIMEOUT below your host's own tool timeout."
        )
    except (InputTooLargeError, ThreadNotFoundError, LedgerLimitError, StoreError) as error:
        return ToolError(str(error))
    except ProviderError as error:
        logger.warning("provider call failed: %s", error)
        return ToolError(str(error))


async def _report_progress(ctx: Context, voice: Voice) -> None:
    """Send a progress notification every few seconds; a no-op without a progress token."""
    started = anyio.current_time()
    deadline = voice.settings.timeout_seconds
    while True:
        await anyio.sleep(PROGRESS_INTERVAL_SECONDS)
        elapsed = anyio.current_time() - started
        await ctx.report_progress(
            min(elapsed, deadline),
            deadline,
            f"waiting for {voice.provider.name} model {voice.provider.model}: {elapsed:.0f} s",
        )
