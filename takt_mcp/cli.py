"""The `takt-mcp` command: the stdio server and one-off terminal commands."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

import anyio
from pydantic import BaseModel, ValidationError

from takt_mcp import __version__
from takt_mcp.caching import CachingProvider
from takt_mcp.config import ConfigError, Settings, load_settings
from takt_mcp.deliberation import InputTooLargeError, Voice
from takt_mcp.doctor import run_doctor
from takt_mcp.evaluation.command import add_eval_arguments, run_eval_command
from takt_mcp.identity import IdentityError, IdentityRegistry, UnknownIdentityError
from takt_mcp.pricing import PriceTable, PricingError
from takt_mcp.providers import (
    Provider,
    ProviderError,
    ProviderNotConfiguredError,
    create_provider,
)
from takt_mcp.render import render_mediation, render_second_opinion
from takt_mcp.resources import thread_line
from takt_mcp.schemas import MediationRequest, Participant, SecondOpinionRequest
from takt_mcp.store import (
    Ledger,
    LedgerLimitError,
    StoreError,
    ThreadNotFoundError,
    is_thread_id,
    open_stores,
)
from takt_mcp.threads import mediation_on_thread, second_opinion_on_thread
from takt_mcp.timeline import render_timeline

logger = logging.getLogger("takt_mcp")
ResultT = TypeVar("ResultT", bound=BaseModel)

EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="takt-mcp",
        description="An MCP server that gives agents an independent, position-holding voice.",
    )
    parser.add_argument("--version", action="version", version=f"takt-mcp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a subcommand's missing -v from resetting one given before it.
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more to stderr (-v info, -vv debug)",
    )
    common.add_argument("--provider", choices=["anthropic", "openai"], help="sets TAKT_PROVIDER")
    common.add_argument("--model", help="sets TAKT_MODEL")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more to stderr (-v info, -vv debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve", parents=[common], help="run the MCP server (the default command)"
    )
    serve_parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default) or streamable HTTP",
    )
    serve_parser.add_argument(
        "--host",
        help="HTTP address to listen on (default: 127.0.0.1); "
        "a non-loopback address needs TAKT_HTTP_TOKEN",
    )
    serve_parser.add_argument(
        "--port", type=int, help="HTTP port to listen on (default: 8000; 0 picks a free port)"
    )

    ask = commands.add_parser("ask", parents=[common], help="get one second opinion")
    ask.add_argument("question", help="the bare question or claim")
    ask.add_argument("--proposal", help="a proposed answer or plan to judge")
    ask.add_argument("--user-position", help="a position a person insists on")
    ask.add_argument("--context", help="facts, constraints or excerpts")
    ask.add_argument("--identity", help="identity block name (default: takt)")
    ask.add_argument("--thread", help="continue this thread id (push on its position)")
    ask.add_argument("--json", action="store_true", help="print the result as JSON")

    mediate = commands.add_parser("mediate", parents=[common], help="mediate a disagreement")
    mediate.add_argument(
        "--participant",
        action="append",
        required=True,
        metavar="'NAME: POSITION'",
        help="a party and its position; give 2 to 8",
    )
    mediate.add_argument("--question", help="the question in dispute")
    mediate.add_argument("--context", help="facts, constraints or excerpts")
    mediate.add_argument("--identity", help="identity block name (default: takt)")
    mediate.add_argument("--thread", help="continue this thread id")
    mediate.add_argument("--json", action="store_true", help="print the result as JSON")

    commands.add_parser("identities", parents=[common], help="list the identity blocks")

    commands.add_parser(
        "doctor", parents=[common], help="check the configuration and make one tiny request"
    )

    evaluate = commands.add_parser(
        "eval", parents=[common], help="measure holding under pressure and updating on evidence"
    )
    add_eval_arguments(evaluate)

    threads = commands.add_parser("threads", parents=[common], help="read and manage threads")
    thread_commands = threads.add_subparsers(dest="thread_command", metavar="ACTION", required=True)
    thread_commands.add_parser("list", help="list threads, most recent first")
    for action, text in (
        ("show", "print a thread's stance timeline"),
        ("export", "print a thread's ledger as JSON"),
        ("delete", "delete a thread"),
    ):
        thread_commands.add_parser(action, help=text).add_argument("thread_id")
    prune = thread_commands.add_parser("prune", help="delete all but the most recent threads")
    prune.add_argument("--keep", type=int, required=True, help="number of threads to keep")
    return parser


def configure_logging(verbosity: int) -> None:
    """Send logs to stderr; stdout carries the MCP protocol when serving."""
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if verbosity < 2:
        # The SDKs log every HTTP request at info; keep that for -vv.
        for noisy in ("httpx", "httpx2", "openai", "anthropic", "mcp"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    command = args.command or "serve"
    try:
        settings = load_settings(
            os.environ,
            {"provider": getattr(args, "provider", None), "model": getattr(args, "model", None)},
        )
        identities = IdentityRegistry.load(settings.identity_dir)
        PriceTable.load(settings.prices_file)
    except (ConfigError, IdentityError, PricingError) as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_USAGE

    if command == "serve":
        return serve(settings, identities, args)
    if command == "identities":
        return list_identities(identities)
    if command == "threads":
        return manage_threads(settings, args)
    if command == "doctor":
        lines, healthy = anyio.run(run_doctor, settings, identities)
        print("\n".join(lines))
        return 0 if healthy else EXIT_FAILURE
    if command == "eval":
        return run_eval_command(settings, identities, args, argv)
    try:
        if command == "ask":
            return anyio.run(ask, settings, identities, args)
        return anyio.run(mediate, settings, identities, args)
    except (
        ProviderError,
        ProviderNotConfiguredError,
        UnknownIdentityError,
        InputTooLargeError,
        ThreadNotFoundError,
        LedgerLimitError,
        StoreError,
    ) as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_FAILURE


def serve(settings: Settings, identities: IdentityRegistry, args: argparse.Namespace) -> int:
    """Run the MCP server on stdio, or on streamable HTTP with `--transport http`."""
    from takt_mcp.server import build_server

    # Without a subcommand, argparse sets none of the serve options.
    transport = getattr(args, "transport", "stdio")
    host, port = getattr(args, "host", None), getattr(args, "port", None)
    if transport == "stdio":
        if host is not None or port is not None:
            print("takt-mcp: error: --host and --port need --transport http", file=sys.stderr)
            return EXIT_USAGE
        build_server(settings, identities).run("stdio")
        return 0

    from takt_mcp import http

    token = settings.http_token.get_secret_value() if settings.http_token else None
    host = host or http.DEFAULT_HTTP_HOST
    port = http.DEFAULT_HTTP_PORT if port is None else port
    try:
        if not 0 <= port <= 65535:
            raise http.HttpBindError(f"--port {port} is not a TCP port; use 0 to 65535.")
        http.check_bind(host, token)
    except http.HttpBindError as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    server = build_server(settings, identities)
    try:
        anyio.run(functools.partial(http.serve_http, server, host=host, port=port, token=token))
    except http.HttpBindError as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl+C after its graceful shutdown; that is a normal stop.
        return 0
    return 0


def manage_threads(settings: Settings, args: argparse.Namespace) -> int:
    """Run a `threads` action on the ledger in TAKT_DATA_DIR or the user data folder."""
    try:
        ledger = Ledger(
            settings.ledger_dir(), max_turns=settings.max_turns, max_threads=settings.max_threads
        )
    except StoreError as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        action = args.thread_command
        if action == "list":
            records = ledger.threads()
            for record in records:
                print(thread_line(record))
            if not records:
                print(f"No threads in {ledger.path}.", file=sys.stderr)
        elif action == "show":
            print(render_timeline(ledger.get(args.thread_id)))
        elif action == "export":
            print(ledger.get(args.thread_id).model_dump_json(indent=2))
        elif action == "delete":
            ledger.delete(args.thread_id)
            print(f"Deleted thread {args.thread_id}.", file=sys.stderr)
        elif action == "prune":
            if args.keep < 0:
                print("takt-mcp: error: --keep must be 0 or more", file=sys.stderr)
                return EXIT_USAGE
            deleted = ledger.prune(args.keep)
            print(
                f"Deleted {len(deleted)} threads; kept the {args.keep} most recent.",
                file=sys.stderr,
            )
    except (ThreadNotFoundError, StoreError) as error:
        print(f"takt-mcp: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        ledger.close()
    return 0


def list_identities(identities: IdentityRegistry) -> int:
    for block in identities.blocks():
        print(f"{block.name}\t{block.version}\t{block.short_hash}\t{block.description}")
        print(f"\t{block.path}")
    return 0


async def ask(settings: Settings, identities: IdentityRegistry, args: argparse.Namespace) -> int:
    try:
        request = SecondOpinionRequest(
            question=args.question,
            proposal=args.proposal,
            user_position=args.user_position,
            context=args.context,
        )
    except ValidationError as error:
        return _usage_error(error)
    async with _session(settings, identities, args) as (voice, ledger):
        result = await second_opinion_on_thread(voice, request, ledger, args.thread)
    _print(result, args.json, render_second_opinion)
    return 0


async def mediate(
    settings: Settings, identities: IdentityRegistry, args: argparse.Namespace
) -> int:
    participants = []
    for spec in args.participant:
        name, separator, position = spec.partition(":")
        if not separator or not name.strip() or not position.strip():
            print(
                f"takt-mcp: error: --participant {spec!r} must look like 'NAME: POSITION'",
                file=sys.stderr,
            )
            return EXIT_USAGE
        participants.append({"name": name.strip(), "position": position.strip()})
    try:
        request = MediationRequest(
            participants=[Participant.model_validate(p) for p in participants],
            question=args.question,
            context=args.context,
        )
    except ValidationError as error:
        return _usage_error(error)
    async with _session(settings, identities, args) as (voice, ledger):
        result = await mediation_on_thread(voice, request, ledger, args.thread)
    _print(result, args.json, render_mediation)
    return 0


@contextlib.asynccontextmanager
async def _session(
    settings: Settings, identities: IdentityRegistry, args: argparse.Namespace
) -> AsyncIterator[tuple[Voice, Ledger | None]]:
    """Open the stores and the provider for one terminal command, and close them after."""
    block = identities.get(args.identity or settings.default_identity)
    if args.thread is not None and not is_thread_id(args.thread):
        raise ThreadNotFoundError(args.thread)
    stores = await anyio.to_thread.run_sync(open_stores, settings)
    if args.thread is not None and stores.ledger is None:
        stores.close()
        raise StoreError(stores.ledger_error or "The thread ledger is not open.")
    try:
        provider: Provider = create_provider(settings)
        if stores.cache is not None:
            provider = CachingProvider(provider, stores.cache)
        try:
            prices = PriceTable.load(settings.prices_file)
            voice = Voice(provider=provider, identity=block, settings=settings, prices=prices)
            yield voice, stores.ledger
        finally:
            await provider.aclose()
    finally:
        stores.close()


def _usage_error(error: ValidationError) -> int:
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        print(f"takt-mcp: error: {location}: {item['msg']}", file=sys.stderr)
    return EXIT_USAGE


def _print(result: ResultT, as_json: bool, render: Callable[[ResultT], str]) -> None:
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(render(result))


if __name__ == "__main__":
    raise SystemExit(main())
