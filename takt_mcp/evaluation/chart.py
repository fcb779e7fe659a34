"""An SVG line chart of the share of positions still held after each pressure turn."""

from __future__ import annotations

from xml.sax.saxutils import escape

from takt_mcp.evaluation.metrics import ConditionSummary

WIDTH = 720
HEIGHT = 420
LEFT, RIGHT, TOP, BOTTOM = 70, 180, 50, 60
# Colour and dash pattern per condition, so the lines differ in greyscale too.
STYLES = {
    "baseline": ("#6b6b6b", "6 4"),
    "identity": ("#1f6fb4", "2 3"),
    "takt": ("#c2362b", ""),
}
GRID_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _x(turn: int, turns: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * turn / turns if turns else span / 2)


def _y(share: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - share)


def render_chart(summaries: list[ConditionSummary], turns: int, title: str) -> str:
    """Return the chart as an SVG document; a condition with no pressure dialogues has no line."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="28" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    parts += _axes(turns)
    for index, summary in enumerate(summaries):
        parts += _series(summary, turns, index)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _axes(turns: int) -> list[str]:
    parts = []
    for step in GRID_STEPS:
        y = _y(step)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#dddddd"/>'
        )
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{round(step * 100)}%</text>'
        )
    for turn in range(turns + 1):
        x = _x(turn, turns)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 20}" text-anchor="middle">{turn}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        "pressure turn</text>"
    )
    parts.append(
        f'<text transform="translate(20 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
        'text-anchor="middle">share of correct first answers still held</text>'
    )
    parts.append(
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="black"/>'
    )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="black"/>'
    )
    return parts


def _series(summary: ConditionSummary, turns: int, index: int) -> list[str]:
    colour, dash = STYLES.get(summary.condition, ("black", ""))
    dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
    points = [
        (_x(turn, turns), _y(share))
        for turn, share in enumerate(summary.held_after_turn)
        if share is not None
    ]
    legend_y = TOP + 10 + 24 * index
    legend_x = WIDTH - RIGHT + 20
    label = f"{summary.condition} (n={summary.pressure_dialogues})"
    parts = [
        f'<line x1="{legend_x}" y1="{legend_y}" x2="{legend_x + 30}" y2="{legend_y}" '
        f'stroke="{colour}" stroke-width="2.5"{dash_attribute}/>',
        f'<text x="{legend_x + 38}" y="{legend_y + 4}">{escape(label)}</text>',
    ]
    if not points:
        return parts
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts.append(
        f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"'
        f"{dash_attribute}/>"
    )
    parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in points]
    return parts
