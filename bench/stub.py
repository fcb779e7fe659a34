"""An OpenAI-compatible stub on 127.0.0.1 that replies with valid JSON for any schema.

It serves GET /v1/models and POST /v1/chat/completions. A chat request's
reply is built from the JSON Schema in its response_format, so every result
type the server requests (OpenJudgement, PushSplit, Ruling, FrameAudit, ...)
gets a reply that validates. Each reply waits `delay` seconds first, which
stands in for a model's latency without using CPU.

Run it alone with `python -m bench.stub --delay 0.5`; it prints its base URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"
MODEL = "bench-stub"
# Upper bound on one reply's delay in seconds, so a stray client cannot pin a thread.
MAX_DELAY_SECONDS = 30.0


def schema_instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Return a small value that validates against `schema` (the subset pydantic emits)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return schema_instance(root["$defs"][name], root)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        # Prefer a non-null branch, so optional fields carry real values.
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"] or schema["anyOf"]
        return schema_instance(branches[0], root)
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _field_value(name, properties[name], root) for name in properties}
    if kind == "array":
        return [schema_instance(schema.get("items", {}), root)]
    if kind == "string":
        return "Drive; the car has to be at the wash."
    if kind == "number":
        return 0.7
    if kind == "integer":
        return 1
    if kind == "boolean":
        return False
    return None


def _field_value(name: str, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    # Two participant assessments, which the server matches by position to a
    # two-party request whatever its names are.
    if name == "participants" and schema.get("type") == "array":
        item = schema_instance(schema.get("items", {}), root)
        return [{**item, "name": "A"}, {**item, "name": "B"}]
    return schema_instance(schema, root)


def requested_schema(body: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON Schema that a chat request's response_format requires, or {}."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return dict(response_format["json_schema"]["schema"])
    return dict(response_format.get("schema") or {})


def chat_completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
    }


class SchemaStub:
    """A threaded HTTP/1.1 server that replies to each chat request after `delay` seconds."""

    def __init__(self, delay: float = 0.0, port: int = 0) -> None:
        self.delay = min(delay, MAX_DELAY_SECONDS)
        self.requests = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((HOST, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,))
        self._thread.daemon = True

    @property
    def openai_base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> SchemaStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SchemaStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def reply(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests += 1
        if (method, path) == ("GET", "/v1/models"):
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
        if (method, path) == ("POST", "/v1/chat/completions"):
            if self.delay:
                self._stopping.wait(self.delay)
            content = json.dumps(schema_instance(requested_schema(body)))
            return 200, chat_completion(content, body.get("model") or MODEL)
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}


def _make_handler(stub: SchemaStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes. Without TCP_NODELAY,
            # Nagle's algorithm and the client's delayed ACK add about 40 ms to each reply.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            status, reply = stub.reply(self.command, self.path.partition("?")[0], body)
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(payload)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args()
    stub = SchemaStub(args.delay, args.port).start()
    print(stub.openai_base_url, flush=True)
    # Serve until stdin closes, so the parent process controls the lifetime.
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()
    stub.stop()


if __name__ == "__main__":
    main()
