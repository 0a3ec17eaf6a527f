"""Datasets from the trajectory store that TRL reads as they are: ``build_dataset`` turns the
stored attempts of some runs into a Hugging Face ``datasets.Dataset`` in one of three formats,
``save_dataset`` writes it under ``<home>/datasets/<hash>/`` with its datasheet.
This module selects the attempts and assembles the dataset; the rows of each format are made
in ``rows.py`` (what is kept, in ``filters.py``), the hash, datasheet and saving are in
``datasheet.py``, ``DatasetConfig`` is in ``config.py`` (all re-exported here).

Formats (TRL's own column names; ``prompt`` is the context the model call really saw — a list
of messages for chat calls, text for completion calls — see ``examples.py``):

- ``sft``: ``prompt``, ``completion`` (prompt-completion: TRL computes the loss on the
  completion only), ``tools`` for chat calls. Positives only: model calls of trusted passes
  (best ``best_of`` attempts per task), and, with ``repairs``, Re-ReST repairs (``repairs.py``).
- ``dpo``: ``prompt``, ``chosen``, ``rejected`` on the same prompt: a call known good against
  one known bad (a draft that failed the visible checks, a failed attempt's call).
- ``kto``: ``prompt``, ``completion``, ``label`` (True good, False bad), unpaired.

Every row also has ``task_id, split, reward, passed, variant_id, model, trajectory_id, step,
source`` (``source``: ``attempt`` or ``repair``; DPO adds ``rejected_trajectory_id``).

Rules that keep training data honest: only trusted passes are positives
(``exapt.records.trusted_pass``, stored as ``Outcome.trusted``); the ``test`` split is never
read unless named in ``splits`` (``all`` means train + dev); the score step (hidden-test
feedback) is never in a row. Rows are deduplicated (same prompt, tools and completion), capped
per task, and sorted, so the same store gives the same dataset and the same content hash.

Example:
    built = build_dataset(store, DatasetConfig(format="sft", runs=["r1"]), tokenizer=tok)
    path = save_dataset(built)          # <home>/datasets/<hash>/ (data/ + datasheet.json)
    SFTTrainer(..., train_dataset=built.dataset)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.training.config import DatasetConfig, Format
from exapt.evolve.training.datasheet import (
    DATASHEET_SCHEMA,
    BuiltDataset,
    content_hash,
    datasets_dir,
    datasheet,
    load_saved,
    save_dataset,
)
from exapt.evolve.training.examples import CallExample, call_examples, trajectory_id
from exapt.evolve.training.filters import Tally
from exapt.evolve.training.rows import ROW_BUILDERS, features
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Trajectory


class EmptyDataset(ConfigError):
    """Nothing to train on: the selected attempts hold no row of the asked format."""


def read_attempts(
    store: TrajectoryStore, config: DatasetConfig, tally: Tally | None = None
) -> list[list[CallExample]]:
    """The call examples of every stored attempt the config selects, one list per attempt."""
    runs = config.runs if config.runs is not None else [r.run_id for r in store.list_runs()]
    for run_id in runs:
        if store.get_run(run_id) is None:
            raise ConfigError(
                f"no run {run_id!r} in {store.path}", hint="see the runs with `exapt runs list`"
            )
    return attempts_of((t for run_id in runs for t in store.trajectories(run_id)), config, tally)


def attempts_of(
    trajectories: Iterable[Trajectory], config: DatasetConfig, tally: Tally | None = None
) -> list[list[CallExample]]:
    """The call examples of the ``trajectories`` the config selects, one list per attempt."""
    tally = tally or Tally()
    attempts: list[list[CallExample]] = []
    for t in trajectories:
        tally.counts["attempts_read"] += 1
        if not _selected(t, config, tally):
            continue
        examples = call_examples(t)
        if not examples:
            tally.counts["attempts_without_model_calls"] += 1
            continue
        tally.runs.add(t.run_id)
        tally.models.add(t.model)
        tally.variants.add(t.variant_id)
        attempts.append(examples)
    return attempts


def _selected(t: Trajectory, config: DatasetConfig, tally: Tally) -> bool:
    if "cached_from" in t.metadata:  # a cached copy: its steps live with the run that made it
        tally.counts["cached_copies_skipped"] += 1
        return False
    from exapt.tasks.splits import split_of

    split = split_of(t.task_id)
    if split not in config.splits:
        tally.splits_skipped[split] += 1
        return False
    if config.models is not None and t.model not in config.models:
        tally.counts["other_models_skipped"] += 1
        return False
    tally.counts["attempts_selected"] += 1
    if t.result.passed and t.result.trusted is False:
        tally.counts["untrusted_passes"] += 1
    return True


def build_dataset(
    store: TrajectoryStore, config: DatasetConfig, *, tokenizer: Any = None
) -> BuiltDataset:
    """The dataset ``config`` asks for, from ``store`` (see the module docstring). With a
    ``tokenizer`` the datasheet also gives token lengths (as TRL will tokenize the rows).

    Raises ``ConfigError`` when nothing is left to train on, saying what was found.
    """
    tally = Tally()
    return _build(read_attempts(store, config, tally), config, tally, tokenizer)


def build_dataset_from(
    trajectories: Iterable[Trajectory], config: DatasetConfig, *, tokenizer: Any = None
) -> BuiltDataset:
    """``build_dataset`` over given trajectories (with their steps) instead of store runs;
    ``config.runs`` is not used. The same selection rules apply (splits, trust, models)."""
    tally = Tally()
    return _build(attempts_of(trajectories, config, tally), config, tally, tokenizer)


def _build(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: Tally, tokenizer: Any
) -> BuiltDataset:
    kind = _kind(attempts, config)
    attempts = [a for a in attempts if a[0].conversational == (kind == "chat")]
    tally.counts["passed_attempts"] = sum(a[0].passed for a in attempts)
    rows = ROW_BUILDERS[config.format](attempts, config, tally)
    if not rows:
        raise EmptyDataset(_empty_message(config, tally), hint=_empty_hint(config))
    rows.sort(key=lambda r: (r["task_id"], r["trajectory_id"], r["step"], r["source"]))
    digest = content_hash(config.format, rows)
    import datasets

    dataset = datasets.Dataset.from_list(rows, features=features(config.format, kind))
    sheet = datasheet(config, kind, rows, tally, digest, tokenizer, dataset)
    return BuiltDataset(dataset=dataset, datasheet=sheet)


def _kind(attempts: list[list[CallExample]], config: DatasetConfig) -> str:
    kinds = {"chat" if a[0].conversational else "text" for a in attempts}
    if config.kind != "auto":
        return config.kind
    if len(kinds) > 1:
        raise ConfigError(
            "the selected attempts hold both chat calls and plain completion calls; one "
            "dataset takes one kind",
            hint="choose one with kind='chat' or kind='text' (CLI: --kind)",
        )
    return kinds.pop() if kinds else "text"


def _empty_message(config: DatasetConfig, tally: Tally) -> str:
    c = tally.counts
    what = {"sft": "trusted passes", "dpo": "good/bad pairs on one prompt", "kto": "labelled calls"}
    found = (
        f"{c['attempts_read']} attempts read, {c['attempts_selected']} in splits "
        f"{'/'.join(config.splits)}, {c['passed_attempts']} trusted passes"
    )
    if tally.splits_skipped:
        found += f" (skipped by split: {dict(tally.splits_skipped)})"
    if c["untrusted_passes"]:
        found += f", {c['untrusted_passes']} passes the judge did not trust"
    return f"empty {config.format} dataset: no {what[config.format]} ({found})"


def _empty_hint(config: DatasetConfig) -> str:
    if config.format == "sft":
        return "collect more attempts (more samples per task, a temperature > 0) or add runs"
    if config.format == "dpo":
        return "DPO needs a passed and a failed answer to the same prompt: sample more per task"
    return "collect attempts first (exapt run ...)"


__all__ = [
    "DATASHEET_SCHEMA",
    "BuiltDataset",
    "DatasetConfig",
    "EmptyDataset",
    "Format",
    "build_dataset",
    "build_dataset_from",
    "content_hash",
    "datasets_dir",
    "load_saved",
    "read_attempts",
    "save_dataset",
    "trajectory_id",
]
