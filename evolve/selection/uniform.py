"""``RandomSelector``: every eligible member equally likely (a baseline)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from exapt.evolve.base import Candidate
from exapt.evolve.selection import eligible


@dataclass
class RandomSelector:
    name = "random"

    def select(self, population: Sequence[Candidate], k: int, rng: random.Random) -> list[str]:
        return [c.variant_id for c in rng.choices(eligible(population), k=k)]
