"""A provider wrapper that answers identical requests from the response cache."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import anyio
from pydantic import ValidationError

from takt_mcp.providers.base import (
    Completion,
    Provider,
    ProviderRequest,
    ResultT,
    strict_json_schema,
)
from takt_mcp.schemas import Usage
from takt_mcp.store import ResponseCache

logger = logging.getLogger(__name__)

# Raised when provider-side prompt text changes, which the key cannot see.
CACHE_KEY_VERSION = "2"


def request_key(provider: Provider, request: ProviderRequest[Any]) -> str:
    """Return the cache key: everything that can change the reply, hashed.

    The identity block is part of the system text, and a thread turn carries
    its ledger state in the messages and in the "ledger" label, so a changed
    block or a new turn never reuses an older answer.
    """
    material = {
        "version": CACHE_KEY_VERSION,
        "provider": provider.name,
        "model": provider.model,
        "system": [[block.text, block.cacheable] for block in request.system],
        "messages": [[message.role, message.content] for message in request.messages],
        "schema": strict_json_schema(request.result_type),
        "max_output_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "ledger": request.labels.get("ledger"),
        "identity_hash": request.labels.get("identity_hash"),
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


class CachingProvider:
    """Wraps a provider; successful completions are stored, errors never are."""

    def __init__(self, inner: Provider, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.independent = inner.independent

    @property
    def model(self) -> str:
        return self.inner.model

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        key = request_key(self.inner, request)
        stored = await anyio.to_thread.run_sync(self.cache.get, key)
        if stored is not None:
            try:
                result = request.result_type.model_validate(stored["result"])
                usage = Usage.model_validate(stored["usage"])
                logger.debug("cache hit %s for %s", key[:12], request.labels.get("step"))
                return Completion(
                    result=result,
                    usage=usage,
                    model=str(stored["model"]),
                    raw_text=str(stored.get("raw_text", "")),
                    cached=True,
                )
            except (KeyError, ValidationError):
                logger.warning("ignoring an unreadable cache entry %s", key[:12])
        logger.debug("cache miss %s for %s", key[:12], request.labels.get("step"))
        completion = await self.inner.complete(request)
        entry = {
            "result": completion.result.model_dump(mode="json"),
            "usage": completion.usage.model_dump(),
            "model": completion.model,
            "raw_text": completion.raw_text,
        }
        await anyio.to_thread.run_sync(self.cache.set, key, entry)
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()
