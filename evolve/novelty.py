"""``NoveltyFilter``: a child that is already in the archive, or nearly, is not evaluated.

- identical: its file-tree id is an archive member's;
- near-identical: it differs from some member only in prompt texts, and each differing
  prompt's embedding (``exapt.memory.embeddings``, cosine) is at least ``threshold`` close
  to the member's. Option changes are never "near": ``temperature 0.2`` and ``0.4`` embed
  alike but are different agents, which the id already tells apart.

Example:
    verdict = NoveltyFilter().check(proposal.variant, members)  # None = novel
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from exapt.evolve.variant import Variant


@dataclass
class NoveltyFilter:
    embedder: str | None = "minilm"
    threshold: float = 0.985
    _vectors: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _model: Any = field(default=None, repr=False)

    def check(self, child: Variant, members: Iterable[Variant]) -> tuple[str, str] | None:
        """``("duplicate", id)``, ``("near-duplicate", id)``, or None if ``child`` is novel."""
        members = list(members)
        for member in members:
            if member.id == child.id:
                return ("duplicate", member.id)
        if self.embedder is None:
            return None
        mine = child.components()
        for member in members:
            theirs = member.components()
            if set(theirs) != set(mine):
                continue
            differing = [k for k in mine if mine[k] != theirs[k]]
            if not differing:  # the same agent in other bytes (e.g. key order)
                return ("duplicate", member.id)
            if not all(k.startswith("prompt:") for k in differing):
                continue
            if all(self.similarity(mine[k], theirs[k]) >= self.threshold for k in differing):
                return ("near-duplicate", member.id)
        return None

    def similarity(self, a: str, b: str) -> float:
        va, vb = self._vector(a), self._vector(b)
        dot = sum(x * y for x, y in zip(va, vb, strict=True))
        norm = math.sqrt(sum(x * x for x in va)) * math.sqrt(sum(y * y for y in vb))
        return dot / norm if norm else 0.0

    def _vector(self, text: str) -> list[float]:
        key = hashlib.sha256(text.encode()).hexdigest()
        if key not in self._vectors:
            if self._model is None:
                from exapt.memory.embeddings import get_embedder

                self._model = get_embedder(self.embedder or "minilm")
            self._vectors[key] = self._model.embed([text])[0]
        return self._vectors[key]
