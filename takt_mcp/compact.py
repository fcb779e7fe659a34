"""Smaller JSON Schemas for tools/list: every host pays for them in context.

Validation is unchanged: the SDK validates arguments and results against
the pydantic models, and the compact schemas accept the same documents.
"""

from __future__ import annotations

from typing import Any

# Keywords that only help humans reading the schema.
_ALWAYS_DROPPED = ("title",)
# Keywords whose values are data, copied as they are.
_DATA_KEYWORDS = ("default", "enum", "const", "examples")


def compact_schema(schema: dict[str, Any], *, keep_descriptions: bool) -> dict[str, Any]:
    """Return a copy without titles (and, if asked, descriptions), nullable unions folded."""
    compacted: dict[str, Any] = _compact(schema, keep_descriptions)
    return compacted


def _compact(node: Any, keep_descriptions: bool) -> Any:
    if isinstance(node, list):
        return [_compact(item, keep_descriptions) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ALWAYS_DROPPED and not isinstance(value, dict):
            continue
        if key == "description" and not keep_descriptions and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in _DATA_KEYWORDS:
            result[key] = value
        elif key == "properties":
            # Property names are data here, never keywords: keep all of them.
            result[key] = {name: _compact(sub, keep_descriptions) for name, sub in value.items()}
        else:
            result[key] = _compact(value, keep_descriptions)
    return _fold_nullable(result)


def _fold_nullable(node: dict[str, Any]) -> dict[str, Any]:
    """Turn anyOf [{type: X}, {type: null}] into type [X, null] when X is a plain type."""
    options = node.get("anyOf")
    if not isinstance(options, list) or len(options) != 2:
        return node
    plain = [option for option in options if set(option) == {"type"}]
    if len(plain) != 2 or {"type": "null"} not in plain:
        return node
    other = next(option["type"] for option in plain if option != {"type": "null"})
    if not isinstance(other, str):
        return node
    folded = {key: value for key, value in node.items() if key != "anyOf"}
    folded["type"] = [other, "null"]
    return folded


def outline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a result schema reduced to its top level: nested objects become plain objects.

    The nested shapes (metadata, frame influence, assessments) are described in
    the README; every result still validates against this outline.
    """
    compact = compact_schema(schema, keep_descriptions=False)
    properties = {
        name: _outline_property(sub) for name, sub in compact.get("properties", {}).items()
    }
    # "required" is left out: it costs context and a host reads results anyway.
    return {"type": "object", "properties": properties}


def _outline_property(node: dict[str, Any]) -> dict[str, Any]:
    node = {key: value for key, value in node.items() if key != "default"}
    if "$ref" in node:
        return {"type": "object"}
    if node.get("type") == "array":
        return {"type": "array"}
    options = node.get("anyOf")
    if isinstance(options, list):
        types: list[Any] = []
        for option in options:
            outlined = _outline_property(option)
            if set(outlined) == {"type"}:
                types.append(outlined["type"])
            else:
                return node
        return {"type": types}
    return node
