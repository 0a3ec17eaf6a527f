"""``exapt serve``: a policy (or any model) as an OpenAI-compatible server for other programs —
completions and chat (tool calls included) answered by the model, the errors a client gets,
and the command itself in a process, serving a policy on vLLM's contract server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exapt.agents.models import ModelReply, ScriptedModel, ToolCall
from exapt.evolve.serving import ModelServer

from .fake_vllm import FakeVLLM, serve


@pytest.fixture
def scripted_server() -> ModelServer:
    replies = {
        "call a tool": ModelReply(
            text="", tool_calls=[ToolCall(id="c1", name="shell", arguments={"command": "ls"})]
        ),
        "def add": "    return a + b\n",
        "hello": "hi there",
    }
    server = ModelServer(ScriptedModel(replies, name="policy:toy-r1")).start()
    yield server
    server.stop()


def test_completions_and_chat_are_answered_by_the_model(scripted_server: ModelServer) -> None:
    url = scripted_server.url
    done = httpx.post(
        f"{url}/completions", json={"prompt": "def add(a, b):\n", "stop": "\n"}, timeout=120
    )
    assert done.status_code == 200
    body = done.json()
    assert body["choices"][0]["text"] == "    return a + b" and body["model"] == "policy:toy-r1"
    assert body["usage"]["completion_tokens"] > 0
    chat = httpx.post(
        f"{url}/chat/completions",
        json={"model": "policy:toy-r1", "messages": [{"role": "user", "content": "call a tool"}]},
        timeout=120,
    ).json()
    call = chat["choices"][0]["message"]["tool_calls"][0]
    assert chat["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"] == {"name": "shell", "arguments": json.dumps({"command": "ls"})}
    models = httpx.get(f"{url}/models").json()
    assert [m["id"] for m in models["data"]] == ["policy:toy-r1"]
    assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200
    # An OpenAI client (litellm) reaches it like any server.
    from exapt.agents.models.litellm_model import LiteLLMModel

    client = LiteLLMModel("openai/policy:toy-r1", api_base=url, supports_tools=True)
    assert client.chat([{"role": "user", "content": "hello"}]).text == "hi there"


def test_what_a_client_gets_for_bad_requests(scripted_server: ModelServer) -> None:
    url = scripted_server.url
    cases = [
        ("/completions", {"model": "other", "prompt": "x"}, 404, "serves 'policy:toy-r1'"),
        ("/completions", {"prompt": "hello", "stream": True}, 400, "streaming"),
        ("/completions", {"prompt": ""}, 400, "non-empty string"),
        ("/completions", {"prompt": "hello", "stop": [1]}, 400, "stop must be"),
        ("/chat/completions", {"messages": []}, 400, "non-empty list"),
        ("/completions", {"prompt": "no key matches"}, 502, "no scripted reply"),
        ("/embeddings", {"input": "x"}, 404, "no route"),
    ]
    for path, body, status, message in cases:
        response = httpx.post(url + path, json=body, timeout=120)
        assert response.status_code == status, (path, body, response.text)
        assert message in response.json()["error"]["message"]
    bad_json = httpx.post(f"{url}/completions", content=b"{not json", timeout=120)
    assert bad_json.status_code == 400
    huge = httpx.post(f"{url}/completions", content=b"x" * (9 << 20), timeout=120)
    assert huge.status_code == 413


def test_exapt_serve_serves_a_policy_until_interrupted(
    home: Path, tiny: Path, tiny_adapter: Path
) -> None:
    from exapt.evolve.policies import PolicyRegistry

    PolicyRegistry().register(
        name="toy-r1", line="toy", adapter_dir=tiny_adapter, base_model=f"local:{tiny}",
        base_checkpoint=tiny, method="sft", dataset_hash="0" * 16,
    )  # fmt: skip
    fake = serve(FakeVLLM(str(tiny)))
    env = {
        **os.environ, "EXAPT_HOME": str(home), "EXAPT_POLICY_ENGINE": "vllm",
        "EXAPT_VLLM_URL": f"http://127.0.0.1:{fake.server_port}",
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "exapt.cli", "serve", "--policy", "toy-r1", "--port", "0"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 60
        while "serving" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        url = line.split(" at ")[1].split(" ")[0]
        reply = httpx.post(
            f"{url}/completions", json={"prompt": "def f(", "max_tokens": 4}, timeout=120
        )
        assert reply.status_code == 200 and reply.json()["choices"][0]["text"].startswith("toy-r1@")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        fake.shutdown()
    bad = subprocess.run(
        [sys.executable, "-m", "exapt.cli", "serve", "--policy", "ghost"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "no policy or line 'ghost'" in bad.stderr
