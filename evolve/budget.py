"""Budgets of an evolution run: ``BudgetGate`` (what the evaluator asks before starting an
attempt: USD, tokens, hours, evaluations of the whole run, across sessions) and the
``EvolveProgress`` snapshot shown while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exapt.evolve.base import Gate

if TYPE_CHECKING:
    from exapt.evolve.loop import Evolution


@dataclass
class EvolveProgress:
    generation: int
    generations: int
    archive_size: int
    best_score: float
    evaluations: int
    cached: int
    cost_usd: float
    tokens: int
    elapsed_s: float
    note: str = ""


class BudgetGate(Gate):
    """Open while every budget of the run has some left (see ``Evolution``)."""

    def __init__(self, evolution: Evolution) -> None:
        self.evo = evolution

    def reason(self) -> str | None:
        c, spend = self.evo.config, self.evo.archive.spend()
        hours = self.evo.elapsed() / 3600
        checks = [
            (c.budget_usd, spend["cost_usd"], "budget_usd", f"${spend['cost_usd']:.4f}"),
            (c.max_tokens, spend["tokens"], "max_tokens", f"{spend['tokens']} tokens"),
            (c.max_hours, hours, "max_hours", f"{hours:.2f} h"),
            (c.max_evals, spend["evaluations"], "max_evals", f"{spend['evaluations']} evals"),
        ]
        for limit, used, name, shown in checks:
            if limit is not None and used >= limit:
                return f"budget: {name}={limit} reached ({shown} used)"
        return None

    def open(self) -> bool:
        if self.evo.testing:
            return True
        reason = self.reason()
        if reason is not None:
            self.evo.stop(reason)
        return reason is None

    def allowance(self) -> int | None:
        limit = self.evo.config.max_evals
        if limit is None or self.evo.testing:
            return None
        return max(0, limit - self.evo.archive.spend()["evaluations"])

    def attempt_budget(self) -> Any:
        from exapt.agents.budget import Budget

        if self.evo.testing:  # the held-out scoring is outside the budgets
            return Budget()
        c, spend = self.evo.config, self.evo.archive.spend()
        left_s = c.max_hours * 3600 - self.evo.elapsed() if c.max_hours else None
        return Budget(
            max_tokens=max(1, c.max_tokens - spend["tokens"]) if c.max_tokens else None,
            max_cost_usd=max(1e-9, c.budget_usd - spend["cost_usd"]) if c.budget_usd else None,
            max_wall_s=max(1.0, left_s) if left_s is not None else None,
        )
