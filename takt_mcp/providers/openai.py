"""OpenAI and OpenAI-compatible servers (Ollama, llama.cpp, vLLM, LM Studio)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import anyio

from takt_mcp.config import DEFAULT_OPENAI_MODEL, Settings
from takt_mcp.providers.base import (
    Completion,
    ProviderAuthenticationError,
    ProviderBadRequestError,
    ProviderError,
    ProviderRequest,
    ProviderTimeoutError,
    ProviderUnavailableError,
    ResultT,
    error_detail,
    redact_secret,
    schema_instruction,
    status_error,
    strict_json_schema,
    unparsed_reply_error,
)
from takt_mcp.providers.structured import complete_with_repair
from takt_mcp.schemas import Usage

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

FormatMode = Literal["json_schema", "json_object"]

# Which response format each base URL accepts, learned on first use. Servers
# differ: llama-cpp-python's server answers a json_schema response format
# with HTTP 500 but accepts {"type": "json_object", "schema": ...}.
_FORMAT_BY_BASE_URL: dict[str, FormatMode] = {}
# A compatible server that rejects json_schema answers with one of these.
_FORMAT_REJECTION_STATUSES = {400, 404, 415, 422, 500, 501}
# Compatible servers ignore the key, but the SDK requires a non-empty one.
_PLACEHOLDER_KEY = "not-needed"


class OpenAIProvider:
    """Chat Completions with strict JSON-schema output, or a validated JSON fallback."""

    name = "openai"
    independent = True

    def __init__(self, settings: Settings) -> None:
        import openai  # imported here so the server starts without loading the SDK

        self._openai = openai
        self.base_url = settings.openai_base_url
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        # Kept to remove from error messages, because some servers echo the key.
        self._api_key = key
        if key is None and self.base_url is None:
            raise ProviderAuthenticationError(
                "no API key",
                provider=self.name,
                model=settings.model or DEFAULT_OPENAI_MODEL,
                hint="Set OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible server.",
            )
        self._client = openai.AsyncOpenAI(
            api_key=key or _PLACEHOLDER_KEY,
            base_url=self.base_url,
            timeout=settings.timeout_seconds,
            max_retries=settings.max_retries,
        )
        # A compatible server with no TAKT_MODEL uses the first model it lists.
        self.model = settings.model or ("" if self.base_url else DEFAULT_OPENAI_MODEL)
        self._model_lock = anyio.Lock()

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        await self._resolve_model()
        result, usage, served_model, text = await complete_with_repair(
            self._send, request, provider=self.name, model=self.model
        )
        served = served_model or self.model
        return Completion(result=result, usage=usage, model=served, raw_text=text)

    async def aclose(self) -> None:
        await self._client.close()

    async def _resolve_model(self) -> None:
        if self.model:
            return
        async with self._model_lock:
            if self.model:
                return
            try:
                page = await self._client.models.list()
            except self._openai.OpenAIError as error:
                raise self._map_error(error) from None
            models = [item.id for item in page.data]
            if not models:
                raise ProviderBadRequestError(
                    f"the server at {self.base_url} lists no models",
                    provider=self.name,
                    model="(none)",
                    hint="Load a model on the server or set TAKT_MODEL.",
                )
            self.model = models[0]
            logger.info("using model %r, the first listed by %s", self.model, self.base_url)

    async def _send(self, request: ProviderRequest[ResultT]) -> tuple[str, Usage, str]:
        known = _FORMAT_BY_BASE_URL.get(self.base_url or "")
        mode = known or "json_schema"
        # The first json_schema request to a compatible server is a probe: it is
        # sent once, without SDK retries, so a server that answers it with 500
        # (llama-cpp-python) costs one round trip, not a retry series.
        probing = known is None and self.base_url is not None
        try:
            reply = await self._send_with_mode(request, mode, retries=0 if probing else None)
            if probing:
                _FORMAT_BY_BASE_URL[self.base_url or ""] = "json_schema"
            return reply
        except ProviderError as error:
            if not self._may_lack_json_schema(error, mode):
                raise
            logger.info(
                "%s rejected the json_schema response format (HTTP %s); retrying with json_object",
                self.base_url,
                error.status,
            )
        reply = await self._send_with_mode(request, "json_object")
        _FORMAT_BY_BASE_URL[self.base_url or ""] = "json_object"
        return reply

    def _may_lack_json_schema(self, error: ProviderError, mode: FormatMode) -> bool:
        return (
            self.base_url is not None
            and mode == "json_schema"
            and error.status in _FORMAT_REJECTION_STATUSES
        )

    async def _send_with_mode(
        self, request: ProviderRequest[ResultT], mode: FormatMode, retries: int | None = None
    ) -> tuple[str, Usage, str]:
        system = request.system_text()
        schema = strict_json_schema(request.result_type)
        response_format: dict[str, Any]
        if mode == "json_schema":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": schema, "strict": True},
            }
        else:
            # The schema goes into the prompt as well: servers that ignore the
            # "schema" key still return JSON, and the model needs the shape.
            response_format = {"type": "json_object", "schema": schema}
            system = f"{system}\n\n{schema_instruction(request)}"

        messages: list[dict[str, str]] = [{"role": "system", "content": system}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "response_format": response_format,
        }
        # OpenAI's current models take max_completion_tokens; compatible
        # servers still read the older max_tokens.
        token_key = "max_tokens" if self.base_url else "max_completion_tokens"
        arguments[token_key] = request.max_output_tokens
        if request.temperature is not None:
            arguments["temperature"] = request.temperature

        try:
            client = (
                self._client if retries is None else self._client.with_options(max_retries=retries)
            )
            response = await client.chat.completions.create(**arguments)
        except self._openai.OpenAIError as error:
            raise self._map_error(error) from None
        return self._read_response(response)

    def _read_response(self, response: Any) -> tuple[str, Usage, str]:
        if isinstance(response, str):
            raise unparsed_reply_error(
                response, provider=self.name, model=self.model, secret=self._api_key
            )
        if not response.choices:
            raise ProviderUnavailableError(
                "the server returned no choices", provider=self.name, model=self.model
            )
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise ProviderBadRequestError(
                f"the model refused: {refusal}", provider=self.name, model=self.model
            )
        usage = Usage(requests=1)
        if response.usage is not None:
            details = getattr(response.usage, "prompt_tokens_details", None)
            cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
            # OpenAI counts cached tokens inside prompt_tokens; Usage keeps the
            # uncached input apart, as Anthropic reports it, so prices apply once.
            usage = Usage(
                input_tokens=max((response.usage.prompt_tokens or 0) - cached, 0),
                output_tokens=response.usage.completion_tokens or 0,
                cache_read_tokens=cached,
                requests=1,
            )
        return choice.message.content or "", usage, response.model or self.model

    def _map_error(self, error: openai.OpenAIError) -> ProviderError:
        return map_openai_error(
            self._openai, error, provider=self.name, model=self.model, secret=self._api_key
        )


def map_openai_error(
    module: Any, error: Exception, *, provider: str, model: str, secret: str | None = None
) -> ProviderError:
    """Translate an openai SDK exception into the project's provider errors.

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
            hint="Check OPENAI_BASE_URL and that the server is running.",
        )
    if isinstance(error, module.APIStatusError):
        return status_error(
            error.status_code,
            error_detail(error, secret),
            provider=provider,
            model=model,
            retry_after=error.response.headers.get("retry-after"),
            key_variable="OPENAI_API_KEY",
            not_found_hint="Check TAKT_MODEL and OPENAI_BASE_URL.",
        )
    text = redact_secret(str(error), secret)
    return ProviderError(f"{type(error).__name__}: {text}", provider=provider, model=model)
