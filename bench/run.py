"""Measure what takt-mcp costs a host, against a bare MCP server as the floor.

Run from the repository root:

    .venv/bin/python -m bench.run            # full run, a few minutes
    .venv/bin/python -m bench.run --quick    # fewer repetitions, for a smoke test

Every server runs as a stdio subprocess spoken to with raw JSON-RPC lines, so
the client adds the same small cost to both sides of each comparison. The
provider is bench/stub.py, an OpenAI-compatible stub on 127.0.0.1 in its own
process, which replies at once or after a fixed delay. Each figure is the
median of several runs, and both sides of a ratio are measured in the same
run. The script prints a Markdown report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from takt_mcp import __version__
from takt_mcp.config import DEFAULT_MAX_INPUT_CHARS, DEFAULT_MAX_TURNS

ROOT = Path(__file__).resolve().parent.parent
TAKT_COMMAND = [sys.executable, "-m", "takt_mcp", "serve"]
FLOOR_COMMAND = [sys.executable, str(ROOT / "bench" / "floor_server.py")]
INSTANT_COMMAND = [sys.executable, "-m", "bench.instant_server"]
PROTOCOL_VERSION = "2025-11-25"
# Bound on any one response, in seconds, so a stuck server ends the run.
RESPONSE_LIMIT_SECONDS = 60.0
QUESTION = "Should I walk or drive to the car wash 50 m away?"
SLOW_PROVIDER_SECONDS = 0.5
CONCURRENT_CALLS = 32
PUSHES_MEASURED = 3

GOALS = {
    "startup": 1.1,
    "per_call": 1.5,
    "concurrency": 1.2,
    "cache_hit_ms": 5.0,
    "idle_rss_mb": 120.0,
}


@dataclass
class Repetitions:
    """How many times each measurement repeats."""

    startups: int = 15
    calls: int = 300
    warmup_calls: int = 30
    batches: int = 5
    memory_runs: int = 3
    size_calls: int = 20
    # The last checkpoint leaves room for the pushes measured there.
    turn_checkpoints: tuple[int, ...] = (1, 10, 50, 100, 250, DEFAULT_MAX_TURNS - PUSHES_MEASURED)


QUICK = Repetitions(
    startups=5,
    calls=60,
    warmup_calls=10,
    batches=3,
    memory_runs=1,
    size_calls=5,
    turn_checkpoints=(1, 10, 50),
)


# --- a raw JSON-RPC client over a subprocess's pipes -------------------------------


@dataclass
class RawSession:
    """One server subprocess; requests may overlap and are matched to replies by id."""

    process: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 1
    reader: asyncio.Task[None] | None = None

    async def read_replies(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            future = self.pending.pop(message.get("id"), None) if "id" in message else None
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        reply = await asyncio.wait_for(future, RESPONSE_LIMIT_SECONDS)
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        reply = await self.request("tools/call", {"name": tool, "arguments": arguments})
        result: dict[str, Any] = reply["result"]
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {result['content']}")
        return result

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "takt-bench", "version": "0"},
            },
        )
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def rss_mb(self) -> float:
        """Return the process's resident set size in MiB, read from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("VmRSS not found; this measurement needs Linux /proc")


@asynccontextmanager
async def spawn(command: list[str], environ: dict[str, str]) -> AsyncIterator[RawSession]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=environ,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    session = RawSession(process)
    session.reader = asyncio.create_task(session.read_replies())
    try:
        yield session
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        session.reader.cancel()


@asynccontextmanager
async def started(command: list[str], environ: dict[str, str]) -> AsyncIterator[RawSession]:
    async with spawn(command, environ) as session:
        await session.initialize()
        yield session


# --- the stub provider in its own process -----------------------------------------


@asynccontextmanager
async def stub_provider(delay: float) -> AsyncIterator[str]:
    """Run bench/stub.py in a subprocess and yield its OPENAI_BASE_URL."""
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.stub", "--delay", str(delay)],
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield (await process.stdout.readline()).decode().strip()
    finally:
        # The stub serves until its stdin closes.
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 10)


def environment(folder: Path, base_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        "OPENAI_BASE_URL": base_url,
        "TAKT_MODEL": "bench-stub",
        "TAKT_MAX_RETRIES": "0",
        **extra,
    }


# --- measurements ------------------------------------------------------------------


async def time_startup(command: list[str], environ: dict[str, str]) -> float:
    """Return seconds from spawn to the tools/list reply."""
    began = time.perf_counter()
    async with started(command, environ) as session:
        await session.request("tools/list")
        return time.perf_counter() - began


async def startup(reps: Repetitions, environ: dict[str, str]) -> tuple[float, float]:
    floor, takt = [], []
    # One unmeasured start of each warms the file cache and creates the stores.
    await time_startup(FLOOR_COMMAND, environ)
    await time_startup(TAKT_COMMAND, environ)
    for _ in range(reps.startups):
        floor.append(await time_startup(FLOOR_COMMAND, environ))
        takt.append(await time_startup(TAKT_COMMAND, environ))
    return statistics.median(floor), statistics.median(takt)


async def call_latencies(
    session: RawSession, call: Callable[[int], Awaitable[object]], count: int, warmup: int
) -> list[float]:
    for index in range(warmup):
        await call(-1 - index)
    latencies = []
    for index in range(count):
        began = time.perf_counter()
        await call(index)
        latencies.append(time.perf_counter() - began)
    return latencies


async def per_call(reps: Repetitions, environ: dict[str, str]) -> tuple[float, float, float]:
    """Return the median call time of the no-op tool, of second_opinion with an
    in-process instant provider, and of second_opinion through the OpenAI SDK."""

    async def median_call(command: list[str], tool: str) -> float:
        async with started(command, environ) as session:

            async def call(index: int) -> object:
                return await session.call(tool, {"question": f"{QUESTION} {index}"})

            latencies = await call_latencies(session, call, reps.calls, reps.warmup_calls)
        return statistics.median(latencies)

    floor = await median_call(FLOOR_COMMAND, "noop")
    instant = await median_call(INSTANT_COMMAND, "second_opinion")
    sdk = await median_call(TAKT_COMMAND, "second_opinion")
    return floor, instant, sdk


async def concurrency(reps: Repetitions, environ: dict[str, str]) -> tuple[float, float]:
    """Return the median time of one call and of 32 simultaneous calls (slow provider)."""
    singles, batches = [], []
    async with started(TAKT_COMMAND, environ) as session:
        counter = iter(range(10**9))

        async def one() -> object:
            # A new question each time, so no reply comes from the response cache.
            return await session.call("second_opinion", {"question": f"{QUESTION} {next(counter)}"})

        await one()
        for _ in range(reps.batches):
            began = time.perf_counter()
            await one()
            singles.append(time.perf_counter() - began)
            began = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(CONCURRENT_CALLS)))
            batches.append(time.perf_counter() - began)
    return statistics.median(singles), statistics.median(batches)


async def cache_hit(reps: Repetitions, environ: dict[str, str]) -> tuple[float, float]:
    """Return the median latency of a cache miss and of a cache hit, end to end."""
    async with started(TAKT_COMMAND, environ) as session:
        misses, hits = [], []
        for index in range(reps.size_calls):
            arguments = {"question": f"{QUESTION} cache {index}"}
            began = time.perf_counter()
            await session.call("second_opinion", arguments)
            misses.append(time.perf_counter() - began)
        for index in range(reps.calls):
            arguments = {"question": f"{QUESTION} cache {index % reps.size_calls}"}
            began = time.perf_counter()
            result = await session.call("second_opinion", arguments)
            hits.append(time.perf_counter() - began)
            assert result["structuredContent"]["metadata"]["cached"] is True
    return statistics.median(misses), statistics.median(hits)


async def idle_memory(reps: Repetitions, environ: dict[str, str]) -> tuple[float, float]:
    """Return the median resident memory in MiB of each server after start-up and 10 calls."""
    floor, takt = [], []
    for _ in range(reps.memory_runs):
        async with started(FLOOR_COMMAND, environ) as session:
            for index in range(10):
                await session.call("noop", {"question": f"{QUESTION} {index}"})
            await asyncio.sleep(1)
            floor.append(session.rss_mb())
        async with started(TAKT_COMMAND, environ) as session:
            for index in range(10):
                await session.call("second_opinion", {"question": f"{QUESTION} {index}"})
            await session.call(
                "mediate",
                {"participants": [{"name": "A", "position": "x"}, {"name": "B", "position": "y"}]},
            )
            await asyncio.sleep(1)
            takt.append(session.rss_mb())
    return statistics.median(floor), statistics.median(takt)


INPUT_SIZES = (100, 1_000, 5_000, 10_000, 20_000, DEFAULT_MAX_INPUT_CHARS)


async def input_growth(reps: Repetitions, environ: dict[str, str]) -> list[tuple[int, float]]:
    """Return (characters, median ms) for a bare second_opinion at each input size."""
    rows = []
    async with started(TAKT_COMMAND, environ) as session:
        for size in INPUT_SIZES:

            async def call(index: int, size: int = size) -> object:
                prefix = f"{index} "
                return await session.call(
                    "second_opinion", {"question": prefix + "x" * (size - len(prefix))}
                )

            latencies = await call_latencies(session, call, reps.size_calls, 2)
            rows.append((size, statistics.median(latencies) * 1000))
    return rows


async def ledger_growth(
    reps: Repetitions, environ: dict[str, str], folder: Path
) -> list[tuple[int, float, int]]:
    """Return (turns already on the thread, median ms of a push, ledger bytes) per checkpoint."""
    rows = []
    async with started(TAKT_COMMAND, environ) as session:
        first = await session.call("second_opinion", {"question": QUESTION})
        thread_id = first["structuredContent"]["thread_id"]
        turns = 1
        for checkpoint in reps.turn_checkpoints:
            while turns < checkpoint:
                await push(session, thread_id, turns)
                turns += 1
            # Each measured push adds one turn.
            latencies = []
            for _ in range(PUSHES_MEASURED):
                began = time.perf_counter()
                await push(session, thread_id, turns)
                latencies.append(time.perf_counter() - began)
                turns += 1
            rows.append((checkpoint, statistics.median(latencies) * 1000, ledger_bytes(folder)))
    return rows


async def push(session: RawSession, thread_id: str, index: int) -> None:
    await session.call(
        "second_opinion",
        {"question": f"Are you sure? Push {index}.", "thread_id": thread_id},
    )


def ledger_bytes(folder: Path) -> int:
    ledger = folder / "data" / "ledger"
    return sum(path.stat().st_size for path in ledger.rglob("*") if path.is_file())


# --- report ------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {memory_kb / 1024 / 1024:.0f} GiB RAM; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"mcp {version('mcp')}, openai {version('openai')}"
    )


def load_average() -> str:
    """Return the 1-minute load average, since other processes skew every timing."""
    return f"{os.getloadavg()[0]:.2f}"


def verdict(met: bool) -> str:
    return "met" if met else "not met"


async def run(reps: Repetitions) -> str:
    with tempfile.TemporaryDirectory(prefix="takt-bench-") as temporary:
        folder = Path(temporary)
        async with stub_provider(0.0) as instant_url:
            cache_off = environment(folder, instant_url, TAKT_CACHE_TTL="0")
            floor_start, takt_start = await startup(reps, cache_off)
            floor_call, takt_call, sdk_call = await per_call(reps, cache_off)
            miss, hit = await cache_hit(reps, environment(folder / "cache", instant_url))
            floor_rss, takt_rss = await idle_memory(reps, cache_off)
            sizes = await input_growth(reps, cache_off)
            ledger_folder = folder / "ledger"
            ledger_rows = await ledger_growth(
                reps, environment(ledger_folder, instant_url, TAKT_CACHE_TTL="0"), ledger_folder
            )
        async with stub_provider(SLOW_PROVIDER_SECONDS) as slow_url:
            single, batch = await concurrency(
                reps, environment(folder, slow_url, TAKT_CACHE_TTL="0")
            )

    startup_ratio = takt_start / floor_start
    call_ratio = takt_call / floor_call
    batch_ratio = batch / single
    lines = [
        f"takt-mcp {__version__}, run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {machine()}.",
        f"Load average at the end of the run: {load_average()}.",
        "",
        "| measurement | takt-mcp | reference | ratio | goal | result |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| start-up, spawn to tools/list reply | {takt_start * 1000:.0f} ms "
        f"| {floor_start * 1000:.0f} ms (bare MCPServer) | {startup_ratio:.2f} "
        f"| at most {GOALS['startup']} | {verdict(startup_ratio <= GOALS['startup'])} |",
        f"| per call, in-process instant provider | {takt_call * 1000:.2f} ms "
        f"| {floor_call * 1000:.2f} ms (no-op tool) | {call_ratio:.2f} "
        f"| at most {GOALS['per_call']} | {verdict(call_ratio <= GOALS['per_call'])} |",
        f"| per call, OpenAI SDK to the instant HTTP stub | {sdk_call * 1000:.2f} ms "
        f"| {floor_call * 1000:.2f} ms (no-op tool) | {sdk_call / floor_call:.2f} "
        "| (for information) | |",
        f"| {CONCURRENT_CALLS} simultaneous calls, 500 ms provider | {batch * 1000:.0f} ms "
        f"| {single * 1000:.0f} ms (one call) | {batch_ratio:.2f} "
        f"| at most {GOALS['concurrency']} | {verdict(batch_ratio <= GOALS['concurrency'])} |",
        f"| cache hit, end to end | {hit * 1000:.2f} ms | {miss * 1000:.2f} ms (miss) | "
        f"| at most {GOALS['cache_hit_ms']:g} ms "
        f"| {verdict(hit * 1000 <= GOALS['cache_hit_ms'])} |",
        f"| resident memory after 11 calls | {takt_rss:.0f} MiB "
        f"| {floor_rss:.0f} MiB (bare MCPServer) | {takt_rss / floor_rss:.2f} "
        f"| at most {GOALS['idle_rss_mb']:g} MB | {verdict(takt_rss <= GOALS['idle_rss_mb'])} |",
        "",
        "Input size (bare `second_opinion`, instant provider):",
        "",
        "| characters | median ms per call |",
        "| --- | --- |",
        *(f"| {size:,} | {ms:.2f} |" for size, ms in sizes),
        "",
        "Ledger length (a push on one thread, instant provider):",
        "",
        "| turns on the thread | median ms per push | ledger on disk |",
        "| --- | --- | --- |",
        *(f"| {turns:,} | {ms:.2f} | {size / 1024:,.0f} KiB |" for turns, ms, size in ledger_rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark takt-mcp against a bare MCP server.")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    args = parser.parse_args()
    print(asyncio.run(run(QUICK if args.quick else Repetitions())))


if __name__ == "__main__":
    main()
