"""The typed configs of self-training: ``DatasetConfig`` (what goes into a training set, see
``datasets.py``) and ``TrainConfig`` (the hyper-parameters of one LoRA training, see
``train.py``; saved with the policy). Both are pydantic models that forbid unknown keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Format = Literal["sft", "dpo", "kto"]
Method = Literal["sft", "dpo", "kto"]
_PROPER_SPLITS = ("train", "dev", "test")
_DEFAULT_LR = {"sft": 2e-4, "dpo": 5e-5, "kto": 5e-5}


class DatasetConfig(BaseModel):
    """What goes into a training set (see ``datasets.py``'s module docstring)."""

    model_config = ConfigDict(extra="forbid")

    format: Format = "sft"
    repairs: bool = Field(False, description="add Re-ReST repairs of failed attempts")
    splits: list[str] = Field(default_factory=lambda: ["train"])
    runs: list[str] | None = Field(None, description="run ids to read (None: every run)")
    models: list[str] | None = Field(None, description="only attempts made by these models")
    kind: Literal["auto", "chat", "text"] = Field(
        "auto", description="chat calls, completion calls, or whichever the attempts hold"
    )
    best_of: int | None = Field(4, ge=1, description="passed attempts kept per task")
    max_per_task: int | None = Field(32, ge=1, description="rows kept per task")
    pairs_per_prompt: int = Field(4, ge=1, description="DPO pairs per prompt")
    dedupe: bool = True

    @field_validator("splits")
    @classmethod
    def _known_splits(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for name in value:
            if name == "all":  # never the test split unless it is named
                out.extend(s for s in ("train", "dev") if s not in out)
            elif name in _PROPER_SPLITS:
                if name not in out:
                    out.append(name)
            else:
                raise ValueError(f"unknown split {name!r}; use train, dev, test or all")
        if not out:
            raise ValueError("no split given")
        return out


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
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 where the GPU or CPU computes it natively, else fp32"
    )

    def lr(self) -> float:
        return self.learning_rate or _DEFAULT_LR[self.method]
