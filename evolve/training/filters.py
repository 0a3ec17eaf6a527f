"""What a dataset keeps of the call examples it could use, and the count of what it dropped:
attempts ranked for ``best_of`` (``attempt_rank``), duplicates dropped (``deduped``), rows
capped per task (``capped``, ``capped_rows``), one example per distinct completion
(``unique_completions``). ``Tally`` holds the counts; they end up in the datasheet.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from exapt.evolve.training.config import DatasetConfig
from exapt.evolve.training.examples import CallExample


@dataclass
class Tally:
    """What the builder saw and dropped: the counts of the datasheet."""

    counts: Counter[str] = field(default_factory=Counter)
    runs: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    variants: set[str] = field(default_factory=set)
    splits_skipped: Counter[str] = field(default_factory=Counter)


def attempt_rank(attempt: list[CallExample]) -> tuple[float, int, str]:
    """Best first: highest reward, then fewest tokens generated, then by id (stable)."""
    first = attempt[0]
    return (-first.reward, sum(e.tokens for e in attempt), first.trajectory_id)


def deduped(examples: list[CallExample], config: DatasetConfig, tally: Tally) -> list[CallExample]:
    if not config.dedupe:
        return examples
    seen: set[str] = set()
    out = []
    for e in examples:
        key = e.key() + (f"/{e.label}" if config.format == "kto" else "")
        if key in seen:
            tally.counts["duplicates_dropped"] += 1
            continue
        seen.add(key)
        out.append(e)
    return out


def capped(examples: list[CallExample], config: DatasetConfig, tally: Tally) -> list[CallExample]:
    if config.max_per_task is None:
        return examples
    per_task: Counter[str] = Counter()
    out = []
    for e in examples:
        per_task[e.task_id] += 1
        if per_task[e.task_id] > config.max_per_task:
            tally.counts["capped_per_task"] += 1
            continue
        out.append(e)
    return out


def capped_rows(
    rows: list[dict[str, Any]], config: DatasetConfig, tally: Tally
) -> list[dict[str, Any]]:
    if config.max_per_task is None:
        return rows
    per_task: Counter[str] = Counter()
    out = []
    for row in rows:
        per_task[row["task_id"]] += 1
        if per_task[row["task_id"]] > config.max_per_task:
            tally.counts["capped_per_task"] += 1
            continue
        out.append(row)
    return out


def unique_completions(examples: Any) -> list[CallExample]:
    seen: set[str] = set()
    out = []
    for e in examples:
        text = canon(e.completion)
        if text not in seen:
            seen.add(text)
            out.append(e)
    return out


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
