"""LoRA training with TRL on the tiny model built in the test: the loss goes down, the adapter
saves and reloads, every format trains a step, the loss covers the agent's tokens only, long
rows are dropped and counted (never truncated), and a killed training resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exapt.errors import ConfigError
from exapt.evolve.training.datasets import BuiltDataset, DatasetConfig, build_dataset
from exapt.evolve.training.train import TrainConfig, fit_lengths, train_adapter
from exapt.memory.trajectories import TrajectoryStore


def _built(home: Path, **config: Any) -> BuiltDataset:
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        return build_dataset(store, DatasetConfig(**config))


def _completion_nll(checkpoint: Path, adapter: Path | None, rows: list[dict[str, Any]]) -> float:
    """Mean loss on the completion tokens, measured outside the trainer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exapt.evolve.training.lengths import text_ids

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model: Any = AutoModelForCausalLM.from_pretrained(checkpoint)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    losses = []
    for row in rows:
        full, mask = text_ids(row["prompt"], row["completion"], tokenizer)
        labels = [t if m else -100 for t, m in zip(full, mask, strict=True)]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([full]), labels=torch.tensor([labels]))
        losses.append(float(out.loss))
    return sum(losses) / len(losses)


def test_sft_lowers_the_loss_and_the_adapter_reloads(
    function_home: Path, tiny: Path, tmp_path: Path
) -> None:
    built = _built(function_home)
    config = TrainConfig(epochs=20, learning_rate=1e-2, batch_size=2, save_steps=1000)
    result = train_adapter(built, tiny, tmp_path / "run", config, progress=False)
    m = result.metrics
    assert m["rows"] == len(built) and m["dropped_too_long"] == 0
    assert m["loss_last"] < m["loss_first"]
    assert m["train_tokens"] > 0 and m["tokens_per_s"] > 0 and m["steps"] == 40
    assert (result.adapter_dir / "adapter_config.json").is_file()
    rows = built.dataset.to_list()
    before = _completion_nll(tiny, None, rows)
    after = _completion_nll(tiny, result.adapter_dir, rows)
    assert after < before - 1.0, (before, after)  # measured again, outside the trainer
    import json

    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert Path(saved["base_model_name_or_path"]) == tiny.resolve()
    assert saved["r"] == 16


def test_every_format_trains_one_step(function_home: Path, tiny: Path, tmp_path: Path) -> None:
    for name, dataset_config, method in [
        ("rerest", {"repairs": True}, "sft"),
        ("dpo", {"format": "dpo", "repairs": True}, "dpo"),
        ("kto", {"format": "kto"}, "kto"),
    ]:
        built = _built(function_home, **dataset_config)
        config = TrainConfig(method=method, max_steps=1, batch_size=2, save_steps=1000)
        result = train_adapter(built, tiny, tmp_path / name, config, progress=False)
        assert result.metrics["steps"] == 1, name
        assert result.metrics["loss_first"] is not None, name
        assert (result.adapter_dir / "adapter_model.safetensors").is_file(), name


def test_precision_is_bf16_where_the_cpu_has_it_and_fp32_when_asked(
    function_home: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    built = _built(function_home)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    for precision, expected in [("auto", "bf16" if native else "fp32"), ("fp32", "fp32")]:
        config = TrainConfig(max_steps=1, batch_size=2, save_steps=1000, precision=precision)
        result = train_adapter(built, tiny, tmp_path / precision, config, progress=False)
        assert result.metrics["precision"] == expected, precision
        assert result.metrics["loss_first"] is not None
    # a CPU without native bf16: auto falls back to fp32, an explicit bf16 is refused
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    config = TrainConfig(max_steps=1, batch_size=2, save_steps=1000)
    result = train_adapter(built, tiny, tmp_path / "old-cpu", config, progress=False)
    assert result.metrics["precision"] == "fp32"
    with pytest.raises(ConfigError, match="precision bf16 asked for"):
        bf16 = TrainConfig(max_steps=1, precision="bf16")
        train_adapter(built, tiny, tmp_path / "refused", bf16, progress=False)
    assert not (tmp_path / "refused").exists()


def test_chat_rows_train_on_the_assistant_tokens_only(
    chat_home: Path, tiny_long: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from exapt.evolve.training.templates import training_template

    built = _built(chat_home)
    result = train_adapter(
        built, tiny_long, tmp_path / "chat", TrainConfig(max_steps=1, save_steps=1000),
        progress=False,
    )  # fmt: skip
    assert result.metrics["assistant_only_loss"] is True
    # What TRL prepared: the tokens with a label are exactly the completion's.
    tokenizer = AutoTokenizer.from_pretrained(tiny_long)
    tokenizer.chat_template = training_template(tokenizer.chat_template)
    args = SFTConfig(
        output_dir=str(tmp_path / "probe"), completion_only_loss=True, assistant_only_loss=True,
        max_length=None, report_to=[], use_cpu=True,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=str(tiny_long), args=args, train_dataset=built.dataset, processing_class=tokenizer
    )
    row = built.dataset[0]
    example = trainer.train_dataset[0]
    trained = [
        t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    text = tokenizer.decode(trained)
    call = row["completion"][0]["tool_calls"][0]["function"]
    assert call["name"] in text and text.endswith("<end_of_turn>\n")
    assert "TASK" not in text and "<start_of_turn>" not in text


def test_long_rows_are_dropped_and_counted_or_refused(
    function_home: Path, tiny: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from exapt.evolve.training.lengths import token_lengths

    built = _built(function_home)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    lengths = sorted(token_lengths(built.dataset, tokenizer))
    limit = lengths[-1] - 1  # only the longest row(s) are too long
    kept, fit = fit_lengths(built.dataset, tokenizer, TrainConfig(max_length=limit))
    assert fit["dropped"] == sum(n > limit for n in lengths) >= 1
    assert len(kept) == len(built) - fit["dropped"]
    assert fit["max_length"] == max(n for n in lengths if n <= limit)  # TRL truncates nothing
    with pytest.raises(ConfigError, match=f"longer than max_length={limit}"):
        fit_lengths(built.dataset, tokenizer, TrainConfig(max_length=limit, too_long="error"))
    with pytest.raises(ConfigError, match="every row is longer"):
        fit_lengths(built.dataset, tokenizer, TrainConfig(max_length=2))
    result = train_adapter(
        built, tiny, tmp_path / "t", TrainConfig(max_length=limit, max_steps=1), progress=False
    )
    assert result.metrics["dropped_too_long"] == fit["dropped"]


def test_bad_input_is_refused_before_training(
    function_home: Path, tiny: Path, tmp_path: Path
) -> None:
    sft = _built(function_home)
    with pytest.raises(ConfigError, match="cannot train method 'dpo'"):
        train_adapter(sft, tiny, tmp_path / "x", TrainConfig(method="dpo"), progress=False)
    with pytest.raises(ConfigError, match="not a transformers checkpoint"):
        train_adapter(sft, tmp_path, tmp_path / "x", TrainConfig(), progress=False)
    with pytest.raises(ConfigError, match="empty dataset"):
        train_adapter(sft.dataset.select([]), tiny, tmp_path / "x", TrainConfig(), progress=False)
    assert not (tmp_path / "x").exists()


def test_a_killed_training_resumes_from_its_last_checkpoint(
    function_home: Path, tiny: Path, tmp_path: Path
) -> None:
    built = _built(function_home)
    out = tmp_path / "resumable"
    first = train_adapter(
        built, tiny, out, TrainConfig(max_steps=2, batch_size=2, save_steps=2), progress=False
    )
    assert first.metrics["steps"] == 2 and (out / "checkpoints" / "checkpoint-2").is_dir()
    resumed = train_adapter(
        built, tiny, out, TrainConfig(max_steps=4, batch_size=2, save_steps=2), resume=True,
        progress=False,
    )  # fmt: skip
    assert resumed.metrics["resumed_from"].endswith("checkpoint-2")
    assert resumed.metrics["steps"] == 4
    assert [e["step"] for e in resumed.log if "loss" in e] == [3, 4]  # steps 1-2 not redone
