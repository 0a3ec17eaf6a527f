"""The real embedded model: Gemma 3 270M, converted once into the real exapt home
(``<home>/models/gemma3-270m/``, ~1.5 min the first time) and served by our LocalServer."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.agents.models import resolve_model


@pytest.mark.slow
def test_local_gemma_completes_a_function(real_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAPT_HOME", str(real_home))  # reuse the cached conversion
    model = resolve_model("local")
    assert model.name == "local" and model.is_base and not model.supports_tools
    prompt = 'def add(a, b):\n    """Return the sum of a and b."""\n'
    reply = model.complete(
        prompt, stop=["\ndef ", "\nclass ", "\nif __name__"], max_tokens=48, temperature=0
    )
    assert "return a + b" in reply.text
    assert reply.tokens_in > 10 and 0 < reply.tokens_out <= 48
    assert (real_home / "models" / "gemma3-270m" / "config.json").exists()
