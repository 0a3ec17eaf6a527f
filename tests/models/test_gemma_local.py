"""The real embedded model: Gemma 3 270M, the Q4_K_M GGUF as shipped, served by llama.cpp (its
file assembled once into the real exapt home, ``<home>/models/``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from exapt.agents.models import resolve_model
from exapt.agents.models.engine import LocalEngine
from exapt.agents.models.llama_cpp import LlamaCpp, read_gguf_info
from exapt.agents.models.local import LocalModel


@pytest.mark.slow
def test_local_gemma_completes_a_function(
    real_home: Path, llama_cpp: LlamaCpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAPT_HOME", str(real_home))  # reuse the assembled GGUF
    model = resolve_model("local")
    assert isinstance(model, LocalModel)
    assert model.name == "local" and model.is_base and not model.supports_tools
    assert model.engine_instance().name == "llama"
    prompt = 'def add(a, b):\n    """Return the sum of a and b."""\n'
    reply = model.complete(
        prompt, stop=["\ndef ", "\nclass ", "\nif __name__"], max_tokens=48, temperature=0
    )
    assert "return a + b" in reply.text
    assert reply.tokens_in > 10 and 0 < reply.tokens_out <= 48
    gguf = real_home / "models" / "gemma3-270m-q4_k_m.gguf"
    info = read_gguf_info(gguf)
    assert info.architecture == "gemma3" and info.add_bos and info.bos_token == "<bos>"
    # Chat is Gemma's template with exactly one BOS (llama-server adds it; the rendered text's
    # own is dropped): as many tokens as the template's text, tokenized as it stands.
    messages = [{"role": "user", "content": "Say hi"}]
    chat = model.chat(messages, max_tokens=8, temperature=0)
    rendered = model.engine_instance().chat_prompt().render(messages, None)
    assert rendered.startswith("<bos><start_of_turn>user\nSay hi<end_of_turn>\n")
    server = model.server()
    tokens = httpx.post(
        f"{server.url.removesuffix('/v1')}/tokenize",
        json={"content": rendered, "add_special": False},
        headers=server.headers,  # type: ignore[attr-defined]
    ).json()["tokens"]
    assert tokens.count(2) == 1 and chat.tokens_in == len(tokens)  # 2 = <bos>
    assert chat.tokens_out > 0


@pytest.mark.slow
def test_local_gemma_serves_a_lora_adapter(
    real_home: Path, llama_cpp: LlamaCpp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peft LoRA for Gemma (random, not trained: only its shapes matter here) is converted
    and served per request on the shipped Q4 base; its output differs from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from exapt.agents.models.gemma import gemma_config_dir

    monkeypatch.setenv("EXAPT_HOME", str(real_home))
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(gemma_config_dir())
    model = AutoModelForCausalLM.from_config(config)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,  # random A and B: the adapter changes the output
    )  # fmt: skip
    get_peft_model(model, lora).save_pretrained(tmp_path / "gemma-lora")
    engine = LocalEngine(None)  # its own server: the shared one stays as other tests left it
    try:
        engine.add_adapter("gemma-random", tmp_path / "gemma-lora", persist=False)
        prompt = 'def add(a, b):\n    """Return the sum of a and b."""\n'
        base = engine.model().complete(prompt, max_tokens=16, temperature=0)
        tuned = engine.model("gemma-random").complete(prompt, max_tokens=16, temperature=0)
    finally:
        engine.stop()
    assert "return a + b" in base.text
    assert tuned.text != base.text and tuned.tokens_out > 0
