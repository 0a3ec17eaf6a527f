"""Datasets from the trajectory store that TRL reads as they are: ``build_dataset`` turns the
stored attempts of some runs into a Hugging Face ``datasets.Dataset`` in one of three formats,
``save_dataset`` writes it under ``<home>/datasets/<hash>/`` with its datasheet.

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

import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exapt import paths
from exapt.errors import ConfigError
from exapt.evolve.training.examples import CallExample, call_examples, trajectory_id
from exapt.evolve.training.repairs import repaired_examples
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Trajectory

if TYPE_CHECKING:
    import datasets

DATASHEET_SCHEMA = 1
Format = Literal["sft", "dpo", "kto"]
_PROPER_SPLITS = ("train", "dev", "test")


class EmptyDataset(ConfigError):
    """Nothing to train on: the selected attempts hold no row of the asked format."""


class DatasetConfig(BaseModel):
    """What goes into a training set (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    format: Format = "sft"
    repairs: bool = Field(False, description="add Re-ReST repairs of failed attempts")
    splits: list[str] = Field(default_factory=lambda: ["train"])
    runs: list[str] | None = Field(None, description="run ids to read (None: every run)")
    models: list[str] | None = Field(None, description="only attempts made by these models")
    kind: Literal["auto", "chat", "text"] = Field(
        "auto", description="chat calls, completion calls, or whichever the attempts hold"
    )
    best_of: int | None = Field(4, ge=1, description="passed attempts kept per task")
    max_per_task: int | None = Field(32, ge=1, description="rows kept per task")
    pairs_per_prompt: int = Field(4, ge=1, description="DPO pairs per prompt")
    dedupe: bool = True

    @field_validator("splits")
    @classmethod
    def _known_splits(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for name in value:
            if name == "all":  # never the test split unless it is named
                out.extend(s for s in ("train", "dev") if s not in out)
            elif name in _PROPER_SPLITS:
                if name not in out:
                    out.append(name)
            else:
                raise ValueError(f"unknown split {name!r}; use train, dev, test or all")
        if not out:
            raise ValueError("no split given")
        return out


@dataclass
class BuiltDataset:
    """A dataset, its datasheet, and where it was saved (None until ``save_dataset``)."""

    dataset: datasets.Dataset
    datasheet: dict[str, Any]
    path: Path | None = None

    @property
    def hash(self) -> str:
        return str(self.datasheet["hash"])

    @property
    def format(self) -> str:
        return str(self.datasheet["format"])

    def __len__(self) -> int:
        return len(self.dataset)


@dataclass
class _Tally:
    """What the builder saw and dropped: the counts of the datasheet."""

    counts: Counter[str] = field(default_factory=Counter)
    runs: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    variants: set[str] = field(default_factory=set)
    splits_skipped: Counter[str] = field(default_factory=Counter)


def read_attempts(
    store: TrajectoryStore, config: DatasetConfig, tally: _Tally | None = None
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
    trajectories: Iterable[Trajectory], config: DatasetConfig, tally: _Tally | None = None
) -> list[list[CallExample]]:
    """The call examples of the ``trajectories`` the config selects, one list per attempt."""
    tally = tally or _Tally()
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


def _selected(t: Trajectory, config: DatasetConfig, tally: _Tally) -> bool:
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
    tally = _Tally()
    return _build(read_attempts(store, config, tally), config, tally, tokenizer)


def build_dataset_from(
    trajectories: Iterable[Trajectory], config: DatasetConfig, *, tokenizer: Any = None
) -> BuiltDataset:
    """``build_dataset`` over given trajectories (with their steps) instead of store runs;
    ``config.runs`` is not used. The same selection rules apply (splits, trust, models)."""
    tally = _Tally()
    return _build(attempts_of(trajectories, config, tally), config, tally, tokenizer)


def _build(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: _Tally, tokenizer: Any
) -> BuiltDataset:
    kind = _kind(attempts, config)
    attempts = [a for a in attempts if a[0].conversational == (kind == "chat")]
    tally.counts["passed_attempts"] = sum(a[0].passed for a in attempts)
    build: dict[str, Callable[[list[list[CallExample]], DatasetConfig, _Tally], list[dict]]]
    build = {"sft": _sft_rows, "dpo": _dpo_rows, "kto": _kto_rows}
    rows = build[config.format](attempts, config, tally)
    if not rows:
        raise EmptyDataset(_empty_message(config, tally), hint=_empty_hint(config))
    rows.sort(key=lambda r: (r["task_id"], r["trajectory_id"], r["step"], r["source"]))
    digest = content_hash(config.format, rows)
    import datasets

    dataset = datasets.Dataset.from_list(rows, features=_features(config.format, kind))
    sheet = _datasheet(config, kind, rows, tally, digest, tokenizer, dataset)
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


# --- the three formats -------------------------------------------------------------------


def _sft_rows(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: _Tally
) -> list[dict[str, Any]]:
    by_task: dict[str, list[list[CallExample]]] = defaultdict(list)
    for attempt in attempts:
        if attempt[0].passed:
            by_task[attempt[0].task_id].append(attempt)
    chosen: list[CallExample] = []
    for task_attempts in by_task.values():
        task_attempts.sort(key=_attempt_rank)
        keep = task_attempts[: config.best_of] if config.best_of else task_attempts
        tally.counts["passed_attempts_beyond_best_of"] += len(task_attempts) - len(keep)
        for attempt in keep:
            chosen.extend(e for e in attempt if e.label is True)
    if config.repairs:
        repairs = repaired_examples(attempts)
        tally.counts["repairs_found"] += len(repairs)
        chosen.extend(repairs)
    examples = _capped(_deduped(chosen, config, tally), config, tally)
    return [_row(e, completion=e.completion) for e in examples]


def _dpo_rows(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: _Tally
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
        good = _unique_completions(e for e in group if e.label)
        good_texts = {_canon(e.completion) for e in good}
        bad = [
            e
            for e in _unique_completions(e for e in group if e.label is False)
            if _canon(e.completion) not in good_texts
        ]
        if not good or not bad:
            tally.counts["prompts_without_a_pair"] += 1
            continue
        n = min(config.pairs_per_prompt, max(len(good), len(bad)))
        for i in range(n):
            chosen, rejected = good[i % len(good)], bad[i % len(bad)]
            row = _row(chosen, chosen=chosen.completion, rejected=rejected.completion)
            row["rejected_trajectory_id"] = rejected.trajectory_id
            rows.append(row)
    tally.counts["pairs"] = len(rows)
    return _capped_rows(rows, config, tally)


def _kto_rows(
    attempts: list[list[CallExample]], config: DatasetConfig, tally: _Tally
) -> list[dict[str, Any]]:
    labelled = [e for attempt in attempts for e in attempt if e.label is not None]
    if config.repairs:
        repairs = repaired_examples(attempts)
        tally.counts["repairs_found"] += len(repairs)
        labelled.extend(repairs)
    examples = _deduped(labelled, config, tally)
    good = _capped([e for e in examples if e.label], config, tally)
    bad = _capped([e for e in examples if not e.label], config, tally)
    return [_row(e, completion=e.completion, label=bool(e.label)) for e in good + bad]


def _attempt_rank(attempt: list[CallExample]) -> tuple[float, int, str]:
    """Best first: highest reward, then fewest tokens generated, then by id (stable)."""
    first = attempt[0]
    return (-first.reward, sum(e.tokens for e in attempt), first.trajectory_id)


def _deduped(
    examples: list[CallExample], config: DatasetConfig, tally: _Tally
) -> list[CallExample]:
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


def _capped(examples: list[CallExample], config: DatasetConfig, tally: _Tally) -> list[CallExample]:
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


def _capped_rows(
    rows: list[dict[str, Any]], config: DatasetConfig, tally: _Tally
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


def _unique_completions(examples: Any) -> list[CallExample]:
    seen: set[str] = set()
    out = []
    for e in examples:
        text = _canon(e.completion)
        if text not in seen:
            seen.add(text)
            out.append(e)
    return out


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _row(e: CallExample, **columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": e.prompt, **columns}
    if e.conversational:
        row["tools"] = e.tools
    row.update(
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
    return row


def _features(format: str, kind: str) -> Any:
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


def content_hash(format: str, rows: list[dict[str, Any]]) -> str:
    """The dataset's identity: a hash of its format and rows (16 hex digits)."""
    h = hashlib.sha256(format.encode())
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


# --- the datasheet -----------------------------------------------------------------------


def _datasheet(
    config: DatasetConfig,
    kind: str,
    rows: list[dict[str, Any]],
    tally: _Tally,
    digest: str,
    tokenizer: Any,
    dataset: Any,
) -> dict[str, Any]:
    sheet: dict[str, Any] = {
        "schema": DATASHEET_SCHEMA,
        "hash": digest,
        "format": config.format,
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.model_dump(mode="json"),
        "rows": len(rows),
        "tasks": len({r["task_id"] for r in rows}),
        "trajectories": len({r["trajectory_id"] for r in rows}),
        "by_split": dict(Counter(r["split"] for r in rows)),
        "by_source": dict(Counter(r["source"] for r in rows)),
        "counts": dict(sorted(tally.counts.items())),
        "splits_skipped": dict(tally.splits_skipped),
        "sources": {
            "runs": sorted(tally.runs),
            "models": sorted(tally.models),
            "variant_ids": sorted(tally.variants),
        },
    }
    if config.format == "kto":
        sheet["by_label"] = {
            "desirable": sum(r["label"] for r in rows),
            "undesirable": sum(not r["label"] for r in rows),
        }
    if tokenizer is not None:
        from exapt.evolve.training.lengths import token_lengths

        lengths = token_lengths(dataset, tokenizer)
        sheet["tokens"] = length_summary(lengths)
    return sheet


def length_summary(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"min": 0, "median": 0, "max": 0, "total": 0}
    return {
        "min": min(lengths),
        "median": statistics.median(lengths),
        "max": max(lengths),
        "total": sum(lengths),
    }


def _empty_message(config: DatasetConfig, tally: _Tally) -> str:
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


# --- saving and loading ------------------------------------------------------------------


def datasets_dir() -> Path:
    return paths.subdir("datasets")


def save_dataset(built: BuiltDataset, root: Path | None = None) -> Path:
    """Write ``built`` to ``<root>/<hash>/`` (``data/`` in ``datasets``' own format, and
    ``datasheet.json``), atomically; a dataset already saved there is reused. Returns the
    folder, also set on ``built.path``."""
    root = Path(root) if root is not None else datasets_dir()
    target = root / built.hash
    if (target / "datasheet.json").is_file():
        built.path = target
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{built.hash}."))
    try:
        built.dataset.save_to_disk(str(tmp / "data"))
        (tmp / "datasheet.json").write_text(json.dumps(built.datasheet, indent=2) + "\n")
        try:
            os.replace(tmp, target)
        except OSError:  # someone saved the same content meanwhile
            if not (target / "datasheet.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    built.path = target
    return target


def load_saved(path: Path | str) -> BuiltDataset:
    """A dataset saved by ``save_dataset`` (its folder). ``ConfigError`` when it is not one."""
    import datasets

    folder = Path(path)
    sheet_path = folder / "datasheet.json"
    try:
        sheet = json.loads(sheet_path.read_text())
        dataset = datasets.load_from_disk(str(folder / "data"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{folder} is not a saved exapt dataset: {exc}",
            hint="build one with exapt.evolve.training.build_dataset / save_dataset",
        ) from exc
    if not isinstance(sheet, dict) or "hash" not in sheet or "format" not in sheet:
        raise ConfigError(f"{sheet_path}: not an exapt datasheet (no hash/format)")
    return BuiltDataset(dataset=dataset, datasheet=sheet, path=folder)


__all__ = [
    "BuiltDataset",
    "DatasetConfig",
    "EmptyDataset",
    "build_dataset",
    "build_dataset_from",
    "content_hash",
    "datasets_dir",
    "load_saved",
    "read_attempts",
    "save_dataset",
    "trajectory_id",
]
