"""A scriptable HTTP server on 127.0.0.1 that imitates the OpenAI and Anthropic APIs.

It serves GET /v1/models and POST /v1/chat/completions like an
OpenAI-compatible server, and POST /v1/messages like the Anthropic Messages
API. Unscripted requests get a valid judgement that matches the JSON Schema
in the request. A test can queue replies per route to return an error
status, extra headers, an arbitrary body, a delay, a hang or a closed
connection. Every request is recorded.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.fakes import framed_judgement, mediation_judgement, open_judgement

HOST = "127.0.0.1"
OPENAI_MODELS = ("stub-model-a", "stub-model-b")
ANTHROPIC_MODEL = "claude-stub-1"
# Upper bound for a scripted hang or delay in seconds, so a test that never
# stops the server still ends. Stopping the server ends every wait at once.
MAX_WAIT_SECONDS = 10.0
# Idle keep-alive connections are dropped after this, in seconds.
CONNECTION_TIMEOUT_SECONDS = 30.0
# How often serve_forever checks for shutdown, in seconds. stop() waits up to this long.
POLL_INTERVAL_SECONDS = 0.02

_ids = itertools.count(1)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received. Header names are lowercase."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class StubReply:
    """What the stub sends back for one request.

    `body` is sent as JSON unless it is bytes, which are sent unchanged.
    `delay` waits that many seconds before replying. `hang` never replies and
    keeps the connection open until the server stops (at most
    MAX_WAIT_SECONDS). `close` drops the connection without a reply.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    close: bool = False


Responder = Callable[[RecordedRequest], StubReply]
Scripted = StubReply | Responder


# --- realistic bodies ---------------------------------------------------------


def chat_completion(
    content: str | None,
    *,
    model: str = OPENAI_MODELS[0],
    prompt_tokens: int = 120,
    completion_tokens: int = 80,
    cached_tokens: int = 0,
    refusal: str | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """Return an OpenAI chat.completion object with one choice."""
    return {
        "id": f"chatcmpl-stub{next(_ids)}",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "system_fingerprint": "fp_stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }


def model_list(model_ids: tuple[str, ...] | list[str] = OPENAI_MODELS) -> dict[str, Any]:
    """Return an OpenAI model list object."""
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": 1_760_000_000, "owned_by": "stub"}
            for model_id in model_ids
        ],
    }


def openai_error(message: str, *, error_type: str, code: str | None = None) -> dict[str, Any]:
    """Return an OpenAI error body."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def anthropic_message(
    text: str,
    *,
    model: str = ANTHROPIC_MODEL,
    stop_reason: str = "end_turn",
    input_tokens: int = 1_200,
    output_tokens: int = 300,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
) -> dict[str, Any]:
    """Return an Anthropic message object with one text block."""
    return {
        "id": f"msg_stub{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
        },
    }


def anthropic_error(message: str, *, error_type: str) -> dict[str, Any]:
    """Return an Anthropic error body."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": f"req_stub{next(_ids)}",
    }


def judgement_for_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a valid judgement for the result type whose JSON Schema this is."""
    properties = schema.get("properties", {})
    if "crux" in properties:
        # Mediation results are aligned by position when the names differ.
        return mediation_judgement(["A", "B"])
    if "verdict" in properties:
        return framed_judgement()
    return open_judgement()


def requested_schema(request: RecordedRequest) -> dict[str, Any]:
    """Return the JSON Schema that an OpenAI or Anthropic request requires the reply to match."""
    body = request.body if isinstance(request.body, dict) else {}
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return dict(response_format["json_schema"]["schema"])
    if response_format.get("type") == "json_object":
        return dict(response_format.get("schema") or {})
    output_format = (body.get("output_config") or {}).get("format") or {}
    return dict(output_format.get("schema") or {})


def default_reply(request: RecordedRequest) -> StubReply:
    """Reply as a working server would, with a judgement matching the requested schema."""
    route = (request.method, request.path)
    body = request.body if isinstance(request.body, dict) else {}
    if route == ("GET", "/v1/models"):
        return StubReply(body=model_list())
    if route == ("POST", "/v1/chat/completions"):
        text = json.dumps(judgement_for_schema(requested_schema(request)))
        return StubReply(body=chat_completion(text, model=body.get("model") or OPENAI_MODELS[0]))
    if route == ("POST", "/v1/messages"):
        text = json.dumps(judgement_for_schema(requested_schema(request)))
        return StubReply(body=anthropic_message(text, model=body.get("model") or ANTHROPIC_MODEL))
    return StubReply(
        status=404,
        body=openai_error(f"no route {request.method} {request.path}", error_type="not_found"),
    )


# --- the server ---------------------------------------------------------------


class StubServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with a random free port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[tuple[str, str], deque[Scripted]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((HOST, 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            args=(POLL_INTERVAL_SECONDS,),
            name="stub-http-server",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """The root URL, such as http://127.0.0.1:8123, which is the Anthropic SDK's base URL."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The root URL plus /v1, as OPENAI_BASE_URL expects."""
        return f"{self.base_url}/v1"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end every pending hang or delay, and close open connections."""
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # Unblocks handler threads that wait for the next keep-alive request.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=MAX_WAIT_SECONDS)

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, method: str, path: str, *replies: Scripted) -> None:
        """Queue replies for a route. Each is used once, in order, and then the default applies.

        A reply may be a function of the recorded request.
        """
        with self._lock:
            self._scripts.setdefault((method.upper(), path), deque()).extend(replies)

    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Return the recorded requests, oldest first, optionally for one path and method."""
        with self._lock:
            recorded = list(self._requests)
        return [
            request
            for request in recorded
            if (path is None or request.path == path)
            and (method is None or request.method == method.upper())
        ]

    def _record(self, request: RecordedRequest) -> StubReply:
        with self._lock:
            self._requests.append(request)
            queue = self._scripts.get((request.method, request.path))
            scripted = queue.popleft() if queue else None
        if scripted is None:
            return default_reply(request)
        if isinstance(scripted, StubReply):
            return scripted
        return scripted(request)

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(min(seconds, MAX_WAIT_SECONDS))


class _HTTPServer(ThreadingHTTPServer):
    # server_close() joins the handler threads, so stop() ends their waits first.
    daemon_threads = False
    block_on_close = True


def _make_handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = CONNECTION_TIMEOUT_SECONDS

        def setup(self) -> None:
            super().setup()
            # Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add about
            # 40 ms to every small response on loopback.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with stub._lock:
                stub._connections.add(self.connection)

        def finish(self) -> None:
            with stub._lock:
                stub._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            # The default writes every request to stderr.
            pass

        def _handle(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = stub._record(RecordedRequest(self.command, path, query, headers, body))

            if reply.hang:
                stub._wait(MAX_WAIT_SECONDS)
                self.close_connection = True
                return
            if reply.delay:
                stub._wait(reply.delay)
            if reply.close:
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: StubReply) -> None:
            if isinstance(reply.body, bytes):
                payload = reply.body
                content_type = "text/plain; charset=utf-8"
            else:
                payload = json.dumps(reply.body).encode()
                content_type = "application/json"
            self.send_response(reply.status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(payload)
            except OSError:
                # The client gave up (for example after its own timeout).
                self.close_connection = True

    return Handler
