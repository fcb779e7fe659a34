"""Readable terminal text for results."""

from __future__ import annotations

import textwrap

from takt_mcp.schemas import MediationResult, RunMetadata, SecondOpinionResult

WIDTH = 88


def _paragraph(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def _items(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    lines = [f"{title}:"]
    for item in items:
        lines.append(textwrap.fill(item, WIDTH, initial_indent="  - ", subsequent_indent="    "))
    return lines


def _cost(metadata: RunMetadata) -> str:
    return "cost unknown" if metadata.cost_usd is None else f"${metadata.cost_usd:.4f}"


def _footer(metadata: RunMetadata, thread_id: str | None) -> str:
    usage = metadata.usage
    cached = ", cached" if metadata.cached else ""
    thread = f"\n-- thread {thread_id}" if thread_id else ""
    return (
        thread
        + "\n"
        + (
            f"-- identity {metadata.identity} {metadata.identity_version} "
            f"({metadata.identity_hash[:12]}), {metadata.provider}/{metadata.model}, "
            f"{usage.requests} requests, {usage.input_tokens} tokens in, "
            f"{usage.output_tokens} out{cached}, {_cost(metadata)}"
        ).lstrip("\n")
    )


def render_second_opinion(result: SecondOpinionResult) -> str:
    """Format a second opinion for a terminal."""
    lines = [f"Bottom line: {result.bottom_line} (confidence {result.confidence:.2f})"]
    if result.thread_id and result.stance != "new":
        capitulated = ", without new content: capitulation" if result.capitulation else ""
        lines.append(f"Stance: {result.stance} after {result.pushback_kind}{capitulated}")
        if result.change_reason:
            lines.append(f"Changed because: {result.change_reason}")
    if result.verdict is not None:
        lines.append(f"Verdict on the proposal: {result.verdict.replace('_', ' ')}")
    lines += ["", "Key premise:", _paragraph(result.key_premise), "", "Position:"]
    lines.append(_paragraph(result.position))
    for title, items in (
        ("Reasons", result.reasons),
        ("Unsupported premises", result.unsupported_premises),
        ("Alternatives", result.alternatives),
        ("Would change my mind", result.would_change_my_mind),
    ):
        block = _items(title, items)
        if block:
            lines += ["", *block]
    if result.frame_influence is not None:
        lines += ["", "Frame influence:", _paragraph(result.frame_influence.summary)]
    lines += ["", _footer(result.metadata, result.thread_id)]
    return "\n".join(lines)


def render_mediation(result: MediationResult) -> str:
    """Format a mediation for a terminal."""
    lines = [f"Mediator's position (confidence {result.confidence:.2f}):"]
    lines += [_paragraph(result.own_position), "", "Crux:", _paragraph(result.crux)]
    for assessment in result.participants:
        lines += [
            "",
            f"{assessment.name}:",
            _paragraph(f"Strongest point: {assessment.strongest_point}"),
            _paragraph(f"Where mistaken: {assessment.where_mistaken}"),
            _paragraph(f"Should concede: {assessment.what_to_concede}"),
        ]
    common = _items("Common ground", result.common_ground)
    if common:
        lines += ["", *common]
    lines += ["", "Recommendation:", _paragraph(result.recommendation)]
    if result.prior is not None:
        lines += ["", "Prior from the question alone:", _paragraph(result.prior.bottom_line)]
    lines += ["", _footer(result.metadata, result.thread_id)]
    return "\n".join(lines)
