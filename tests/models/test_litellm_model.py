"""LiteLLMModel against a stub OpenAI-compatible HTTP server (canned replies) and without
network at all (missing keys, unknown names, unreachable servers)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from exapt.agents.models import LiteLLMModel, ModelError, resolve_model
from exapt.agents.models.base import ARGUMENTS_ERROR_KEY, RAW_ARGUMENTS_KEY
from exapt.agents.models.litellm_model import parse_arguments
from exapt.errors import ConfigError


class _Stub:
    """A tiny OpenAI-compatible server: answers each POST with the next scripted (status, body)."""

    def __init__(self, replies: list[tuple[int, dict[str, Any]]]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                stub.requests.append({"path": self.path, **json.loads(self.rfile.read(length))})
                status, body = stub.replies.pop(0)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stub() -> Iterator[_Stub]:
    server = _Stub([])
    yield server
    server.server.shutdown()


def _chat_body(message: dict[str, Any], model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }


def test_tool_calls_usage_and_cost_over_http(stub: _Stub) -> None:
    stub.replies.append(
        (
            200,
            _chat_body(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "edit", "arguments": '{"path": "x.py"}'},
                        },
                        {
                            "id": "b",
                            "type": "function",
                            "function": {"name": "run", "arguments": '{"cmd": '},
                        },
                    ],
                }
            ),
        )
    )
    model = resolve_model("openai/gpt-4o-mini", api_base=stub.url, api_key="sk-test", num_retries=0)
    tools = [{"type": "function", "function": {"name": "edit", "parameters": {"type": "object"}}}]
    reply = model.chat([{"role": "user", "content": "hi"}], tools=tools, temperature=0)

    assert stub.requests[0]["path"] == "/v1/chat/completions"
    assert stub.requests[0]["tools"] == tools and stub.requests[0]["temperature"] == 0
    assert [c.name for c in reply.tool_calls] == ["edit", "run"]
    assert reply.tool_calls[0].arguments == {"path": "x.py"}
    assert reply.tool_calls[1].arguments[RAW_ARGUMENTS_KEY] == '{"cmd": '
    assert "not valid JSON" in reply.tool_calls[1].arguments[ARGUMENTS_ERROR_KEY]
    assert (reply.tokens_in, reply.tokens_out) == (1000, 500)
    assert reply.cost_usd > 0  # gpt-4o-mini has a price in litellm's local cost map
    assert reply.duration_s > 0 and reply.finish_reason == "tool_calls"
    assert model.supports_tools and not model.is_base


def test_transient_errors_are_retried(stub: _Stub) -> None:
    stub.replies += [
        (503, {"error": {"message": "overloaded", "type": "server_error"}}),
        (200, _chat_body({"role": "assistant", "content": "ok"}, model="my-model")),
    ]
    model = LiteLLMModel("openai/my-model", api_base=stub.url, num_retries=2)
    reply = model.chat([{"role": "user", "content": "hi"}])
    assert reply.text == "ok" and len(stub.requests) == 2
    assert reply.cost_usd == 0.0  # unknown price → 0.0, not an error


def test_complete_uses_the_completions_endpoint(stub: _Stub) -> None:
    stub.replies.append(
        (
            200,
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1,
                "model": "my-model",
                "choices": [
                    {
                        "index": 0,
                        "text": "    return a + b\n",
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
            },
        )
    )
    model = resolve_model("openai/my-model", api_base=stub.url, is_base=True)
    reply = model.complete("def add(a, b):\n", stop=["\ndef"], max_tokens=32)
    request = stub.requests[0]
    assert request["path"] == "/v1/completions"
    assert (request["prompt"], request["stop"], request["max_tokens"]) == (
        "def add(a, b):\n",
        ["\ndef"],
        32,
    )
    assert reply.text == "    return a + b\n" and (reply.tokens_in, reply.tokens_out) == (9, 6)
    assert model.is_base


def test_provider_error_becomes_model_error(stub: _Stub) -> None:
    stub.replies += [
        (400, {"error": {"message": "bad field xyz", "type": "invalid_request_error"}})
    ] * 3
    model = resolve_model("openai/my-model", api_base=stub.url, num_retries=0)
    with pytest.raises(ModelError, match="bad field xyz"):
        model.chat([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
        ("anthropic/claude-3-5-haiku-latest", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_key_says_which_variable(
    name: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable, raising=False)
    model = resolve_model(name)
    with pytest.raises(ModelError) as caught:
        model.chat([{"role": "user", "content": "hi"}])
    assert caught.value.hint is not None and f"export {variable}=" in caught.value.hint


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    model = resolve_model("openai/x", api_base=url, num_retries=0, timeout=5)
    with pytest.raises(ModelError) as caught:
        model.complete("hi")
    assert url in str(caught.value) and caught.value.hint is not None and url in caught.value.hint


def test_unknown_names_are_config_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="unknown model 'nonsense-model'"):
        resolve_model("nonsense-model")
    with pytest.raises(ConfigError, match="not a transformers checkpoint"):
        resolve_model(f"local:{tmp_path}")
    with pytest.raises(ConfigError, match="api_base"):
        resolve_model("local", api_base="http://127.0.0.1:1/v1")


def test_parse_arguments() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments("[1, 2]")[ARGUMENTS_ERROR_KEY] == "arguments must be a JSON object"
    assert parse_arguments("{oops")[RAW_ARGUMENTS_KEY] == "{oops"
