"""Splits: deterministic by task id, disjoint, covering, about 60/20/20."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from exapt.errors import ConfigError
from exapt.tasks import Task, load_suite, split_of, split_tasks


def _tasks(n: int, prefix: str = "t") -> list[Task]:
    return [Task(id=f"{prefix}/{i}", suite="s", instruction="x") for i in range(n)]


def test_split_of_is_pinned() -> None:
    # A changed hash would silently move tasks between train and test across versions.
    assert [split_of(f"humaneval/{i}") for i in range(8)] == PINNED


PINNED = ["train", "dev", "train", "test", "test", "test", "train", "dev"]


def test_splits_are_disjoint_and_cover_everything() -> None:
    tasks = _tasks(500)
    parts = {name: split_tasks(tasks, name) for name in ("train", "dev", "test")}
    ids = [task.id for part in parts.values() for task in part]
    assert len(ids) == len(set(ids)) == len(tasks)
    assert split_tasks(tasks, "all") == tasks


def test_split_does_not_depend_on_order_or_neighbours() -> None:
    tasks = _tasks(300)
    shuffled = tasks[:]
    random.Random(0).shuffle(shuffled)
    for name in ("train", "dev", "test"):
        assert {t.id for t in split_tasks(tasks, name)} == {
            t.id for t in split_tasks(shuffled, name)
        }
        # adding other tasks never moves an existing one
        more = tasks + _tasks(100, prefix="other")
        assert {t.id for t in split_tasks(more, name)} >= {t.id for t in split_tasks(tasks, name)}


def test_order_is_kept_within_a_split() -> None:
    tasks = _tasks(100)
    dev = split_tasks(tasks, "dev")
    assert dev == [t for t in tasks if t in dev]


def test_proportions_are_60_20_20() -> None:
    counts = Counter(split_of(f"task-{i}") for i in range(20_000))
    assert abs(counts["train"] / 20_000 - 0.6) < 0.015
    assert abs(counts["dev"] / 20_000 - 0.2) < 0.015
    assert abs(counts["test"] / 20_000 - 0.2) < 0.015


def test_humaneval_splits_are_nonempty_and_stable() -> None:
    tasks = list(load_suite("humaneval").tasks())
    sizes = {name: len(split_tasks(tasks, name)) for name in ("train", "dev", "test")}
    assert sum(sizes.values()) == 164
    assert all(size > 10 for size in sizes.values())
    again = {name: len(split_tasks(load_suite("humaneval").tasks(), name)) for name in sizes}
    assert again == sizes


def test_unknown_split_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        split_tasks(_tasks(3), "validation")
    assert "validation" in str(info.value)
    assert "train" in str(info.value) and "dev" in str(info.value)
