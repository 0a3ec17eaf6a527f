"""Staged evaluation: a child is scored on growing prefixes of the selection tasks and
stops at the first gate it does not pass.

Stage 0 is the smoke task: the child must load, build and finish an attempt without a
crash or a hang (its reward does not matter). Stage ``s`` then scores it on the first
``sizes[s]`` selection tasks (``None`` = all of them) — the tasks of earlier stages come
back from the cache — and the gate after a stage compares its mean reward on those tasks
with a threshold:

- ``parent`` (default): at least its parent's mean on the same tasks (parents are fully
  scored, so the comparison is paired);
- ``parent+D`` / ``parent-D``: the parent's mean plus or minus a margin;
- a number in [0, 1]: an absolute mean.

The last stage has no gate: a child that completes it is accepted. With ``--min-solved N``
a gate also asks for at least N passed tasks of the stage (with a weak model most children
tie their parent at 0, and a tie with nothing solved is no evidence worth a full stage).

Example:
    plan = StagePlan.parse("1,10,50,all", "parent")
    plan.tasks(order, 2)  # the first 50 selection tasks
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exapt.errors import ConfigError


@dataclass(frozen=True)
class StagePlan:
    sizes: tuple[int | None, ...]  # sizes[0] is the smoke stage
    thresholds: tuple[str, ...]  # one per gate after stages 1 .. last-1: len(sizes) - 2

    @classmethod
    def parse(
        cls, sizes: str | Sequence[int | str | None], thresholds: str | Sequence[str]
    ) -> StagePlan:
        """``sizes`` like ``1,10,50,all``; ``thresholds`` one rule for every gate or one per
        gate, comma-separated. ``ConfigError`` naming the bad value."""
        items = sizes.split(",") if isinstance(sizes, str) else list(sizes)
        parsed: list[int | None] = []
        for item in items:
            text = str(item).strip().lower()
            if text in ("all", "none", ""):
                parsed.append(None)
                continue
            try:
                value = int(text)
            except ValueError as exc:
                raise ConfigError(f"--stages: {item!r} is not a number or 'all'") from exc
            if value < 1:
                raise ConfigError(f"--stages: sizes must be >= 1, got {value}")
            parsed.append(value)
        if len(parsed) < 2:
            raise ConfigError("--stages needs the smoke stage and at least one more, e.g. 1,all")
        if None in parsed[:-1]:
            raise ConfigError("--stages: only the last stage may be 'all'")
        numbers = [p for p in parsed if p is not None]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise ConfigError(f"--stages must grow: {sizes}")
        rules = thresholds.split(",") if isinstance(thresholds, str) else list(thresholds)
        rules = [r.strip() for r in rules if r.strip()]
        gates = len(parsed) - 2
        if len(rules) == 1:
            rules = rules * gates
        if gates and len(rules) != gates:
            raise ConfigError(f"--thresholds: give one rule or {gates} (one per gate)")
        for rule in rules:
            _check_rule(rule)
        return cls(tuple(parsed), tuple(rules[:gates]))

    @property
    def last(self) -> int:
        return len(self.sizes) - 1

    def tasks(self, order: Sequence[str], stage: int) -> list[str]:
        """The selection task ids of ``stage`` (a prefix of ``order``)."""
        size = self.sizes[stage]
        return list(order if size is None else order[:size])

    def passes(self, stage: int, child_mean: float, parent_mean: float | None) -> bool:
        """Whether a child with ``child_mean`` on the stage's tasks goes on after ``stage``.
        (Stage 0 is judged by the caller: no crash, no hang.)"""
        if stage >= self.last or stage == 0:
            return True
        rule = self.thresholds[stage - 1]
        return child_mean >= threshold(rule, parent_mean)


def _check_rule(rule: str) -> None:
    try:
        threshold(rule, 0.5)
    except ValueError as exc:
        raise ConfigError(
            f"--thresholds: bad rule {rule!r}", hint="use parent, parent+0.1, parent-0.1 or 0.3"
        ) from exc


def threshold(rule: str, parent_mean: float | None) -> float:
    """The mean a child needs under ``rule``; with no parent (the seed) a parent rule is 0."""
    text = rule.replace(" ", "").lower()
    if text.startswith("parent"):
        margin = float(text.removeprefix("parent") or 0.0)
        return (parent_mean or 0.0) + margin
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(rule)
    return value
