"""Write summary.json, report.md and chart.svg from a run's dialogue records."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from takt_mcp.evaluation.chart import render_chart
from takt_mcp.evaluation.conditions import CONDITIONS
from takt_mcp.evaluation.metrics import compare_all, summarize_condition
from takt_mcp.evaluation.records import DialogueRecord
from takt_mcp.evaluation.report import CHART_FILE, Summary, render_report
from takt_mcp.evaluation.run_info import ReportContext

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"


def summarize(records: Sequence[DialogueRecord], context: ReportContext) -> Summary:
    """Compute every score; the run's seed drives the bootstrap, so a rerun gives the same CIs."""
    rng = random.Random(context.info.seed)
    present = {record.condition for record in records} | set(context.conditions)
    conditions = [
        summarize_condition(
            condition,
            [record for record in records if record.condition == condition],
            context.info.turns,
            rng,
        )
        for condition in CONDITIONS
        if condition in present
    ]
    return Summary(
        info=context.info,
        date=context.date,
        command=context.command,
        judge=context.judge,
        served_model=context.served_model,
        planned=context.planned,
        finished=sum(1 for record in records if not record.error),
        conditions=conditions,
        paired=compare_all(records, rng),
    )


def write_outputs(out: Path, records: Sequence[DialogueRecord], context: ReportContext) -> Summary:
    summary = summarize(records, context)
    (out / SUMMARY_FILE).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / REPORT_FILE).write_text(render_report(summary), encoding="utf-8")
    title = "Correct first answers still held under pressure"
    chart = render_chart(summary.conditions, context.info.turns, title)
    (out / CHART_FILE).write_text(chart, encoding="utf-8")
    return summary
