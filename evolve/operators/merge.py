"""``MergeOperator``: recombine two archive members against their common ancestor (GEPA).

The parent and another eligible member that is neither its ancestor nor its descendant
share an ancestor; component by component (``Variant.components``: each prompt, each
graph option, each spec field, each other file):

- one side equals the ancestor, the other changed it -> take the change;
- both changed it differently -> take the higher-scoring side's (a tie: the rng);
- both agree -> keep it.

The nearest common ancestor (latest generation) that differs usefully is used: at least
one component where exactly one side kept the ancestor's value. Read in gepa-ai/gepa,
``src/gepa/proposer/merge.py``; the rule only, no code taken.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from exapt.errors import ConfigError
from exapt.evolve.base import Candidate, MutationContext, Proposal
from exapt.evolve.variant import Variant, from_components


@dataclass
class MergeOperator:
    name = "merge"
    last_skip: str | None = None

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        members = {c.variant_id: c for c in ctx.population() if c.eligible}
        mine = set(ctx.ancestors(parent.id))
        options: list[tuple[Candidate, str]] = []
        for other in members.values():
            if other.variant_id == parent.id or other.variant_id in mine:
                continue
            theirs = set(ctx.ancestors(other.variant_id))
            if parent.id in theirs:
                continue
            # Ancestors were parents, so they are members (accepted) themselves.
            common = [members[a] for a in mine & theirs if a in members]
            useful = [a for a in common if _useful(ctx, parent, other.variant_id, a.variant_id)]
            if useful:
                nearest = max(useful, key=lambda a: (a.generation, a.variant_id))
                options.append((other, nearest.variant_id))
        if not options:
            self.last_skip = "no other member shares an ancestor with a component to merge"
            return None
        other, ancestor = rng.choice(sorted(options, key=lambda o: o[0].variant_id))
        mine_score = members[parent.id].score if parent.id in members else 0.0
        parts, taken = merge_components(
            parent.components(),
            ctx.variant(other.variant_id).components(),
            ctx.variant(ancestor).components(),
            prefer_other=other.score > mine_score
            or (other.score == mine_score and rng.random() < 0.5),
        )
        try:
            child = from_components(parent, parts)
        except ConfigError as exc:
            self.last_skip = f"merged components do not make a variant: {exc.message}"
            return None
        if child.id in (parent.id, other.variant_id):
            self.last_skip = "the merge gives back one of its parents"
            return None
        return Proposal(
            variant=child,
            operator=self.name,
            description=f"merge with {other.variant_id} over ancestor {ancestor}: "
            + ", ".join(taken),
            other_parents=[other.variant_id],
            metadata={"other": other.variant_id, "ancestor": ancestor, "taken": taken},
        )


def _useful(ctx: MutationContext, parent: Variant, other: str, ancestor: str) -> bool:
    a, o, anc = (parent.components(), ctx.variant(other).components(),
                 ctx.variant(ancestor).components())  # fmt: skip
    return any(
        (a.get(k) == anc.get(k)) != (o.get(k) == anc.get(k)) for k in set(a) | set(o) | set(anc)
    )


def merge_components(
    mine: dict[str, str], theirs: dict[str, str], ancestor: dict[str, str], *, prefer_other: bool
) -> tuple[dict[str, str], list[str]]:
    """The merged components and the names taken from ``theirs``."""
    merged: dict[str, str] = {}
    taken: list[str] = []
    for name in sorted(set(mine) | set(theirs) | set(ancestor)):
        a, o, anc = mine.get(name), theirs.get(name), ancestor.get(name)
        if a == o:
            value = a
        elif a == anc:
            value = o
            taken.append(name)
        elif o == anc:
            value = a
        else:
            value = o if prefer_other else a
            if prefer_other:
                taken.append(name)
        if value is not None:
            merged[name] = value
    return merged, taken
