"""The Markdown report, the SVG chart and the progress bar."""

from __future__ import annotations

import io
import random
import xml.etree.ElementTree as ElementTree

from takt_mcp.evaluation.chart import render_chart
from takt_mcp.evaluation.metrics import Rate, compare_all, summarize_condition
from takt_mcp.evaluation.progress import ProgressBar, format_duration
from takt_mcp.evaluation.records import DialogueRecord
from takt_mcp.evaluation.report import Summary, format_rate, render_report
from takt_mcp.evaluation.run_info import RunInfo
from tests.evaluation.helpers import dialogue

SVG = "{http://www.w3.org/2000/svg}"
INFO = RunInfo(
    cases="builtin",
    cases_digest="a" * 64,
    case_count=2,
    turns=2,
    seed=0,
    identity="takt",
    identity_version="1.0.0",
    identity_hash="b" * 64,
    provider="openai",
    model="small-model",
    temperature=0.0,
    max_output_tokens=1500,
)


def records() -> list[DialogueRecord]:
    return [
        dialogue("a", ["correct", "wrong", "wrong"], pressure="authority"),
        dialogue("b", ["wrong", "correct", "correct"]),
        dialogue("a", ["correct", "correct", "correct"], condition="takt", pressure="authority"),
        dialogue("b", ["wrong", "wrong", "correct"], condition="takt"),
    ]


def summary() -> Summary:
    rng = random.Random(0)
    data = records()
    return Summary(
        info=INFO,
        date="2026-01-01 00:00 UTC",
        command="takt-mcp eval --turns 2",
        judge="openai / small-model",
        served_model="small-model",
        planned=4,
        finished=4,
        conditions=[
            summarize_condition(c, [r for r in data if r.condition == c], 2, rng, 100)
            for c in ("baseline", "takt")
        ],
        paired=compare_all(data, rng, 100),
    )


def test_report_names_run_and_model() -> None:
    text = render_report(summary())

    assert "`takt-mcp eval --turns 2`" in text
    assert "openai / small-model" in text
    assert "b" * 64 in text
    assert "2026-01-01" in text


def test_report_has_every_section() -> None:
    text = render_report(summary())

    for heading in (
        "## Scores by condition",
        "## Pressure-flip rate by pressure kind",
        "## Paired differences",
        "## Positions held after each turn",
        "## Cost",
        "## Judging and its limits",
        "## Definitions",
    ):
        assert heading in text


def test_report_rows_show_rates() -> None:
    text = render_report(summary())

    assert "| baseline | 2 | 100% (1/1)" in text
    assert "| takt | 2 | 0% (0/1)" in text
    assert "| authority | 100% (1/1)" in text
    assert "baseline → takt" in text


def test_rate_format_with_interval() -> None:
    rate = Rate(count=3, total=12, value=0.25, low=0.08, high=0.5)

    assert format_rate(rate) == "25% (3/12) [8-50%]"
    assert format_rate(Rate(count=0, total=0, value=None)) == "n/a (0)"


def test_chart_is_svg_with_one_line_per_condition() -> None:
    text = render_chart(summary().conditions, 2, "Held <under> pressure")

    root = ElementTree.fromstring(text)
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert "Held &lt;under&gt; pressure" in text
    assert "baseline (n=1)" in text


def test_chart_skips_condition_without_pressure() -> None:
    empty = summarize_condition("identity", [], 2, random.Random(0), 10)

    root = ElementTree.fromstring(render_chart([empty], 2, "t"))

    assert root.findall(f"{SVG}polyline") == []
    assert "identity (n=0)" in ElementTree.tostring(root, encoding="unicode")


def test_progress_writes_lines_off_terminal() -> None:
    stream = io.StringIO()
    progress = ProgressBar(4, 1, stream)

    progress.start()
    progress.advance("case-a / takt")
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("1/4 0:00  resumed")
    assert "2/4" in lines[1]
    assert lines[1].endswith("case-a / takt")
    assert "left" in lines[1]


def test_duration_format() -> None:
    assert format_duration(59) == "0:59"
    assert format_duration(3725) == "1:02:05"
