"""Inside the sandbox: the model behind the host's proxy, and the recorder that reports.

- ``ProxyModel`` is a ``Model`` whose calls are OpenAI requests to the host's proxy on the
  unix socket bound into the sandbox (``/v1/chat/completions``, ``/v1/completions``). The
  host holds the keys, counts the tokens and cost, enforces the budget and records the call;
  a refused or failed call raises ``ModelError`` here with the proxy's message.
- ``ReportingRecorder`` is the ``Recorder`` a variant's nodes get: model calls are recorded
  by the host already (nothing is sent), tool calls and notes are reported to the host
  (``/exapt/v1/events``), which decides what they become in the trajectory.

Any OpenAI client works against the same socket (``httpx`` with ``uds=``, or the ``openai``
package with an ``httpx`` client so configured): the path is in ``EXAPT_MODEL_SOCKET``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx

from exapt.agents.context import Recorder
from exapt.agents.models.base import (
    ContextWindowExceeded,
    Message,
    ModelError,
    ModelReply,
    ToolCall,
)
from exapt.records import Step, Trajectory

#: The socket's path inside the sandbox is passed in this variable.
SOCKET_ENV = "EXAPT_MODEL_SOCKET"
BASE_URL = "http://exapt-proxy"


def _client(socket_path: str) -> httpx.Client:
    # A model call may take minutes on a slow local model; the host's budget ends it sooner.
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=socket_path),
        base_url=BASE_URL,
        timeout=httpx.Timeout(3600.0, connect=10.0),
    )


class ProxyModel:
    """A ``Model`` served by the host through its proxy (see the module docstring)."""

    def __init__(self, socket_path: str, *, name: str, supports_tools: bool, is_base: bool) -> None:
        self.name = name
        self.supports_tools = supports_tools
        self.is_base = is_base
        self._http = _client(socket_path)

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        body: dict[str, Any] = {"model": self.name, "messages": messages, **params}
        if tools:
            body["tools"] = tools
        data = self._post("/v1/chat/completions", body)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        calls = []
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            try:
                arguments = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = {}
            calls.append(ToolCall(id=call["id"], name=fn.get("name", ""), arguments=arguments))
        return self._reply(data, message.get("content") or "", calls, choice)

    def complete(self, prompt: str, *, stop: list[str] | None = None, **params: Any) -> ModelReply:
        body: dict[str, Any] = {"model": self.name, "prompt": prompt, **params}
        if stop:
            body["stop"] = stop
        data = self._post("/v1/completions", body)
        choice = data["choices"][0]
        return self._reply(data, choice.get("text") or "", [], choice)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ModelError(f"the model proxy did not answer: {exc}") from exc
        data: dict[str, Any] = response.json()
        if response.status_code != 200:
            error = data.get("error") or {}
            message = str(error.get("message") or response.text)
            if error.get("code") == "context_length_exceeded":
                raise ContextWindowExceeded(message)
            raise ModelError(f"model proxy: {message}")
        return data

    def _reply(
        self, data: dict[str, Any], text: str, calls: list[ToolCall], choice: dict[str, Any]
    ) -> ModelReply:
        usage = data.get("usage") or {}
        extra = data.get("exapt") or {}
        return ModelReply(
            text=text,
            tool_calls=calls,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            cost_usd=float(extra.get("cost_usd") or 0.0),
            duration_s=float(extra.get("duration_s") or 0.0),
            finish_reason=choice.get("finish_reason"),
            model=self.name,
        )

    def event(self, kind: str, **fields: Any) -> None:
        """Report a tool call, a note or the end to the host (best effort: a refused
        report changes nothing here)."""
        with contextlib.suppress(httpx.HTTPError):
            self._http.post("/exapt/v1/events", json={"kind": kind, **fields})


class ReportingRecorder(Recorder):
    """Keeps a local copy (nodes may read it) and reports tool calls and notes to the host."""

    def __init__(self, trajectory: Trajectory, model: ProxyModel) -> None:
        super().__init__(trajectory)
        self.model = model

    def model_call(self, request: dict[str, Any], reply: ModelReply, duration_s: float) -> Step:
        # The host recorded this call when it served it; only the local copy is kept here.
        return super().model_call(request, reply, duration_s)

    def tool_call(self, call: ToolCall, observation: str, duration_s: float) -> Step:
        self.model.event(
            "tool",
            id=call.id,
            name=call.name,
            arguments=call.arguments,
            output=observation,
            duration_s=duration_s,
        )
        return super().tool_call(call, observation, duration_s)

    def note(self, text: str, **data: Any) -> Step:
        self.model.event("note", text=text, data=data or None)
        return super().note(text, **data)
