"""The offline embedder and the Chroma embedding function built on it."""

from __future__ import annotations

import math
import threading

import pytest

from exapt.errors import ConfigError
from exapt.memory.embeddings import Embedder, chroma_embedding_function, get_embedder


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_gives_unit_vectors_where_paraphrases_are_close(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        ["reverse a string", "return the text backwards", "compute the prime factors of n"]
    )
    assert embedder.dim == 384 and len(a) == 384
    assert math.isclose(_dot(a, a), 1.0, rel_tol=1e-4)
    assert _dot(a, b) > 0.5 > _dot(a, c)


def test_embedder_is_loaded_once_and_thread_safe(embedder: Embedder) -> None:
    assert get_embedder("minilm") is embedder
    texts = [f"sentence number {i} about sorting lists" for i in range(40)]
    expected = embedder.embed(texts)
    results: list[list[list[float]]] = []

    def work() -> None:
        results.append(embedder.embed(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for got in results:
        assert all(
            math.isclose(_dot(x, y), 1.0, rel_tol=1e-4) for x, y in zip(got, expected, strict=True)
        )


def test_unknown_embedder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown embedder 'nope'"):
        get_embedder("nope")


def test_chroma_function_is_rebuilt_from_config_with_the_cached_model(embedder: Embedder) -> None:
    from chromadb.utils.embedding_functions import config_to_embedding_function

    ef = chroma_embedding_function("minilm")
    rebuilt = config_to_embedding_function({"name": "exapt", "config": ef.get_config()})
    assert rebuilt._embedder is embedder  # no second model load
    vec = rebuilt(["reverse a string"])[0]
    assert len(vec) == 384
