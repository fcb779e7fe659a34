"""MCP sampling: the host's own model answers, through the client.

The voice is then not independent of the host, and every result says so.
Sessions on protocol 2026-07-28 and later carry sampling as an
input-required round trip: the tool returns the pending sampling requests,
the client answers them and retries the call, and the pipeline replays with
the answers it already has. Earlier sessions send `sampling/createMessage`
in the middle of the call.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from mcp.server.mcpserver import Context
from mcp.shared.message import ServerMessageMetadata
from mcp.types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    InputRequiredResult,
    SamplingMessage,
    TextContent,
)
from mcp_types.version import is_version_at_least

from takt_mcp.providers.base import (
    Completion,
    ProviderBadRequestError,
    ProviderError,
    ProviderRequest,
    ResultT,
    schema_instruction,
)
from takt_mcp.providers.structured import complete_with_repair
from takt_mcp.schemas import Usage

logger = logging.getLogger(__name__)

INPUT_REQUIRED_VERSION = "2026-07-28"
HOST_MODEL = "host model"


class SamplingInputRequired(Exception):
    """The pipeline needs answers from the client before it can go on."""


def uses_input_required(protocol_version: str | None) -> bool:
    return protocol_version is not None and is_version_at_least(
        protocol_version, INPUT_REQUIRED_VERSION
    )


def client_supports_sampling(ctx: Context[Any, Any]) -> bool:
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.sampling is not None


class SamplingProvider:
    """One tool call's view of the host's model; create a new one per call."""

    name = "sampling"
    independent = False

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self._ctx = ctx
        self.model = HOST_MODEL
        self._round_trip = uses_input_required(ctx.protocol_version)
        # Replies from earlier rounds, by request key, carried in request_state.
        self.replies: dict[str, str] = _read_state(ctx.request_state)
        self.pending: dict[str, CreateMessageRequest] = {}
        for key, response in (ctx.input_responses or {}).items():
            text = _response_text(response)
            if text is not None:
                self.replies[key] = text

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        result, usage, model, text = await complete_with_repair(
            self._send, request, provider=self.name, model=self.model
        )
        return Completion(result=result, usage=usage, model=model, raw_text=text)

    async def aclose(self) -> None:
        return None

    def input_required(self) -> InputRequiredResult:
        """Return the pending sampling requests and the replies so far, for the client."""
        return InputRequiredResult(
            input_requests=dict(self.pending),
            request_state=json.dumps(self.replies),
        )

    async def _send(self, request: ProviderRequest[ResultT]) -> tuple[str, Usage, str]:
        params = CreateMessageRequestParams(
            messages=[
                SamplingMessage(role=m.role, content=TextContent(type="text", text=m.content))
                for m in request.messages
            ],
            # The host's model enforces no schema, so the schema goes in the prompt.
            system_prompt=f"{request.system_text()}\n\n{schema_instruction(request)}",
            max_tokens=request.max_output_tokens,
            temperature=request.temperature,
        )
        key = _request_key(params)
        if self._round_trip:
            if key in self.replies:
                return self.replies[key], Usage(requests=1), self.model
            self.pending[key] = CreateMessageRequest(params=params)
            raise SamplingInputRequired()

        try:
            result = await self._ctx.session.send_request(
                CreateMessageRequest(params=params),
                CreateMessageResult,
                metadata=ServerMessageMetadata(related_request_id=self._ctx.request_id),
            )
        except Exception as error:  # the SDK raises MCPError and transport errors here
            raise ProviderError(
                f"the client's sampling request failed: {error}",
                provider=self.name,
                model=self.model,
                hint="Check that the host allows sampling, or configure a provider key.",
            ) from None
        text = _response_text(result)
        if text is None:
            raise ProviderBadRequestError(
                "the host's model returned no text", provider=self.name, model=self.model
            )
        return text, Usage(requests=1), result.model or self.model


def _request_key(params: CreateMessageRequestParams) -> str:
    encoded = params.model_dump_json(by_alias=True, exclude_none=True)
    return "takt-" + hashlib.sha256(encoded.encode()).hexdigest()[:32]


def _response_text(response: Any) -> str | None:
    content = getattr(response, "content", None)
    if isinstance(content, list):
        texts = [block.text for block in content if getattr(block, "type", None) == "text"]
        return "".join(texts) if texts else None
    text = getattr(content, "text", None) if getattr(content, "type", None) == "text" else None
    return None if text is None else str(text)


def _read_state(state: str | None) -> dict[str, str]:
    if not state:
        return {}
    try:
        data = json.loads(state)
    except ValueError:
        logger.warning("ignoring request_state that is not JSON")
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(key): str(value) for key, value in data.items()}
