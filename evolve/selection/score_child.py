"""``ScoreChildSelector``: the Darwin Gödel Machine's ``score_child_prop``.

P(parent i) ∝ sigmoid(steepness · (score_i − midpoint)) / (1 + children_i): good agents are
chosen more, agents that already have many children less, so the search keeps exploring.
DGM's values: steepness 10, midpoint 0.5 (read in jennyzzt/dgm, ``DGM_outer.py``,
``choose_selfimproves``; the formula only, no code taken).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from exapt.evolve.base import Candidate
from exapt.evolve.selection import eligible


@dataclass
class ScoreChildSelector:
    name = "score_child"
    steepness: float = 10.0
    midpoint: float = 0.5

    def weights(self, population: Sequence[Candidate]) -> dict[str, float]:
        """Each eligible member's selection probability."""
        members = eligible(population)
        raw = [
            1.0 / (1.0 + math.exp(-self.steepness * (c.score - self.midpoint))) / (1 + c.children)
            for c in members
        ]
        total = sum(raw)
        return {c.variant_id: w / total for c, w in zip(members, raw, strict=True)}

    def select(self, population: Sequence[Candidate], k: int, rng: random.Random) -> list[str]:
        weights = self.weights(population)
        return rng.choices(list(weights), list(weights.values()), k=k)
