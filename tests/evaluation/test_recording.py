"""Recording provider exchanges and replaying them offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from takt_mcp.config import Settings
from takt_mcp.deliberation import Voice
from takt_mcp.evaluation.conditions import ChatAnswer
from takt_mcp.evaluation.recording import (
    Recording,
    RecordingError,
    RecordingProvider,
    ReplayMissError,
    ReplayProvider,
    canonical_text,
)
from takt_mcp.identity import IdentityRegistry
from takt_mcp.providers.base import Message, ProviderRequest, SystemBlock
from takt_mcp.schemas import SecondOpinionRequest
from takt_mcp.store import Ledger
from takt_mcp.threads import second_opinion_on_thread
from tests.evaluation.helpers import chat_answer, scripted
from tests.fakes import FakeProvider

pytestmark = pytest.mark.anyio


def chat_request(text: str) -> ProviderRequest[ChatAnswer]:
    return ProviderRequest(
        system=(SystemBlock("You are a helpful assistant."),),
        messages=(Message("user", text),),
        result_type=ChatAnswer,
        schema_name="ChatAnswer",
        max_output_tokens=100,
        labels={"step": "chat"},
    )


def test_canonical_text_hides_thread_ids_and_tags() -> None:
    text = "thread th_AbCdEfGhIjKlMnOpQrStUv [[quote 0123456789ab question]] x [[end 0123456789ab]]"

    assert canonical_text(text) == ("thread th_<thread> [[quote <tag> question]] x [[end <tag>]]")


async def test_record_then_replay(tmp_path: Path) -> None:
    path = tmp_path / "exchanges.jsonl"
    inner = FakeProvider(lambda request: chat_answer("Canberra"))
    recorder = RecordingProvider(inner, Recording(path, writable=True), "subject")

    recorded = await recorder.complete(chat_request("Capital of Australia?"))
    replayer = ReplayProvider(Recording(path, writable=False), "subject")
    replayed = await replayer.complete(chat_request("Capital of Australia?"))

    assert replayed.result == recorded.result
    assert replayed.usage == recorded.usage
    assert replayed.model == "fake-model"
    assert (replayer.name, replayer.model) == ("fake", "fake-model")
    entry = json.loads(path.read_text(encoding="utf-8"))
    assert entry["role"] == "subject"
    assert entry["step"] == "chat"


async def test_recorder_serves_known_request_from_file(tmp_path: Path) -> None:
    path = tmp_path / "exchanges.jsonl"
    inner = FakeProvider(lambda request: chat_answer("Canberra"))
    recorder = RecordingProvider(inner, Recording(path, writable=True), "subject")
    await recorder.complete(chat_request("Capital?"))

    again = RecordingProvider(inner, Recording(path, writable=True), "subject")
    await again.complete(chat_request("Capital?"))

    assert len(inner.requests) == 1
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


async def test_replay_miss_raises(tmp_path: Path) -> None:
    path = tmp_path / "exchanges.jsonl"
    recorder = RecordingProvider(
        FakeProvider(lambda request: chat_answer("x")), Recording(path, writable=True), "subject"
    )
    await recorder.complete(chat_request("Known question"))
    replayer = ReplayProvider(Recording(path, writable=False), "subject")

    with pytest.raises(ReplayMissError, match="has no reply for this chat request"):
        await replayer.complete(chat_request("Another question"))


def test_replay_of_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="not found"):
        Recording(tmp_path / "absent.jsonl", writable=False)


def test_torn_recording_line_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "exchanges.jsonl"
    path.write_text('{"key": "a", "role": "subject"}\n{"key": "b", "ro', encoding="utf-8")

    recording = Recording(path, writable=False)

    assert list(recording.entries) == ["a"]
    assert "ignored" in caplog.text


async def test_thread_replays_despite_new_thread_ids(
    tmp_path: Path, settings: Settings, identities: IdentityRegistry
) -> None:
    """A thread's requests carry its random id; a replay on a new thread still matches."""
    path = tmp_path / "exchanges.jsonl"
    block = identities.get("takt")
    question = SecondOpinionRequest(question="What is the capital of Australia?")
    push = SecondOpinionRequest(question=question.question, user_position="It's Sydney.")

    async def run(provider: RecordingProvider | ReplayProvider, folder: str) -> str:
        ledger = Ledger(tmp_path / folder, max_turns=10, max_threads=10)
        try:
            voice = Voice(provider=provider, identity=block, settings=settings)
            first = await second_opinion_on_thread(voice, question, ledger, None)
            second = await second_opinion_on_thread(voice, push, ledger, first.thread_id)
            return second.bottom_line
        finally:
            ledger.close()

    inner = FakeProvider(scripted(["Canberra", "Sydney"]))
    recorded = await run(RecordingProvider(inner, Recording(path, writable=True), "subject"), "a")
    replayed = await run(ReplayProvider(Recording(path, writable=False), "subject"), "b")

    assert recorded == replayed == "Sydney"
    assert len(inner.requests) == 3
