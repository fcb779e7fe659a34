"""LLM providers behind one protocol; vendor SDKs load only when a provider is created."""

from __future__ import annotations

from takt_mcp.config import Settings
from takt_mcp.providers.base import (
    Completion,
    InvalidOutputError,
    Message,
    Provider,
    ProviderAuthenticationError,
    ProviderBadRequestError,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderRateLimitError,
    ProviderRequest,
    ProviderTimeoutError,
    ProviderUnavailableError,
    SystemBlock,
)

__all__ = [
    "Completion",
    "InvalidOutputError",
    "Message",
    "Provider",
    "ProviderAuthenticationError",
    "ProviderBadRequestError",
    "ProviderError",
    "ProviderNotConfiguredError",
    "ProviderRateLimitError",
    "ProviderRequest",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "SystemBlock",
    "create_provider",
]


def create_provider(settings: Settings) -> Provider:
    """Create the configured provider, raising ProviderNotConfiguredError if there is none."""
    match settings.resolved_provider():
        case "anthropic":
            from takt_mcp.providers.anthropic import AnthropicProvider

            return AnthropicProvider(settings)
        case "openai":
            from takt_mcp.providers.openai import OpenAIProvider

            return OpenAIProvider(settings)
        case "sampling":
            # A sampling provider belongs to one tool call; the server creates it.
            raise ProviderNotConfiguredError(
                "TAKT_PROVIDER=sampling works only inside the MCP server, where the host's "
                "model answers; set a provider key for terminal commands."
            )
        case None:
            raise ProviderNotConfiguredError()
