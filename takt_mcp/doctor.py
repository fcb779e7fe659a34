"""`takt-mcp doctor`: show the resolved configuration and prove the provider answers."""

from __future__ import annotations

import platform
import time
from importlib.metadata import version

from pydantic import BaseModel, ConfigDict, Field

from takt_mcp import __version__
from takt_mcp.config import ENVIRONMENT_VARIABLES, Settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers import (
    Message,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderRequest,
    SystemBlock,
    create_provider,
)
from takt_mcp.store import open_stores

PING_MAX_OUTPUT_TOKENS = 32


class Ping(BaseModel):
    """The reply to the doctor's tiny request."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="The word 'ready'.")


def mask(secret: str) -> str:
    """Return a key with all but its first four and last two characters hidden."""
    if len(secret) <= 8:
        return "*" * len(secret)
    return f"{secret[:4]}...{secret[-2:]} ({len(secret)} characters)"


def describe_settings(settings: Settings) -> list[str]:
    lines = []
    for variable, field in ENVIRONMENT_VARIABLES.items():
        value = getattr(settings, field)
        if value is None:
            shown = "(unset)"
        elif hasattr(value, "get_secret_value"):
            shown = mask(value.get_secret_value())
        else:
            shown = str(value)
        lines.append(f"  {variable:<24} {shown}")
    return lines


async def run_doctor(settings: Settings, identities: IdentityRegistry) -> tuple[list[str], bool]:
    """Return the report lines and whether every check passed."""
    healthy = True
    lines = [
        f"takt-mcp {__version__} (Python {platform.python_version()}, mcp {version('mcp')})",
        "",
        "Configuration (keys masked):",
        *describe_settings(settings),
        "",
        "Identity blocks:",
    ]
    lines += [
        f"  {block.name} {block.version} {block.short_hash}  {block.path}"
        for block in identities.blocks()
    ]

    lines += ["", "Stores:"]
    stores = open_stores(settings)
    try:
        if stores.ledger is not None:
            lines.append(f"  ledger  {stores.ledger.path}  ok, {stores.ledger.count()} threads")
        else:
            healthy = False
            lines.append(f"  ledger  FAILED: {stores.ledger_error}")
        if stores.cache is not None:
            lines.append(f"  cache   {stores.cache.path}  ok")
        else:
            lines.append("  cache   off (TAKT_CACHE_TTL=0) or unavailable; see the log")
    finally:
        stores.close()

    lines += ["", "Provider:"]
    provider_ok, provider_lines = await _check_provider(settings, identities)
    lines += provider_lines
    return lines, healthy and provider_ok


async def _check_provider(
    settings: Settings, identities: IdentityRegistry
) -> tuple[bool, list[str]]:
    try:
        provider = create_provider(settings)
    except (ProviderNotConfiguredError, ProviderError) as error:
        return False, [f"  FAILED: {error}"]
    lines = [f"  {provider.name}, model {provider.model or '(first listed by the server)'}"]
    identity = identities.get(settings.default_identity)
    request = ProviderRequest(
        system=(SystemBlock(identity.text, cacheable=True),),
        messages=(Message("user", 'Reply with the JSON object {"answer": "ready"}.'),),
        result_type=Ping,
        schema_name="Ping",
        max_output_tokens=PING_MAX_OUTPUT_TOKENS,
    )
    started = time.perf_counter()
    try:
        completion = await provider.complete(request)
    except ProviderError as error:
        return False, [*lines, f"  FAILED: {error}"]
    finally:
        await provider.aclose()
    elapsed = time.perf_counter() - started
    lines.append(
        f"  ok: {completion.model} answered {completion.result.answer!r} in {elapsed:.1f} s "
        f"({completion.usage.input_tokens} tokens in, {completion.usage.output_tokens} out)"
    )
    return True, lines
