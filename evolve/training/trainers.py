"""TRL's trainer for a method, set up for LoRA: ``make_trainer`` (``SFTTrainer``,
``DPOTrainer`` or ``KTOTrainer`` with a peft ``LoraConfig``; checkpoints under
``<output_dir>/checkpoints/``), and ``LogKeeper``, the callback that keeps the trainer's log
and shows progress. ``train.py`` runs them.

Precision (``TrainConfig.precision``): ``auto`` is bf16 where the hardware computes it — a
GPU that supports it (weights loaded in bf16), or a CPU with native bf16 (AVX512-BF16 / AMX:
fp32 weights, bf16 autocast, as TRL's own default) — else fp32. On the 2-core EPYC
(AVX512-BF16), bf16 autocast trained Gemma 3 270M at 43 tokens/s against 35 in fp32
(``bench/train_speed.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from exapt.errors import ConfigError
from exapt.evolve.training.config import TrainConfig
from exapt.evolve.training.lengths import pretokenize

Progress = Callable[[dict[str, Any]], None]


def make_trainer(
    dataset: Any,
    base: Path,
    output_dir: Path,
    config: TrainConfig,
    tokenizer: Any,
    max_length: int,
) -> tuple[Any, bool]:
    """The trainer of ``config.method`` over ``base`` with a LoRA, and whether it trains chat
    rows on the assistant's tokens only (``assistant_only_loss``)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no GPU", hint="use --device cpu")
    bf16 = _bf16(config.precision, cuda)
    dtype = torch.bfloat16 if bf16 and cuda else torch.float32  # CPU: fp32 weights, autocast
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


def _bf16(precision: str, cuda: bool) -> bool:
    """Whether to train in bf16 (the module docstring); ``ConfigError`` if ``bf16`` is asked
    for on hardware without it."""
    import torch

    if cuda:
        supported = torch.cuda.is_bf16_supported()
    else:
        try:
            supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch built without oneDNN
            supported = False
    if precision == "bf16" and not supported:
        where = "this GPU" if cuda else "this CPU (no AVX512-BF16 or AMX)"
        raise ConfigError(f"precision bf16 asked for, but {where} has no bf16",
                          hint="use precision fp32 or auto")  # fmt: skip
    return supported if precision == "auto" else precision == "bf16"


class LogKeeper(TrainerCallback):
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
