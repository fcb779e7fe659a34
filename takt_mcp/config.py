"""Settings built once from the environment and command-line flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

ProviderName = Literal["anthropic", "openai", "sampling"]

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-5-5"
DEFAULT_OPENAI_MODEL = "gpt-5.5"
DEFAULT_IDENTITY = "takt"
DEFAULT_MAX_INPUT_CHARS = 40_000
# Hosts commonly give a tool call 60 s; the provider deadline stays below it
# so the host receives our timeout error instead of its own.
DEFAULT_TIMEOUT_SECONDS = 50.0
DEFAULT_MAX_OUTPUT_TOKENS = 1_500
DEFAULT_MAX_RETRIES = 2
DEFAULT_CACHE_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_CACHE_SIZE_MB = 256
DEFAULT_MAX_TURNS = 500
DEFAULT_MAX_THREADS = 10_000


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable and the fix."""


class Settings(BaseModel):
    """Resolved configuration; one frozen instance per process."""

    # allow_inf_nan=False: TAKT_TIMEOUT=inf would silently remove the deadline.
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    provider: ProviderName | None = Field(
        None, description="Explicit provider choice (TAKT_PROVIDER); None means auto-detect."
    )
    model: str | None = Field(None, description="Model id (TAKT_MODEL); None means the default.")
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    identity_dir: Path | None = Field(None, description="Folder of extra identity blocks.")
    default_identity: str = DEFAULT_IDENTITY
    max_input_chars: int = Field(DEFAULT_MAX_INPUT_CHARS, gt=0)
    timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0)
    max_output_tokens: int = Field(DEFAULT_MAX_OUTPUT_TOKENS, gt=0)
    max_retries: int = Field(DEFAULT_MAX_RETRIES, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    data_dir: Path | None = Field(None, description="Folder for the ledger and the cache.")
    cache_ttl_seconds: float = Field(DEFAULT_CACHE_TTL_SECONDS, ge=0)
    cache_size_mb: int = Field(DEFAULT_CACHE_SIZE_MB, gt=0)
    max_turns: int = Field(DEFAULT_MAX_TURNS, gt=0)
    max_threads: int = Field(DEFAULT_MAX_THREADS, gt=0)
    prices_file: Path | None = Field(None, description="JSON file of model prices.")
    budget_usd: float | None = Field(None, gt=0, description="Daily spend cap in USD.")
    http_token: SecretStr | None = Field(
        None, description="Bearer token that every HTTP transport request must carry."
    )

    def ledger_dir(self) -> Path:
        """Return the thread ledger's folder: TAKT_DATA_DIR, else the user data folder."""
        if self.data_dir is not None:
            return self.data_dir / "ledger"
        return Path(platformdirs.user_data_dir("takt-mcp", appauthor=False)) / "ledger"

    def cache_dir(self) -> Path:
        """Return the response cache's folder: TAKT_DATA_DIR, else the user cache folder."""
        if self.data_dir is not None:
            return self.data_dir / "cache"
        return Path(platformdirs.user_cache_dir("takt-mcp", appauthor=False)) / "responses"

    def spend_dir(self) -> Path:
        """Return the folder of the daily spend record, beside the ledger."""
        return self.ledger_dir().parent / "spend"

    def resolved_provider(self) -> ProviderName | None:
        """Return the provider to use: the explicit choice, else the first configured."""
        if self.provider is not None:
            return self.provider
        if self.anthropic_api_key is not None:
            return "anthropic"
        if self.openai_api_key is not None or self.openai_base_url is not None:
            return "openai"
        return None


# Environment variable -> Settings field. The README's configuration table
# lists the same names; tests/test_config.py keeps the two in step.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "TAKT_PROVIDER": "provider",
    "TAKT_MODEL": "model",
    "ANTHROPIC_API_KEY": "anthropic_api_key",
    "ANTHROPIC_BASE_URL": "anthropic_base_url",
    "OPENAI_API_KEY": "openai_api_key",
    "OPENAI_BASE_URL": "openai_base_url",
    "TAKT_IDENTITY_DIR": "identity_dir",
    "TAKT_IDENTITY": "default_identity",
    "TAKT_MAX_INPUT_CHARS": "max_input_chars",
    "TAKT_TIMEOUT": "timeout_seconds",
    "TAKT_MAX_OUTPUT_TOKENS": "max_output_tokens",
    "TAKT_MAX_RETRIES": "max_retries",
    "TAKT_TEMPERATURE": "temperature",
    "TAKT_DATA_DIR": "data_dir",
    "TAKT_CACHE_TTL": "cache_ttl_seconds",
    "TAKT_CACHE_SIZE_MB": "cache_size_mb",
    "TAKT_MAX_TURNS": "max_turns",
    "TAKT_MAX_THREADS": "max_threads",
    "TAKT_PRICES": "prices_file",
    "TAKT_BUDGET_USD": "budget_usd",
    "TAKT_HTTP_TOKEN": "http_token",
}


def load_settings(
    environ: Mapping[str, str], overrides: Mapping[str, object] | None = None
) -> Settings:
    """Build settings from an environment mapping plus explicit overrides.

    Empty variables count as unset, because hosts often write `"VAR": ""` in
    their configuration files for values the user has not filled in.
    """
    values: dict[str, object] = {}
    for variable, field in ENVIRONMENT_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if raw:
            values[field] = raw.lower() if field == "provider" else raw
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})

    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error)) from None


def _describe_validation_error(error: ValidationError) -> str:
    field_to_variable = {field: variable for variable, field in ENVIRONMENT_VARIABLES.items()}
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        variable = field_to_variable.get(field, field)
        # Never echo the value: it may be an API key.
        problems.append(f"{variable} is invalid: {item['msg']}")
    return "; ".join(problems) + ". Fix the variable or unset it."
