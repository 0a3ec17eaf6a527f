"""LoRA adapters served per request by the llama engine: a peft LoRA trained for a few steps on
the tiny checkpoint, converted by llama.cpp's converter, selected by the model string, and
compared token for token with peft + transformers on the same prompts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from exapt.agents.models import resolve_model
from exapt.agents.models.adapter_registry import registry_dir
from exapt.agents.models.engine import LocalEngine
from exapt.agents.models.llama_cpp import convert_adapter
from exapt.agents.models.local import LocalModel
from exapt.errors import ConfigError

PROMPTS = ["def add(a, b):\n    return", "for i in range(10):", "class Counter:", "The quick"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def train_lora(checkpoint: Path, out: Path, text: str, *, seed: int = 0, steps: int = 40) -> Path:
    """A peft LoRA (all linear layers) trained on ``text`` until the greedy output changes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS)
    peft_model = get_peft_model(model, config)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-2)
    for _ in range(steps):
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(out)
    return out


def peft_generate(checkpoint: Path, adapter: Path | None, prompt: str, n: int) -> str:
    """Greedy text from transformers (+ peft when ``adapter``), what the server must match."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    eos = set(model.generation_config.eos_token_id)
    if new and new[-1] in eos:
        new = new[:-1]
    return str(tokenizer.decode(new, skip_special_tokens=True))


@pytest.fixture(scope="module")
def adapters(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    counter = "class Counter:\n    def __init__(self) -> None:\n        self.count = 0\n" * 3
    greet = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n' * 3
    trained = {
        "counter": train_lora(tiny_checkpoint, root / "counter", counter, seed=1),
        "greet": train_lora(tiny_checkpoint, root / "greet", greet, seed=2),
    }
    for folder in trained.values():  # converted once here, so the tests time only the serving
        convert_adapter(folder, tiny_checkpoint)
    return trained


def test_an_adapter_changes_the_output_exactly_as_peft_does(
    tiny_checkpoint: Path, tiny_engine: LocalEngine, adapters: dict[str, Path]
) -> None:
    tiny_engine.add_adapter("counter", adapters["counter"])
    assert tiny_engine.model_string("counter") == f"local:{tiny_checkpoint}+adapter:counter"
    tuned = resolve_model(tiny_engine.model_string("counter"))
    assert isinstance(tuned, LocalModel) and tuned.name.endswith("+adapter:counter")
    base = LocalModel(tiny_checkpoint, engine="llama")
    differs = 0
    for prompt in PROMPTS:
        got = tuned.complete(prompt, max_tokens=24, temperature=0).text
        expected = peft_generate(tiny_checkpoint, adapters["counter"], prompt, 24)
        assert got == expected, prompt  # fp32 weights on both sides: the same greedy tokens
        plain = base.complete(prompt, max_tokens=24, temperature=0).text
        assert plain == peft_generate(tiny_checkpoint, None, prompt, 24), prompt
        differs += got != plain
    assert differs >= len(PROMPTS) - 1, "the adapter did not change the output"
    # Chat goes through the adapter too.
    chat = tuned.chat([{"role": "user", "content": "hi"}], max_tokens=4, temperature=0)
    assert chat.tokens_out > 0


def test_adding_an_adapter_keeps_serving_and_drains_the_old_server(
    tiny_checkpoint: Path, tiny_engine: LocalEngine, adapters: dict[str, Path]
) -> None:
    tiny_engine.add_adapter("counter", adapters["counter"])
    base = LocalModel(tiny_checkpoint, engine="llama")
    tuned = LocalModel(tiny_checkpoint, adapter="counter", engine="llama")
    expected_base = base.complete(PROMPTS[0], max_tokens=64, temperature=0).text
    expected_tuned = tuned.complete(PROMPTS[0], max_tokens=64, temperature=0).text
    old = tiny_engine.server
    assert old is not None and old.pid is not None
    old_pid = old.pid
    stop = threading.Event()
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def client(model: LocalModel, label: str) -> None:
        while not stop.is_set():
            try:
                results.append(
                    (label, model.complete(PROMPTS[0], max_tokens=64, temperature=0).text)
                )
            except BaseException as exc:
                errors.append(exc)
                return

    pairs = [(base, "base"), (tuned, "counter")] * 2
    threads = [threading.Thread(target=client, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    tiny_engine.add_adapter("greet", adapters["greet"])  # a new server with both, swapped in
    swapped = len(results)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert swapped > 0 and len(results) > swapped  # served before, during and after the swap
    for label, text in results:
        assert text == (expected_base if label == "base" else expected_tuned), label
    new = tiny_engine.server
    assert new is not None and new is not old and new.pid not in (None, old_pid)
    deadline = time.monotonic() + 15
    while old.pid is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert old.pid is None, "the old server was not stopped once drained"
    greet = LocalModel(tiny_checkpoint, adapter="greet", engine="llama")
    for prompt in PROMPTS[:2]:
        text = greet.complete(prompt, max_tokens=24, temperature=0).text
        assert text == peft_generate(tiny_checkpoint, adapters["greet"], prompt, 24)


def test_mixed_concurrent_requests_each_get_their_adapter(
    tiny_checkpoint: Path, tiny_engine: LocalEngine, adapters: dict[str, Path]
) -> None:
    for name in ("counter", "greet"):
        tiny_engine.add_adapter(name, adapters[name])
    models = {
        label: LocalModel(tiny_checkpoint, adapter=label, engine="llama")
        for label in ("counter", "greet")
    }
    models["base"] = LocalModel(tiny_checkpoint, engine="llama")
    expected = {
        k: m.complete(PROMPTS[1], max_tokens=20, temperature=0).text for k, m in models.items()
    }
    assert len(set(expected.values())) == 3  # three different policies on one base process
    got: list[tuple[str, str]] = []
    barrier = threading.Barrier(9)

    def client(label: str) -> None:
        barrier.wait()
        got.append((label, models[label].complete(PROMPTS[1], max_tokens=20, temperature=0).text))

    threads = [threading.Thread(target=client, args=(k,)) for k in list(models) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(got) == 9 and all(text == expected[label] for label, text in got)


def test_replacing_and_removing_an_adapter(
    tiny_checkpoint: Path, tiny_engine: LocalEngine, adapters: dict[str, Path]
) -> None:
    tiny_engine.add_adapter("swap-me", adapters["counter"])
    model = LocalModel(tiny_checkpoint, adapter="swap-me", engine="llama")
    first = model.complete(PROMPTS[2], max_tokens=20, temperature=0).text
    tiny_engine.add_adapter("swap-me", adapters["greet"])  # same name, other weights
    second = model.complete(PROMPTS[2], max_tokens=20, temperature=0).text
    assert second != first
    assert second == peft_generate(tiny_checkpoint, adapters["greet"], PROMPTS[2], 20)
    assert (registry_dir() / "swap-me.json").is_file()
    tiny_engine.remove_adapter("swap-me")
    assert not (registry_dir() / "swap-me.json").exists()
    with pytest.raises(ConfigError, match="no LoRA adapter named 'swap-me'"):
        model.complete(PROMPTS[2], max_tokens=2)
    with pytest.raises(ConfigError, match="no LoRA adapter"):
        tiny_engine.remove_adapter("swap-me")


def test_adapters_by_path_and_from_the_registry_in_a_new_engine(
    tiny_checkpoint: Path, tiny_engine: LocalEngine, adapters: dict[str, Path]
) -> None:
    tiny_engine.add_adapter("counter", adapters["counter"])
    expected = peft_generate(tiny_checkpoint, adapters["counter"], PROMPTS[0], 16)
    by_path = resolve_model(f"local:{tiny_checkpoint}+adapter:{adapters['counter']}")
    assert by_path.complete(PROMPTS[0], max_tokens=16, temperature=0).text == expected
    # A later process knows the name from <home>/models/adapters/counter.json.
    fresh = LocalEngine(tiny_checkpoint)
    try:
        text = fresh.model("counter").complete(PROMPTS[0], max_tokens=16, temperature=0).text
    finally:
        fresh.stop()
    assert text == expected
    with pytest.raises(ConfigError, match=r"registered adapters: .*counter"):
        resolve_model(f"local:{tiny_checkpoint}+adapter:unknown").complete("hi", max_tokens=2)
    with pytest.raises(ConfigError, match="not a peft adapter folder"):
        tiny_engine.add_adapter("broken", tiny_checkpoint)
