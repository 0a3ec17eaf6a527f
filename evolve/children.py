"""The mutate step of a generation slot: ``make_child`` asks an operator for a proposal on the
parent (operators picked by the run's choice policy, tried in turn until one proposes; the
policy child's ``finetune`` operator alone), drops it if it is not novel, and writes the child
to the archive (``pending``, or ``failed`` if its spec does not load) with the slot's
``Attempt``, whose outcome says what became of the slot.

A free proposal (no mutator call, no other parent) that is a duplicate walks on: the same
operator moves again from what it proposed, up to ``WALK_STEPS`` more times, and the first
novel variant becomes the child of the slot's parent (its description lists every move).
LLM-free operators have small neighbourhoods (one rung of one knob): without the walk a
parent whose neighbours are all in the archive wastes every slot it is drawn for.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from exapt.errors import ConfigError
from exapt.evolve.archive import ArchiveEntry, Attempt
from exapt.evolve.base import Operator, Proposal
from exapt.evolve.choice import Use
from exapt.evolve.variant import Variant

#: How many more moves a free duplicate proposal may make before the slot is a duplicate.
WALK_STEPS = 4

if TYPE_CHECKING:
    from exapt.evolve.loop import Evolution


def make_child(
    evo: Evolution, g: int, slot: int, parent_id: str, history: list[Use],
    forced: Operator | None = None,
) -> None:  # fmt: skip
    """Fill slot ``slot`` of generation ``g``: a proposal on ``parent_id`` (by ``forced``, or
    operators picked in turn until one proposes), kept as a child if novel; the attempt is
    recorded either way. A budget closed meanwhile keeps nothing (the slot is redone)."""
    parent = evo.archive.variant(parent_id)
    rng = random.Random(f"{evo.config.seed}:mutate:{g}:{slot}")
    proposal: Proposal | None = None
    tried: list[str] = []
    cost, tokens = 0.0, 0
    for _ in range(1 if forced else 2 * len(evo.operators)):
        name = forced.name if forced else evo.choice.pick(history, rng)
        operator = forced or evo.operators[name]
        proposal = operator.propose(parent, evo.ctx, rng)
        skip_cost = getattr(operator, "skip_cost", (0.0, 0))
        if proposal is not None:
            break
        cost, tokens = cost + skip_cost[0], tokens + skip_cost[1]
        tried.append(f"{name}: {getattr(operator, 'last_skip', None) or 'not applicable'}")
        if evo.status != "running":
            break
    if evo.status != "running":
        # A budget closed during the mutation (its feedback attempts were cut short): keep
        # nothing, so a resumed run redoes this slot as an uninterrupted one would.
        return
    attempt = Attempt(generation=g, slot=slot, parent_id=parent_id, operator=name,
                      outcome="no-proposal", reason="; ".join(tried) or None,
                      cost_usd=cost, tokens=tokens)  # fmt: skip
    if proposal is None:
        evo.archive.record_attempt(attempt)
        return
    attempt.cost_usd += proposal.cost_usd
    attempt.tokens += proposal.tokens
    members = [evo.archive.variant(e.variant_id) for e in evo.archive.entries()]
    proposal, verdict = _walk(proposal, operator, members, evo, rng)
    if verdict is not None:
        attempt.outcome, attempt.variant_id = verdict
        evo.archive.record_attempt(attempt)
        return
    entry = ArchiveEntry(
        variant_id=proposal.variant.id,
        parent_ids=[parent_id, *proposal.other_parents],
        generation=g,
        slot=slot,
        operator=proposal.operator,
        description=proposal.description,
        mutation_cost_usd=proposal.cost_usd,
        change_text=proposal.changed_text,
        metadata=proposal.metadata,
    )
    try:
        proposal.variant.load_spec()
    except ConfigError as exc:
        entry.status, entry.reason = "failed", f"load: {exc.message}"
    evo.archive.add(entry, proposal.variant)
    attempt.outcome, attempt.variant_id = "child", proposal.variant.id
    evo.archive.record_attempt(attempt)


def _walk(
    proposal: Proposal, operator: Operator, members: list[Variant], evo: Evolution,
    rng: random.Random,
) -> tuple[Proposal, tuple[str, str] | None]:  # fmt: skip
    """``proposal`` and its novelty verdict, after walking on from a free duplicate (the
    module docstring): the first novel step, or the original proposal's verdict."""
    verdict = evo.novelty.check(proposal.variant, members)
    if verdict is None or not _free(proposal):
        return proposal, verdict
    current, moves = proposal, [proposal.description]
    for _ in range(WALK_STEPS):
        step = operator.propose(current.variant, evo.ctx, rng)
        if step is None or not _free(step):
            break
        current = step
        moves.append(step.description)
        if evo.novelty.check(step.variant, members) is None:
            metadata = {**proposal.metadata, **step.metadata, "walk": len(moves)}
            walked = Proposal(
                variant=step.variant, operator=proposal.operator,
                description=" | then ".join(moves), changed_text=step.changed_text,
                metadata=metadata,
            )  # fmt: skip
            return walked, None
    return proposal, verdict


def _free(proposal: Proposal) -> bool:
    """No mutator call paid for it and no second parent: walking on from it costs nothing."""
    return not (proposal.cost_usd or proposal.tokens or proposal.other_parents)
