"""What an ``exapt improve`` run is asked for and what it trains on: ``ImproveConfig`` (saved in
``improve.json``; ``make_improve_config`` from CLI values), the ``METHODS`` (dataset format,
Re-ReST repairs, trainer of each), ``base_checkpoint`` (the transformers checkpoint a LoRA
trains on) and ``serve_model`` (the model an evaluation of the loop uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exapt.agents.models.base import Model
from exapt.engine.resolve import resolve_model_name
from exapt.errors import ConfigError
from exapt.evolve.training.config import TrainConfig

IMPROVE_SCHEMA = 1
#: method -> (dataset format, Re-ReST repairs, trainer)
METHODS: dict[str, tuple[str, bool, str]] = {
    "sft": ("sft", False, "sft"),
    "rerest": ("sft", True, "sft"),
    "dpo": ("dpo", True, "dpo"),
    "kto": ("kto", False, "kto"),
}


class ImproveConfig(BaseModel):
    """What ``exapt improve`` was asked for; saved in ``improve.json``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(IMPROVE_SCHEMA, alias="schema")
    suite: str
    model: str = Field("local", description="the base: local | local:PATH (a checkpoint)")
    rounds: int = Field(2, ge=1)
    samples: int = Field(4, ge=1, description="attempts per train task per round")
    method: Literal["sft", "rerest", "dpo", "kto"] = "sft"
    temperature: float = Field(0.8, gt=0, le=2.0, description="of the collection attempts")
    train_split: Literal["train", "dev"] = "train"
    gate_split: Literal["train", "dev", "test"] = "dev"
    report_split: Literal["dev", "test"] | None = "test"
    limit: int | None = Field(None, gt=0, description="first N tasks of each split")
    workers: int = Field(4, ge=1)
    agent: str | None = Field(None, description="spec YAML or built-in; None: the default")
    sandbox: str | None = None
    line: str | None = Field(None, description="the policies' line (default: the run id)")
    min_gain: float = Field(0.0, description="held-out gain a policy needs to be promoted")
    accumulate: bool = Field(True, description="train on every round's collection so far")
    best_of: int = Field(4, ge=1)
    max_per_task: int = Field(8, ge=1)
    training: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _held_out(self) -> ImproveConfig:
        if self.gate_split == self.train_split:
            raise ValueError(f"gate split {self.gate_split!r} is the train split")
        if self.report_split in (self.train_split, self.gate_split):
            raise ValueError(f"report split {self.report_split!r} is also trained or gated on")
        return self


def make_improve_config(**values: Any) -> ImproveConfig:
    """An ``ImproveConfig`` from CLI values; a bad value is a ``ConfigError`` naming it."""
    try:
        return ImproveConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"bad improve option: {problems}") from exc


def serve_model(name: str) -> Model:
    """The model a loop evaluates: ``policy:NAME`` as resolved everywhere; the base on vLLM
    too when policies are served by vLLM (``EXAPT_POLICY_ENGINE``), else as resolved."""
    from exapt.agents.models.policy import policy_engine

    local = resolve_model_name(name, None)  # starts nothing
    if name.startswith("policy:") or policy_engine() != "vllm":
        return local
    from exapt.agents.models.vllm import VLLMEngine

    model: Model = VLLMEngine.shared(base_checkpoint(name)).model(None, is_base=local.is_base)
    model.name = name
    return model


def base_checkpoint(model: str) -> Path:
    """The transformers checkpoint a LoRA over ``model`` trains on: the converted Gemma for
    ``local`` (converted once), PATH for ``local:PATH``. Other models cannot be trained here."""
    if model == "local":
        try:
            from exapt.agents.models.gemma import ensure_gemma_checkpoint  # the llama engine's
        except ImportError:
            from exapt.agents.models.local import ensure_gemma_checkpoint
        return Path(ensure_gemma_checkpoint())
    if model.startswith("local:") and "+adapter:" not in model:
        path = Path(model.partition(":")[2]).expanduser().resolve()
        if (path / "config.json").is_file():
            return path
        raise ConfigError(
            f"--model {model}: {path} is not a transformers checkpoint (no config.json); "
            "LoRA training needs one",
            hint="give the folder written by save_pretrained (a .gguf file cannot be trained)",
        )
    raise ConfigError(
        f"--model {model!r}: exapt improve trains LoRA adapters over a local base model",
        hint="use --model local or --model local:PATH (a transformers checkpoint)",
    )
