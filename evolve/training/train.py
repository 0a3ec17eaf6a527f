"""LoRA training on a dataset from ``datasets.py``: TRL's ``SFTTrainer``, ``DPOTrainer`` or
``KTOTrainer`` with a peft ``LoraConfig``, on CPU or a GPU (bf16 where it is native).

``train_adapter(dataset, base, output_dir, config)``:

1. measures every row in tokens as TRL will tokenize it (``lengths.py``); ``max_length`` is
   the longest row kept, so TRL never truncates. Rows longer than the limit (``max_length``
   if given, else ``max_length_cap`` or the model's context, whichever is smaller) are
   dropped and counted in the result, or raise with ``too_long="error"``;
2. trains a LoRA adapter; the loss is on the agent's own tokens only (prompt-completion rows:
   TRL's completion-only loss; chat rows also get ``assistant_only_loss`` with the training
   template of ``templates.py``); DPO/KTO score the completions only by construction;
3. checkpoints every ``save_steps`` under ``<output_dir>/checkpoints/``; ``resume=True``
   continues from the last one (a killed training loses at most ``save_steps`` steps);
4. writes the adapter to ``<output_dir>/adapter/`` atomically (peft's files, whose
   ``base_model_name_or_path`` names ``base``) and returns a ``TrainResult``.

The trainer itself is set up in ``trainers.py``; ``TrainConfig`` is in ``config.py`` and
``fit_lengths`` in ``lengths.py`` (both re-exported here).

Defaults fit Gemma 3 270M on 2 cores (measured ~43 training tokens/s with bf16 autocast, ~35 in
fp32, r=16, batch 4).

Example:
    result = train_adapter(built, ensure_gemma_checkpoint(), run_dir / "train", TrainConfig())
    result.adapter_dir, result.metrics["loss_last"], result.metrics["tokens_per_s"]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.training.config import Method, TrainConfig
from exapt.evolve.training.datasheet import BuiltDataset
from exapt.evolve.training.lengths import fit_lengths, pretokenize
from exapt.evolve.training.trainers import LogKeeper, Progress, make_trainer


@dataclass
class TrainResult:
    """What a training produced: the adapter folder and its metrics."""

    adapter_dir: Path
    metrics: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)


_FORMAT_OF = {"sft": "sft", "dpo": "dpo", "kto": "kto"}


def train_adapter(
    data: BuiltDataset | Any,
    base: Path | str,
    output_dir: Path | str,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool | Progress = True,
) -> TrainResult:
    """Train a LoRA adapter on ``data`` (a ``BuiltDataset`` or a ``datasets.Dataset``) over the
    transformers checkpoint ``base`` (see the module docstring).

    Raises ``ConfigError`` for an empty dataset, a dataset whose format does not fit the
    method, rows too long with ``too_long="error"``, or a ``base`` that is not a checkpoint.
    """
    config = config or TrainConfig()
    base = Path(base).expanduser().resolve()
    output_dir = Path(output_dir)
    dataset = data.dataset if isinstance(data, BuiltDataset) else data
    _check(dataset, data, base, config)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    import datasets

    datasets.disable_progress_bars()  # tokenizing a few hundred rows: no bars amid ours
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset, fit = fit_lengths(dataset, tokenizer, config, _context_size(base))
    started = time.perf_counter()
    trainer, chat = make_trainer(dataset, base, output_dir, config, tokenizer, fit["max_length"])
    logger = LogKeeper(progress)
    trainer.add_callback(logger)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our own progress shows the loss
    checkpoint = _last_checkpoint(output_dir / "checkpoints") if resume else None
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    adapter_dir = _save_adapter(trainer, output_dir / "adapter")
    wall = time.perf_counter() - started
    losses = [e["loss"] for e in logger.log if "loss" in e]
    runtime = float(output.metrics.get("train_runtime") or wall)
    tokens = _trained_tokens(logger.log, fit, trainer)
    metrics = {
        "method": config.method,
        "rows": len(dataset),
        "dropped_too_long": fit["dropped"],
        "max_length": fit["max_length"],
        "dataset_tokens": fit["tokens"],
        "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "train_loss": float(output.training_loss),
        "train_tokens": tokens,
        "train_runtime_s": runtime,
        "tokens_per_s": tokens / runtime if runtime > 0 else 0.0,
        "wall_s": wall,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "assistant_only_loss": chat,
        "device": str(trainer.args.device),
        "precision": "bf16" if trainer.args.bf16 else "fp32",
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics, log=logger.log)


def _check(dataset: Any, data: Any, base: Path, config: TrainConfig) -> None:
    if not (base / "config.json").is_file():
        raise ConfigError(
            f"base model {base} is not a transformers checkpoint (no config.json)",
            hint="train on a folder written by save_pretrained (for `local`: "
            "ensure_gemma_checkpoint())",
        )
    if dataset is None or len(dataset) == 0:
        raise ConfigError("empty dataset: nothing to train on", hint="collect more attempts")
    columns = set(dataset.column_names)
    need = {"sft": {"prompt", "completion"}, "dpo": {"prompt", "chosen", "rejected"}}
    need["kto"] = {"prompt", "completion", "label"}
    missing = need[config.method] - columns
    fmt = data.format if isinstance(data, BuiltDataset) else None
    if missing or (fmt is not None and fmt != _FORMAT_OF[config.method]):
        raise ConfigError(
            f"a {fmt or 'dataset'} dataset cannot train method {config.method!r}"
            + (f" (missing columns: {', '.join(sorted(missing))})" if missing else ""),
            hint=f"build the dataset with format {_FORMAT_OF[config.method]!r}",
        )


def _context_size(base: Path) -> int | None:
    try:
        config = json.loads((base / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = config.get("text_config") or {}
    size = config.get("max_position_embeddings") or text.get("max_position_embeddings")
    return int(size) if size else None


def _trained_tokens(log: list[dict[str, Any]], fit: dict[str, Any], trainer: Any) -> float:
    """Tokens the training went through: TRL's own count when it logs one (SFT), else the
    rows' tokens times the epochs done (DPO/KTO: both sequences of a pair)."""
    counts = [e["num_tokens"] for e in log if "num_tokens" in e]
    if counts:
        return float(counts[-1])
    per_epoch = float(fit["tokens"])
    if "chosen" in trainer.train_dataset.column_names:
        per_epoch *= 2
    return per_epoch * float(trainer.state.epoch or 0.0)


def _last_checkpoint(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(folder))
    return Path(found) if found else None


def _save_adapter(trainer: Any, target: Path) -> Path:
    """peft's adapter files into ``target``, replacing an older one atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        trainer.model.save_pretrained(str(tmp))
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


__all__ = [
    "Method",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "fit_lengths",
    "pretokenize",
    "train_adapter",
]
