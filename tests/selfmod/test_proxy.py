"""The host's model proxy: OpenAI-compatible, budgeted, recorded, and deaf to what a request
should not decide (the model, keys, URLs) or should not claim (tool calls never served)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exapt.agents.budget import Budget
from exapt.agents.context import Recorder
from exapt.agents.models import ModelError, ModelReply, ScriptedModel, ToolCall
from exapt.agents.remote import proxy as proxy_module
from exapt.agents.remote.proxy import ModelProxy
from exapt.records import Trajectory

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def open_proxy(model: Any, budget: Budget | None = None) -> tuple[ModelProxy, Trajectory]:
    trajectory = Trajectory(run_id="r", task_id="t")
    proxy = ModelProxy(model, Recorder(trajectory), budget or Budget(), started=time.monotonic())
    return proxy, trajectory


@pytest.fixture
def client() -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def make(proxy: ModelProxy) -> httpx.Client:
        c = httpx.Client(transport=httpx.HTTPTransport(uds=proxy.socket_path),
                         base_url="http://proxy")  # fmt: skip
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def test_chat_and_completion_are_served_and_recorded(client: Any) -> None:
    model = ScriptedModel(["hello there", "def f(): pass"])
    proxy, trajectory = open_proxy(model)
    with proxy:
        http = client(proxy)
        body = {**CHAT, "model": "gpt-4-evil", "api_key": "k", "api_base": "http://evil",
                "base_url": "http://evil", "extra_headers": {"x": "y"}, "temperature": 0.3,
                "max_tokens": 16}  # fmt: skip
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 200
        data = r.json()
        assert data["choices"][0]["message"]["content"] == "hello there"
        assert data["usage"]["prompt_tokens"] == 1 and data["usage"]["completion_tokens"] == 2
        r = http.post("/v1/completions", json={"prompt": "def f():", "stop": "\n\n"})
        assert r.json()["choices"][0]["text"] == "def f(): pass"
        assert http.get("/v1/models").json()["data"][0]["id"] == "scripted"
    # only the sampling parameters reach the model: never a model name, key or URL
    assert model.calls[0]["params"] == {"temperature": 0.3, "max_tokens": 16}
    assert model.calls[1]["stop"] == ["\n\n"]
    kinds = [s.kind for s in trajectory.steps]
    assert kinds == ["model", "model"] and proxy.calls == 2
    assert trajectory.steps[0].input["messages"] == CHAT["messages"]
    assert (trajectory.tokens_in, trajectory.tokens_out, proxy.tokens) == (1 + 2, 2 + 3, 8)


def test_a_spent_budget_is_refused_with_a_clear_error(client: Any) -> None:
    model = ScriptedModel(["a"] * 10)
    proxy, trajectory = open_proxy(model, Budget(max_steps=2))
    with proxy:
        http = client(proxy)
        codes = [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(6)]
        refused = http.post("/v1/chat/completions", json=CHAT).json()["error"]
    assert codes == [200, 200, 429, 429, 429, 429]
    assert refused["code"] == "budget_exceeded" and "max_steps" in refused["message"]
    assert proxy.budget_stop == "max_steps" and proxy.refused == 5
    assert len(model.calls) == 2  # the model never saw a refused call
    assert [s.kind for s in trajectory.steps].count("model") == 2
    assert [s.kind for s in trajectory.steps].count("note") == 3  # the first refusals only


def test_tokens_and_wall_budgets(client: Any) -> None:
    proxy, _ = open_proxy(ScriptedModel(["one two three four"] * 5), Budget(max_tokens=6))
    with proxy:
        http = client(proxy)
        codes = [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(3)]
    assert codes == [200, 200, 429] and proxy.budget_stop == "max_tokens"
    proxy, _ = open_proxy(ScriptedModel(["x"]), Budget(max_wall_s=0.2))
    with proxy:
        time.sleep(0.3)
        assert client(proxy).post("/v1/chat/completions", json=CHAT).status_code == 429
    assert proxy.budget_stop == "max_wall"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_request"),
        (json.dumps({"prompt": "x"}).encode(), 400, "invalid_request"),
        (json.dumps({"messages": [{"role": "root", "content": "x"}]}).encode(), 400,
         "invalid_request"),
        (json.dumps({"messages": [{"role": "user", "content": "x", "api_key": "k"}]}).encode(),
         400, "invalid_request"),
        (json.dumps({**CHAT, "temperature": 99}).encode(), 400, "invalid_request"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused(client: Any, body: bytes, status: int, code: str) -> None:
    model = ScriptedModel(["never"])
    proxy, trajectory = open_proxy(model)
    with proxy:
        r = client(proxy).post("/v1/chat/completions", content=body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert model.calls == [] and trajectory.steps == []


def test_sizes_and_paths(client: Any) -> None:
    proxy, _ = open_proxy(ScriptedModel([]))
    with proxy:
        http = client(proxy)
        big = http.post("/v1/chat/completions", content=b"x" * (proxy_module.MAX_BODY + 1))
        assert big.status_code == 413
        assert http.post("/v1/embeddings", json={}).status_code == 404
        assert http.get("/../../etc/passwd").status_code == 404


def test_tool_reports_count_only_for_calls_the_model_made(client: Any) -> None:
    reply = ModelReply(tool_calls=[ToolCall(id="c1", name="shell", arguments={"command": "ls"})])
    proxy, trajectory = open_proxy(ScriptedModel([reply]))
    with proxy:
        http = client(proxy)
        http.post("/v1/chat/completions", json=CHAT)

        def report(**fields: Any) -> int:
            return http.post("/exapt/v1/events", json={"kind": "tool", **fields}).status_code

        report(id="forged", name="shell", arguments={"command": "ls"}, output="x")
        report(id="c1", name="shell", arguments={"command": "rm -rf /"}, output="x")
        report(id="c1", name="shell", arguments={"command": "ls"}, output="a.txt",
               duration_s=0.5)  # fmt: skip
        report(id="c1", name="shell", arguments={"command": "ls"}, output="again")
        http.post("/exapt/v1/events", json={"kind": "note", "text": "I passed", "data": {"r": 1}})
        http.post("/exapt/v1/events", json={"kind": "end", "stop_reason": "submitted"})
        bad = http.post("/exapt/v1/events", json={"kind": "score", "reward": 1.0})
        http.post("/exapt/v1/events", json={"kind": "end", "stop_reason": "Passed; reward=1"})
    assert bad.status_code == 400
    kinds = [s.kind for s in trajectory.steps]
    assert kinds == ["model", "note", "note", "tool", "note", "note"]
    tool = trajectory.steps[3]
    assert tool.input == {"name": "shell", "arguments": {"command": "ls"}, "id": "c1"}
    assert tool.output == "a.txt" and tool.duration_s == 0.5
    assert all(
        s.input.get("reported_by") == "variant" for s in trajectory.steps if s.kind == "note"
    )
    assert proxy.claimed_stop == "done"  # a stop reason that is not a plain word is not taken


def test_reports_are_bounded(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_module, "MAX_EVENTS", 5)
    proxy, trajectory = open_proxy(ScriptedModel([]))
    with proxy:
        http = client(proxy)
        codes = [
            http.post("/exapt/v1/events", json={"kind": "note", "text": "n" * 10_000}).status_code
            for _ in range(8)
        ]
    assert codes == [200] * 5 + [429] * 3
    assert len(trajectory.steps) == 6  # five notes, then one saying the rest are ignored
    assert all(len(s.output) <= proxy_module.MAX_NOTE for s in trajectory.steps)


class Failing:
    name, supports_tools, is_base = "failing", True, False

    def __init__(self, status: int | None) -> None:
        self.status = status

    def chat(self, messages: Any, *, tools: Any = None, **params: Any) -> ModelReply:
        cause = type("ProviderError", (Exception,), {"status_code": self.status})()
        raise ModelError("provider said no") from cause

    complete = chat  # type: ignore[assignment]


@pytest.mark.parametrize(("status", "infrastructure"), [(400, False), (503, True), (None, True)])
def test_failed_calls_say_whose_fault(
    client: Any, status: int | None, infrastructure: bool
) -> None:
    proxy, trajectory = open_proxy(Failing(status))
    with proxy:
        r = client(proxy).post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502 and "provider said no" in r.json()["error"]["message"]
    assert proxy.model_error == ("provider said no", infrastructure)
    assert [s.kind for s in trajectory.steps] == ["note"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_only_the_sandbox_user_may_connect() -> None:
    proxy, _ = open_proxy(ScriptedModel(["hi"] * 3))
    with proxy:
        assert _as_user(4242, proxy.socket_path) == "no access"  # its folder is 0700
        # Were the socket reachable (bound into a sandbox), the kernel-reported peer decides:
        os.chmod(os.path.dirname(proxy.socket_path), 0o755)
        assert _as_user(4242, proxy.socket_path) == "closed"
        assert _as_user(65534, proxy.socket_path) == "served"


def _as_user(uid: int, path: str) -> str:
    """Connect to ``path`` as ``uid`` in a child process: served, closed or no access."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        answer = b"error"
        try:
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(100)
            answer = b"served" if got.startswith(b"HTTP/1.1 200") else b"closed"
        except PermissionError:
            answer = b"no access"
        except OSError:
            answer = b"closed"
        finally:
            os.write(write, answer)
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    answer = os.read(read, 100).decode()
    os.close(read)
    return answer


def test_connections_are_capped() -> None:
    proxy, _ = open_proxy(ScriptedModel([]))
    with proxy:
        idle = []
        for _ in range(proxy_module.MAX_CONNECTIONS):
            s = socket.socket(socket.AF_UNIX)
            s.connect(proxy.socket_path)
            idle.append(s)
        time.sleep(0.3)
        extra = socket.socket(socket.AF_UNIX)
        extra.connect(proxy.socket_path)
        extra.settimeout(5)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert extra.recv(100) == b""  # closed at once: the cap holds
        for s in idle:
            s.close()
        time.sleep(0.5)
        again = socket.socket(socket.AF_UNIX)
        again.connect(proxy.socket_path)
        again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert again.recv(100).startswith(b"HTTP/1.1 200")
        again.close()


class Slow:
    name, supports_tools, is_base = "slow", True, False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def chat(self, messages: Any, *, tools: Any = None, **params: Any) -> ModelReply:
        time.sleep(self.seconds)
        return ModelReply(text="late", tokens_in=1, tokens_out=1)


@pytest.mark.parametrize(("seconds", "recorded"), [(0.5, 1), (2.0, 0)])
def test_a_call_running_at_close_is_recorded_or_counted_late(seconds: float, recorded: int) -> None:
    import threading

    proxy, trajectory = open_proxy(Slow(seconds))
    http = httpx.Client(transport=httpx.HTTPTransport(uds=proxy.socket_path),
                        base_url="http://proxy", timeout=10)  # fmt: skip
    caller = threading.Thread(target=lambda: http.post("/v1/chat/completions", json=CHAT))
    caller.start()
    time.sleep(0.2)  # the call is in flight: the variant is killed now, the host closes
    proxy.close(wait_s=1.0)
    caller.join(timeout=10)
    time.sleep(max(0.0, seconds - 1.0) + 0.3)
    assert [s.kind for s in trajectory.steps].count("model") == recorded
    assert proxy.late == 1 - recorded and proxy.calls == recorded
    http.close()
