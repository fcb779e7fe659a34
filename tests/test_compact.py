"""compact_schema and outline_schema: smaller schemas that accept the same documents."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mcp import Client
from pydantic import BaseModel

from takt_mcp.compact import compact_schema, outline_schema
from takt_mcp.config import load_settings
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers import ProviderRequest
from takt_mcp.schemas import (
    FrameCheckResult,
    MediationResult,
    MediationRuling,
    PushSplit,
    Ruling,
    SecondOpinionResult,
)
from takt_mcp.server import build_server
from tests.fakes import (
    FakeProvider,
    Reply,
    default_reply,
    framed_judgement,
    mediation_judgement,
)

TOOL_NAMES = ["second_opinion", "mediate", "frame_check"]
RESULT_MODELS: dict[str, type[BaseModel]] = {
    "second_opinion": SecondOpinionResult,
    "mediate": MediationResult,
    "frame_check": FrameCheckResult,
}


# --- compact_schema ------------------------------------------------------------------


def test_titles_are_dropped_everywhere() -> None:
    schema = {
        "title": "Request",
        "type": "object",
        "properties": {"name": {"title": "Name", "type": "string"}},
        "$defs": {"Item": {"title": "Item", "type": "object"}},
    }

    compacted = compact_schema(schema, keep_descriptions=True)

    assert "title" not in compacted
    assert compacted["properties"]["name"] == {"type": "string"}
    assert compacted["$defs"]["Item"] == {"type": "object"}


def test_property_named_title_is_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "description": {"title": "Description", "type": "string"},
        },
        "required": ["title"],
    }

    compacted = compact_schema(schema, keep_descriptions=False)

    assert compacted["properties"]["title"] == {"type": "string"}
    assert compacted["properties"]["description"] == {"type": "string"}
    assert compacted["required"] == ["title"]


def test_nullable_union_is_folded() -> None:
    schema = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
        "title": "Proposal",
        "description": "The proposal.",
    }

    compacted = compact_schema(schema, keep_descriptions=True)

    assert compacted == {"type": ["string", "null"], "description": "The proposal."}


def test_null_first_union_is_folded() -> None:
    schema = {"anyOf": [{"type": "null"}, {"type": "integer"}]}

    assert compact_schema(schema, keep_descriptions=True) == {"type": ["integer", "null"]}


@pytest.mark.parametrize(
    "options",
    [
        pytest.param([{"type": "string", "minLength": 1}, {"type": "null"}], id="constrained"),
        pytest.param([{"type": "string"}, {"type": "integer"}], id="no null"),
        pytest.param([{"$ref": "#/$defs/Item"}, {"type": "null"}], id="reference"),
        pytest.param(
            [{"type": "string"}, {"type": "integer"}, {"type": "null"}], id="three options"
        ),
    ],
)
def test_other_unions_are_not_folded(options: list[dict[str, Any]]) -> None:
    compacted = compact_schema({"anyOf": options}, keep_descriptions=True)

    assert compacted == {"anyOf": options}


def test_descriptions_kept_when_asked() -> None:
    schema = {
        "type": "object",
        "description": "Top.",
        "properties": {"q": {"type": "string", "description": "The question."}},
    }

    kept = compact_schema(schema, keep_descriptions=True)
    dropped = compact_schema(schema, keep_descriptions=False)

    assert kept["description"] == "Top."
    assert kept["properties"]["q"]["description"] == "The question."
    assert "description" not in dropped
    assert "description" not in dropped["properties"]["q"]


def test_non_null_default_is_kept() -> None:
    schema = {"type": "string", "default": "takt"}

    assert compact_schema(schema, keep_descriptions=False) == schema


def test_input_schema_is_not_modified() -> None:
    schema = {
        "title": "T",
        "type": "object",
        "properties": {"p": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "P"}},
    }
    original = copy.deepcopy(schema)

    compact_schema(schema, keep_descriptions=False)

    assert schema == original


def test_data_values_are_kept_verbatim() -> None:
    schema = {
        "type": "object",
        "properties": {
            "options": {"type": "object", "default": {"title": "Untitled"}},
            "kind": {"enum": [{"title": "a"}, {"description": "b"}]},
            "fixed": {"const": {"title": "x"}},
        },
    }

    compacted = compact_schema(schema, keep_descriptions=False)

    assert compacted["properties"]["options"]["default"] == {"title": "Untitled"}
    assert compacted["properties"]["kind"]["enum"] == [{"title": "a"}, {"description": "b"}]
    assert compacted["properties"]["fixed"]["const"] == {"title": "x"}


# --- outline_schema ----------------------------------------------------------------------


@pytest.mark.parametrize("model", list(RESULT_MODELS.values()), ids=list(RESULT_MODELS))
def test_outline_keeps_top_level_properties(model: type[BaseModel]) -> None:
    full = model.model_json_schema(mode="serialization")

    outlined = outline_schema(full)

    assert outlined["type"] == "object"
    assert list(outlined["properties"]) == list(full["properties"])


@pytest.mark.parametrize("model", list(RESULT_MODELS.values()), ids=list(RESULT_MODELS))
def test_outline_has_no_references(model: type[BaseModel]) -> None:
    outlined = outline_schema(model.model_json_schema(mode="serialization"))

    assert "$defs" not in outlined
    assert "$ref" not in str(outlined)


def test_outline_reduces_nested_shapes() -> None:
    outlined = outline_schema(SecondOpinionResult.model_json_schema(mode="serialization"))

    properties = outlined["properties"]
    assert properties["metadata"] == {"type": "object"}
    assert properties["frame_influence"] == {"type": ["object", "null"]}
    assert properties["reasons"] == {"type": "array"}
    assert properties["confidence"] == {"type": "number"}


def test_outline_is_smaller_than_full() -> None:
    for model in RESULT_MODELS.values():
        full = model.model_json_schema(mode="serialization")
        assert len(str(outline_schema(full))) < len(str(full)), model.__name__


# --- real results against the advertised schemas ----------------------------------------


def push_split() -> dict[str, Any]:
    return {
        "content": [{"point": "The wash collects cars from home.", "new": True}],
        "pressure": ["Insists without a reason."],
    }


def thread_reply(request: ProviderRequest[Any]) -> Reply:
    """Reply like default_reply, and also to the requests a thread push makes."""
    if request.result_type is PushSplit:
        return push_split()
    if request.result_type is Ruling:
        return {**framed_judgement("Walk."), "decision": "update", "change_reason": "Pickup."}
    if request.result_type is MediationRuling:
        return {**mediation_judgement(["A", "B"]), "decision": "hold", "change_reason": ""}
    return default_reply(request)


PARTICIPANTS = [
    {"name": "Ann", "position": "Ship on Friday.", "messages": ["The client is waiting."]},
    {"name": "Ben", "position": "Wait a week.", "messages": []},
]
FIRST_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("second_opinion", {"question": "Walk or drive to the car wash?"}),
    (
        "second_opinion",
        {
            "question": "Walk or drive to the car wash?",
            "proposal": "Walk.",
            "user_position": "Walking is healthier.",
            "context": "The wash is 100 m away.",
        },
    ),
    ("mediate", {"participants": PARTICIPANTS}),
    ("mediate", {"participants": PARTICIPANTS, "question": "Ship on Friday?"}),
    ("frame_check", {"draft": "Sure, walk."}),
    (
        "frame_check",
        {
            "conversation": [
                {"speaker": "user", "text": "It is 100 m, so I'll walk?"},
                {"speaker": "assistant", "text": "Yes, walk."},
            ],
            "draft": "Walking is best.",
        },
    ),
]
PUSH_ARGUMENTS: dict[str, dict[str, Any]] = {
    "second_opinion": {"question": "But the wash picks cars up from home."},
    "mediate": {"participants": PARTICIPANTS, "context": "Ben found two open bugs."},
    "frame_check": {"draft": "Drive, then."},
}


@pytest.mark.anyio
async def test_every_result_validates_against_schemas(tmp_path: Path) -> None:
    data_settings = load_settings({"TAKT_DATA_DIR": str(tmp_path / "data")})
    fake = FakeProvider(thread_reply)
    server = build_server(data_settings, IdentityRegistry.load(), lambda _: fake)
    checked: list[str] = []

    async with Client(server) as client:
        listed = await client.list_tools()
        advertised = {tool.name: tool.output_schema for tool in listed.tools}
        for name, arguments in FIRST_CALLS:
            first = await client.call_tool(name, arguments)
            assert not first.is_error, (name, first.content)
            assert first.structured_content is not None
            pushed = await client.call_tool(
                name,
                {**PUSH_ARGUMENTS[name], "thread_id": first.structured_content["thread_id"]},
            )
            assert not pushed.is_error, (name, pushed.content)
            assert pushed.structured_content is not None
            for content in (first.structured_content, pushed.structured_content):
                schema = advertised[name]
                assert schema is not None
                jsonschema.validate(content, schema)
                full = RESULT_MODELS[name].model_json_schema(mode="serialization")
                jsonschema.validate(content, full)
                checked.append(f"{name}:{content['stance']}")

    assert "second_opinion:updated" in checked
    assert "mediate:held" in checked
    assert len(checked) == 2 * len(FIRST_CALLS)


# --- compact input schemas accept what the full schemas accept ---------------------------


@cache
def input_schemas() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Return, per tool, the full argument schema from pydantic and the advertised compact one."""
    server = build_server(load_settings({}), IdentityRegistry.load())
    schemas = {}
    for tool in server._tool_manager.list_tools():
        full = tool.fn_metadata.arg_model.model_json_schema(by_alias=True)
        schemas[tool.name] = (full, tool.parameters)
    return schemas


def test_compact_inputs_are_smaller() -> None:
    for name, (full, compact) in input_schemas().items():
        assert len(str(compact)) < len(str(full)), name


def test_compact_inputs_keep_properties_and_required() -> None:
    for name, (full, compact) in input_schemas().items():
        assert list(compact["properties"]) == list(full["properties"]), name
        assert compact.get("required") == full.get("required"), name


TEXT = st.text(max_size=12)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "string": TEXT,
    "integer": st.integers(-3, 300),
    "number": st.floats(-1e6, 1e6, allow_nan=False),
    "boolean": st.booleans(),
    "null": st.none(),
}


def documents(node: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Return a strategy for JSON values shaped by a schema, mostly but not always valid.

    Array bounds are widened by one and strings may be empty, so the filter
    below receives documents on both sides of minLength, minItems and maxItems.
    NOTE: strings stay under 13 characters and arrays under 11 items, so the
    64-character name limit and the 200-turn limit are never crossed here.
    """
    if "$ref" in node:
        return documents(defs[node["$ref"].split("/")[-1]], defs)
    if "anyOf" in node:
        return st.one_of([documents(option, defs) for option in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kinds = node.get("type", list(SCALARS))
    if isinstance(kinds, list):
        return st.one_of([documents({**node, "type": kind}, defs) for kind in kinds])
    if kinds == "array":
        items = documents(node.get("items", {"type": "string"}), defs)
        low = max(0, node.get("minItems", 0) - 1)
        high = min(node.get("maxItems", 4) + 1, 10)
        return st.lists(items, min_size=low, max_size=max(low, high))
    if kinds == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        fields = {
            name: documents(sub, defs) for name, sub in properties.items() if name in required
        }
        optional = {
            name: documents(sub, defs) for name, sub in properties.items() if name not in required
        }
        return st.fixed_dictionaries(fields, optional=optional)
    return SCALARS[kinds]


@cache
def validators(name: str) -> tuple[jsonschema.Draft202012Validator, ...]:
    full, compact = input_schemas()[name]
    return jsonschema.Draft202012Validator(full), jsonschema.Draft202012Validator(compact)


@st.composite
def tool_documents(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(TOOL_NAMES))
    full, _ = input_schemas()[name]
    return name, draw(documents(full, full.get("$defs", {})))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tool_documents())
def test_full_valid_is_compact_valid(case: tuple[str, Any]) -> None:
    name, document = case
    full_validator, compact_validator = validators(name)
    assume(full_validator.is_valid(document))

    compact_validator.validate(document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tool_documents())
def test_compact_valid_is_full_valid(case: tuple[str, Any]) -> None:
    # Compaction drops titles and null defaults and folds nullable unions, and none of
    # these widens what a schema accepts.
    name, document = case
    full_validator, compact_validator = validators(name)
    assume(compact_validator.is_valid(document))

    full_validator.validate(document)
