"""Parent selection policies, one small class each, chosen by short name.

``score_child`` (DGM), ``metaproductivity`` (HGM), ``pareto`` (GEPA), ``best``, ``random``;
any other name is a dotted path ``module:Class``.

Example:
    selector = make_selector("score_child")
    parents = selector.select(archive.candidates(), k=2, rng=random.Random(0))
"""

from __future__ import annotations

from typing import Any

from exapt.evolve.base import Selector
from exapt.registry import resolve

KNOWN_SELECTORS: dict[str, str] = {
    "score_child": "exapt.evolve.selection.score_child:ScoreChildSelector",
    "metaproductivity": "exapt.evolve.selection.metaproductivity:MetaproductivitySelector",
    "pareto": "exapt.evolve.selection.pareto:ParetoSelector",
    "best": "exapt.evolve.selection.best:BestSelector",
    "random": "exapt.evolve.selection.uniform:RandomSelector",
}


def make_selector(name: str, **options: Any) -> Selector:
    """The selector called ``name`` (``ConfigError`` lists the valid names)."""
    selector: Selector = resolve("selection policy", name, KNOWN_SELECTORS)(**options)
    return selector


def eligible(population: Any) -> list[Any]:
    """The members that may be parents; ``ValueError`` if there is none."""
    members = [c for c in population if c.eligible]
    if not members:
        raise ValueError("no eligible parent in the archive (nothing accepted yet)")
    return members
