"""A policy trained by exapt, served back: the adapter from ``train_adapter`` on the tiny
checkpoint, registered, resolved as ``policy:NAME`` and served per request by the llama.cpp
engine — its greedy output is what peft + transformers give, differs from the base's, and an
agent run on it answers differently. The slow test does the same with the real Gemma 3 270M
(trained on its fp32 checkpoint, served over the shipped Q4 GGUF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exapt.evolve.policies import PolicyRegistry
from exapt.evolve.training.datasets import DatasetConfig, build_dataset
from exapt.evolve.training.train import TrainConfig, train_adapter
from exapt.memory.trajectories import TrajectoryStore

from .helpers import function_prompt

try:
    from exapt.agents.models.engine import LocalEngine
    from exapt.agents.models.llama_cpp import find_llama_cpp
except ImportError as exc:  # the llama.cpp engine is its own issue (branch llama)
    pytest.skip(f"needs the llama.cpp engine with LoRA adapters: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def llama() -> None:
    from exapt.errors import UnavailableError

    try:
        find_llama_cpp()
    except UnavailableError as exc:
        pytest.skip(f"llama.cpp is not built on this machine: {exc}")


def _greedy_peft(checkpoint: Path, adapter: Path | None, prompt: str, n: int) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model: Any = AutoModelForCausalLM.from_pretrained(checkpoint)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    eos = set(model.generation_config.eos_token_id)
    while new and new[-1] in eos:
        new = new[:-1]
    return str(tokenizer.decode(new, skip_special_tokens=True))


@pytest.mark.slow  # ~2 min: 60 epochs on the tiny model, two GGUF conversions, two servers
def test_a_trained_policy_is_served_per_request_and_changes_the_agent(
    llama: None,
    home: Path,
    function_home: Path,
    tiny: Path,
    backend: str,
    tmp_path: Path,
) -> None:
    from exapt.agents import load_spec
    from exapt.agents.models import resolve_model
    from exapt.engine import evaluate
    from exapt.tasks import load_suite, split_tasks

    with TrajectoryStore(function_home / "trajectories.sqlite") as store:
        built = build_dataset(store, DatasetConfig(best_of=1))
    config = TrainConfig(epochs=60, learning_rate=1e-2, batch_size=4, save_steps=10_000)
    result = train_adapter(built, tiny, tmp_path / "train", config, progress=False)
    registry = PolicyRegistry()
    registry.register(
        name="toy-r1", line="toy", adapter_dir=result.adapter_dir, base_model=f"local:{tiny}",
        base_checkpoint=tiny, method="sft", dataset_hash=built.hash, is_base=False,
    )  # fmt: skip
    policy = resolve_model("policy:toy-r1")
    base = resolve_model(f"local:{tiny}")
    assert policy.name == "policy:toy-r1" and policy.is_base is base.is_base is False
    try:
        # Served per request over the base: exactly what peft + transformers generate.
        adapter_dir = home / "policies" / "toy-r1" / "adapter"
        for i in (0, 4):
            prompt = function_prompt(i)
            served = policy.complete(prompt, max_tokens=16, temperature=0).text
            assert served == _greedy_peft(tiny, adapter_dir, prompt, 16), i
            assert served != base.complete(prompt, max_tokens=16, temperature=0).text, i
        # An agent on the policy answers differently, in the shape it was trained on (the tiny
        # model learns the shape `return x + ...`, not the digits; the random base neither).
        suite = load_suite(f"jsonl:{function_home / 'functions.jsonl'}")
        tasks = [t for t in split_tasks(suite.tasks(), "train") if t.id in {"toy/f0", "toy/f4"}]
        spec = load_spec("completion")  # the tiny base has a chat template: say which agent
        before = evaluate(spec, tasks, base, suite=suite, backend=backend, run_id="base")
        after = evaluate(spec, tasks, policy, suite=suite, backend=backend, run_id="tuned")
        drafts = {
            run: {a.task_id: a.trajectory.steps[0].output["content"] for a in attempts}
            for run, attempts in (("base", before), ("tuned", after))
        }
        for task_id, draft in drafts["tuned"].items():
            assert draft != drafts["base"][task_id]
            assert draft.startswith("    return x +"), draft
            assert not drafts["base"][task_id].startswith("    return x +")
        assert {a.trajectory.model for a in after} == {"policy:toy-r1"}
    finally:
        LocalEngine.shared(tiny).stop()


@pytest.mark.slow  # ~3-5 min on 2 cores (+1.5 min the first time the checkpoint is converted)
def test_a_lora_on_the_real_gemma_trains_a_few_steps_and_is_served(
    llama: None, home: Path, function_home: Path, tmp_path: Path
) -> None:
    from exapt.agents.models import resolve_model
    from exapt.agents.models.gemma import ensure_gemma_checkpoint

    from .conftest import REAL_HOME

    checkpoint = ensure_gemma_checkpoint(REAL_HOME / "models" / "gemma3-270m")  # cached there
    with TrajectoryStore(function_home / "trajectories.sqlite") as store:
        built = build_dataset(store, DatasetConfig(best_of=1))
    config = TrainConfig(max_steps=4, batch_size=2, learning_rate=5e-3, lora_r=8, lora_alpha=16)
    result = train_adapter(built, checkpoint, tmp_path / "train", config, progress=False)
    assert result.metrics["steps"] == 4 and result.metrics["tokens_per_s"] > 0
    assert result.metrics["loss_last"] < result.metrics["loss_first"]
    PolicyRegistry().register(
        name="gemma-r1", line="gemma", adapter_dir=result.adapter_dir, base_model="local",
        base_checkpoint=checkpoint, method="sft", dataset_hash=built.hash,
    )  # fmt: skip
    policy = resolve_model("policy:gemma-r1")
    base = resolve_model("local")
    try:
        assert policy.is_base and base.is_base  # the completion agent for both
        prompts = [function_prompt(i) for i in (0, 4, 5)]
        tuned = [policy.complete(p, max_tokens=24, temperature=0).text for p in prompts]
        plain = [base.complete(p, max_tokens=24, temperature=0).text for p in prompts]
        assert all(t.strip() for t in tuned)
        assert tuned != plain  # the adapter is applied over the Q4 base, per request
    finally:
        LocalEngine.shared(None).stop()
