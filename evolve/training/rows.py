"""The rows of the three dataset formats (``datasets.py``'s module docstring), from the call
examples of the selected attempts: ``sft_rows`` (the ``best_of`` trusted passes per task, and
repairs), ``dpo_rows`` (a good and a bad completion of one prompt), ``kto_rows`` (labelled,
unpaired); ``ROW_BUILDERS`` maps a format to its builder, ``features`` gives its columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from exapt.evolve.training.config import DatasetConfig
from exapt.evolve.training.examples import CallExample
from exapt.evolve.training.filters import (
    Tally,
    attempt_rank,
    canon,
    capped,
    capped_rows,
    deduped,
    unique_completions,
)
from exapt.evolve.training.repairs import repaired_examples

RowBuilder = Callable[[list[list[CallExample]], DatasetConfig, Tally], list[dict[str, Any]]]


def sft_rows(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: Tally
) -> list[dict[str, Any]]:
    by_task: dict[str, list[list[CallExample]]] = defaultdict(list)
    for attempt in attempts:
        if attempt[0].passed:
            by_task[attempt[0].task_id].append(attempt)
    chosen: list[CallExample] = []
    for task_attempts in by_task.values():
        task_attempts.sort(key=attempt_rank)
        keep = task_attempts[: config.best_of] if config.best_of else task_attempts
        tally.counts["passed_attempts_beyond_best_of"] += len(task_attempts) - len(keep)
        for attempt in keep:
            chosen.extend(e for e in attempt if e.label is True)
    if config.repairs:
        repairs = repaired_examples(attempts)
        tally.counts["repairs_found"] += len(repairs)
        chosen.extend(repairs)
    examples = capped(deduped(chosen, config, tally), config, tally)
    return [row(e, completion=e.completion) for e in examples]


def dpo_rows(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: Tally
) -> list[dict[str, Any]]:
    labelled = [e for attempt in attempts for e in attempt if e.label is not None]
    if config.repairs:
        repairs = repaired_examples(attempts)
        tally.counts["repairs_found"] += len(repairs)
        labelled.extend(repairs)
    by_prompt: dict[str, list[CallExample]] = defaultdict(list)
    for e in labelled:
        by_prompt[e.prompt_key()].append(e)
    rows = []
    for group in by_prompt.values():
        good = unique_completions(e for e in group if e.label)
        good_texts = {canon(e.completion) for e in good}
        bad = [
            e
            for e in unique_completions(e for e in group if e.label is False)
            if canon(e.completion) not in good_texts
        ]
        if not good or not bad:
            tally.counts["prompts_without_a_pair"] += 1
            continue
        n = min(config.pairs_per_prompt, max(len(good), len(bad)))
        for i in range(n):
            chosen, rejected = good[i % len(good)], bad[i % len(bad)]
            pair = row(chosen, chosen=chosen.completion, rejected=rejected.completion)
            pair["rejected_trajectory_id"] = rejected.trajectory_id
            rows.append(pair)
    tally.counts["pairs"] = len(rows)
    return capped_rows(rows, config, tally)


def kto_rows(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: Tally
) -> list[dict[str, Any]]:
    labelled = [e for attempt in attempts for e in attempt if e.label is not None]
    if config.repairs:
        repairs = repaired_examples(attempts)
        tally.counts["repairs_found"] += len(repairs)
        labelled.extend(repairs)
    examples = deduped(labelled, config, tally)
    good = capped([e for e in examples if e.label], config, tally)
    bad = capped([e for e in examples if not e.label], config, tally)
    return [row(e, completion=e.completion, label=bool(e.label)) for e in good + bad]


ROW_BUILDERS: dict[str, RowBuilder] = {"sft": sft_rows, "dpo": dpo_rows, "kto": kto_rows}


def row(e: CallExample, **columns: Any) -> dict[str, Any]:
    """One row: ``prompt``, the format's ``columns``, ``tools`` for chat calls, then the
    columns every format has (``datasets.py``'s module docstring)."""
    out: dict[str, Any] = {"prompt": e.prompt, **columns}
    if e.conversational:
        out["tools"] = e.tools
    out.update(
        task_id=e.task_id,
        split=e.split,
        reward=e.reward,
        passed=e.passed,
        variant_id=e.variant_id,
        model=e.model,
        trajectory_id=e.trajectory_id,
        step=e.step,
        source=e.source,
    )
    return out


def features(format: str, kind: str) -> Any:
    """The ``datasets.Features`` of a ``format`` dataset of ``kind`` (chat or text) rows."""
    from datasets import Features, Json, List, Value

    # Messages as Json: Arrow would otherwise make one struct of every key seen in any message
    # (tool arguments of every tool), and rows would come back with those keys set to None.
    text = List(Json()) if kind == "chat" else Value("string")
    columns: dict[str, Any] = {"prompt": text}
    if format == "dpo":
        columns.update(chosen=text, rejected=text)
    else:
        columns["completion"] = text
    if format == "kto":
        columns["label"] = Value("bool")
    if kind == "chat":
        columns["tools"] = List(Json())
    for name in ("task_id", "split", "variant_id", "model", "trajectory_id", "source"):
        columns[name] = Value("string")
    columns.update(reward=Value("float64"), passed=Value("bool"), step=Value("int64"))
    if format == "dpo":
        columns["rejected_trajectory_id"] = Value("string")
    return Features(columns)
