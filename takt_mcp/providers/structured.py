"""Validation of structured model output, with one repair round."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from takt_mcp.providers.base import (
    InvalidOutputError,
    Message,
    ProviderRequest,
    ResultT,
)
from takt_mcp.schemas import Usage

logger = logging.getLogger(__name__)

# Models without enforced output sometimes wrap JSON in a Markdown fence.
_FENCED_JSON = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

SendFn = Callable[[ProviderRequest[ResultT]], Awaitable[tuple[str, Usage, str]]]


def parse_result(request: ProviderRequest[ResultT], text: str) -> ResultT:
    """Validate a reply against the request's result type, raising ValidationError."""
    match = _FENCED_JSON.match(text)
    if match:
        text = match.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        # pydantic's own parse reports where the JSON breaks, for the repair prompt.
        return request.result_type.model_validate_json(text)
    return request.result_type.model_validate(strip_quote_fences(data))


# Small models sometimes copy the orchestrator's quote fences into their answer.
_QUOTE_FENCE = re.compile(r"\s*\[\[(?:quote|end) [0-9a-f]{12}[^\]]*\]\]\s*")


def strip_quote_fences(value: Any) -> Any:
    """Remove quote-fence markers from every string in a decoded reply."""
    if isinstance(value, str):
        return _QUOTE_FENCE.sub(" ", value).strip() if "[[" in value else value
    if isinstance(value, list):
        return [strip_quote_fences(item) for item in value]
    if isinstance(value, dict):
        return {key: strip_quote_fences(item) for key, item in value.items()}
    return value


def describe_errors(error: ValidationError) -> str:
    """Return a compact list of what was wrong, for the repair prompt and errors."""
    problems = []
    for item in error.errors()[:10]:
        location = ".".join(str(part) for part in item["loc"]) or "(root)"
        problems.append(f"{location}: {item['msg']}")
    return "; ".join(problems)


async def complete_with_repair(
    send: SendFn[ResultT], request: ProviderRequest[ResultT], *, provider: str, model: str
) -> tuple[ResultT, Usage, str, str]:
    """Send the request, validate the reply, and ask once for a corrected reply.

    Returns the result, the summed usage, the model id the server reported,
    and the raw text of the accepted reply.
    """
    text, usage, served_model = await send(request)
    first: ResultT | None = None
    try:
        first = parse_result(request, text)
    except ValidationError as error:
        problems = describe_errors(error)
    else:
        problem = request.check(first) if request.check else None
        if problem is None:
            return first, usage, served_model, text
        problems = problem
    logger.info(
        "%s/%s returned an unusable reply (%s); asking for a repair", provider, model, problems
    )

    repair = ProviderRequest(
        system=request.system,
        messages=(
            *request.messages,
            Message("assistant", text),
            Message(
                "user",
                f"That reply cannot be used: {problems}. "
                "Reply again with only the corrected JSON object.",
            ),
        ),
        result_type=request.result_type,
        schema_name=request.schema_name,
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature,
        labels={**request.labels, "repair": "1"},
        check=request.check,
    )
    repaired_text, repair_usage, served_model = await send(repair)
    usage = usage + repair_usage
    try:
        return parse_result(request, repaired_text), usage, served_model, repaired_text
    except ValidationError as error:
        if first is not None:
            # The first reply was valid and only failed the content check:
            # a weak answer is more use to the caller than an error.
            logger.warning("%s/%s: repair failed; keeping the first reply", provider, model)
            return first, usage, served_model, text
        excerpt = json.dumps(repaired_text[:200])
        raise InvalidOutputError(
            f"the reply did not match the {request.schema_name} schema after one repair "
            f"({describe_errors(error)}); reply began {excerpt}.",
            provider=provider,
            model=model,
            hint="Use a model that follows JSON schemas, or raise TAKT_MAX_OUTPUT_TOKENS "
            "if the reply was cut off.",
        ) from None
