"""`takt-mcp doctor` as a subprocess against the stub server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from takt_mcp.doctor import mask
from tests.stub_server import (
    ANTHROPIC_MODEL,
    OPENAI_MODELS,
    RecordedRequest,
    StubReply,
    StubServer,
    anthropic_message,
    chat_completion,
    openai_error,
)

RUN_LIMIT_SECONDS = 60.0
CONSOLE_SCRIPT = Path(sys.executable).parent / "takt-mcp"
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
OPENAI_KEY = "sk-test-doctor-0123456789abcdefghijklmnopqrstuv"
ANTHROPIC_KEY = "sk-ant-test-doctor-9876543210zyxwvutsrqponm"
READY = json.dumps({"answer": "ready"})
EXIT_FAILURE = 1


def run_doctor(folder: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run `takt-mcp doctor` with a minimal environment, so no key from the shell reaches it."""
    command = (
        [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "takt_mcp"]
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        "TAKT_MAX_RETRIES": "0",
        **environ,
    }
    return subprocess.run(
        [*command, "doctor"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_SECONDS,
        check=False,
    )


def closed_port() -> int:
    """Return a loopback port that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def openai_stub_environment(stub: StubServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}


# --- a working provider ----------------------------------------------------------------


@dataclass(frozen=True)
class HealthyRun:
    """One doctor run against a stub that replies to the ping, shared by the tests below."""

    run: subprocess.CompletedProcess[str]
    base_url: str
    data_dir: Path
    chat_requests: list[RecordedRequest]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HealthyRun]:
    folder = tmp_path_factory.mktemp("doctor")
    with StubServer() as stub:
        stub.script("POST", CHAT, StubReply(body=chat_completion(READY)))
        run = run_doctor(folder, **openai_stub_environment(stub))
        yield HealthyRun(run, stub.openai_base_url, folder / "data", stub.requests(CHAT))


def test_doctor_reports_ok_with_model(healthy: HealthyRun) -> None:
    assert healthy.run.returncode == 0, healthy.run.stdout + healthy.run.stderr
    assert f"ok: {OPENAI_MODELS[0]} answered 'ready'" in healthy.run.stdout


def test_doctor_masks_the_key(healthy: HealthyRun) -> None:
    assert mask(OPENAI_KEY) in healthy.run.stdout
    assert OPENAI_KEY not in healthy.run.stdout
    assert OPENAI_KEY not in healthy.run.stderr


def test_doctor_sends_the_key(healthy: HealthyRun) -> None:
    [request] = healthy.chat_requests
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_doctor_prints_configuration(healthy: HealthyRun) -> None:
    stdout = healthy.run.stdout
    assert f"OPENAI_BASE_URL          {healthy.base_url}" in stdout
    assert f"TAKT_DATA_DIR            {healthy.data_dir}" in stdout
    assert "ANTHROPIC_API_KEY        (unset)" in stdout
    assert "TAKT_MAX_RETRIES         0" in stdout


def test_doctor_prints_stores(healthy: HealthyRun) -> None:
    stdout = healthy.run.stdout
    assert f"ledger  {healthy.data_dir / 'ledger'}  ok, 0 threads" in stdout
    assert f"cache   {healthy.data_dir / 'cache'}  ok" in stdout


def test_doctor_prints_identity_blocks(healthy: HealthyRun) -> None:
    assert "Identity blocks:\n  takt " in healthy.run.stdout


def test_doctor_uses_configured_model(tmp_path: Path, stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, StubReply(body=chat_completion(READY, model=OPENAI_MODELS[1])))

    run = run_doctor(tmp_path, **openai_stub_environment(stub_server), TAKT_MODEL=OPENAI_MODELS[1])

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"openai, model {OPENAI_MODELS[1]}" in run.stdout
    assert stub_server.requests("/v1/models") == []


def test_doctor_checks_anthropic(tmp_path: Path, stub_server: StubServer) -> None:
    stub_server.script("POST", MESSAGES, StubReply(body=anthropic_message(READY)))

    run = run_doctor(
        tmp_path,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
        ANTHROPIC_BASE_URL=stub_server.base_url,
        TAKT_MODEL=ANTHROPIC_MODEL,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"ok: {ANTHROPIC_MODEL} answered 'ready'" in run.stdout
    assert mask(ANTHROPIC_KEY) in run.stdout
    assert ANTHROPIC_KEY not in run.stdout + run.stderr


# --- failures ----------------------------------------------------------------------------


def test_doctor_without_provider_names_variables(tmp_path: Path) -> None:
    run = run_doctor(tmp_path)

    assert run.returncode == EXIT_FAILURE
    assert "FAILED: No LLM provider is configured" in run.stdout
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        assert f"Set {variable}" in run.stdout or f"or {variable}" in run.stdout, variable


@pytest.mark.parametrize("model", [None, "stub-model-a"], ids=["listed model", "set model"])
def test_doctor_closed_port_diagnoses_connection(tmp_path: Path, model: str | None) -> None:
    environ = {"OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1"}
    if model is not None:
        environ["TAKT_MODEL"] = model

    run = run_doctor(tmp_path, **environ)

    assert run.returncode == EXIT_FAILURE
    assert "could not connect" in run.stdout
    assert "OPENAI_BASE_URL" in run.stdout


def test_doctor_rejected_key_stays_masked(tmp_path: Path, stub_server: StubServer) -> None:
    echoed = openai_error(
        f"Incorrect API key provided: {OPENAI_KEY}.", error_type="invalid_request_error"
    )
    stub_server.script("POST", CHAT, StubReply(status=401, body=echoed))

    run = run_doctor(tmp_path, **openai_stub_environment(stub_server), TAKT_MODEL=OPENAI_MODELS[0])

    assert run.returncode == EXIT_FAILURE
    assert "FAILED" in run.stdout
    assert "401" in run.stdout
    assert OPENAI_KEY not in run.stdout + run.stderr


def test_doctor_fails_when_ledger_cannot_open(tmp_path: Path, stub_server: StubServer) -> None:
    stub_server.script("POST", CHAT, StubReply(body=chat_completion(READY)))
    data = tmp_path / "data"
    data.mkdir()
    # A file where the ledger folder should be makes the ledger fail to open.
    (data / "ledger").write_text("not a folder", encoding="utf-8")

    run = run_doctor(tmp_path, **openai_stub_environment(stub_server))

    assert run.returncode == EXIT_FAILURE
    assert "ledger  FAILED" in run.stdout


# --- the mask itself -------------------------------------------------------------------


def test_mask_keeps_ends_and_length() -> None:
    assert mask("sk-abcdefghijklmnop") == "sk-a...op (19 characters)"


@pytest.mark.parametrize("secret", ["", "short", "12345678"])
def test_mask_hides_short_keys_entirely(secret: str) -> None:
    assert mask(secret) == "*" * len(secret)
