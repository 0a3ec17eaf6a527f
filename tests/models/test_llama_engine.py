"""The llama engine over real HTTP: the tiny checkpoint converted to GGUF by llama.cpp's own
converter and served by ``llama-server``, reached through ``LocalModel``; its answers are
checked against transformers on the same checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exapt.agents.models import resolve_model
from exapt.agents.models.base import ContextWindowExceeded
from exapt.agents.models.engine import LocalEngine
from exapt.agents.models.llama_cpp import LlamaCpp, convert_checkpoint, read_gguf_info
from exapt.agents.models.llama_server import LlamaServer
from exapt.agents.models.local import LocalModel, LocalRequestError
from exapt.agents.models.server_process import LocalServerError
from exapt.agents.models.tiny import build_tiny_checkpoint
from exapt.errors import ConfigError, UnavailableError

from .concurrency import concurrent_completions

PROMPTS = ["def add(a, b):\n    return", "for i in range(10):", "class Counter:", "The quick"]


def generate(checkpoint: Path, prompt: str, max_new_tokens: int) -> tuple[str, int, int]:
    """Greedy ``model.generate`` in this process: (text, prompt tokens, new tokens)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)  # type: ignore[misc]
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    count = len(new)
    if new and new[-1] in set(model.generation_config.eos_token_id):
        new = new[:-1]
    text = str(tokenizer.decode(new, skip_special_tokens=True))
    return text, int(ids["input_ids"].shape[1]), count


def test_the_checkpoint_is_converted_once(tiny_checkpoint: Path, tiny_engine: LocalEngine) -> None:
    gguf = tiny_engine.gguf()
    assert gguf.parent.name == "gguf" and gguf.parent.parent.name == "models"
    info = read_gguf_info(gguf)
    assert (info.architecture, info.context_length, info.add_bos) == ("llama", 1024, False)
    assert info.bos_token == "<bos>" and info.chat_template
    stamp = gguf.stat().st_mtime_ns
    assert convert_checkpoint(tiny_checkpoint) == gguf and gguf.stat().st_mtime_ns == stamp


def test_complete_matches_transformers(tiny_checkpoint: Path, tiny_llama: LocalModel) -> None:
    assert tiny_llama.name == f"local:{tiny_checkpoint}" and not tiny_llama.supports_tools
    assert not tiny_llama.is_base  # the tiny checkpoint has a chat template
    for prompt in PROMPTS:
        reply = tiny_llama.complete(prompt, max_tokens=12, temperature=0)
        expected, prompt_tokens, _ = generate(tiny_checkpoint, prompt, 12)
        assert reply.text == expected, prompt
        assert reply.tokens_in == prompt_tokens and 0 < reply.tokens_out <= 12
        assert reply.cost_usd == 0.0 and reply.duration_s > 0 and reply.model == tiny_llama.name


def test_max_tokens_and_stop_strings(tiny_llama: LocalModel) -> None:
    prompt = "for i in range(10):"
    full = tiny_llama.complete(prompt, max_tokens=16, temperature=0)
    assert full.tokens_out == 16 and full.finish_reason == "length"
    assert len(full.text) >= 4, full
    # A stop string from the middle of the greedy text: the reply ends just before its first
    # occurrence (OpenAI semantics: the stop string itself is not returned).
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    cut = tiny_llama.complete(prompt, max_tokens=16, temperature=0, stop=["never-seen", stop])
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop" and cut.tokens_out < full.tokens_out
    short = tiny_llama.complete(prompt, max_tokens=3, temperature=0)
    assert short.tokens_out == 3 and full.text.startswith(short.text)


def test_chat_prompt_is_the_transformers_template(
    tiny_checkpoint: Path, tiny_llama: LocalModel
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    tools: list[dict[str, Any]] = [
        {"type": "function", "function": {"name": "run", "description": "Run a shell command"}}
    ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "run", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "hi"},
    ]  # fmt: skip
    texts = ["Be brief.", "Say hi", "", "hi"]
    for offered in (None, tools):
        reply = tiny_llama.chat(messages, tools=offered, max_tokens=6, temperature=0)
        # What the transformers server renders: contents as text, then apply_chat_template.
        as_text = [{**m, "content": t} for m, t in zip(messages, texts, strict=True)]
        templated = tokenizer.apply_chat_template(
            as_text, tools=offered, add_generation_prompt=True, tokenize=False
        )
        expected = tokenizer(templated, add_special_tokens=False)["input_ids"]
        assert reply.tokens_in == len(expected)  # the same prompt, token for token
        assert 0 < reply.tokens_out <= 6 and reply.finish_reason in {"stop", "length"}
    sampled = tiny_llama.chat(messages[:2], max_tokens=6, temperature=0.8, top_p=0.9)
    assert 0 < sampled.tokens_out <= 6


def test_eight_concurrent_clients_are_served_together(
    tiny_llama: LocalModel, tiny_engine: LocalEngine
) -> None:
    prompt = "class Counter:"
    alone = tiny_llama.complete(prompt, max_tokens=200, temperature=0)
    replies = concurrent_completions(tiny_llama, prompt, 8, max_tokens=200)
    assert all(r.text == alone.text and r.tokens_out == alone.tokens_out for r in replies)
    server = tiny_engine.server
    assert server is not None and server.log_path is not None
    log = server.log_path.read_text()
    # llama-server logs each slot it starts: 8 requests at once took several slots.
    slots = {line.split("id ")[1].split()[0] for line in log.splitlines() if "launch_slot_" in line}
    assert len(slots) >= 2, f"the requests were not spread over slots: {slots}"


def test_usage_and_http_details(tiny_engine: LocalEngine) -> None:
    server = tiny_engine.start()
    assert server.running() and server.url.startswith("http://127.0.0.1:")
    assert f"--parallel {server.slots}" in " ".join(server.command(0))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        denied = client.post("/completions", json={"prompt": "a", "max_tokens": 2})
        assert denied.status_code == 401  # no other local process can use it without its key
        client.headers.update(server.headers)
        ok = client.post("/completions", json={"prompt": "hi", "max_tokens": 3, "temperature": 0})
        usage = ok.json()["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        long = client.post("/completions", json={"prompt": "word " * 3000, "max_tokens": 4})
        assert long.status_code == 400
        assert long.json()["error"]["type"] == "exceed_context_size_error"


def test_bad_requests_are_clear_errors(tiny_llama: LocalModel) -> None:
    with pytest.raises(LocalRequestError, match="empty"):
        tiny_llama.complete("", max_tokens=2)
    for bad, field in (
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"stream": True}, "stream"),
        ({"n": 2}, "n must be 1"),
        ({"logprobs": 3}, "logprobs"),
    ):
        with pytest.raises(LocalRequestError, match=field) as caught:
            tiny_llama.complete("hi", **bad)
        assert isinstance(caught.value, ConfigError)
    with pytest.raises(ContextWindowExceeded) as overflow:
        tiny_llama.complete("word " * 3000, max_tokens=8, temperature=0)
    assert "context window" in overflow.value.message
    assert tiny_llama.complete("short", max_tokens=2, temperature=0).tokens_out > 0  # serving


def test_a_server_that_dies_during_a_request_is_a_local_server_error(
    tiny_llama: LocalModel, tiny_engine: LocalEngine
) -> None:
    server = tiny_engine.start()
    pid = server.pid
    assert pid is not None
    caught: list[BaseException] = []

    def request() -> None:
        try:
            tiny_llama.complete("class Counter:", max_tokens=8, temperature=0)
        except BaseException as exc:
            caught.append(exc)

    import os

    os.kill(pid, signal.SIGSTOP)  # frozen: the request is accepted but never answered
    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert len(caught) == 1 and isinstance(caught[0], LocalServerError), caught
    assert "exited with code" in str(caught[0]) and str(server.log_path) in str(caught[0])
    assert isinstance(caught[0], UnavailableError)
    # The next request starts it again.
    assert tiny_llama.complete("hi", max_tokens=2, temperature=0).tokens_out > 0
    assert server.pid is not None and server.pid != pid


def test_a_server_that_cannot_load_its_model_reports_its_log(
    tiny_engine: LocalEngine, tmp_path: Path
) -> None:
    gguf = tiny_engine.gguf()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 2])  # header intact
    with pytest.raises(LocalServerError) as caught:
        LlamaServer(truncated, startup_timeout=120).start()
    assert "exited with code" in str(caught.value) and "llama-server" in str(caught.value)
    not_gguf = tmp_path / "noise.gguf"
    not_gguf.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        LlamaServer(not_gguf).start()
    with pytest.raises(ConfigError, match="no such GGUF file"):
        LlamaServer(tmp_path / "missing.gguf").start()


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in status  # a zombie has exited; only its parent's wait is missing


def test_the_server_dies_with_its_parent(tiny_engine: LocalEngine) -> None:
    # The server is started from a worker thread that then ends (as a pool's thread would):
    # it must live on while the parent lives, and die when the parent is killed.
    script = (
        "import sys, threading, time, exapt\n"
        "from exapt.agents.models.llama_server import LlamaServer\n"
        "server = LlamaServer(sys.argv[1], startup_timeout=120)\n"
        "worker = threading.Thread(target=server.start)\n"
        "worker.start(); worker.join()\n"
        "time.sleep(1.5)\n"
        "print(server.pid, server.running(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tiny_engine.gguf())], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid_text, running = parent.stdout.readline().split()
        pid = int(pid_text)
        assert running == "True" and not _gone(pid)
        parent.send_signal(signal.SIGKILL)  # no atexit runs: the kernel must stop the server
        parent.wait()
        deadline = time.monotonic() + 30
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(pid), f"server {pid} outlived its killed parent"
    finally:
        parent.kill()


def test_model_strings_and_engine_choice(
    tiny_checkpoint: Path, tiny_home: Path, llama_cpp: LlamaCpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = resolve_model(f"local:{tiny_checkpoint}")
    assert isinstance(model, LocalModel) and model.engine == "auto"
    assert type(model.engine_instance()) is LocalEngine  # llama.cpp is built: it is the default
    monkeypatch.setenv("EXAPT_LOCAL_ENGINE", "transformers")
    assert resolve_model(f"local:{tiny_checkpoint}").engine == "transformers"
    monkeypatch.setenv("EXAPT_LOCAL_ENGINE", "vllm")
    with pytest.raises(ConfigError, match="unknown local engine"):
        resolve_model("local")
    monkeypatch.delenv("EXAPT_LOCAL_ENGINE")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        resolve_model(f"local:{tiny_home / 'nothing-here'}")
    with pytest.raises(ConfigError, match="bad LoRA adapter name"):
        resolve_model("local+adapter:no spaces")
    with pytest.raises(ConfigError, match="no adapter"):
        resolve_model("local+adapter:")
    with pytest.raises(ConfigError, match="adapters are served by the llama engine"):
        resolve_model("local+adapter:x", engine="transformers")
    gguf_model = resolve_model(f"local:{LocalEngine.shared(tiny_checkpoint).gguf()}")
    assert gguf_model.complete("hi", max_tokens=2, temperature=0).tokens_out == 2


def test_auto_falls_back_to_transformers_for_what_llama_cpp_cannot_convert(
    tiny_home: Path, llama_cpp: LlamaCpp, capfd: pytest.CaptureFixture[str]
) -> None:
    checkpoint = build_tiny_checkpoint(tiny_home / "tiny-odd", seed=3)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "architectures": ["NoSuchLM"]}))
    with pytest.raises(ConfigError, match="could not convert"):
        LocalModel(checkpoint, engine="llama").complete("hi", max_tokens=2)
    model = LocalModel(checkpoint)  # auto
    assert model.engine_instance().name == "transformers"
    assert "transformers engine" in capfd.readouterr().err
