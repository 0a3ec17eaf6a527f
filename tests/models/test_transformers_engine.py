"""The transformers engine over real HTTP: a tiny checkpoint served by our own server over
``model.generate`` (``TransformersServer``), reached through ``LocalModel``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exapt.agents.models import ModelError, resolve_model
from exapt.agents.models.base import ContextWindowExceeded
from exapt.agents.models.chat_prompt import tool_call
from exapt.agents.models.tiny import build_tiny_checkpoint
from exapt.agents.models.transformers_engine import TransformersServer
from exapt.errors import UnavailableError

from .concurrency import concurrent_completions


def _generate(checkpoint: Path, prompt: str, max_new_tokens: int) -> tuple[str, int]:
    """Plain greedy ``model.generate`` in this process: what the server must reproduce."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)  # type: ignore[misc]
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    eos = set(model.generation_config.eos_token_id)
    if new and new[-1] in eos:
        new = new[:-1]
    return str(tokenizer.decode(new, skip_special_tokens=True)), int(ids["input_ids"].shape[1])


def test_complete_matches_plain_generate(
    tiny_checkpoint: Path, tiny_server: TransformersServer
) -> None:
    model = resolve_model(f"local:{tiny_checkpoint}", engine="transformers")
    assert model.name == f"local:{tiny_checkpoint}" and not model.supports_tools
    assert not model.is_base  # the tiny checkpoint has a chat template
    prompt = "def add(a, b):\n    return"
    reply = model.complete(prompt, max_tokens=12, temperature=0)
    expected, prompt_tokens = _generate(tiny_checkpoint, prompt, 12)
    assert reply.text == expected
    assert reply.tokens_in == prompt_tokens and 0 < reply.tokens_out <= 12
    assert reply.cost_usd == 0.0 and reply.duration_s > 0 and reply.model == model.name


def test_stop_sequences_end_the_text_early(
    tiny_checkpoint: Path, tiny_server: TransformersServer
) -> None:
    model = resolve_model(f"local:{tiny_checkpoint}", engine="transformers")
    prompt = "for i in range(10):"
    full = model.complete(prompt, max_tokens=16, temperature=0)
    assert len(full.text) >= 4, full
    # A stop string from the middle of the greedy text: the reply must end just before its
    # first occurrence (OpenAI semantics: the stop string itself is not returned).
    middle = len(full.text) // 2
    stop = full.text[middle : middle + 2]
    cut = model.complete(prompt, max_tokens=16, temperature=0, stop=["never-seen", stop])
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop" and cut.tokens_out < full.tokens_out


def test_chat_uses_the_chat_template(
    tiny_checkpoint: Path, tiny_server: TransformersServer
) -> None:
    from transformers import AutoTokenizer

    model = resolve_model(f"local:{tiny_checkpoint}", engine="transformers")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    reply = model.chat(messages, max_tokens=6, temperature=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    templated = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert reply.tokens_in == len(tokenizer(templated, add_special_tokens=False)["input_ids"])
    assert 0 < reply.tokens_out <= 6 and reply.finish_reason in {"stop", "length"}
    sampled = model.chat(messages, max_tokens=6, temperature=0.8, top_p=0.9)
    assert 0 < sampled.tokens_out <= 6


def test_concurrent_requests_share_batches(
    tiny_checkpoint: Path, tiny_server: TransformersServer
) -> None:
    model = resolve_model(f"local:{tiny_checkpoint}", engine="transformers")
    prompt = "class Counter:"
    alone = model.complete(prompt, max_tokens=10, temperature=0)
    replies = concurrent_completions(model, prompt, 4, max_tokens=10)
    assert all(r.text == alone.text and r.tokens_out == alone.tokens_out for r in replies)
    assert tiny_server.log_path is not None
    sizes = [int(n) for n in re.findall(r"batch of (\d+)", tiny_server.log_path.read_text())]
    assert max(sizes) >= 2, f"no request was batched with another: {sizes}"


def test_http_api_details(tiny_server: TransformersServer) -> None:
    assert tiny_server.running()
    with httpx.Client(base_url=tiny_server.url, timeout=60) as client:
        assert client.get("/models").json()["data"][0]["object"] == "model"
        bad = client.post("/completions", json={"model": "x", "prompt": "a", "max_tokens": 0})
        assert bad.status_code == 400 and "max_tokens" in bad.json()["error"]["message"]
        stream = client.post("/completions", json={"model": "x", "prompt": "a", "stream": True})
        assert stream.status_code == 400
        long = client.post("/completions", json={"prompt": "a", "max_tokens": 10**6})
        assert long.status_code == 400 and "context window" in long.json()["error"]["message"]
        ok = client.post("/completions", json={"prompt": ["hi"], "max_tokens": 3, "temperature": 0})
        usage = ok.json()["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_tool_call_replies_are_recognised() -> None:
    tools: list[dict[str, Any]] = [{"type": "function", "function": {"name": "run"}}]
    call = tool_call('```json\n{"name": "run", "arguments": {"cmd": "ls"}}\n```', tools)
    assert call is not None and call["function"]["name"] == "run"
    assert json.loads(call["function"]["arguments"]) == {"cmd": "ls"}
    assert tool_call('{"name": "other", "arguments": {}}', tools) is None
    assert tool_call("plain text", tools) is None


def test_a_server_that_fails_to_start_reports_its_log(tiny_home: Path) -> None:
    broken = tiny_home / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        TransformersServer(broken, startup_timeout=120).start()
    assert "exited with code" in str(caught.value) and "no-such-architecture" in str(caught.value)
    assert isinstance(caught.value, UnavailableError)  # a LocalServerError: both kinds
    assert time.monotonic() - started < 120
    with pytest.raises(ModelError, match=r"no config\.json"):
        TransformersServer(tiny_home / "missing").start()


def test_a_dead_server_is_restarted_and_the_context_manager_stops_it(tiny_home: Path) -> None:
    checkpoint = build_tiny_checkpoint(tiny_home / "tiny-2", seed=1)
    with TransformersServer(checkpoint, startup_timeout=120) as server:
        assert server.running() and server.url.startswith("http://127.0.0.1:")
        first = server._process
        assert first is not None
        first.kill()
        first.wait()
        assert not server.running()
        server.start()  # what every request does first: a dead server is started again
        process = server._process
        assert process is not None and process.pid != first.pid and server.running()
    assert process.poll() is not None and not server.running()


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in status  # a zombie has exited; only its parent's wait is missing


def test_the_server_exits_when_its_parent_is_killed(tiny_checkpoint: Path) -> None:
    script = (
        "import sys, time, exapt\n"
        "from exapt.agents.models.transformers_engine import TransformersServer\n"
        "server = TransformersServer(sys.argv[1], startup_timeout=120).start()\n"
        "print(server._process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tiny_checkpoint)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        parent.send_signal(signal.SIGKILL)  # no atexit runs: the server must notice by itself
        parent.wait()
        deadline = time.monotonic() + 30
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _gone(pid), f"server {pid} outlived its killed parent"
    finally:
        parent.kill()


def test_a_prompt_past_the_context_window_is_context_window_exceeded(
    tiny_checkpoint: Path, tiny_server: TransformersServer
) -> None:
    model = resolve_model(f"local:{tiny_checkpoint}", engine="transformers")
    with pytest.raises(ContextWindowExceeded) as caught:
        model.complete("word " * 3000, max_tokens=8, temperature=0)
    assert "context window" in caught.value.message
    assert model.complete("short", max_tokens=2, temperature=0).tokens_out > 0  # still serving
