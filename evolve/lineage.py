"""Views of an archive's lineage: what selectors see (``candidates``), the ``best``
variant, a variant's first-parent chain and all its ancestors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from exapt.evolve.base import Candidate
from exapt.evolve.entries import ArchiveEntry

if TYPE_CHECKING:
    from exapt.evolve.archive import Archive


def candidates(archive: Archive) -> list[Candidate]:
    """Selectors' view: every entry that was scored and did not fail (``eligible``
    when accepted), with per-task selection scores and its number of children."""
    entries = [e for e in archive.entries() if e.status != "failed"]
    children: dict[str, int] = {}
    for e in entries:
        if e.parent_id is not None:
            children[e.parent_id] = children.get(e.parent_id, 0) + 1
    out = []
    for e in entries:
        scores = archive.scores(e.variant_id, "select")
        if not scores:
            continue
        out.append(
            Candidate(
                variant_id=e.variant_id,
                parent_id=e.parent_id,
                generation=e.generation,
                score=e.score,
                task_scores={t: r.reward for t, r in scores.items()},
                children=children.get(e.variant_id, 0),
                eligible=e.status == "accepted",
            )
        )
    return out


def best(archive: Archive) -> ArchiveEntry | None:
    """The accepted entry with the highest score (ties: more tasks scored, then the
    earlier one), or None if nothing was accepted."""
    accepted = [e for e in archive.entries() if e.status == "accepted"]
    if not accepted:
        return None
    return sorted(accepted, key=lambda e: (-e.score, -e.n_scored, e.generation, e.slot))[0]


def first_parents(archive: Archive, variant_id: str) -> list[str]:
    """``variant_id`` and its ancestors by first parent, oldest last."""
    chain, seen = [], set()
    current: str | None = variant_id
    while current is not None and current not in seen:
        seen.add(current)
        chain.append(current)
        current = archive.entry(current).parent_id if archive.has(current) else None
    return chain


def ancestors(archive: Archive, variant_id: str) -> set[str]:
    """Every ancestor of ``variant_id`` through all parents (merges have two)."""
    found: set[str] = set()
    stack = list(archive.entry(variant_id).parent_ids)
    while stack:
        current = stack.pop()
        if current in found or not archive.has(current):
            continue
        found.add(current)
        stack.extend(archive.entry(current).parent_ids)
    return found
