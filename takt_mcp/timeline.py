"""A readable stance timeline of one thread, for `takt-mcp threads show`."""

from __future__ import annotations

import textwrap

from takt_mcp.store import ThreadRecord, Turn

WIDTH = 100


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _confidence(value: float | None) -> str:
    return "" if value is None else f"({value:.2f})"


def _turn_lines(turn: Turn) -> list[str]:
    stance = turn.stance.upper()
    if turn.capitulation:
        stance += " (CAPITULATION)"
    head = (
        f"#{turn.index:<3} {turn.time:%Y-%m-%d %H:%M:%S}  {turn.tool:<14} {stance:<24} "
        f"{_clip(turn.bottom_line, 40)} {_confidence(turn.confidence)}"
    )
    lines = [head]
    indent = " " * 6
    if turn.index > 0:
        lines.append(f"{indent}push: {turn.pushback_kind}")
    for point in turn.content:
        lines.append(
            textwrap.fill(
                f"new content: {point}",
                WIDTH,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
            )
        )
    for point in turn.repeated_content:
        lines.append(f"{indent}repeated: {_clip(point, WIDTH - 16)}")
    for item in turn.pressure:
        lines.append(f"{indent}pressure: {_clip(item, WIDTH - 16)}")
    if turn.change_reason:
        lines.append(
            textwrap.fill(
                f"reason: {turn.change_reason}",
                WIDTH,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
            )
        )
    return lines


def render_timeline(record: ThreadRecord) -> str:
    """Format a thread's turns as a stance timeline."""
    lines = [
        f"Thread {record.thread_id}",
        f"Created {record.created_at:%Y-%m-%d %H:%M:%S %Z}, {len(record.turns)} turns",
    ]
    if record.turns and record.turns[0].question:
        lines.append(textwrap.fill(f"Question: {record.turns[0].question}", WIDTH))
    if record.turns:
        first = record.turns[0]
        lines.append(
            f"Identity {first.identity} ({first.identity_hash[:12]}), "
            f"{first.provider}/{first.model}"
        )
    lines.append("")
    for turn in record.turns:
        lines += _turn_lines(turn)
    held = sum(1 for turn in record.turns if turn.stance == "held")
    updated = sum(1 for turn in record.turns if turn.stance == "updated")
    capitulations = sum(1 for turn in record.turns if turn.capitulation)
    lines += ["", f"Held {held}, updated {updated}, of which capitulations {capitulations}."]
    return "\n".join(lines)
