"""Which operator makes the next child: fixed weights, or a bandit on score gain per cost.

Both are pure functions of their rng and the archive's history (``Attempt`` rows and
entries of finished generations), so a resumed run picks what the killed one would have.

- ``FixedWeights``: operator ``o`` with probability ``w_o / Σ w``.
- ``GainBandit`` (UCB1): each use of ``o`` earns ``max(0, child − parent) / cost``, the
  child's mean reward minus its parent's on the same tasks, over the evaluations the child
  cost (at least 1); a proposal that made no new child earns 0 at cost 1. The next
  operator is the one maximising ``mean + c·sqrt(2 ln N / n_o)``; untried ones first.

Example:
    FixedWeights({"graph_options": 2, "add_exemplar": 1}).pick(history, rng)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exapt.errors import ConfigError


@dataclass(frozen=True)
class Use:
    """One past use of an operator: what it gained and what that cost."""

    operator: str
    gain: float
    cost: float


@dataclass
class FixedWeights:
    weights: Mapping[str, float]
    name: str = "weights"

    def __post_init__(self) -> None:
        if not self.weights or any(w < 0 for w in self.weights.values()):
            raise ConfigError("operator weights must be >= 0, at least one operator")
        if sum(self.weights.values()) <= 0:
            raise ConfigError("operator weights must not all be 0")

    def pick(self, history: Sequence[Use], rng: random.Random) -> str:
        names = sorted(self.weights)
        return rng.choices(names, [self.weights[n] for n in names])[0]


@dataclass
class GainBandit:
    operators: Sequence[str]
    exploration: float = 1.0
    name: str = "bandit"

    def values(self, history: Sequence[Use]) -> dict[str, float]:
        """Each operator's UCB value (``inf`` for untried ones)."""
        n_total = sum(1 for u in history if u.operator in self.operators)
        out: dict[str, float] = {}
        for op in self.operators:
            uses = [u for u in history if u.operator == op]
            if not uses:
                out[op] = math.inf
                continue
            mean = sum(u.gain / max(1.0, u.cost) for u in uses) / len(uses)
            out[op] = mean + self.exploration * math.sqrt(2 * math.log(max(1, n_total)) / len(uses))
        return out

    def pick(self, history: Sequence[Use], rng: random.Random) -> str:
        values = self.values(history)
        best = max(values.values())
        tied = sorted(op for op, v in values.items() if v == best)
        return tied[0] if best == math.inf else rng.choice(tied)


def uses(archive: Any, upto: int) -> list[Use]:
    """The operator uses recorded in ``archive`` for generations <= ``upto``, with their
    gain and cost (as the module docstring defines them)."""
    uses: list[Use] = []
    for a in archive.attempts():
        if a.generation > upto:
            continue
        if a.outcome != "child" or a.variant_id is None:
            uses.append(Use(a.operator, 0.0, 1.0))
            continue
        child = archive.entry(a.variant_id)
        mine = archive.scores(a.variant_id, "select")
        theirs = archive.scores(a.parent_id, "select")
        common = [t for t in mine if t in theirs]
        gain = 0.0
        if common and child.status != "failed":
            gain = sum(mine[t].reward - theirs[t].reward for t in common) / len(common)
        uses.append(Use(a.operator, max(0.0, gain), max(1.0, float(child.evaluations))))
    return uses


def parse_weights(text: str | Sequence[str]) -> dict[str, float]:
    """``graph_options=2,add_exemplar`` -> ``{"graph_options": 2.0, "add_exemplar": 1.0}``."""
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    weights: dict[str, float] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, _, weight = item.partition("=")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError as exc:
            raise ConfigError(f"--operators: bad weight in {item!r}", hint="NAME=WEIGHT") from exc
    if not weights:
        raise ConfigError("--operators: name at least one operator")
    return weights
