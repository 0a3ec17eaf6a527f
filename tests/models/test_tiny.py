from __future__ import annotations

import time
from pathlib import Path

import pytest

from exapt.agents.models.tiny import END_OF_TURN, build_tiny_checkpoint


def test_tiny_checkpoint_is_small_fast_and_complete(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    path = build_tiny_checkpoint(tmp_path / "tiny")
    assert time.perf_counter() - started < 10
    model = AutoModelForCausalLM.from_pretrained(path)
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 1_000_000
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = 'def f(x):\n    return "é" + x  # any text, bytes included'
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert len(tokenizer) == model.config.vocab_size
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert end_of_turn in model.generation_config.eos_token_id
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    with pytest.raises(FileExistsError):
        build_tiny_checkpoint(path)
    # Same seed, same weights: tests that compare outputs can rebuild it.
    again = AutoModelForCausalLM.from_pretrained(build_tiny_checkpoint(tmp_path / "again"))
    assert all((a == b).all() for a, b in zip(model.parameters(), again.parameters(), strict=True))
