"""The `takt-mcp eval` command: its arguments, its providers, and its exit codes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import anyio

from takt_mcp.config import ConfigError, Settings, load_settings
from takt_mcp.evaluation.cases import BUILTIN, CaseError, select_cases
from takt_mcp.evaluation.conditions import CONDITIONS, ConditionName
from takt_mcp.evaluation.loaders import CASE_FORMATS, load_cases
from takt_mcp.evaluation.output import REPORT_FILE
from takt_mcp.evaluation.recording import (
    Recording,
    RecordingError,
    RecordingProvider,
    ReplayMissError,
    ReplayProvider,
)
from takt_mcp.evaluation.records import ResultsFileError
from takt_mcp.evaluation.run_info import RunMismatchError
from takt_mcp.evaluation.runner import RESULTS_FILE, Evaluation, run_evaluation
from takt_mcp.identity import IdentityRegistry, UnknownIdentityError
from takt_mcp.providers import (
    Provider,
    ProviderError,
    ProviderNotConfiguredError,
    create_provider,
)
from takt_mcp.store import StoreError

logger = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_USAGE = 2
# 128 + SIGINT, the shell's code for a run stopped with Ctrl-C.
EXIT_INTERRUPTED = 130
DEFAULT_TURNS = 3
DEFAULT_CONCURRENCY = 4
DEFAULT_OUT = "takt-eval"
MAX_TURNS = 20


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `eval` options to its subparser (the parent adds -v, --provider, --model)."""
    parser.add_argument(
        "--cases",
        default=BUILTIN,
        metavar="PATH|builtin",
        help="case file or data-set folder, or 'builtin' for the project's own set (default)",
    )
    parser.add_argument(
        "--format", choices=CASE_FORMATS, default="auto", help="case format (default: by name)"
    )
    parser.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help="comma-separated conditions to run (default: baseline,identity,takt)",
    )

    parser.add_argument("--identity", help="identity block for identity and takt (default: takt)")
    parser.add_argument(
        "--judge-provider", choices=["anthropic", "openai"], help="provider of the judge model"
    )
    parser.add_argument("--judge-model", help="judge model id (default: the subject's model)")

    parser.add_argument(
        "--turns",
        type=int,
        default=DEFAULT_TURNS,
        help=f"follow-up turns after the first answer (default: {DEFAULT_TURNS})",
    )
    parser.add_argument("--limit", type=int, help="run at most N cases (trap pairs stay whole)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"dialogues run at once (default: {DEFAULT_CONCURRENCY}; use 1 for a local server)",
    )

    parser.add_argument(
        "--seed", type=int, default=0, help="seed for case sampling and the bootstrap (default: 0)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        help=f"output folder; a rerun on it resumes (default: ./{DEFAULT_OUT})",
    )

    recording = parser.add_mutually_exclusive_group()
    recording.add_argument("--record", type=Path, metavar="FILE", help="save every exchange")
    recording.add_argument(
        "--replay", type=Path, metavar="FILE", help="answer every request from a recording"
    )


def parse_conditions(text: str) -> tuple[ConditionName, ...]:
    """Return the named conditions in the standard order; raise ValueError on an unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONDITIONS]
    if unknown or not names:
        raise ValueError(
            f"--conditions {text!r}: unknown {', '.join(unknown) or 'empty list'}; "
            f"choose from {', '.join(CONDITIONS)}"
        )
    return tuple(condition for condition in CONDITIONS if condition in names)


def check_numbers(args: argparse.Namespace) -> None:
    if not 1 <= args.turns <= MAX_TURNS:
        raise ValueError(f"--turns {args.turns}: give 1 to {MAX_TURNS}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give 1 or more")
    if args.concurrency < 1:
        raise ValueError(f"--concurrency {args.concurrency}: give 1 or more")


def run_eval_command(
    settings: Settings,
    identities: IdentityRegistry,
    args: argparse.Namespace,
    argv: Sequence[str] | None = None,
) -> int:
    """Run `takt-mcp eval`; return the exit code."""
    command = shlex.join(["takt-mcp", *(sys.argv[1:] if argv is None else argv)])
    try:
        check_numbers(args)
        conditions = parse_conditions(args.conditions)
    except ValueError as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with _terminate_as_interrupt():
            return anyio.run(_evaluate, settings, identities, args, conditions, command)
    except KeyboardInterrupt:
        print(
            f"\ntakt-mcp: interrupted. Finished dialogues are kept in {args.out / RESULTS_FILE} "
            f"and reported in {args.out / REPORT_FILE}; run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (
        CaseError,
        ConfigError,
        RunMismatchError,
        RecordingError,
        ReplayMissError,
        ResultsFileError,
        ProviderError,
        ProviderNotConfiguredError,
        UnknownIdentityError,
        StoreError,
    ) as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_FAILURE


async def _evaluate(
    settings: Settings,
    identities: IdentityRegistry,
    args: argparse.Namespace,
    conditions: tuple[ConditionName, ...],
    command: str,
) -> int:
    identity = identities.get(args.identity or settings.default_identity)
    cases, case_format = load_cases(args.cases, args.format)
    selected = select_cases(cases, args.limit, args.seed)
    if not selected:
        raise CaseError(f"no case selected from {args.cases} (--limit {args.limit})")
    logger.info("selected %d of %d cases (%s)", len(selected), len(cases), case_format)
    async with _providers(settings, args) as (subject, judge, judge_label):
        evaluation = Evaluation(
            cases=selected,
            cases_label=args.cases,
            conditions=conditions,
            identity=identity,
            settings=settings,
            subject=subject,
            judge=judge,
            judge_label=judge_label,
            turns=args.turns,
            concurrency=args.concurrency,
            seed=args.seed,
            out=args.out,
            command=command,
        )
        await run_evaluation(evaluation)
    print(f"Wrote {args.out / REPORT_FILE} and its data in {args.out}.", file=sys.stderr)
    print((args.out / REPORT_FILE).read_text(encoding="utf-8"))
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so a stopped run still writes its partial report."""
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be set from the main thread.
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.asynccontextmanager
async def _providers(
    settings: Settings, args: argparse.Namespace
) -> AsyncIterator[tuple[Provider, Provider | None, str]]:
    """Yield the subject provider, the judge provider and the judge's label; close them after."""
    if args.replay is not None:
        recording = Recording(args.replay, writable=False)
        yield (
            ReplayProvider(recording, "subject"),
            ReplayProvider(recording, "judge"),
            f"replayed from {args.replay}",
        )
        return

    opened: list[Provider] = []
    try:
        subject = create_provider(settings)
        opened.append(subject)
        judge = subject
        judge_label = (
            f"{_describe(subject)} (the subject model; no --judge-provider or --judge-model given)"
        )
        if args.judge_provider or args.judge_model:
            overrides = {"provider": args.judge_provider, "model": args.judge_model}
            judge = create_provider(load_settings(os.environ, overrides))
            opened.append(judge)
            judge_label = _describe(judge)
        if args.record is not None:
            recording = Recording(args.record, writable=True)
            subject = RecordingProvider(subject, recording, "subject")
            judge = RecordingProvider(judge, recording, "judge")
        yield subject, judge, judge_label
    finally:
        for provider in opened:
            await provider.aclose()


def _describe(provider: Provider) -> str:
    return f"{provider.name} / {provider.model or 'the first model the server lists'}"
