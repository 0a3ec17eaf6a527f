"""Deterministic train/dev/test splits by a hash of the task id.

Evolution and fine-tuning need held-out tasks: a variant is mutated on ``train``, selected
on ``dev`` and reported on ``test``. A task's split depends only on its id (SHA-256, not
Python's salted ``hash``), so it is the same on every machine, in every run, whatever
else is in the suite, and adding tasks never moves an existing one.

Proportions: 60% train, 20% dev, 20% test (of a large suite; a small one varies around that).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from exapt.errors import ConfigError
from exapt.tasks.base import Task

SPLITS: tuple[str, ...] = ("train", "dev", "test", "all")

#: Cumulative upper bounds of each split, in percent of the hash range.
_BOUNDS: tuple[tuple[str, int], ...] = (("train", 60), ("dev", 80), ("test", 100))


def split_of(task_id: str) -> str:
    """The split (``train``, ``dev`` or ``test``) that ``task_id`` belongs to.

    Example:
        split_of("humaneval/0")  # always the same answer
    """
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name, bound in _BOUNDS:
        if bucket < bound:
            return name
    raise AssertionError("unreachable: the bounds cover 0..99")


def check_split(split: str) -> str:
    """Return ``split`` if it is a known split name, else raise ``ConfigError`` listing them."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", hint=f"use one of: {', '.join(SPLITS)}")
    return split


def split_tasks(tasks: Iterable[Task], split: str) -> list[Task]:
    """The tasks of ``split`` (``"all"`` keeps every task), in their original order.

    The three proper splits are disjoint and together cover every task.

    Example:
        dev = split_tasks(load_suite("humaneval").tasks(), "dev")
    """
    check_split(split)
    if split == "all":
        return list(tasks)
    return [task for task in tasks if split_of(task.id) == split]
