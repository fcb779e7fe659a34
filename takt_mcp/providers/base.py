"""The provider protocol, its request and completion types, and provider errors."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from takt_mcp.schemas import Usage

ResultT = TypeVar("ResultT", bound=BaseModel)
Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class SystemBlock:
    """One system text. `cacheable` marks the stable prefix for prompt caching."""

    text: str
    cacheable: bool = False


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ProviderRequest(Generic[ResultT]):
    """Everything a provider needs for one structured completion."""

    system: tuple[SystemBlock, ...]
    messages: tuple[Message, ...]
    result_type: type[ResultT]
    schema_name: str
    max_output_tokens: int
    temperature: float | None = None
    # Free-form labels for logs and recordings, e.g. {"step": "blind_prior"}.
    labels: dict[str, str] = field(default_factory=dict)
    # A content check on a schema-valid result: it returns a problem to send
    # back in the repair request, or None. Not part of the cache key.
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    def system_text(self) -> str:
        return "\n\n".join(block.text for block in self.system)


@dataclass(frozen=True)
class Completion(Generic[ResultT]):
    result: ResultT
    usage: Usage
    model: str
    raw_text: str
    cached: bool = False


class Provider(Protocol):
    """A model endpoint that returns one validated structured result per request."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def independent(self) -> bool:
        """False when the voice is the host's own model (MCP sampling)."""
        ...

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]: ...

    async def aclose(self) -> None: ...


class ProviderError(Exception):
    """A provider request failed; the message says what to do next."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status: int | None = None,
        hint: str = "",
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.hint = hint
        self.detail = message
        status_text = f" (HTTP {status})" if status is not None else ""
        text = f"{provider} model {model!r}{status_text}: {message}"
        if hint:
            # Vendor details often lack a closing full stop; keep the hint apart.
            separator = " " if text.rstrip().endswith((".", "!", "?")) else ". "
            text = f"{text.rstrip()}{separator}{hint}"
        super().__init__(text)


class ProviderAuthenticationError(ProviderError):
    pass


class ProviderRateLimitError(ProviderError):
    pass


class ProviderTimeoutError(ProviderError):
    pass


class ProviderUnavailableError(ProviderError):
    """The server failed (5xx) or could not be reached."""


class ProviderBadRequestError(ProviderError):
    pass


class InvalidOutputError(ProviderError):
    """The model's output did not match the requested schema, even after a repair."""


class ProviderNotConfiguredError(Exception):
    """No provider is configured; the message names the variables to set."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "No LLM provider is configured. Set ANTHROPIC_API_KEY, or OPENAI_API_KEY, "
            "or OPENAI_BASE_URL for an OpenAI-compatible server (Ollama, llama.cpp, vLLM, "
            "LM Studio) in the server's environment, then restart it. TAKT_PROVIDER and "
            "TAKT_MODEL pick the provider and model explicitly; a host that supports MCP "
            "sampling can also lend its own model (TAKT_PROVIDER=sampling)."
        )


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the model's JSON Schema in the subset strict structured output accepts.

    Judgement models already require every field and forbid extras; this only
    removes the keywords some vendors reject (titles, number bounds). Each
    call returns a new copy, so a caller may change it.
    """
    return copy.deepcopy(_strict_json_schema(model))


@functools.cache
def _strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Generating a schema takes about 0.3 ms and every provider request needs
    # one (twice with the response cache); a copy takes a tenth of that.
    schema = model.model_json_schema()
    _strip_unsupported(schema)
    return schema


_UNSUPPORTED_KEYWORDS = ("title", "minimum", "maximum", "default")


def _strip_unsupported(node: Any) -> None:
    if isinstance(node, dict):
        for keyword in _UNSUPPORTED_KEYWORDS:
            # A property *named* "title" lives under "properties" and is kept:
            # only keyword positions hold plain strings or numbers here.
            if keyword in node and not isinstance(node[keyword], dict):
                del node[keyword]
        for value in node.values():
            _strip_unsupported(value)
    elif isinstance(node, list):
        for item in node:
            _strip_unsupported(item)


def schema_instruction(request: ProviderRequest[Any]) -> str:
    """Return the text that asks for JSON when the server cannot enforce a schema.

    The keys are listed as plain lines rather than as a JSON Schema: small
    local models tend to copy a schema's text into their answer.
    """
    schema = strict_json_schema(request.result_type)
    lines = [
        "Reply with a single JSON object and nothing else. Its keys, in this order:",
        *_describe_properties(schema, schema.get("$defs", {}), indent=""),
        "Every value is your own answer in your own words; never copy the question, the "
        "quoted material or these instructions into it.",
    ]
    return "\n".join(lines)


def _describe_properties(node: dict[str, Any], defs: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for name, prop in node.get("properties", {}).items():
        kind, nested = _describe_type(prop, defs)
        description = prop.get("description", "")
        lines.append(f'{indent}- "{name}" ({kind}): {description}'.rstrip(": "))
        if nested is not None:
            lines += _describe_properties(nested, defs, indent + "  ")
    return lines


def _describe_type(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    if "$ref" in prop:
        return "object with these keys", defs.get(prop["$ref"].rsplit("/", 1)[-1])
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(value) for value in prop["enum"]), None
    if prop.get("type") == "array":
        items = prop.get("items", {})
        limit = f", at most {prop['maxItems']}" if "maxItems" in prop else ""
        if "$ref" in items:
            nested = defs.get(items["$ref"].rsplit("/", 1)[-1])
            return f"array of objects{limit}, with these keys", nested
        return f"array of {items.get('type', 'value')}s{limit}", None
    if "anyOf" in prop:
        kinds = [option.get("type", "value") for option in prop["anyOf"]]
        return " or ".join(str(kind) for kind in kinds), None
    return str(prop.get("type", "value")), None


def status_error(
    status: int,
    detail: str,
    *,
    provider: str,
    model: str,
    retry_after: str | None,
    key_variable: str,
    not_found_hint: str,
) -> ProviderError:
    """Return the provider error for an HTTP error status from a vendor API."""
    if status in (401, 403):
        return ProviderAuthenticationError(
            f"authentication failed: {detail}",
            provider=provider,
            model=model,
            status=status,
            hint=f"Check {key_variable}.",
        )
    if status == 429:
        wait = f" Retry after {retry_after} s." if retry_after else ""
        return ProviderRateLimitError(
            f"rate limited: {detail}",
            provider=provider,
            model=model,
            status=status,
            hint=f"Wait and retry, or raise the account's rate limit.{wait}",
        )
    if status >= 500:
        return ProviderUnavailableError(
            f"server error: {detail}",
            provider=provider,
            model=model,
            status=status,
            hint="Retry later.",
        )
    if status == 404:
        return ProviderBadRequestError(
            f"not found: {detail}",
            provider=provider,
            model=model,
            status=status,
            hint=not_found_hint,
        )
    return ProviderBadRequestError(
        f"request rejected: {detail}", provider=provider, model=model, status=status
    )


def unparsed_reply_error(
    body: str, *, provider: str, model: str, secret: str | None
) -> ProviderUnavailableError:
    """Return the error for a success status whose body the SDK could not parse as JSON.

    The vendor SDKs hand back such a body (one cut short, say) as a plain string.
    """
    excerpt = json.dumps(redact_secret(body, secret)[:200])
    return ProviderUnavailableError(
        f"the server's reply is not valid JSON (it began {excerpt})",
        provider=provider,
        model=model,
        hint="Retry; if it repeats, check the base URL and any proxy in between.",
    )


REDACTED = "[redacted API key]"


def redact_secret(text: str, secret: str | None) -> str:
    """Replace each occurrence of an API key in text, such as a server's echo of it."""
    if not secret:
        return text
    return text.replace(secret, REDACTED)


MAX_ERROR_DETAIL_CHARS = 300


def error_detail(error: Exception, secret: str | None = None) -> str:
    """Return the message from a vendor SDK status error's JSON body, cut to 300 characters.

    Every occurrence of `secret` (the API key) is redacted before the cut, so
    no part of the key survives.
    """
    body = getattr(error, "body", None)
    message: str = str(getattr(error, "message", error))
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            message = inner["message"]
        elif isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(inner, str):
            message = inner
    return redact_secret(message, secret)[:MAX_ERROR_DETAIL_CHARS]
