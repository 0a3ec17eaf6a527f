"""LoRA training on a dataset from ``datasets.py``: TRL's ``SFTTrainer``, ``DPOTrainer`` or
``KTOTrainer`` with a peft ``LoraConfig``, on CPU (fp32) or a GPU.

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

Defaults fit Gemma 3 270M on 2 cores (measured ~35 training tokens/s, fp32, r=16, batch 4).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from transformers import TrainerCallback

from exapt.errors import ConfigError
from exapt.evolve.training.datasets import BuiltDataset

Method = Literal["sft", "dpo", "kto"]
_DEFAULT_LR = {"sft": 2e-4, "dpo": 5e-5, "kto": 5e-5}


class TrainConfig(BaseModel):
    """Hyper-parameters of one LoRA training (saved with the policy)."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "sft"
    lora_r: int = Field(16, ge=1, le=512)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="stop after N steps (None: epochs)")
    learning_rate: float | None = Field(None, gt=0, description="None: 2e-4 SFT, 5e-5 DPO/KTO")
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int | None = Field(None, gt=0, description="None: the longest row kept")
    max_length_cap: int = Field(2048, gt=0, description="rows longer than this are too long")
    too_long: Literal["drop", "error"] = "drop"
    beta: float = Field(0.1, gt=0, description="DPO/KTO temperature")
    seed: int = 0
    save_steps: int = Field(25, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch threads (None: torch's default)")

    def lr(self) -> float:
        return self.learning_rate or _DEFAULT_LR[self.method]


@dataclass
class TrainResult:
    """What a training produced: the adapter folder and its metrics."""

    adapter_dir: Path
    metrics: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)


_FORMAT_OF = {"sft": "sft", "dpo": "dpo", "kto": "kto"}

Progress = Callable[[dict[str, Any]], None]


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
    trainer, chat = _trainer(dataset, base, output_dir, config, tokenizer, fit["max_length"])
    logger = _LogKeeper(progress)
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


def fit_lengths(
    dataset: Any, tokenizer: Any, config: TrainConfig, context: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """The rows that fit, and ``{max_length, dropped, tokens, lengths}``: ``max_length`` is the
    longest row kept, so a trainer given it truncates nothing. Too-long rows are dropped (and
    counted) or, with ``too_long="error"``, raise ``ConfigError`` naming the first."""
    from exapt.evolve.training.lengths import token_lengths

    lengths = token_lengths(dataset, tokenizer)
    limit = config.max_length or min(config.max_length_cap, context or config.max_length_cap)
    too_long = [i for i, n in enumerate(lengths) if n > limit]
    if too_long and config.too_long == "error":
        first = too_long[0]
        raise ConfigError(
            f"{len(too_long)} of {len(lengths)} rows are longer than max_length={limit} tokens "
            f"(row {first}: {lengths[first]} tokens, task {dataset[first].get('task_id')!r})",
            hint="raise --max-length, or drop them with too_long='drop'",
        )
    if too_long:
        keep = [i for i in range(len(lengths)) if i not in set(too_long)]
        if not keep:
            raise ConfigError(
                f"every row is longer than max_length={limit} tokens (shortest: {min(lengths)})",
                hint="raise --max-length",
            )
        dataset = dataset.select(keep)
        lengths = [lengths[i] for i in keep]
    return dataset, {
        "max_length": max(lengths),
        "dropped": len(too_long),
        "tokens": sum(lengths),
        "lengths": lengths,
    }


def _trainer(
    dataset: Any,
    base: Path,
    output_dir: Path,
    config: TrainConfig,
    tokenizer: Any,
    max_length: int,
) -> tuple[Any, bool]:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no GPU", hint="use --device cpu")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )
    common: dict[str, Any] = {
        "output_dir": str(output_dir / "checkpoints"),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.lr(),
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 2,
        "report_to": [],
        "disable_tqdm": True,
        "seed": config.seed,
        "use_cpu": not cuda,
        "bf16": bf16,
        "dataloader_num_workers": 0,
        "max_length": max_length,
    }
    chat = isinstance(dataset[0]["prompt"], list)
    if config.method == "sft":
        from trl import SFTConfig, SFTTrainer

        from exapt.evolve.training.templates import training_template

        marked = training_template(tokenizer.chat_template) if chat else None
        if marked is not None:
            tokenizer.chat_template = marked
        if not chat:
            dataset = pretokenize(dataset, tokenizer)
        args = SFTConfig(
            **common, completion_only_loss=True, assistant_only_loss=marked is not None
        )
        trainer: Any = SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        return trainer, marked is not None
    if config.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=config.beta),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        return trainer, False
    from trl import KTOConfig, KTOTrainer

    trainer = KTOTrainer(
        model=model,
        args=KTOConfig(**common, beta=config.beta),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return trainer, False


def pretokenize(dataset: Any, tokenizer: Any) -> Any:
    """Plain prompt-completion rows as ``input_ids`` + ``completion_mask`` (TRL trains
    tokenized rows as they are), prompt and completion tokenized apart (``text_ids``)."""
    from exapt.evolve.training.lengths import text_ids

    def tokenize(row: dict[str, Any]) -> dict[str, Any]:
        ids, mask = text_ids(row["prompt"], row["completion"], tokenizer)
        return {"input_ids": ids, "completion_mask": mask}

    return dataset.map(tokenize, remove_columns=["prompt", "completion"])


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


class _LogKeeper(TrainerCallback):
    """Keeps the trainer's log, and draws a rich progress bar (or calls a function with each
    log entry)."""

    def __init__(self, progress: bool | Progress) -> None:
        self.log: list[dict[str, Any]] = []
        self._notify = progress if callable(progress) else None
        self._show = progress is True
        self._bar: Any = None
        self._task: Any = None
        self._started = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.perf_counter()
        if self._show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=state.max_steps, stats="")
            self._bar.update(self._task, completed=state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        entry = {**(logs or {}), "step": state.global_step}
        self.log.append(entry)
        if self._notify is not None:
            self._notify(entry)
        if self._bar is not None and "loss" in entry:
            elapsed = time.perf_counter() - self._started
            tokens = entry.get("num_tokens")
            rate = f"  {tokens / elapsed:,.0f} tok/s" if tokens and elapsed > 0 else ""
            stats = f"loss {entry['loss']:.4f}  epoch {entry.get('epoch', 0):.2f}{rate}"
            self._bar.update(self._task, stats=stats)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
