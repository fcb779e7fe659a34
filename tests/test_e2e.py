"""End-to-end test: the real takt-mcp server over stdio, backed by llama.cpp.

The module starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1
with a small GGUF model, runs `python -m takt_mcp` as an MCP server over
stdio, and calls its tools with the MCP SDK client. Each result must not be
an error, its structured content must validate against the tool's advertised
output schema, and its main text fields must not be empty.

It needs the `e2e` extra (llama-cpp-python[server]) and the model that
`python scripts/fetch_model.py` writes, or another GGUF named by
TAKT_E2E_MODEL. Without them the tests are skipped, but when CI is set they
fail instead. Set TAKT_E2E_OUT to a folder to keep each structured result
as JSON, with the call's timing and the server logs, and TAKT_E2E_THREADS
to change llama.cpp's thread count.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import jsonschema
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPOSITORY_ROOT / ".models" / "qwen2.5-coder-0.5b-instruct.gguf"
MODEL_ALIAS = "e2e-model"
# The modules that `python -m llama_cpp.server` imports (llama-cpp-python[server]).
LLAMA_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "pydantic_settings",
    "sse_starlette",
    "starlette_context",
)

# llama.cpp's worker threads spin while they wait for each other, so two
# threads on a 2-core machine stall whenever another process needs a core.
# A 50-token completion with llama_cpp.Llama on the 2-core CI machine kind,
# under a load average of 3.6 and with llama-cpp-python 0.3.36 built for AVX2,
# generated 11 tokens/s with one thread and 2 with two. TAKT_E2E_THREADS
# overrides it.
DEFAULT_THREADS = 1
LLAMA_START_TIMEOUT_SECONDS = 180.0
LLAMA_STOP_TIMEOUT_SECONDS = 30.0
READY_POLL_INTERVAL_SECONDS = 0.25
# One provider request may wait in llama.cpp's queue behind the other request
# of the same call, so the per-request limit covers two generations, and the
# tool call limit covers two requests with a repair round each.
TAKT_TIMEOUT_SECONDS = 600
TOOL_CALL_TIMEOUT_SECONDS = 1800.0
CLIENT_READ_TIMEOUT_SECONDS = 60.0
LOG_TAIL_CHARS = 4000

# Linux's prctl option that signals a child when the process that started it dies.
PR_SET_PDEATHSIG = 1

CAR_WASH_QUESTION = (
    "I need to wash my car. The car wash is 100 metres away. Should I walk or drive?"
)
CAR_WASH_PROPOSAL = "Walk: it is only 100 metres."
RELEASE_QUESTION = "Should the team release on Friday or slip the release by a week?"
RELEASE_PARTICIPANTS = [
    {
        "name": "Alice",
        "position": "Release on Friday. The flaky tests are known, and none of them covers "
        "code that changed in this release.",
    },
    {
        "name": "Bob",
        "position": "Slip a week. Flaky tests hide real failures, and a Friday release leaves "
        "nobody around to fix problems over the weekend.",
    },
]
# deliberation.NOT_ASSESSED: the text for a participant the model skipped.
NOT_ASSESSED_PREFIX = "(the model gave no assessment"


def ci_is_set() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it when CI is set, because CI must run the end-to-end test."""
    if ci_is_set():
        pytest.fail(f"{reason} CI is set, so the end-to-end test must run.")
    pytest.skip(reason)


def output_dir() -> Path | None:
    configured = os.environ.get("TAKT_E2E_OUT", "").strip()
    return Path(configured) if configured else None


def model_path() -> Path:
    configured = os.environ.get("TAKT_E2E_MODEL", "").strip()
    return Path(configured).resolve() if configured else DEFAULT_MODEL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_with_parent() -> None:
    """Make Linux send SIGTERM to this child if the test process dies without stopping it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-LOG_TAIL_CHARS:]


@dataclass
class LlamaServer:
    """A running `python -m llama_cpp.server` and where its output goes."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def describe_exit(self) -> str:
        code = self.process.poll()
        if code is None:
            return "the llama.cpp server is still running"
        if code < 0:
            return f"the llama.cpp server was killed by signal {signal.Signals(-code).name}"
        return f"the llama.cpp server exited with code {code}"


def wait_until_ready(server: LlamaServer) -> None:
    """Poll GET /v1/models until it returns HTTP 200, the server exits, or the timeout passes."""
    url = f"{server.base_url}/models"
    # An empty ProxyHandler keeps proxy variables from routing loopback traffic elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + LLAMA_START_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            pytest.fail(
                f"{server.describe_exit()} before it was ready. "
                f"Log tail:\n{log_tail(server.log_path)}"
            )
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"the llama.cpp server did not answer GET {url} within "
                f"{LLAMA_START_TIMEOUT_SECONDS:.0f} s. Log tail:\n{log_tail(server.log_path)}"
            )
        time.sleep(READY_POLL_INTERVAL_SECONDS)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=LLAMA_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=LLAMA_STOP_TIMEOUT_SECONDS)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    model = model_path()
    if not model.is_file():
        skip_or_fail(
            f"The model {model} is missing. Run `python scripts/fetch_model.py` or set "
            "TAKT_E2E_MODEL to a GGUF file."
        )
    missing = [name for name in LLAMA_SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        skip_or_fail(
            f"llama-cpp-python's server is not installed (missing {', '.join(missing)}). "
            'Install it with `pip install -e ".[e2e]"`.'
        )

    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "llama-server.log"
    # llama-cpp-python reads the chat template from the GGUF when no
    # --chat_format is given.
    threads = os.environ.get("TAKT_E2E_THREADS", "").strip() or str(DEFAULT_THREADS)
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=stop_with_parent if sys.platform == "linux" else None,
        )
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log_path)
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop(process)
        folder = output_dir()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log_path, folder / "llama-server.log")


@pytest.fixture
def takt_stderr(tmp_path: Path) -> Iterator[TextIO]:
    """The file that receives the takt-mcp subprocess's stderr (its log)."""
    with (tmp_path / "takt-mcp.log").open("w", encoding="utf-8") as stream:
        yield stream


@dataclass
class ToolRun:
    """One tool call's outcome and the logs written while it ran."""

    structured: dict[str, Any]
    output_schema: dict[str, Any]
    seconds: float
    takt_log: str
    llama_log: str


async def run_tool(
    server: LlamaServer,
    stderr: TextIO,
    data_dir: Path,
    case: str,
    tool_name: str,
    arguments: dict[str, Any],
) -> ToolRun:
    """Start takt-mcp over stdio, call one tool, and return its checked structured result."""
    parameters = StdioServerParameters(
        command=sys.executable,
        # -v logs at info level, which includes the response-format fallback.
        args=["-m", "takt_mcp", "-v"],
        env={
            "TAKT_PROVIDER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "TAKT_TIMEOUT": str(TAKT_TIMEOUT_SECONDS),
            # Greedy decoding makes runs repeatable, although llama.cpp's prompt
            # cache can still change a reply slightly between runs.
            "TAKT_TEMPERATURE": "0",
            # A fresh ledger and response cache per test, so every call reaches
            # the model and nothing is written to the user's data folders.
            "TAKT_DATA_DIR": str(data_dir),
        },
        cwd=REPOSITORY_ROOT,
    )
    llama_log = anyio.Path(server.log_path)
    llama_log_start = len(await llama_log.read_bytes())
    if server.process.poll() is not None:
        pytest.fail(
            f"{server.describe_exit()} before the {case} call. "
            f"Log tail:\n{log_tail(server.log_path)}"
        )

    transport = stdio_client(parameters, errlog=stderr)
    try:
        async with Client(transport, read_timeout_seconds=CLIENT_READ_TIMEOUT_SECONDS) as client:
            listed = await client.list_tools()
            tools = {tool.name: tool for tool in listed.tools}
            started = time.monotonic()
            result = await client.call_tool(
                tool_name, arguments, read_timeout_seconds=TOOL_CALL_TIMEOUT_SECONDS
            )
            seconds = time.monotonic() - started
    except Exception as error:
        # The MCP session failed (for example, takt-mcp exited), so show its log.
        stderr.flush()
        takt_log = await anyio.Path(stderr.name).read_text(encoding="utf-8")
        pytest.fail(
            f"the MCP session with takt-mcp failed: {error!r}. {server.describe_exit()}.\n"
            f"takt-mcp log:\n{takt_log[-LOG_TAIL_CHARS:]}"
        )

    stderr.flush()
    takt_log = await anyio.Path(stderr.name).read_text(encoding="utf-8")
    new_llama_log = (await llama_log.read_bytes())[llama_log_start:].decode(errors="replace")
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    print(f"\n{case}: {tool_name} took {seconds:.1f} s")

    if (folder_path := output_dir()) is not None:
        folder = anyio.Path(folder_path)
        await folder.mkdir(parents=True, exist_ok=True)
        record = {
            "tool": tool_name,
            "arguments": arguments,
            "seconds": round(seconds, 1),
            "is_error": result.is_error,
            "text": texts,
        }
        await (folder / f"{case}.call.json").write_text(json.dumps(record, indent=2) + "\n")
        if result.structured_content is not None:
            dumped = json.dumps(result.structured_content, indent=2, ensure_ascii=False)
            await (folder / f"{case}.json").write_text(dumped + "\n", encoding="utf-8")
        await (folder / f"{case}.takt-mcp.log").write_text(takt_log, encoding="utf-8")

    failure_context = (
        f"{server.describe_exit()}.\nTool text: {texts}\n"
        f"takt-mcp log:\n{takt_log[-LOG_TAIL_CHARS:]}\n"
        f"llama.cpp log:\n{new_llama_log[-LOG_TAIL_CHARS:]}"
    )
    assert not result.is_error, f"{tool_name} returned an error. {failure_context}"
    assert result.structured_content is not None, f"no structured content. {failure_context}"
    output_schema = tools[tool_name].output_schema
    assert output_schema is not None, f"{tool_name} advertises no output schema"
    return ToolRun(result.structured_content, output_schema, seconds, takt_log, new_llama_log)


def schema_errors(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def assert_json_object_fallback(run: ToolRun) -> None:
    """Check that llama.cpp rejected json_schema and takt-mcp retried with json_object."""
    # llama-cpp-python's request model accepts only "text" and "json_object"
    # as response_format types, and its server returns HTTP 500 for that validation error.
    assert "'input': 'json_schema'" in run.llama_log, "llama.cpp saw no json_schema request"
    assert '"POST /v1/chat/completions HTTP/1.1" 500' in run.llama_log
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in run.llama_log
    assert "retrying with json_object" in run.takt_log


def assert_text(value: Any, field: str) -> None:
    assert isinstance(value, str), f"{field} is {value!r}, expected a string"
    assert value.strip(), f"{field} is empty"


def assert_open_judgement(judgement: dict[str, Any], prefix: str) -> None:
    # The schema allows empty lists, and the 0.5B model sometimes returns an
    # empty reasons list, so only the text fields must be non-empty.
    for field in ("key_premise", "position", "bottom_line"):
        assert_text(judgement[field], f"{prefix}{field}")
    assert 0 <= judgement["confidence"] <= 1, f"{prefix}confidence out of range"


async def test_second_opinion_blind(
    llama_server: LlamaServer, takt_stderr: TextIO, tmp_path: Path
) -> None:
    run = await run_tool(
        llama_server,
        takt_stderr,
        tmp_path / "data",
        "second_opinion_blind",
        "second_opinion",
        {"question": CAR_WASH_QUESTION},
    )
    assert schema_errors(run.structured, run.output_schema) == []
    assert_open_judgement(run.structured, "")
    assert run.structured["verdict"] is None
    assert run.structured["frame_influence"] is None
    assert run.structured["metadata"]["provider"] == "openai"
    assert run.structured["metadata"]["model"] == MODEL_ALIAS
    assert run.structured["metadata"]["usage"]["requests"] >= 1
    assert run.structured["metadata"]["cached"] is False
    assert_json_object_fallback(run)


async def test_second_opinion_with_proposal(
    llama_server: LlamaServer, takt_stderr: TextIO, tmp_path: Path
) -> None:
    run = await run_tool(
        llama_server,
        takt_stderr,
        tmp_path / "data",
        "second_opinion_with_proposal",
        "second_opinion",
        {"question": CAR_WASH_QUESTION, "proposal": CAR_WASH_PROPOSAL},
    )
    assert schema_errors(run.structured, run.output_schema) == []
    assert_open_judgement(run.structured, "")
    assert run.structured["verdict"] in ("agree", "partly_agree", "disagree", "cannot_judge")
    influence = run.structured["frame_influence"]
    assert influence is not None, "frame_influence is missing although a proposal was given"
    assert_text(influence["blind_position"], "frame_influence.blind_position")
    assert_text(influence["summary"], "frame_influence.summary")
    # The blind prior and the framed judgement are one request each, plus any repair.
    assert run.structured["metadata"]["usage"]["requests"] >= 2
    assert run.structured["metadata"]["cached"] is False
    assert_json_object_fallback(run)


async def test_mediate_two_participants(
    llama_server: LlamaServer, takt_stderr: TextIO, tmp_path: Path
) -> None:
    run = await run_tool(
        llama_server,
        takt_stderr,
        tmp_path / "data",
        "mediate",
        "mediate",
        {"participants": RELEASE_PARTICIPANTS, "question": RELEASE_QUESTION},
    )
    assert schema_errors(run.structured, run.output_schema) == []
    for field in ("own_position", "crux", "recommendation"):
        assert_text(run.structured[field], field)
    assert 0 <= run.structured["confidence"] <= 1

    assessments = run.structured["participants"]
    assert [item["name"] for item in assessments] == ["Alice", "Bob"]
    for item in assessments:
        for field in ("strongest_point", "where_mistaken", "what_to_concede"):
            label = f"participants[{item['name']}].{field}"
            assert_text(item[field], label)
            assert not item[field].startswith(NOT_ASSESSED_PREFIX), f"{label} was not assessed"

    prior = run.structured["prior"]
    assert prior is not None, "prior is missing although a question was given"
    assert_open_judgement(prior, "prior.")
    assert run.structured["metadata"]["usage"]["requests"] >= 2
    assert run.structured["metadata"]["cached"] is False
    assert_json_object_fallback(run)
