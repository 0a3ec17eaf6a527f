"""95% intervals for pass rates over tasks: ``wilson`` for one rate, ``paired_bootstrap`` for
the difference of two models on the same tasks (the claim of a self-improvement round).

``paired_bootstrap`` has the signature and result of ``exapt.evolve.stats.paired_bootstrap``
(the evolve branch); one of the two goes once both are in main.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any


def wilson(passed: int, n: int, z: float = 1.96) -> list[float]:
    """The Wilson score interval of ``passed``/``n`` (sound at 0 and 1, unlike the normal one)."""
    if n <= 0:
        return [0.0, 1.0]
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def paired_bootstrap(
    a: Mapping[str, float], b: Mapping[str, float], *, n: int = 10_000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:  # fmt: skip
    """Mean of ``b - a`` over the tasks both scored, its percentile ``level`` interval from
    ``n`` resamples of the tasks, and the verdict (``better`` only when the whole interval is
    above 0). ``ValueError`` when no task was scored by both."""
    tasks = sorted(set(a) & set(b))
    if not tasks:
        raise ValueError("no task scored by both")
    diffs = [float(b[t]) - float(a[t]) for t in tasks]
    rng = random.Random(seed)
    k = len(diffs)
    means = sorted(sum(diffs[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    lo = means[int((1 - level) / 2 * n)]
    hi = means[min(n - 1, int((1 + level) / 2 * n))]
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no significant difference"
    return {
        "n_tasks": k,
        "mean_a": sum(float(a[t]) for t in tasks) / k,
        "mean_b": sum(float(b[t]) for t in tasks) / k,
        "diff": sum(diffs) / k,
        "ci95": [lo, hi],
        "level": level,
        "resamples": n,
        "verdict": verdict,
    }
