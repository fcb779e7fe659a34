"""takt-mcp on stdio with an in-process provider that replies at once, without any I/O.

This isolates the server's own cost per call (argument validation, the
orchestrator, the ledger write, the result) from the provider SDK's HTTP
round trip. Settings come from the environment as in `takt-mcp serve`.
"""

from __future__ import annotations

import os
from typing import Any

from bench.stub import schema_instance
from takt_mcp.config import Settings, load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers.base import (
    Completion,
    Provider,
    ProviderRequest,
    ResultT,
    strict_json_schema,
)
from takt_mcp.schemas import Usage
from takt_mcp.server import build_server

USAGE = Usage(input_tokens=100, output_tokens=50, requests=1)


class InstantProvider:
    """Replies to every request with a valid result for its schema, built once per type."""

    name = "instant"
    model = "instant-model"
    independent = True

    def __init__(self) -> None:
        self._replies: dict[type[Any], Any] = {}

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        data = self._replies.get(request.result_type)
        if data is None:
            data = schema_instance(strict_json_schema(request.result_type))
            self._replies[request.result_type] = data
        result = request.result_type.model_validate(data)
        return Completion(result=result, usage=USAGE, model=self.model, raw_text="")

    async def aclose(self) -> None:
        pass


def instant_provider(settings: Settings) -> Provider:
    return InstantProvider()


if __name__ == "__main__":
    settings = load_settings(os.environ)
    build_server(settings, IdentityRegistry.load(), instant_provider).run("stdio")
