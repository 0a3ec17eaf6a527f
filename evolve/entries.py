"""The records of an archive: ``ArchiveEntry`` (one variant and its fate) and ``Attempt``
(what one generation slot proposed), versioned by ``schema``."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from exapt.evolve.base import EVOLVE_SCHEMA

STATUSES = ("pending", "evaluating", "accepted", "rejected", "failed")


class ArchiveEntry(BaseModel):
    """One variant in the archive (see the module docstring for ``status``). ``stage``:
    the last stage it completed (-1 none, 0 the smoke task, ...); ``score`` and
    ``n_scored``: its mean reward and count over the selection tasks it was scored on."""

    model_config = ConfigDict(populate_by_name=True)

    schema_version: int = Field(default=EVOLVE_SCHEMA, alias="schema")
    variant_id: str
    parent_ids: list[str] = Field(default_factory=list)
    generation: int = 0
    slot: int = 0
    operator: str = "seed"
    description: str = ""
    status: str = "pending"
    reason: str | None = None
    stage: int = -1
    score: float = 0.0
    n_scored: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    evaluations: int = 0
    mutation_cost_usd: float = 0.0
    change_text: str | None = None
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def parent_id(self) -> str | None:
        return self.parent_ids[0] if self.parent_ids else None


class Attempt(BaseModel):
    """What one (generation, slot) of a run did: ``outcome`` is ``child`` (a new entry),
    ``duplicate`` / ``near-duplicate`` (of ``variant_id``, not evaluated again) or
    ``no-proposal`` (the operator did not apply; ``reason`` says why)."""

    generation: int
    slot: int
    parent_id: str
    operator: str
    outcome: str
    variant_id: str | None = None
    reason: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    created: float = Field(default_factory=time.time)
