"""The 95% interval of one pass rate: ``wilson``. (The difference of two models on the same
tasks, the claim of a round, is ``exapt.evolve.stats.paired_bootstrap``.)"""

from __future__ import annotations

import math


def wilson(passed: int, n: int, z: float = 1.96) -> list[float]:
    """The Wilson score interval of ``passed``/``n`` (sound at 0 and 1, unlike the normal one)."""
    if n <= 0:
        return [0.0, 1.0]
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]
