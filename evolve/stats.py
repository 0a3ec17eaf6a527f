"""Paired bootstrap over tasks: is variant B better than variant A on the same tasks?

``paired_bootstrap(a, b)`` resamples the tasks (with replacement) ``n`` times and reports
the mean difference (b − a) with its percentile 95% interval; "better" is claimed only
when the whole interval is above 0.

Example:
    paired_bootstrap({"t1": 0, "t2": 1}, {"t1": 1, "t2": 1}, seed=0)["ci95"]
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


def paired_bootstrap(
    a: Mapping[str, float], b: Mapping[str, float], *, n: int = 10_000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:  # fmt: skip
    """Mean of ``b − a`` over the tasks both scored, its ``level`` interval, and the
    verdict (``better`` / ``worse`` / ``no significant difference``)."""
    tasks = sorted(set(a) & set(b))
    if not tasks:
        raise ValueError("no task scored by both variants")
    diffs = [float(b[t]) - float(a[t]) for t in tasks]
    rng = random.Random(seed)
    k = len(diffs)
    means = sorted(sum(diffs[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    lo = means[int((1 - level) / 2 * n)]
    hi = means[min(n - 1, int((1 + level) / 2 * n))]
    mean = sum(diffs) / k
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no significant difference"
    return {
        "n_tasks": k,
        "mean_a": sum(float(a[t]) for t in tasks) / k,
        "mean_b": sum(float(b[t]) for t in tasks) / k,
        "diff": mean,
        "ci95": [lo, hi],
        "level": level,
        "resamples": n,
        "verdict": verdict,
    }
