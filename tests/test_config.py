from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from takt_mcp.config import (
    DEFAULT_IDENTITY,
    DEFAULT_MAX_INPUT_CHARS,
    DEFAULT_TIMEOUT_SECONDS,
    ENVIRONMENT_VARIABLES,
    ConfigError,
    Settings,
    load_settings,
)

SECRET = "sk-ant-api03-secret-value-0123456789"


def test_empty_environment_gives_defaults() -> None:
    settings = load_settings({})

    assert settings.provider is None
    assert settings.model is None
    assert settings.anthropic_api_key is None
    assert settings.openai_api_key is None
    assert settings.default_identity == DEFAULT_IDENTITY
    assert settings.max_input_chars == DEFAULT_MAX_INPUT_CHARS
    assert settings.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert settings.resolved_provider() is None


def test_environment_values_fill_settings() -> None:
    settings = load_settings(
        {
            "TAKT_PROVIDER": "openai",
            "TAKT_MODEL": "local-model",
            "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1",
            "TAKT_IDENTITY_DIR": "/tmp/identities",
            "TAKT_IDENTITY": "other",
            "TAKT_MAX_INPUT_CHARS": "1234",
            "TAKT_TIMEOUT": "12.5",
            "TAKT_MAX_OUTPUT_TOKENS": "300",
            "TAKT_MAX_RETRIES": "0",
            "TAKT_TEMPERATURE": "0.2",
        }
    )

    assert settings.provider == "openai"
    assert settings.model == "local-model"
    assert settings.openai_base_url == "http://127.0.0.1:8080/v1"
    assert settings.identity_dir == Path("/tmp/identities")
    assert settings.default_identity == "other"
    assert settings.max_input_chars == 1234
    assert settings.timeout_seconds == 12.5
    assert settings.max_output_tokens == 300
    assert settings.max_retries == 0
    assert settings.temperature == 0.2


def test_api_keys_are_secret() -> None:
    settings = load_settings({"ANTHROPIC_API_KEY": SECRET})

    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_values_count_as_unset(value: str) -> None:
    environ = dict.fromkeys(ENVIRONMENT_VARIABLES, value)

    assert load_settings(environ) == load_settings({})


def test_values_are_stripped() -> None:
    settings = load_settings({"TAKT_MODEL": "  gpt-test \n", "TAKT_PROVIDER": " OpenAI "})

    assert settings.model == "gpt-test"
    assert settings.provider == "openai"


def test_overrides_win_over_environment() -> None:
    settings = load_settings({"TAKT_MODEL": "from-env"}, {"model": "from-flag"})

    assert settings.model == "from-flag"


def test_none_override_keeps_environment_value() -> None:
    settings = load_settings({"TAKT_MODEL": "from-env"}, {"model": None})

    assert settings.model == "from-env"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"ANTHROPIC_API_KEY": "a"}, "anthropic"),
        ({"OPENAI_API_KEY": "o"}, "openai"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "openai"),
        ({"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}, "anthropic"),
        ({"ANTHROPIC_API_KEY": "a", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "anthropic"),
        ({"OPENAI_API_KEY": "o", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "openai"),
        ({"ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}, None),
        ({"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "o"}, "openai"),
    ],
)
def test_provider_auto_selection_order(environ: dict[str, str], expected: str | None) -> None:
    assert load_settings(environ).resolved_provider() == expected


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TAKT_PROVIDER": "openai", "ANTHROPIC_API_KEY": "a"}, "openai"),
        ({"TAKT_PROVIDER": "anthropic", "OPENAI_API_KEY": "o"}, "anthropic"),
        ({"TAKT_PROVIDER": "ANTHROPIC"}, "anthropic"),
    ],
)
def test_explicit_provider_wins(environ: dict[str, str], expected: str) -> None:
    assert load_settings(environ).resolved_provider() == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TAKT_PROVIDER", "gemini"),
        ("TAKT_PROVIDER", SECRET),
        ("TAKT_TIMEOUT", "soon"),
        ("TAKT_TIMEOUT", "0"),
        ("TAKT_TIMEOUT", "-5"),
        ("TAKT_TIMEOUT", "nan"),
        ("TAKT_TIMEOUT", SECRET),
        ("TAKT_MAX_INPUT_CHARS", "0"),
        ("TAKT_MAX_INPUT_CHARS", "many"),
        ("TAKT_MAX_OUTPUT_TOKENS", "-1"),
        ("TAKT_MAX_RETRIES", "-1"),
        ("TAKT_TEMPERATURE", "3"),
    ],
)
def test_invalid_variable_raises_config_error(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value, "ANTHROPIC_API_KEY": SECRET})

    message = str(caught.value)
    assert variable in message
    assert SECRET not in message


@pytest.mark.parametrize("variable", ["TAKT_PROVIDER", "TAKT_TIMEOUT", "TAKT_MAX_RETRIES"])
def test_config_error_never_echoes_value(variable: str) -> None:
    # A key pasted into the wrong variable must not reach logs or stderr.
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: SECRET})

    assert SECRET not in str(caught.value)


def test_infinite_timeout_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="TAKT_TIMEOUT"):
        load_settings({"TAKT_TIMEOUT": "inf"})


def test_config_error_names_every_invalid_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TAKT_PROVIDER": "gemini", "TAKT_TIMEOUT": "soon"})

    message = str(caught.value)
    assert "TAKT_PROVIDER" in message
    assert "TAKT_TIMEOUT" in message


def test_config_error_drops_cause() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TAKT_TIMEOUT": SECRET})

    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_settings_are_frozen() -> None:
    settings = load_settings({"TAKT_MODEL": "first"})

    with pytest.raises(ValidationError):
        settings.model = "second"  # type: ignore[misc]


def test_settings_are_hashable() -> None:
    assert hash(load_settings({})) == hash(load_settings({}))


def test_variables_map_to_fields() -> None:
    fields = set(Settings.model_fields)

    assert set(ENVIRONMENT_VARIABLES.values()) <= fields
