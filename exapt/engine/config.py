"""``RunConfig``: what a user asked ``exapt run`` for, saved as ``config.json``; and
``RunBudget``, the limits of one evaluation as a whole."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exapt.errors import ConfigError

CONFIG_SCHEMA = 1
#: Default number of parallel attempts: the local server batches concurrent requests and 2–4
#: cores give most of the batching gain at 4; hosted providers take 8 parallel requests
#: easily; a scripted model answers in order, so one worker keeps its script deterministic.
DEFAULT_WORKERS = {"local": 4, "scripted": 1, "remote": 8}


class RunConfig(BaseModel):
    """What the user asked for; saved as ``config.json`` with every default resolved."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(CONFIG_SCHEMA, alias="schema")
    suite: str
    split: str = "all"
    limit: int | None = Field(None, gt=0, description="first N tasks after the split")
    task: list[str] | None = Field(None, description="only these task ids (after the split)")
    model: str = "local"
    api_base: str | None = None
    agent: str | None = Field(None, description="spec YAML path or built-in name; None = default")
    sandbox: str | None = Field(None, description="backend; None = the best available")
    workers: int | None = Field(None, gt=0)
    trials: int = Field(1, ge=1)
    memory: bool | None = Field(None, description="None = on when long-term memory is installed")
    memory_url: str | None = Field(None, description="Chroma server URL; None = the home folder")
    max_cost_usd: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    max_wall_s: float | None = Field(None, gt=0)

    def budget(self) -> RunBudget:
        return RunBudget(self.max_cost_usd, self.max_tokens, self.max_wall_s)


@dataclass(frozen=True)
class RunBudget:
    """Limits of a whole evaluation; when one is reached no new attempt starts (running
    ones finish). ``None`` = unlimited. With ``cap_attempts`` (the default, ``exapt run``)
    each attempt is also capped at what is left, so a run never overspends; without it
    (evolve, which caches every result as the variant's own) an attempt runs to its spec's
    own limits, so that a result never depends on when in the run it started."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_wall_s: float | None = None
    cap_attempts: bool = True

    def reached(self, tokens: int, cost_usd: float, wall_s: float) -> str | None:
        """``budget: NAME=LIMIT reached (USED used)`` for the first limit reached, or None."""
        hits = [
            (self.max_cost_usd, cost_usd, "max_cost_usd", f"${cost_usd:.4f}"),
            (self.max_tokens, tokens, "max_tokens", f"{tokens} tokens"),
            (self.max_wall_s, wall_s, "max_wall_s", f"{wall_s:.0f} s"),
        ]
        for limit, used, name, shown in hits:
            if limit is not None and used >= limit:
                return f"budget: {name}={limit} reached ({shown} used)"
        return None


def make_config(**values: Any) -> RunConfig:
    """A ``RunConfig`` from CLI values; an out-of-range value is a ``ConfigError`` naming it."""
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"bad run option: {problems}") from exc


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxx`` (UTC, 4 random hex digits): sortable, unique enough."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def model_kind(name: str) -> str:
    """``local``, ``scripted`` or ``remote``: what decides the default number of workers."""
    if name == "local" or name.startswith("local:"):
        return "local"
    if name.startswith("scripted:"):
        return "scripted"
    return "remote"
