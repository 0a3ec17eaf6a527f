"""The vLLM engine against a server implementing vLLM's LoRA serving contract
(``fake_vllm.py``; vLLM itself needs a GPU): launch with the right flags and environment,
hot-loading under a stable alias (unload, then load), requests routed by alias, ranks and
paths the server refuses, a server without runtime updates, and ``policy:NAME`` on vLLM."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exapt.agents.models.vllm import VLLMEngine, VLLMServerError
from exapt.errors import ConfigError

from .fake_vllm import FakeVLLM, serve

FAKE = [sys.executable, str(Path(__file__).with_name("fake_vllm.py"))]


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    VLLMEngine._shared.clear()
    yield
    for engine in VLLMEngine._shared.values():
        engine.stop()
    VLLMEngine._shared.clear()


@pytest.fixture
def fake(tiny: Path) -> Iterator[tuple[FakeVLLM, str]]:
    state = FakeVLLM(str(tiny), max_lora_rank=16)
    server = serve(state)
    yield state, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _adapter_copy(adapter: Path, target: Path, **changes: Any) -> Path:
    shutil.copytree(adapter, target)
    if changes:
        config = json.loads((target / "adapter_config.json").read_text())
        config.update(changes)
        (target / "adapter_config.json").write_text(json.dumps(config))
    return target


def test_launches_vllm_serve_with_lora_flags_and_hot_loads(
    home: Path, tiny: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    engine = VLLMEngine(tiny, command=[*FAKE, "serve"], max_lora_rank=32, startup_timeout=60)
    try:
        engine.start()
        log = next((home / "logs").glob("vllm-*.log")).read_text()
        assert "enable_lora=True" in log and "max_lora_rank=32" in log
        assert "runtime updates True" in log  # VLLM_ALLOW_RUNTIME_LORA_UPDATING was set
        adapter = _adapter_copy(tiny_adapter, tmp_path / "a")
        engine.load_adapter("toy-r1", adapter)
        assert engine.loaded() == {"toy-r1": str(adapter.resolve())}
        reply = engine.model("toy-r1").complete("def f(", max_tokens=4)
        assert reply.text.startswith("toy-r1@") and reply.tokens_out == 2
        assert engine.model().complete("def f(", max_tokens=4).text == "base"
    finally:
        engine.stop()


def test_reloading_an_alias_unloads_first_and_serves_the_new_weights(
    fake: tuple[FakeVLLM, str], tiny: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    state, url = fake
    engine = VLLMEngine(tiny, url=url)
    adapter = _adapter_copy(tiny_adapter, tmp_path / "a")
    engine.load_adapter("toy", adapter)
    first = engine.model("toy").complete("x", max_tokens=1).text
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")  # new weights under the same alias
    engine.load_adapter("toy", adapter)
    second = engine.model("toy").complete("x", max_tokens=1).text
    assert first != second and second.startswith("toy@")
    calls = [path for path, _ in state.requests if "lora_adapter" in path]
    assert calls == ["/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/v1/load_lora_adapter"]
    chat = engine.model("toy").chat([{"role": "user", "content": "hi"}])
    assert chat.text == second
    engine.unload_adapter("toy")
    with pytest.raises(ConfigError, match="has no adapter 'toy'"):
        engine.unload_adapter("toy")


def test_ranks_and_paths_the_server_cannot_serve_are_clear_errors(
    fake: tuple[FakeVLLM, str], tiny: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    state, url = fake
    with pytest.raises(ConfigError, match="vLLM cannot serve LoRA rank 12"):
        VLLMEngine(tiny, url=url, max_lora_rank=12)
    narrow = VLLMEngine(tiny, url=url, max_lora_rank=8)
    with pytest.raises(ConfigError, match="rank 16; this vLLM server serves ranks up to 8"):
        narrow.load_adapter("wide", tiny_adapter)
    assert not [p for p, _ in state.requests if "lora_adapter" in p]  # refused before asking
    state.max_lora_rank = 8  # a server started with a smaller maximum than we were told
    with pytest.raises(ConfigError, match="greater than max_lora_rank 8"):
        VLLMEngine(tiny, url=url, max_lora_rank=16).load_adapter("wide", tiny_adapter)
    with pytest.raises(ConfigError, match="No adapter found"):
        VLLMEngine(tiny, url=url).load_adapter("empty", tmp_path, rank=8)
    assert state.loras == {}


def test_a_server_without_runtime_updates_or_with_another_base(
    tiny: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    locked = serve(FakeVLLM(str(tiny), runtime_updates=False))
    other = serve(FakeVLLM("/models/another-base"))
    try:
        engine = VLLMEngine(tiny, url=f"http://127.0.0.1:{locked.server_port}/v1")
        with pytest.raises(VLLMServerError, match="no /v1/load_lora_adapter endpoint") as info:
            engine.load_adapter("toy", tiny_adapter)
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in str(info.value.hint)
        wrong = VLLMEngine(tiny, url=f"http://127.0.0.1:{other.server_port}")
        with pytest.raises(ConfigError, match="not the policy's base"):
            wrong.load_adapter("toy", tiny_adapter)
    finally:
        locked.shutdown()
        other.shutdown()


def test_a_vllm_that_cannot_start_says_why(home: Path, tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(VLLMServerError, match="cannot start") as info:
        VLLMEngine(tiny, command=[str(tmp_path / "no-vllm"), "serve"]).start()
    assert "EXAPT_VLLM_URL" in str(info.value.hint)
    with pytest.raises(VLLMServerError, match=r"(?s)exited with status 2:.*unrecognized arguments"):
        VLLMEngine(tiny, command=[*FAKE, "serve"], extra_args=["--bogus"]).start()


def test_policy_model_is_served_by_vllm_under_its_name(
    home: Path,
    fake: tuple[FakeVLLM, str],
    tiny: Path,
    tiny_adapter: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exapt.agents.models import resolve_model
    from exapt.evolve.policies import PolicyRegistry

    state, url = fake
    PolicyRegistry().register(
        name="toy-r1", line="toy", adapter_dir=tiny_adapter, base_model=f"local:{tiny}",
        base_checkpoint=tiny, method="sft", dataset_hash="0" * 16,
    )  # fmt: skip
    PolicyRegistry().promote("toy-r1", force=True)
    monkeypatch.setenv("EXAPT_POLICY_ENGINE", "vllm")
    monkeypatch.setenv("EXAPT_VLLM_URL", url)
    model = resolve_model("policy:toy")  # the line's promoted policy
    assert model.name == "policy:toy-r1" and model.is_base
    assert model.complete("def f(", max_tokens=4).text.startswith("toy-r1@")
    assert state.loras["toy-r1"][0] == str(home / "policies" / "toy-r1" / "adapter")
