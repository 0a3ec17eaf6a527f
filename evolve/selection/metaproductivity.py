"""``MetaproductivitySelector``: the Huxley-Gödel Machine's clade metaproductivity with
Thompson sampling.

A parent is judged by its clade: its own per-task rewards plus those of all its
descendants. Its own count is capped at ``n_pseudo`` (beyond that, ``n_pseudo`` copies of
its mean), so a much-evaluated node does not drown its descendants. Each eligible node
draws θ ~ Beta(1 + Σ rewards, 1 + n − Σ rewards) over its clade, and the largest θ wins;
HGM expands only nodes with a positive mean (``require_positive``; when none has one,
every eligible node is a candidate).

Read in metauto-ai/HGM, ``hgm.py`` (``TS_sample``, ``expand``) and ``tree.py``
(``get_decendant_evals``, ``get_pseudo_decendant_evals``); the rule only, no code taken.
HGM's optional "cool-down" (sharpening the Beta as the evaluation budget runs out) is
not implemented.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from exapt.evolve.base import Candidate
from exapt.evolve.selection import eligible


@dataclass
class MetaproductivitySelector:
    name = "metaproductivity"
    n_pseudo: int = 10
    require_positive: bool = True

    def clade_evals(self, population: Sequence[Candidate]) -> dict[str, list[float]]:
        """Eligible node -> the rewards of its clade (own capped at ``n_pseudo``)."""
        children: dict[str, list[Candidate]] = {}
        for c in population:
            if c.parent_id is not None:
                children.setdefault(c.parent_id, []).append(c)
        out: dict[str, list[float]] = {}
        for node in eligible(population):
            own = list(node.task_scores.values())
            if len(own) >= self.n_pseudo:
                own = [sum(own) / len(own)] * self.n_pseudo
            evals = list(own)
            stack = list(children.get(node.variant_id, []))
            seen: set[str] = set()
            while stack:
                child = stack.pop()
                if child.variant_id in seen:
                    continue
                seen.add(child.variant_id)
                evals.extend(child.task_scores.values())
                stack.extend(children.get(child.variant_id, []))
            out[node.variant_id] = evals
        return out

    def beta_params(self, population: Sequence[Candidate]) -> dict[str, tuple[float, float]]:
        """Candidate node -> (alpha, beta) of its Thompson-sampling posterior."""
        members = {c.variant_id: c for c in eligible(population)}
        clades = self.clade_evals(population)
        if self.require_positive:
            positive = {v: e for v, e in clades.items() if members[v].score > 0}
            clades = positive or clades
        return {v: (1.0 + sum(e), 1.0 + len(e) - sum(e)) for v, e in sorted(clades.items())}

    def select(self, population: Sequence[Candidate], k: int, rng: random.Random) -> list[str]:
        params = self.beta_params(population)
        chosen = []
        for _ in range(k):
            draws = {v: rng.betavariate(a, b) for v, (a, b) in params.items()}
            chosen.append(max(draws, key=lambda v: (draws[v], v)))
        return chosen
