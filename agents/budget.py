"""``Budget``: the limits of one attempt, and the stop reason when one is reached.

A step is one model call. Every limit is optional (``None`` = unlimited), except that an
attempt never runs more than ``DEFAULT_MAX_STEPS`` model calls when nothing else is set, so
a model that never submits cannot loop forever.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_STEPS = 50


class Budget(BaseModel):
    """Per-attempt limits; the graph ends cleanly (``stop_reason``) when one is reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int | None = Field(default=None, gt=0, description="model calls")
    max_tokens: int | None = Field(default=None, gt=0, description="tokens in + out, all calls")
    max_cost_usd: float | None = Field(default=None, gt=0, description="USD, all calls")
    max_wall_s: float | None = Field(
        default=None, gt=0, description="seconds since the attempt started"
    )

    def tighten(self, other: Budget | None) -> Budget:
        """The stricter of the two budgets, field by field."""
        if other is None:
            return self
        merged = {}
        for field in type(self).model_fields:
            mine, theirs = getattr(self, field), getattr(other, field)
            merged[field] = (
                theirs if mine is None else mine if theirs is None else min(mine, theirs)
            )
        return Budget(**merged)

    @property
    def steps(self) -> int:
        return self.max_steps or DEFAULT_MAX_STEPS

    def stop_reason(
        self, *, steps: int, tokens: int, cost_usd: float, started: float
    ) -> str | None:
        """Why no further model call may be made (``max_steps`` ...), or None to go on."""
        if steps >= self.steps:
            return "max_steps"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return "max_tokens"
        if self.max_cost_usd is not None and cost_usd >= self.max_cost_usd:
            return "max_cost"
        if self.max_wall_s is not None and time.monotonic() - started >= self.max_wall_s:
            return "max_wall"
        return None

    def remaining_wall(self, started: float) -> float | None:
        """Seconds left before ``max_wall_s`` (None when unlimited)."""
        if self.max_wall_s is None:
            return None
        return max(0.0, self.max_wall_s - (time.monotonic() - started))
