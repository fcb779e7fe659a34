"""Record every provider exchange of a run to a JSON Lines file, and replay a run from one.

Each line maps a request key to the completion's validated result and usage.
Keys come from `takt_mcp.caching.request_key`, computed on a canonical copy
of the request: a thread id is random, and the quoting fences' tags are
hashes that include it, so both are replaced by placeholders. Two requests
that differ only there get the same reply.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from takt_mcp.caching import request_key
from takt_mcp.providers.base import Completion, Message, Provider, ProviderRequest, ResultT
from takt_mcp.schemas import Usage

logger = logging.getLogger(__name__)

Role = Literal["subject", "judge"]
_THREAD_ID = re.compile(r"th_[A-Za-z0-9_-]{16,64}")
_FENCE_TAG = re.compile(r"(\[\[(?:quote|end) )[0-9a-f]{12}")


class RecordingError(Exception):
    """A recording file cannot be read or written; the message names the file and line."""


class ReplayMissError(LookupError):
    """A replayed run sent a request that the recording does not hold."""


def canonical_text(text: str) -> str:
    """Replace thread ids and fence tags, which vary from run to run, with placeholders."""
    return _FENCE_TAG.sub(r"\1<tag>", _THREAD_ID.sub("th_<thread>", text))


def canonical_request(request: ProviderRequest[ResultT]) -> ProviderRequest[ResultT]:
    return dataclasses.replace(
        request,
        system=tuple(
            dataclasses.replace(block, text=canonical_text(block.text)) for block in request.system
        ),
        messages=tuple(Message(m.role, canonical_text(m.content)) for m in request.messages),
        labels={name: canonical_text(value) for name, value in request.labels.items()},
    )


class Recording:
    """The exchanges in one recording file, by key; new ones are appended as they arrive."""

    def __init__(self, path: Path, *, writable: bool) -> None:
        self.path = path
        self.writable = writable
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            self._load()
        elif not writable:
            raise RecordingError(f"Recording {path} not found. Pass the file that --record wrote.")

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise RecordingError(f"Cannot read the recording {self.path}: {error}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self.entries[str(entry["key"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                # A crash while recording can leave a torn last line.
                logger.warning("%s:%d is not a recorded exchange and is ignored", self.path, number)

    def identity_of(self, role: Role) -> tuple[str, str] | None:
        """Return the (provider, model) that recorded `role`'s exchanges, if any."""
        for entry in self.entries.values():
            if entry.get("role") == role:
                return str(entry["provider"]), str(entry["model"])
        return None

    def add(self, key: str, entry: dict[str, Any]) -> None:
        if key in self.entries:
            return
        self.entries[key] = entry
        try:
            with self.path.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        except OSError as error:
            raise RecordingError(f"Cannot write the recording {self.path}: {error}") from None


def completion_from(
    entry: dict[str, Any], request: ProviderRequest[ResultT]
) -> Completion[ResultT]:
    try:
        result = request.result_type.model_validate(entry["result"])
        usage = Usage.model_validate(entry["usage"])
    except (KeyError, ValidationError) as error:
        raise RecordingError(
            f"The recorded reply for a {request.schema_name} request is unreadable ({error}). "
            "Record the run again."
        ) from None
    return Completion(result=result, usage=usage, model=str(entry["served_model"]), raw_text="")


class RecordingProvider:
    """Passes requests to a real provider and records each new exchange.

    A request already in the recording is served from it, so a resumed
    recording neither repeats requests nor stores a second reply.
    """

    def __init__(self, inner: Provider, recording: Recording, role: Role) -> None:
        self.inner = inner
        self.recording = recording
        self.role = role
        self.name = inner.name
        self.independent = inner.independent
        # Fixed now: a compatible server's model id can be resolved on first use,
        # and the key must not change when it is.
        self.model = inner.model

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        key = request_key(self, canonical_request(request))
        entry = self.recording.entries.get(key)
        if entry is not None:
            return completion_from(entry, request)
        completion = await self.inner.complete(request)
        self.recording.add(
            key,
            {
                "key": key,
                "role": self.role,
                "provider": self.name,
                "model": self.model,
                "step": request.labels.get("step", ""),
                "result": completion.result.model_dump(mode="json"),
                "usage": completion.usage.model_dump(),
                "served_model": completion.model,
            },
        )
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()


class ReplayProvider:
    """Serves every request from a recording; a request it does not hold is an error."""

    independent = True

    def __init__(self, recording: Recording, role: Role) -> None:
        self.recording = recording
        self.role = role
        recorded = recording.identity_of(role)
        self.name, self.model = recorded if recorded else ("replay", "")

    async def complete(self, request: ProviderRequest[ResultT]) -> Completion[ResultT]:
        key = request_key(self, canonical_request(request))
        entry = self.recording.entries.get(key)
        if entry is None:
            raise ReplayMissError(
                f"The recording {self.recording.path} has no reply for this "
                f"{request.labels.get('step', 'unlabelled')} request by the {self.role} "
                f"(key {key[:12]}). The cases, identity block, settings or code differ from "
                "the recorded run; use the same --cases, --identity, --turns, --limit and "
                "--seed, or record the run again."
            )
        return completion_from(entry, request)

    async def aclose(self) -> None:
        return None
