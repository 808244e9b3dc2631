"""A loopback server that speaks the Messages API, for the real SDK to talk to.

The Anthropic API is out of reach here; this is the one stand-in the design allows. It
is a real HTTP server on 127.0.0.1 in a thread. Every request is checked the way the API
would check it (the key, the version header, model, max_tokens, the submit_fix tool and
its schema, the forced tool_choice, alternating roles, a tool_result for every tool_use)
and answered from a script: a tool call with usage, a reply without one, or an API error
such as 529 overloaded. Problems are recorded for the test to assert on and answered
with the API's 400.

Also runnable for ``make demo-fix``:
``python tests/anthropic_fake.py --script replies.json --port-file FILE --api-key KEY``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOOL = "submit_fix"
TOOL_FIELDS = {"patch", "test_patch", "explanation"}

Reply = dict[str, Any]


def tool_use(
    patch: str, test_patch: str = "", explanation: str = "", *, usage: dict[str, int] | None = None
) -> Reply:
    """A scripted reply that calls submit_fix."""
    reply: Reply = {
        "tool_use": {"patch": patch, "test_patch": test_patch, "explanation": explanation}
    }
    if usage:
        reply["usage"] = usage
    return reply


def text_reply(text: str, *, usage: dict[str, int] | None = None) -> Reply:
    """A scripted reply with no tool call."""
    reply: Reply = {"text": text}
    if usage:
        reply["usage"] = usage
    return reply


def api_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """A scripted API error (529 overloaded_error, 429 rate_limit_error, …)."""
    return {"error": {"status": status, "type": kind, "message": message}, "headers": headers or {}}


class FakeAnthropic:
    """The server, its script and what it saw."""

    def __init__(
        self, script: list[Reply], *, api_key: str, model: str | None = None, port: int = 0
    ) -> None:
        self.script = list(script)
        self.api_key = api_key
        self.model = model
        self.requests: list[dict[str, Any]] = []  # bodies of valid requests, in order
        self.problems: list[str] = []  # why requests were refused
        self.calls = 0  # every POST, errors included
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeAnthropic:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread (the command-line use)."""
        self._server.serve_forever()

    # ---------------------------------------------------------------- handling

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, dict]:
        with self._lock:
            self.calls += 1
            if path.split("?")[0] != "/v1/messages":
                return 404, _error("not_found_error", f"no route {path}"), {}
            # Older SDKs send the key as x-api-key, newer ones as a bearer token.
            bearer = headers.get("authorization", "").removeprefix("Bearer ")
            if self.api_key not in (headers.get("x-api-key"), bearer):
                return 401, _error("authentication_error", "invalid API key"), {}
            try:
                body = json.loads(raw)
            except ValueError:
                return self._refuse("the body is not JSON")
            problem = validate(body, self.model)
            if not headers.get("anthropic-version"):
                problem = problem or "anthropic-version header missing"
            if problem:
                return self._refuse(problem)
            if not self.script:
                return self._refuse("the script has no reply left", status=500)
            step = self.script.pop(0)
            if "error" in step:
                err = step["error"]
                return err["status"], _error(err["type"], err["message"]), step.get("headers", {})
            self.requests.append(body)
            return 200, _message(body, step), {}

    def _refuse(self, problem: str, status: int = 400) -> tuple[int, dict, dict]:
        self.problems.append(problem)
        kind = "invalid_request_error" if status == 400 else "api_error"
        return status, _error(kind, problem), {"x-should-retry": "false"}

    def user_texts(self, request: int) -> str:
        """All the text of the last user turn of request `request` (0-based)."""
        return "\n".join(_texts(self.requests[request]["messages"][-1]["content"]))


def _texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
        return
    for block in content:
        if block.get("type") == "text":
            yield block["text"]
        elif block.get("type") == "tool_result":
            yield from _texts(block.get("content", ""))


def validate(body: dict[str, Any], model: str | None = None) -> str | None:
    """What the real API would refuse in a request of the fix loop, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: a model name is required"
    if model is not None and body["model"] != model:
        return f"model: expected {model!r}, got {body['model']!r}"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: a positive integer is required"
    tools = body.get("tools") or []
    tool = next((t for t in tools if t.get("name") == TOOL), None)
    if tool is None:
        return f"tools: {TOOL} is missing"
    schema = tool.get("input_schema") or {}
    if schema.get("type") != "object" or set(schema.get("properties", {})) != TOOL_FIELDS:
        return f"tools.{TOOL}.input_schema: expected an object with {sorted(TOOL_FIELDS)}"
    if "patch" not in schema.get("required", []):
        return f"tools.{TOOL}.input_schema: patch must be required"
    choice = body.get("tool_choice") or {}
    if choice.get("type") != "tool" or choice.get("name") != TOOL:
        return f"tool_choice: expected {{'type': 'tool', 'name': '{TOOL}'}}, got {choice}"
    thinking = body.get("thinking")
    if thinking is not None and thinking.get("type") != "disabled":
        return "thinking: a forced tool_choice needs thinking disabled"
    return _validate_messages(body.get("messages"))


def _validate_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            return f"messages.{i}.role: roles must alternate starting with user, got {role}"
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not blocks:
            return f"messages.{i}.content: empty"
        if role == "user":
            results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
            firsts = [b.get("type") for b in blocks[: len(results)]]
            if any(t != "tool_result" for t in firsts):
                return f"messages.{i}: tool_result blocks must come first"
            if set(results) != pending:
                return (
                    f"messages.{i}: tool_use ids {sorted(pending)} need exactly one tool_result "
                    f"each, got {sorted(r for r in results if r)}"
                )
            pending = set()
        else:
            pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    if messages[-1]["role"] != "user":
        return "messages: the last message must be the user's"
    return None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _message(body: dict[str, Any], step: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if "text" in step:
        content.append({"type": "text", "text": step["text"]})
    if "tool_use" in step:
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{secrets.token_hex(8)}",
                "name": TOOL,
                "input": step["tool_use"],
            }
        )
    usage = {
        "input_tokens": len(json.dumps(body)) // 4,
        "output_tokens": len(json.dumps(content)) // 4,
        **step.get("usage", {}),
    }
    return {
        "id": f"msg_{secrets.token_hex(8)}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": step.get("stop_reason", "tool_use" if "tool_use" in step else "end_turn"),
        "stop_sequence": None,
        "usage": usage,
    }


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, extra = fake.handle(self.path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_{secrets.token_hex(6)}")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # quiet: tests and the demo print what matters

    return Handler


def load_script(path: Path) -> list[Reply]:
    """A JSON script; a tool_use field given as {"file": NAME} is read relative to it."""
    replies = json.loads(path.read_text(encoding="utf-8"))["replies"]
    for reply in replies:
        for key, value in reply.get("tool_use", {}).items():
            if isinstance(value, dict) and "file" in value:
                reply["tool_use"][key] = (path.parent / value["file"]).read_text(encoding="utf-8")
    return replies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted loopback Messages API server.")
    parser.add_argument("--script", type=Path, required=True, help="replies JSON")
    parser.add_argument("--api-key", required=True, help="the key clients must send")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    fake = FakeAnthropic(load_script(args.script), api_key=args.api_key, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(fake._server.server_address[1]), encoding="utf-8")
        tmp.replace(args.port_file)
    print(f"fake Messages API on {fake.base_url}", file=sys.stderr)
    fake.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
