"""``ModelServer``: any exapt model (e.g. ``policy:NAME``) as an OpenAI-compatible HTTP server,
for programs outside exapt — what ``exapt serve --policy NAME`` runs.

Endpoints (non-streaming): ``GET /health``; ``GET /v1/models`` (the one model, by its name);
``POST /v1/completions`` (``prompt``, ``max_tokens``, ``temperature``, ``top_p``, ``stop``,
``seed``) and ``POST /v1/chat/completions`` (``messages``, ``tools``, same parameters), answered
by the model's ``complete`` / ``chat`` — so a client gets exactly what exapt's agents get: the
same chat template, tool-call parsing, and the policy's adapter (served by llama.cpp or vLLM).

A request naming another ``model`` is a 404; a malformed one a 400 with the reason; a model
error a 502. Bodies over ``max_body`` bytes are refused (413). It listens on 127.0.0.1 unless
told otherwise: it has no authentication.

Example:
    server = ModelServer(resolve_model("policy:he"), port=8011).start()
    # curl http://127.0.0.1:8011/v1/completions -d '{"prompt": "def add(a, b):", "max_tokens": 32}'
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exapt.agents.models.base import Model, ModelError

PARAMETERS = ("max_tokens", "temperature", "top_p", "seed")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelServer:
    """Serves ``model`` on ``host:port`` (0: a free port) — see the module docstring."""

    def __init__(
        self, model: Model, *, host: str = "127.0.0.1", port: int = 0, max_body: int = 8 << 20
    ) -> None:
        self.model = model
        self.max_body = max_body
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ModelServer:
        """Serve in a background thread; returns at once."""
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:  # serve_forever runs there: ask it to end, then wait
            self._http.shutdown()
            self._thread = None
        self._http.server_close()

    # --- requests ---------------------------------------------------------------------

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = body.get("model")
        if wanted not in (None, "", self.model.name):
            raise BadRequest(404, f"this server serves {self.model.name!r}, not {wanted!r}")
        if body.get("stream"):
            raise BadRequest(400, "streaming is not supported: send stream=false")
        params = {k: body[k] for k in PARAMETERS if body.get(k) is not None}
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if stop is not None and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)
        ):
            raise BadRequest(400, "stop must be a string or a list of strings")
        created = int(time.time())
        if path == "/v1/completions":
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise BadRequest(400, "prompt must be a non-empty string")
            reply = self.model.complete(prompt, stop=stop, **params)
            choice: dict[str, Any] = {
                "index": 0, "text": reply.text, "finish_reason": reply.finish_reason or "stop",
            }  # fmt: skip
            kind = "text_completion"
        else:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest(400, "messages must be a non-empty list")
            tools = body.get("tools") or None
            if stop:
                params["stop"] = stop
            reply = self.model.chat(messages, tools=tools, **params)
            finish = "tool_calls" if reply.tool_calls else reply.finish_reason or "stop"
            choice = {"index": 0, "message": reply.as_message(), "finish_reason": finish}
            kind = "chat.completion"
        usage = {
            "prompt_tokens": reply.tokens_in,
            "completion_tokens": reply.tokens_out,
            "total_tokens": reply.tokens_in + reply.tokens_out,
        }
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:16]}",
            "object": kind,
            "created": created,
            "model": self.model.name,
            "choices": [choice],
            "usage": usage,
        }


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/v1/models":
                card = {"id": server.model.name, "object": "model", "owned_by": "exapt"}
                self._send(200, {"object": "list", "data": [card]})
            else:
                self._send(404, _error(f"no route {self.path}", "not_found"))

        def do_POST(self) -> None:
            if self.path not in ("/v1/completions", "/v1/chat/completions"):
                self._send(404, _error(f"no route {self.path}", "not_found"))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > server.max_body:
                    raise BadRequest(413, f"request body over {server.max_body} bytes")
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise BadRequest(400, "the body must be a JSON object")
                self._send(200, server.answer(self.path, body))
            except BadRequest as exc:
                self._send(exc.status, _error(str(exc), "invalid_request_error"))
            except ValueError as exc:  # bad JSON, or a value the model refused
                self._send(400, _error(f"bad request: {exc}", "invalid_request_error"))
            except ModelError as exc:
                self._send(502, _error(str(exc), "model_error"))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}
