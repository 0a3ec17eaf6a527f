"""Staged evaluation of a generation's children and the verdict after each stage
(``staged.py`` holds the plan and its gates): ``evaluate_staged`` scores every child still
alive on a stage's tasks together, so the executor stays busy, then ``judge`` fails a child
with an error, accepts it after the last stage, and otherwise lets it go on only if it passes
the stage's gate (and ``--min-solved``); a child not fully scored (a budget stop) is judged
on resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exapt.evolve.archive import ArchiveEntry
from exapt.evolve.staged import threshold

if TYPE_CHECKING:
    from exapt.evolve.loop import Evolution


def evaluate_staged(evo: Evolution, children: list[ArchiveEntry]) -> None:
    """Score the ``children`` of a generation stage by stage, all of a stage together, and
    judge each after each stage; returns early when the run stops (a budget)."""
    alive = {e.variant_id: e for e in children}
    for stage in range(evo.plan.last + 1):
        todo = [e for e in alive.values() if e.stage < stage]
        if not todo:
            continue
        for e in todo:
            if e.status == "pending":
                alive[e.variant_id] = evo.archive.update(e.variant_id, status="evaluating")
        ids = (
            evo.order_ids[: evo.plan.sizes[0]]
            if stage == 0
            else evo.plan.tasks(evo.order_ids, stage)
        )
        tasks = [t for t in evo.order if t.id in set(ids)]
        variants = [evo.archive.variant(e.variant_id) for e in todo]
        evo.score_many(variants, tasks)
        if evo.status != "running":
            return
        for e in todo:
            verdict = judge(evo, e, stage, ids)
            alive[e.variant_id] = verdict
            if verdict.status != "evaluating":
                del alive[e.variant_id]


def judge(evo: Evolution, entry: ArchiveEntry, stage: int, ids: list[str]) -> ArchiveEntry:
    """The entry after ``stage`` (scored on ``ids``): failed, rejected, accepted, or on to the
    next stage; unchanged while some of its scores are missing."""
    scores = evo.archive.scores(entry.variant_id, "select")
    errors = [scores[t].error for t in ids if t in scores and scores[t].error]
    if errors:
        return evo.archive.update(entry.variant_id, status="failed", reason=errors[0])
    if any(t not in scores for t in ids):  # not all run (a budget stop): judged on resume
        return entry
    mean = sum(scores[t].reward for t in ids) / len(ids)
    parent = evo.archive.scores(entry.parent_id, "select") if entry.parent_id else {}
    paired = [parent[t].reward for t in ids if t in parent]
    parent_mean = sum(paired) / len(paired) if paired else None
    if stage == evo.plan.last:
        return evo.archive.update(entry.variant_id, status="accepted", stage=stage)
    solved = sum(scores[t].passed for t in ids)
    enough = stage == 0 or solved >= evo.config.min_solved  # the smoke task: no crash only
    if evo.plan.passes(stage, mean, parent_mean) and enough:
        return evo.archive.update(entry.variant_id, stage=stage)
    need = threshold(evo.plan.thresholds[stage - 1], parent_mean)
    why = (
        f"mean {mean:.3f} < {need:.3f}"
        if mean < need
        else f"solved {solved} < --min-solved {evo.config.min_solved}"
    )
    return evo.archive.update(
        entry.variant_id, status="rejected", stage=stage,
        reason=f"stage {stage}: {why} on {len(ids)} tasks",
    )  # fmt: skip
