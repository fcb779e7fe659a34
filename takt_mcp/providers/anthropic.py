"""Anthropic Messages API with native structured output and prompt caching."""

from __future__ import annotations

import logging
from typing import Any

from takt_mcp.config import DEFAULT_ANTHROPIC_MODEL, Settings
from takt_mcp.providers.base import (
    Completion,
    InvalidOutputError,
    ProviderAuthenticationError,
    ProviderBadRequestError,
    ProviderError,
    ProviderRequest,
    ProviderTimeoutError,
    ProviderUnavailableError,
    ResultT,
    error_detail,
    redact_secret,
    status_error,
    strict_json_schema,
    unparsed_reply_error,
)
from takt_mcp.providers.structured import complete_with_repair
from takt_mcp.schemas import Usage

logger = logging.getLogger(__name__)


class AnthropicProvider:
    """Claude models; the identity block is the cached system prefix."""

    name = "anthropic"
    independent = True

    def __init__(self, settings: Settings) -> None:
        import anthropic  # imported here so the server starts without loading the SDK

        self._anthropic = anthropic
        if settings.anthropic_api_key is None:
            raise ProviderAuthenticationError(
                "no API key",
                provider=self.name,
                model=settings.model or DEFAULT_ANTHROPIC_MODEL,
                hint="Set ANTHROPIC_API_KEY.",
            )
        self.model = settings.model or DEFAULT_ANTHROPIC_MODEL
        # Kept to remove from error messages, because some servers echo the key.
        self._api_key = settings.anthropic_api_key.get_secret_value()
        self._client = anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=settings.anthropic_base_url,
            timeout=settings.timeout_seconds,
            max_retries=settings.max_retries,
        )
        if settings.temperature is not None:
            # messages.create in anthropic 2.x has no temperature parameter, so
            # the setting is not sent.
            logger.warning(
                "TAKT_TEMPERATURE=%s is ignored: the Anthropic provider (anthropic SDK %s) "
                "does not send sampling parameters. Unset it to silence this warning.",
                settings.temperature,
                anthropic.__version__,
            )

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        result, usage, served_model, text = await complete_with_repair(
            self._send, request, provider=self.name, model=self.model
        )
        return Completion(result=result, usage=usage, model=served_model, raw_text=text)

    async def aclose(self) -> None:
        await self._client.close()

    async def _send(self, request: ProviderRequest[ResultT]) -> tuple[str, Usage, str]:
        system: list[dict[str, Any]] = []
        for block in request.system:
            item: dict[str, Any] = {"type": "text", "text": block.text}
            if block.cacheable:
                item["cache_control"] = {"type": "ephemeral"}
            system.append(item)
        schema = self._anthropic.transform_schema(strict_json_schema(request.result_type))
        arguments: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_output_tokens,
            "system": system,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }
        # No temperature: see the warning in __init__.
        try:
            response = await self._client.messages.create(**arguments)
        except self._anthropic.AnthropicError as error:
            raise map_anthropic_error(
                self._anthropic, error, provider=self.name, model=self.model, secret=self._api_key
            ) from None
        return self._read_response(response)

    def _read_response(self, response: Any) -> tuple[str, Usage, str]:
        if isinstance(response, str):
            raise unparsed_reply_error(
                response, provider=self.name, model=self.model, secret=self._api_key
            )
        if response.stop_reason == "refusal":
            raise ProviderBadRequestError(
                "the model refused to answer", provider=self.name, model=self.model
            )
        if response.stop_reason == "max_tokens":
            raise InvalidOutputError(
                "the reply was cut off at the output token limit",
                provider=self.name,
                model=self.model,
                hint="Raise TAKT_MAX_OUTPUT_TOKENS.",
            )
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = response.usage
        return (
            text,
            Usage(
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                cache_read_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
                cache_write_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
                requests=1,
            ),
            response.model or self.model,
        )


def map_anthropic_error(
    module: Any, error: Exception, *, provider: str, model: str, secret: str | None = None
) -> ProviderError:
    """Translate an anthropic SDK exception into the project's provider errors.

    Every occurrence of `secret` (the API key) in the server's text is redacted.
    """
    model = model or "(unresolved)"
    if isinstance(error, module.APITimeoutError):
        return ProviderTimeoutError(
            "the request timed out",
            provider=provider,
            model=model,
            hint="Raise TAKT_TIMEOUT, shorten the input, or use a faster model.",
        )
    if isinstance(error, module.APIConnectionError):
        return ProviderUnavailableError(
            f"could not connect ({redact_secret(str(error), secret)})",
            provider=provider,
            model=model,
            hint="Check the network and ANTHROPIC_BASE_URL if set.",
        )
    if isinstance(error, module.APIStatusError):
        return status_error(
            error.status_code,
            error_detail(error, secret),
            provider=provider,
            model=model,
            retry_after=error.response.headers.get("retry-after"),
            key_variable="ANTHROPIC_API_KEY",
            not_found_hint="Check TAKT_MODEL.",
        )
    text = redact_secret(str(error), secret)
    return ProviderError(f"{type(error).__name__}: {text}", provider=provider, model=model)
