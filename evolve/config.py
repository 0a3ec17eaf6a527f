"""``EvolveConfig``: what an evolution run was asked to do, saved in the archive's meta.

Every field has a default except ``suite`` and ``archive``; ``--resume`` reloads the saved
config and lets only the budgets, ``generations``, the executor and ``workers`` change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exapt.errors import ConfigError

CONFIG_SCHEMA = 1
#: The operators used when none are named: all LLM-free, so the embedded model suffices.
DEFAULT_OPERATORS = {"graph_options": 2.0, "add_exemplar": 2.0, "prune_exemplar": 0.5,
                     "merge": 1.0}  # fmt: skip
#: What ``--resume`` may change.
RESUMABLE = ("generations", "budget_usd", "max_tokens", "max_hours", "max_evals", "executor",
             "workers", "final_test")  # fmt: skip


class EvolveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(default=CONFIG_SCHEMA, alias="schema")
    suite: str
    archive: str
    seed_agent: str | None = Field(None, description="spec, built-in name or variant folder")
    model: str = "local"
    api_base: str | None = None
    mutator_model: str | None = Field(None, description="None = the evaluated model")
    mutator_api_base: str | None = None
    mutator_archive: str | None = Field(
        None, description="archive of improvers for self_modify, judged by their children"
    )
    operators: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_OPERATORS))
    operator_choice: str = "weights"
    selection: str = "score_child"
    children: int = Field(2, ge=1, description="children per generation")
    generations: int = Field(5, ge=0)
    select_split: str = "dev"
    feedback_split: str = "train"
    test_split: str = "test"
    select_limit: int | None = Field(None, gt=0)
    test_limit: int | None = Field(None, gt=0)
    feedback_tasks: int = Field(4, ge=1, description="feedback tasks run per parent")
    harvest: int = Field(0, ge=0, description="feedback tasks the seed runs on at the start")
    stages: str = "1,10,all"
    thresholds: str = "parent"
    min_solved: int = Field(0, ge=0, description="tasks a child must pass at each gate")
    parents: Literal["accepted", "valid"] = Field(
        "accepted", description="who may be a parent: accepted children, or every valid one "
        "(accepted or rejected at a gate, as the DGM keeps stepping stones)",
    )  # fmt: skip
    seed: int = 0
    sandbox: str | None = None
    executor: str = "local"
    workers: int | None = Field(None, gt=0)
    budget_usd: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    max_hours: float | None = Field(None, gt=0)
    max_evals: int | None = Field(None, gt=0)
    job_timeout_s: float = Field(1800.0, gt=0)
    novelty_threshold: float = Field(0.985, gt=0, le=1)
    embedder: str | None = "minilm"
    final_test: bool = True
    finetune_every: int | None = Field(
        None, ge=1, description="every N generations a child whose model is a LoRA policy "
        "trained on the archive's trusted passes (exapt.evolve.finetune)",
    )  # fmt: skip
    finetune_method: str = Field("sft", description="sft | rerest | dpo | kto")

    @field_validator("operator_choice")
    @classmethod
    def _choice(cls, value: str) -> str:
        if value not in ("weights", "bandit"):
            raise ValueError("use weights or bandit")
        return value

    @field_validator("select_split", "feedback_split", "test_split")
    @classmethod
    def _split(cls, value: str) -> str:
        if value not in ("train", "dev", "test"):
            raise ValueError("use train, dev or test")
        return value


def make_config(**values: Any) -> EvolveConfig:
    """An ``EvolveConfig`` from CLI values; ``ConfigError`` naming the bad option."""
    try:
        config = EvolveConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"bad evolve option: {problems}") from exc
    splits = {config.select_split, config.feedback_split, config.test_split}
    if len(splits) != 3:
        raise ConfigError(
            "the selection, feedback and test splits must be three different splits",
            hint="e.g. --select-split dev (feedback on train, report on test)",
        )
    return config
