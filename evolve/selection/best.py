"""``BestSelector``: always the highest-scoring eligible member (ties: the earlier one).

(DGM's ``best`` sorts ascending and so takes the *lowest* scores — read in jennyzzt/dgm,
``DGM_outer.py``; this one takes the highest, as its name says.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from exapt.evolve.base import Candidate
from exapt.evolve.selection import eligible


@dataclass
class BestSelector:
    name = "best"

    def select(self, population: Sequence[Candidate], k: int, rng: random.Random) -> list[str]:
        members = eligible(population)
        top = min(members, key=lambda c: (-c.score, c.generation, c.variant_id))
        return [top.variant_id] * k
