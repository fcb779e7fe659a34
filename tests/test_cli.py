"""The `takt-mcp` console script as a subprocess, with the stub server as its provider.

Each run gets a minimal environment: PATH, a HOME and TAKT_DATA_DIR inside the
test's temporary folder, and the variables the test sets. No API key from the
developer's shell reaches it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from takt_mcp import __version__
from takt_mcp.identity import IdentityRegistry
from takt_mcp.schemas import MediationResult, SecondOpinionResult
from tests.stub_server import OPENAI_MODELS, StubReply, StubServer, openai_error

# Bound on one command, in seconds. The stub replies in milliseconds.
RUN_LIMIT_SECONDS = 60.0
CHAT = "/v1/chat/completions"
QUESTION = "Should I walk or drive to the car wash 50 m away?"
CONSOLE_SCRIPT = Path(sys.executable).parent / "takt-mcp"
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str


def command_prefix() -> list[str]:
    """Return the installed console script, or the module when it is not installed."""
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-m", "takt_mcp"]


def run_cli(folder: Path, *arguments: str, **environ: str) -> Run:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "TAKT_DATA_DIR": str(folder / "data"),
        **environ,
    }
    completed = subprocess.run(
        [*command_prefix(), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_SECONDS,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def stub_environment(stub: StubServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": stub.openai_base_url, "TAKT_MAX_RETRIES": "0"}


# --- commands that need no provider ----------------------------------------------------


def test_version_prints_package_version(tmp_path: Path) -> None:
    run = run_cli(tmp_path, "--version")

    assert run.exit_code == 0
    assert run.stdout.strip() == f"takt-mcp {__version__}"


def test_identities_lists_builtin_block(tmp_path: Path) -> None:
    block = IdentityRegistry.load().get("takt")

    run = run_cli(tmp_path, "identities")

    assert run.exit_code == 0
    first_line = run.stdout.splitlines()[0]
    assert first_line.split("\t")[:3] == ["takt", block.version, block.short_hash]
    assert str(block.path) in run.stdout


def test_identities_include_user_folder(tmp_path: Path) -> None:
    folder = tmp_path / "identities"
    folder.mkdir()
    (folder / "skeptic.md").write_text(
        '+++\nname = "skeptic"\nversion = "0.1.0"\ndescription = "A doubting voice."\n+++\n'
        "Skeptic doubts every premise until the evidence for it has been checked.\n",
        encoding="utf-8",
    )

    run = run_cli(tmp_path, "identities", TAKT_IDENTITY_DIR=str(folder))

    names = [line.split("\t")[0] for line in run.stdout.splitlines() if not line.startswith("\t")]
    assert run.exit_code == 0
    assert "skeptic" in names
    assert "takt" in names


# --- ask ------------------------------------------------------------------------------


def test_ask_json_prints_second_opinion(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(tmp_path, "ask", QUESTION, "--json", **stub_environment(stub_server))

    assert run.exit_code == 0, run.stderr
    result = SecondOpinionResult.model_validate_json(run.stdout)
    assert result.bottom_line == "Drive."
    assert result.verdict is None
    assert result.metadata.provider == "openai"
    assert result.metadata.model == OPENAI_MODELS[0]
    assert len(stub_server.requests(CHAT)) == 1


def test_ask_with_proposal_adds_verdict(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(
        tmp_path,
        "ask",
        QUESTION,
        "--proposal",
        "Walk, it is only 50 m.",
        "--json",
        **stub_environment(stub_server),
    )

    assert run.exit_code == 0, run.stderr
    result = SecondOpinionResult.model_validate_json(run.stdout)
    assert result.verdict == "disagree"
    assert result.frame_influence is not None
    assert len(stub_server.requests(CHAT)) == 2


def test_ask_readable_form(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(tmp_path, "ask", QUESTION, **stub_environment(stub_server))

    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith("Bottom line: Drive. (confidence 0.80)")
    assert "Key premise:" in run.stdout
    assert f"openai/{OPENAI_MODELS[0]}" in run.stdout


def test_ask_model_flag_sets_model(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(
        tmp_path, "ask", QUESTION, "--model", "chosen-model", **stub_environment(stub_server)
    )

    assert run.exit_code == 0, run.stderr
    assert stub_server.requests(CHAT)[0].body["model"] == "chosen-model"
    assert stub_server.requests("/v1/models") == []


def test_ask_provider_error_exits_nonzero(stub_server: StubServer, tmp_path: Path) -> None:
    denied = StubReply(status=401, body=openai_error("Invalid key.", error_type="auth"))
    stub_server.script("POST", CHAT, denied)

    run = run_cli(tmp_path, "ask", QUESTION, **stub_environment(stub_server))

    assert run.exit_code == EXIT_FAILURE
    assert run.stdout == ""
    assert run.stderr.startswith("takt-mcp: error: openai model")
    assert "HTTP 401" in run.stderr


# --- mediate --------------------------------------------------------------------------


def test_mediate_readable_form(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(
        tmp_path,
        "mediate",
        "--participant",
        "A: ship on Friday",
        "--participant",
        "B: ship next month",
        **stub_environment(stub_server),
    )

    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith("Mediator's position (confidence 0.70):")
    assert "\nA:\n" in run.stdout
    assert "\nB:\n" in run.stdout
    assert "Recommendation:" in run.stdout
    assert len(stub_server.requests(CHAT)) == 1


def test_mediate_json_prints_mediation(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(
        tmp_path,
        "mediate",
        "--participant",
        "A: ship on Friday",
        "--participant",
        "B: ship next month",
        "--question",
        "When do we ship?",
        "--json",
        **stub_environment(stub_server),
    )

    assert run.exit_code == 0, run.stderr
    result = MediationResult.model_validate_json(run.stdout)
    assert [assessment.name for assessment in result.participants] == ["A", "B"]
    assert result.prior is not None
    assert len(stub_server.requests(CHAT)) == 2


def test_mediate_sends_participant_positions(stub_server: StubServer, tmp_path: Path) -> None:
    run_cli(
        tmp_path,
        "mediate",
        "--participant",
        "A: ship on Friday",
        "--participant",
        "B: ship next month",
        **stub_environment(stub_server),
    )

    prompt = stub_server.requests(CHAT)[0].body["messages"][-1]["content"]
    assert "ship on Friday" in prompt
    assert "ship next month" in prompt


# --- errors ---------------------------------------------------------------------------


def test_no_provider_names_settings(tmp_path: Path) -> None:
    run = run_cli(tmp_path, "ask", QUESTION)

    assert run.exit_code == EXIT_FAILURE
    assert run.stdout == ""
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        assert variable in run.stderr


@pytest.mark.parametrize(
    "participant",
    ["no separator", ": no name", "no position:", "   :   "],
    ids=["no-colon", "empty-name", "empty-position", "blank"],
)
def test_malformed_participant_is_usage_error(
    stub_server: StubServer, tmp_path: Path, participant: str
) -> None:
    run = run_cli(
        tmp_path,
        "mediate",
        "--participant",
        "A: ship on Friday",
        "--participant",
        participant,
        **stub_environment(stub_server),
    )

    assert run.exit_code == EXIT_USAGE
    assert f"--participant {participant!r} must look like 'NAME: POSITION'" in run.stderr
    assert stub_server.requests() == []


def test_single_participant_is_usage_error(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(
        tmp_path, "mediate", "--participant", "A: ship on Friday", **stub_environment(stub_server)
    )

    assert run.exit_code == EXIT_USAGE
    assert run.stderr.startswith("takt-mcp: error: participants")
    assert stub_server.requests() == []


def test_unknown_identity_lists_available(stub_server: StubServer, tmp_path: Path) -> None:
    run = run_cli(
        tmp_path, "ask", QUESTION, "--identity", "nobody", **stub_environment(stub_server)
    )

    assert run.exit_code == EXIT_FAILURE
    assert "Unknown identity 'nobody'" in run.stderr
    assert "takt" in run.stderr
    assert stub_server.requests() == []


def test_invalid_setting_is_usage_error(tmp_path: Path) -> None:
    run = run_cli(tmp_path, "ask", QUESTION, TAKT_TIMEOUT="soon")

    assert run.exit_code == EXIT_USAGE
    assert "TAKT_TIMEOUT is invalid" in run.stderr
    assert "soon" not in run.stderr


def test_invalid_api_key_setting_is_not_echoed(tmp_path: Path) -> None:
    run = run_cli(
        tmp_path, "ask", QUESTION, OPENAI_API_KEY="sk-test-SECRET123", TAKT_MAX_RETRIES="-1"
    )

    assert run.exit_code == EXIT_USAGE
    assert "TAKT_MAX_RETRIES is invalid" in run.stderr
    assert "sk-test-SECRET123" not in run.stderr
