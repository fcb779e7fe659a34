"""Provider errors, their HTTP status mapping, strict schemas and provider selection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from takt_mcp.config import load_settings
from takt_mcp.providers import ProviderNotConfiguredError, create_provider
from takt_mcp.providers.base import (
    REDACTED,
    Message,
    ProviderAuthenticationError,
    ProviderBadRequestError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRequest,
    ProviderUnavailableError,
    SystemBlock,
    error_detail,
    redact_secret,
    schema_instruction,
    status_error,
    strict_json_schema,
)
from takt_mcp.schemas import (
    FramedJudgement,
    MediationJudgement,
    OpenJudgement,
    ParticipantAssessment,
)

JUDGEMENT_MODELS = [OpenJudgement, FramedJudgement, MediationJudgement, ParticipantAssessment]
UNSUPPORTED_KEYWORDS = {"title", "minimum", "maximum", "default"}


def schema_nodes(node: Any) -> list[dict[str, Any]]:
    """Return every subschema, skipping the names under "properties" and "$defs"."""
    if not isinstance(node, dict):
        return []
    found = [node]
    for keyword, value in node.items():
        if keyword in ("properties", "$defs"):
            for subschema in value.values():
                found += schema_nodes(subschema)
        elif isinstance(value, dict):
            found += schema_nodes(value)
        elif isinstance(value, list):
            for item in value:
                found += schema_nodes(item)
    return found


class TitledNote(BaseModel):
    """A model whose field names collide with JSON Schema keywords."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(title="Heading")
    minimum: int = Field(ge=0, le=10)
    default: str


# --- strict_json_schema ------------------------------------------------------------


@pytest.mark.parametrize("model", JUDGEMENT_MODELS, ids=lambda model: model.__name__)
def test_strict_schema_objects_forbid_extras(model: type[BaseModel]) -> None:
    objects = [node for node in schema_nodes(strict_json_schema(model)) if "properties" in node]

    assert objects
    for node in objects:
        assert node["additionalProperties"] is False


@pytest.mark.parametrize("model", JUDGEMENT_MODELS, ids=lambda model: model.__name__)
def test_strict_schema_requires_every_property(model: type[BaseModel]) -> None:
    objects = [node for node in schema_nodes(strict_json_schema(model)) if "properties" in node]

    for node in objects:
        assert sorted(node["required"]) == sorted(node["properties"])


@pytest.mark.parametrize("model", JUDGEMENT_MODELS, ids=lambda model: model.__name__)
def test_strict_schema_drops_unsupported_keywords(model: type[BaseModel]) -> None:
    for node in schema_nodes(strict_json_schema(model)):
        assert not UNSUPPORTED_KEYWORDS & set(node), node


def test_strict_schema_keeps_confidence_type() -> None:
    confidence = strict_json_schema(OpenJudgement)["properties"]["confidence"]

    assert confidence["type"] == "number"
    assert "description" in confidence


def test_strict_schema_keeps_properties_named_like_keywords() -> None:
    schema = strict_json_schema(TitledNote)

    assert sorted(schema["properties"]) == ["default", "minimum", "title"]
    assert schema["properties"]["title"] == {"type": "string"}
    assert schema["properties"]["minimum"] == {"type": "integer"}


def test_strict_schema_leaves_model_schema_unchanged() -> None:
    before = json.dumps(MediationJudgement.model_json_schema(), sort_keys=True)

    strict_json_schema(MediationJudgement)

    assert json.dumps(MediationJudgement.model_json_schema(), sort_keys=True) == before


def test_strict_schema_resolves_nested_definitions() -> None:
    schema = strict_json_schema(MediationJudgement)

    assert schema["properties"]["participants"]["items"] == {
        "$ref": "#/$defs/ParticipantAssessment"
    }
    assert "ParticipantAssessment" in schema["$defs"]


def test_schema_instruction_lists_every_key_in_order() -> None:
    request = ProviderRequest(
        system=(),
        messages=(Message("user", "Walk or drive?"),),
        result_type=OpenJudgement,
        schema_name="OpenJudgement",
        max_output_tokens=100,
    )

    instruction = schema_instruction(request)
    positions = [instruction.index(f'"{name}"') for name in OpenJudgement.model_fields]
    assert instruction.startswith("Reply with a single JSON object and nothing else.")
    assert positions == sorted(positions)


def test_schema_instruction_describes_nested_keys() -> None:
    request = ProviderRequest(
        system=(),
        messages=(Message("user", "Who is right?"),),
        result_type=MediationJudgement,
        schema_name="MediationJudgement",
        max_output_tokens=100,
    )

    instruction = schema_instruction(request)
    assert '  - "strongest_point" (string)' in instruction


def test_system_text_joins_blocks_with_blank_line() -> None:
    request = ProviderRequest(
        system=(SystemBlock("Identity.", cacheable=True), SystemBlock("Task.")),
        messages=(),
        result_type=OpenJudgement,
        schema_name="OpenJudgement",
        max_output_tokens=100,
    )

    assert request.system_text() == "Identity.\n\nTask."


# --- ProviderError ----------------------------------------------------------------


def test_provider_error_names_provider_model_status_hint() -> None:
    error = ProviderError(
        "server error: boom", provider="openai", model="m-1", status=502, hint="Retry later."
    )

    assert str(error) == "openai model 'm-1' (HTTP 502): server error: boom. Retry later."
    assert error.detail == "server error: boom"
    assert error.status == 502


def test_provider_error_without_status_or_hint() -> None:
    error = ProviderError("the request timed out", provider="anthropic", model="c-1")

    assert str(error) == "anthropic model 'c-1': the request timed out"


def test_not_configured_error_names_every_variable() -> None:
    message = str(ProviderNotConfiguredError())

    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "TAKT_PROVIDER"):
        assert variable in message


# --- status_error -------------------------------------------------------------------

STATUS_CASES = [
    (401, ProviderAuthenticationError, "authentication failed: detail", "Check KEY_VAR."),
    (403, ProviderAuthenticationError, "authentication failed: detail", "Check KEY_VAR."),
    (429, ProviderRateLimitError, "rate limited: detail", "Wait and retry"),
    (500, ProviderUnavailableError, "server error: detail", "Retry later."),
    (502, ProviderUnavailableError, "server error: detail", "Retry later."),
    (503, ProviderUnavailableError, "server error: detail", "Retry later."),
    (529, ProviderUnavailableError, "server error: detail", "Retry later."),
    (404, ProviderBadRequestError, "not found: detail", "Check the model."),
    (400, ProviderBadRequestError, "request rejected: detail", ""),
    (413, ProviderBadRequestError, "request rejected: detail", ""),
    (422, ProviderBadRequestError, "request rejected: detail", ""),
]


def map_status(status: int, retry_after: str | None = None) -> ProviderError:
    return status_error(
        status,
        "detail",
        provider="vendor",
        model="m-1",
        retry_after=retry_after,
        key_variable="KEY_VAR",
        not_found_hint="Check the model.",
    )


@pytest.mark.parametrize(("status", "error_type", "detail", "hint"), STATUS_CASES)
def test_status_maps_to_error_type(
    status: int, error_type: type[ProviderError], detail: str, hint: str
) -> None:
    error = map_status(status)

    assert type(error) is error_type
    assert error.status == status
    assert error.detail == detail
    assert error.hint.startswith(hint)
    assert str(error).startswith(f"vendor model 'm-1' (HTTP {status}): {detail}")


def test_rate_limit_names_retry_after() -> None:
    error = map_status(429, retry_after="30")

    assert error.hint.endswith("Retry after 30 s.")


def test_rate_limit_without_retry_after() -> None:
    error = map_status(429)

    assert "Retry after" not in str(error)


# --- error_detail and redaction -------------------------------------------------------


class VendorError(Exception):
    """Stands in for an SDK status error: a `body` and a `message`."""

    def __init__(self, body: object, message: str = "Error code: 400") -> None:
        super().__init__(message)
        self.body = body
        self.message = message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "OpenAI style", "type": "invalid_request_error"}}, "OpenAI style"),
        (
            {"type": "error", "error": {"type": "x", "message": "Anthropic style"}},
            "Anthropic style",
        ),
        ({"message": "top-level message"}, "top-level message"),
        ({"error": "plain string"}, "plain string"),
        ({"error": {"code": 7}}, "Error code: 400"),
        ("not a dict", "Error code: 400"),
        (None, "Error code: 400"),
    ],
    ids=["openai", "anthropic", "top-level", "string", "no-message", "text-body", "no-body"],
)
def test_error_detail_finds_message(body: object, expected: str) -> None:
    assert error_detail(VendorError(body)) == expected


def test_error_detail_without_body_uses_str() -> None:
    assert error_detail(ValueError("plain exception")) == "plain exception"


def test_error_detail_is_cut_to_300_characters() -> None:
    detail = error_detail(VendorError({"error": {"message": "x" * 1_000}}))

    assert detail == "x" * 300


def test_error_detail_redacts_secret() -> None:
    body = {"error": {"message": "Incorrect API key provided: sk-SECRET. Check it."}}

    detail = error_detail(VendorError(body), "sk-SECRET")

    assert detail == f"Incorrect API key provided: {REDACTED}. Check it."


def test_error_detail_redacts_before_cutting() -> None:
    secret = "sk-" + "S" * 40
    message = "x" * 280 + secret

    detail = error_detail(VendorError({"message": message}), secret)

    assert "SSSS" not in detail
    assert detail.startswith("x" * 280)


def test_redact_secret_replaces_every_occurrence() -> None:
    assert redact_secret("a KEY b KEY", "KEY") == f"a {REDACTED} b {REDACTED}"


@pytest.mark.parametrize("secret", [None, ""])
def test_redact_secret_without_secret_keeps_text(secret: str | None) -> None:
    assert redact_secret("a KEY b", secret) == "a KEY b"


# --- create_provider -----------------------------------------------------------------


def test_create_provider_without_configuration_raises() -> None:
    with pytest.raises(ProviderNotConfiguredError):
        create_provider(load_settings({}))


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"ANTHROPIC_API_KEY": "sk-ant-test"}, "anthropic"),
        ({"OPENAI_API_KEY": "sk-test"}, "openai"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, "openai"),
        ({"ANTHROPIC_API_KEY": "sk-ant-test", "OPENAI_API_KEY": "sk-test"}, "anthropic"),
        (
            {
                "ANTHROPIC_API_KEY": "sk-ant-test",
                "OPENAI_API_KEY": "sk-test",
                "TAKT_PROVIDER": "openai",
            },
            "openai",
        ),
    ],
    ids=["anthropic-key", "openai-key", "base-url", "both-keys", "explicit-openai"],
)
def test_create_provider_picks_configured_provider(environ: dict[str, str], name: str) -> None:
    provider = create_provider(load_settings(environ))

    assert provider.name == name
    assert provider.independent is True


def test_explicit_provider_without_key_raises_auth_error() -> None:
    with pytest.raises(ProviderAuthenticationError) as caught:
        create_provider(load_settings({"TAKT_PROVIDER": "anthropic", "OPENAI_API_KEY": "sk"}))

    assert "ANTHROPIC_API_KEY" in str(caught.value)
