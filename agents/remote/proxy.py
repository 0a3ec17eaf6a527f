"""``ModelProxy``: the host side of a variant's model calls — an OpenAI-compatible endpoint
on a unix socket that is bound into the sandbox.

Inside, the variant (or any OpenAI client) posts ``/v1/chat/completions`` and
``/v1/completions``; here each request is checked (size, shape, only the sampling
parameters a request may set: never a model, key or URL), the attempt's budget is checked
*before* the call (a spent budget is refused with HTTP 429 and a clear error, and the
attempt's result says ``budget_overrun``), and the call goes to the host's ``Model`` (any
litellm string, ``local``, scripted) which holds the keys: they never enter the sandbox.
Every call is recorded in the host's trajectory as a ``model`` step, with its tokens and cost.

The variant's reports (``/exapt/v1/events``) are claims: a ``tool`` report becomes a
``tool`` step only for a call the model really asked for (id, name and arguments of a reply
this proxy served, each once); anything else it says is a ``note``. The score is the
host's judge's, never the variant's.

A unix socket works with bubblewrap's and Docker's empty network namespaces (it is a file,
not an address). Only the sandbox user (uid 65534) or this process's uid may connect.

Example:
    with ModelProxy(model, recorder, budget, started=time.monotonic()) as proxy:
        proxy.socket_path  # bind it into the sandbox
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exapt.agents.budget import Budget
from exapt.agents.context import Recorder
from exapt.agents.models.base import ContextWindowExceeded, Model, ModelError, ModelReply, ToolCall

MAX_BODY = 8 * 1024 * 1024  # bytes of one request
MAX_CONNECTIONS = 16  # open at once
MAX_EVENTS = 10_000  # reports per attempt
MAX_OBSERVATION = 100_000  # characters of one reported observation
MAX_NOTE = 4_000
SANDBOX_UID = 65534
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern="^(system|user|assistant|tool)$")
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class _Sampling(BaseModel):
    """What a request may set. Everything else in it is ignored (``model`` included)."""

    model_config = ConfigDict(extra="ignore")

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, gt=0, le=131_072)
    seed: int | None = None

    def params(self) -> dict[str, Any]:
        return self.model_dump(include=set(_Sampling.model_fields), exclude_none=True)


class _Chat(_Sampling):
    messages: list[_Message] = Field(min_length=1, max_length=10_000)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)


class _Completion(_Sampling):
    prompt: str
    stop: list[str] | str | None = None


class Refused(Exception):
    """A request the proxy answers with an error (status, OpenAI-style code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ModelProxy:
    """One attempt's proxy (see the module docstring). Thread-safe; ``close`` is idempotent.

    After the attempt: ``budget_stop`` (the limit a refused call hit), ``model_error``
    (the first failed call: ``(message, infrastructure)`` — a provider or server failure,
    not the request's fault, is re-raised by the host like a built-in agent's),
    ``claimed_stop`` (the stop reason the variant reported), ``built``, ``calls``.
    """

    def __init__(
        self,
        model: Model,
        recorder: Recorder,
        budget: Budget,
        *,
        started: float,
        allowed_uids: tuple[int, ...] = (SANDBOX_UID,),
    ) -> None:
        self.model = model
        self.recorder = recorder
        self.budget = budget
        self.started = started
        self.allowed_uids = {*allowed_uids, os.geteuid()}
        self.calls = 0
        self.refused = 0
        self.tokens = 0
        self.cost_usd = 0.0
        self.budget_stop: str | None = None
        self.model_error: tuple[str, bool] | None = None
        self.claimed_stop: str | None = None
        self.built = False
        self.late = 0  # calls that came back after close: not in the trajectory
        self._closed = False
        self._in_flight = 0
        self._events = 0
        self._pending: dict[str, ToolCall] = {}  # tool calls served, not yet reported
        self._lock = threading.Lock()
        # 0700: ours alone; the pid in the name lets a later process remove it if we die
        self._folder = Path(tempfile.mkdtemp(prefix=f"exapt-proxy-{os.getpid()}-"))
        self.socket_path = str(self._folder / "model.sock")
        self._server = _Server(self.socket_path, self)
        os.chmod(self.socket_path, 0o666)  # reachable only where it is bound (the folder is 0700)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def close(self, wait_s: float = 10.0) -> None:
        """Stop serving. A call still running (its variant was killed) gets ``wait_s`` to
        come back and be recorded; one later than that is counted in ``late``, never
        written into a trajectory that is already being scored."""
        deadline = time.monotonic() + wait_s
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            self._closed = True
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ModelProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the endpoints ---------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        request = _parse(_Chat, body)
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        params = request.params()
        reply = self._call(
            lambda: self.model.chat(messages, tools=request.tools, **params),
            {"messages": messages, "tools": request.tools, "params": params},
        )
        with self._lock:
            for call in reply.tool_calls:
                self._pending[call.id] = call
        message = reply.as_message()
        return _envelope(reply, "chat.completion", {"message": message})

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        request = _parse(_Completion, body)
        stop = [request.stop] if isinstance(request.stop, str) else request.stop
        params = request.params()
        reply = self._call(
            lambda: self.model.complete(request.prompt, stop=stop, **params),
            {"prompt": request.prompt, "stop": stop, "params": params},
        )
        return _envelope(reply, "text_completion", {"text": reply.text})

    def _call(self, send: Any, record: dict[str, Any]) -> ModelReply:
        with self._lock:
            reason = self.budget.stop_reason(
                steps=self.calls + self._in_flight,
                tokens=self.tokens,
                cost_usd=self.cost_usd,
                started=self.started,
            )
            if reason is not None:
                self.refused += 1
                self.budget_stop = self.budget_stop or reason
                if self.refused <= 3:  # a variant that loops on refusals does not fill the record
                    self.recorder.note(f"proxy refused a model call: budget spent ({reason})")
                raise Refused(429, "budget_exceeded", f"the attempt's budget is spent: {reason}")
            self._in_flight += 1
        started = time.monotonic()
        try:
            reply: ModelReply = send()
        except ContextWindowExceeded as exc:
            raise Refused(400, "context_length_exceeded", exc.message) from exc
        except ModelError as exc:
            self._failed(exc.message, _infrastructure(exc))
            raise Refused(502, "model_error", exc.message) from exc
        except Exception as exc:  # what a backend raises for input it cannot take
            self._failed(f"{type(exc).__name__}: {exc}", False)
            raise Refused(502, "model_error", f"{type(exc).__name__}: {exc}") from exc
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            if self._closed:
                self.late += 1
                return reply
            self.calls += 1
            self.tokens += reply.tokens_in + reply.tokens_out
            self.cost_usd += reply.cost_usd
            self.recorder.model_call(record, reply, time.monotonic() - started)
        return reply

    def _failed(self, message: str, infrastructure: bool) -> None:
        with self._lock:
            if self._closed:
                return
            if self.model_error is None:
                self.model_error = (message[:2000], infrastructure)
            self.recorder.note(f"model call failed: {message[:MAX_NOTE]}")

    def event(self, body: dict[str, Any]) -> dict[str, Any]:
        """A report of the variant's (see the module docstring)."""
        kind = body.get("kind")
        with self._lock:
            if self._closed:
                raise Refused(410, "closed", "the attempt is over")
            self._events += 1
            if self._events > MAX_EVENTS:
                if self._events == MAX_EVENTS + 1:
                    self.recorder.note(f"more than {MAX_EVENTS} reports: the rest are ignored")
                raise Refused(429, "too_many_events", "too many reports")
            if kind == "tool":
                self._tool(body)
            elif kind == "note":
                text = str(body.get("text") or "")[:MAX_NOTE]
                data = json.dumps(body.get("data"), default=str)
                kept = body.get("data") if len(data) <= MAX_NOTE else data[:MAX_NOTE]
                self.recorder.note(text, reported_by="variant", data=kept)
            elif kind == "end":
                reason = str(body.get("stop_reason") or "")
                self.claimed_stop = reason if _REASON.match(reason) else "done"
            elif kind == "built":
                self.built = True
            else:
                raise Refused(400, "bad_event", f"unknown report kind {str(kind)[:40]!r}")
        return {"ok": True}

    def _tool(self, body: dict[str, Any]) -> None:
        call = self._pending.get(str(body.get("id")))
        output = str(body.get("output") or "")[:MAX_OBSERVATION]
        if call is None or call.name != body.get("name") or call.arguments != body.get("arguments"):
            name = str(body.get("name"))[:80]
            self.recorder.note(
                f"the variant reported a tool call {name!r} the model did not ask for",
                reported_by="variant",
            )
            return
        del self._pending[call.id]
        duration = body.get("duration_s")
        seconds = float(duration) if isinstance(duration, int | float) else 0.0
        self.recorder.tool_call(call, output, max(0.0, min(seconds, 1e6)))

    def health(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model.name, "object": "model"}]}


def _parse(schema: type[Any], body: dict[str, Any]) -> Any:
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise Refused(400, "invalid_request", f"bad request: {problems}") from exc


def _infrastructure(exc: ModelError) -> bool:
    """Whether a failed call is the provider's or server's fault (down, auth, rate limit),
    not the request's: a 4xx answer to what the variant sent is the variant's."""
    status = getattr(exc.__cause__, "status_code", None)
    return status not in (400, 404, 413, 422)


def _envelope(reply: ModelReply, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"exapt-{uuid.uuid4().hex[:16]}",
        "object": kind,
        "created": int(time.time()),
        "model": reply.model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason or "stop", **choice}],
        "usage": {
            "prompt_tokens": reply.tokens_in,
            "completion_tokens": reply.tokens_out,
            "total_tokens": reply.tokens_in + reply.tokens_out,
        },
        "exapt": {"cost_usd": reply.cost_usd, "duration_s": reply.duration_s},
    }


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, proxy: ModelProxy) -> None:
        self.proxy = proxy
        self.open_connections = 0
        self.count_lock = threading.Lock()
        super().__init__(path, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # Who is calling (the kernel says): the sandbox's user, or this process's own.
        creds = request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        with self.count_lock:
            if uid not in self.proxy.allowed_uids or self.open_connections >= MAX_CONNECTIONS:
                return False
            self.open_connections += 1
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.count_lock:
                self.open_connections -= 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30  # seconds a connection may sit idle between requests
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:
        return "sandbox"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path in ("/v1/models", "/health"):
            self._send(200, self.server.proxy.health())
        else:
            self._send(404, _error("not_found", f"no endpoint {self.path[:100]}"))

    def do_POST(self) -> None:
        proxy = self.server.proxy
        routes = {
            "/v1/chat/completions": proxy.chat,
            "/v1/completions": proxy.completion,
            "/exapt/v1/events": proxy.event,
        }
        route = routes.get(self.path)
        try:
            body = self._body()
            if route is None:
                raise Refused(404, "not_found", f"no endpoint {self.path[:100]}")
            self._send(200, route(body))
        except Refused as exc:
            self._send(exc.status, _error(exc.code, exc.message))

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError as exc:
            raise Refused(411, "length_required", "send a Content-Length") from exc
        if not 0 < length <= MAX_BODY:
            self.close_connection = True
            raise Refused(413, "too_large", f"a request is at most {MAX_BODY} bytes")
        try:
            data = json.loads(self.rfile.read(length))
        except (ValueError, RecursionError) as exc:
            raise Refused(400, "invalid_json", "the body is not JSON") from exc
        if not isinstance(data, dict):
            raise Refused(400, "invalid_request", "the body must be a JSON object")
        return data

    def _send(self, status: int, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code}}
