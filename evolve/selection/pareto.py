"""``ParetoSelector``: GEPA's per-task Pareto frontier.

For every task, the front is the set of eligible members with the best reward on it. A
member is dominated when every front it is in also holds another, undominated member;
dominated members are removed (lowest aggregate score first, one at a time, as GEPA does),
and a parent is drawn with probability proportional to the number of fronts it is in.
So a variant that alone solves one task keeps being chosen, however low its mean.

Read in gepa-ai/gepa, ``src/gepa/gepa_utils.py`` (``remove_dominated_programs``,
``select_program_candidate_from_pareto_front``) and ``src/gepa/core/state.py``; the rule
only, no code taken. One deviation, ``skip_unsolved`` (default on): tasks that no member
solves at all (best reward 0) form no front; GEPA counts them, which with a weak model
makes every member tie on most tasks and the draw nearly uniform.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from exapt.evolve.base import Candidate
from exapt.evolve.selection import eligible


@dataclass
class ParetoSelector:
    name = "pareto"
    skip_unsolved: bool = True

    def fronts(self, population: Sequence[Candidate]) -> dict[str, set[str]]:
        """Task id -> the eligible members with the best reward on that task."""
        members = eligible(population)
        tasks = sorted({t for c in members for t in c.task_scores})
        fronts: dict[str, set[str]] = {}
        for task in tasks:
            scored = [(c.task_scores[task], c.variant_id) for c in members if task in c.task_scores]
            best = max(r for r, _ in scored)
            if best <= 0 and self.skip_unsolved:
                continue
            fronts[task] = {v for r, v in scored if r == best}
        return fronts

    def undominated(self, population: Sequence[Candidate]) -> dict[str, set[str]]:
        """The fronts after removing dominated members (GEPA's order: lowest score first)."""
        fronts = self.fronts(population)
        score = {c.variant_id: c.score for c in population}
        members = sorted({v for f in fronts.values() for v in f}, key=lambda v: (score[v], v))
        dominated: set[str] = set()
        changed = True
        while changed:
            changed = False
            for y in members:
                if y in dominated:
                    continue
                others = set(members) - dominated - {y}
                if all(f & others for f in fronts.values() if y in f):
                    dominated.add(y)
                    changed = True
                    break
        return {t: f - dominated for t, f in fronts.items()}

    def weights(self, population: Sequence[Candidate]) -> dict[str, float]:
        """Each member's selection probability (0 for those on no undominated front)."""
        counts: dict[str, int] = {}
        for front in self.undominated(population).values():
            for v in front:
                counts[v] = counts.get(v, 0) + 1
        if not counts:  # nothing solved anywhere: every eligible member alike
            counts = {c.variant_id: 1 for c in eligible(population)}
        total = sum(counts.values())
        return {v: n / total for v, n in sorted(counts.items())}

    def select(self, population: Sequence[Candidate], k: int, rng: random.Random) -> list[str]:
        weights = self.weights(population)
        return rng.choices(list(weights), list(weights.values()), k=k)
