"""Shared by the engine tests: the same completion asked by ``n`` clients at once."""

from __future__ import annotations

import threading

from exapt.agents.models import ModelReply
from exapt.agents.models.base import Model


def concurrent_completions(model: Model, prompt: str, n: int, max_tokens: int) -> list[ModelReply]:
    """``n`` threads released together, each asking ``model`` for the greedy completion of
    ``prompt``; every reply (a client's error is raised after all have finished)."""
    start = threading.Barrier(n)
    replies: list[ModelReply] = []
    errors: list[BaseException] = []

    def client() -> None:
        start.wait()
        try:
            replies.append(model.complete(prompt, max_tokens=max_tokens, temperature=0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert len(replies) == n, f"{n - len(replies)} of {n} clients did not finish in 120 s"
    return replies
