"""Opening exapt's Chroma store: where it lives, which collections it has, which vector
space each is in.

Where: ``None`` → an embedded ``PersistentClient`` in ``exapt.paths.memory_dir()``; a folder
path → a ``PersistentClient`` there; ``http(s)://HOST:PORT`` → a Chroma server through
``HttpClient`` (how several worker processes share one memory: ``PersistentClient`` is not
safe across processes).

Invariants:
- every collection is in cosine space and records ``exapt_embedder`` / ``exapt_dim`` in its
  metadata; opening it with another embedder raises ``ConfigError`` naming both (migrate
  with ``exapt memory reembed``);
- a folder that is not a Chroma store, or one Chroma cannot read, raises ``ConfigError``:
  memory is never silently reset;
- vectors are computed by exapt (one cached embedder per process) and passed to Chroma; the
  collections also carry a registered embedding function, so raw Chroma calls
  (``query_texts=...``) on a reopened collection embed the same way.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import exapt  # noqa: F401  (offline defaults, chromadb telemetry off)
from exapt import paths
from exapt.errors import ConfigError, UnavailableError
from exapt.memory.embeddings import (
    DEFAULT_EMBEDDER,
    Embedder,
    LazyEmbedder,
    chroma_embedding_function,
    register_chroma_function,
)

KINDS = ("reflections", "skills", "insights")
#: Singular names used by the CLI (``--kind skill``) and in item ids (``skill:...``).
KIND_OF = {"reflection": "reflections", "skill": "skills", "insight": "insights"}
STORE_SCHEMA = 1


@dataclass
class Item:
    """One stored record. ``similarity`` (cosine, in [-1, 1]) is set by queries only."""

    id: str
    kind: str
    document: str
    metadata: dict[str, Any] = field(default_factory=dict)
    similarity: float | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON ``payload`` field (nested data Chroma metadata cannot hold)."""
        raw = self.metadata.get("payload")
        return json.loads(raw) if isinstance(raw, str) and raw else {}

    def to_json(self) -> dict[str, Any]:
        meta = {k: v for k, v in self.metadata.items() if k != "payload"}
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "document": self.document}
        data["metadata"] = meta
        data["payload"] = self.payload()
        if self.similarity is not None:
            data["similarity"] = round(self.similarity, 4)
        return data


def clean_metadata(meta: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Chroma metadata holds scalars only: drop ``None``, JSON-encode anything nested."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in meta.items():
        if value is None:
            continue
        if isinstance(value, str | int | float | bool):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True, default=str)
    return out


def collection_metadata(embedder: Embedder) -> dict[str, Any]:
    """What every exapt collection records about its vector space."""
    return {
        "exapt_schema": STORE_SCHEMA,
        "exapt_embedder": embedder.name,
        "exapt_dim": embedder.dim,
    }


def open_client(url: str | None = None) -> tuple[Any, str]:
    """A Chroma client for ``url`` and a readable description of where it points."""
    import chromadb
    from chromadb.config import Settings

    # Registered before any collection is read, so Chroma can rebuild its function.
    register_chroma_function()
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if url and url.startswith(("http://", "https://")):
        parsed = urlparse(url)
        if not parsed.hostname:
            raise ConfigError(f"bad memory URL {url!r}", hint="use http://HOST:PORT")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=settings
            )
            client.heartbeat()
        except Exception as exc:  # connection errors come from httpx as several classes
            raise UnavailableError(
                f"no Chroma server answers at {url}: {exc}",
                hint=f"start one: chroma run --host 127.0.0.1 --port {port} --path DIR",
            ) from exc
        return client, url
    folder = Path(url).expanduser().resolve() if url else paths.memory_dir()
    _check_folder(folder)
    try:
        client = chromadb.PersistentClient(path=str(folder), settings=settings)
        client.list_collections()
    except Exception as exc:  # chromadb raises sqlite / rust errors for a damaged store
        raise ConfigError(
            f"the memory folder {folder} could not be opened by Chroma: {exc}",
            hint="it is damaged or from another Chroma version; move it away to start afresh "
            "(exapt never resets memory), or point --memory-url elsewhere",
        ) from exc
    return client, str(folder)


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"the memory path {folder} is a file, not a folder")
    if not folder.exists():
        return
    entries = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    if entries and "chroma.sqlite3" not in entries:
        shown = ", ".join(sorted(entries)[:5])
        raise ConfigError(
            f"the memory folder {folder} is not a Chroma store (it holds: {shown})",
            hint="point --memory-url (or EXAPT_HOME) at an empty folder or an exapt memory",
        )
    db = folder / "chroma.sqlite3"
    if db.exists() and db.stat().st_size > 0:
        with db.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise ConfigError(
                    f"the memory database {db} is corrupt (not an SQLite file)",
                    hint="restore it from a backup or move the folder away; "
                    "exapt never resets memory",
                )


class MemoryStore:
    """The three collections of one memory, in one embedder's vector space.

    Example:
        store = MemoryStore(None)            # ./.exapt/memory
        store.add("reflections", ["r:1"], ["sum two numbers"], [{"text": "use +"}])
        store.query("reflections", "add a and b", k=3)
    """

    def __init__(self, url: str | None = None, *, embedder: str = DEFAULT_EMBEDDER) -> None:
        self.url = url
        self.client, self.where = open_client(url)
        self.embedder: Embedder = LazyEmbedder(embedder)
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()
        self._vectors_lock = threading.Lock()
        self.collections: dict[str, Any] = {kind: self._open(kind) for kind in KINDS}

    # -- collections ----------------------------------------------------------------------

    def _open(self, kind: str, *, embedder: Embedder | None = None) -> Any:
        from chromadb.errors import NotFoundError

        embedder = embedder or self.embedder
        try:
            existing = self.client.get_collection(kind)
        except NotFoundError:
            existing = None
        except ValueError as exc:  # a collection of this name made with a foreign function
            raise ConfigError(
                f"collection {kind!r} in {self.where} is not an exapt collection: {exc}",
                hint="point --memory-url at an exapt memory",
            ) from exc
        if existing is None:
            return self.client.get_or_create_collection(
                kind,
                configuration={"hnsw": {"space": "cosine"}},
                metadata=collection_metadata(embedder),
                embedding_function=chroma_embedding_function(embedder.name),
            )
        meta = existing.metadata or {}
        stored = meta.get("exapt_embedder")
        if stored is None:
            raise ConfigError(
                f"collection {kind!r} in {self.where} was not made by exapt "
                "(no exapt_embedder in its metadata)",
                hint="point --memory-url at an exapt memory or another folder",
            )
        if stored != embedder.name:
            raise ConfigError(
                f"memory in {self.where} was embedded with {stored!r} "
                f"({meta.get('exapt_dim')} dims), not {embedder.name!r}",
                hint=f"open it with --embedder {stored}, or migrate it: "
                f"exapt memory reembed --embedder {embedder.name}",
            )
        return existing

    def open_extra(self, name: str) -> Any:
        """Another collection in this memory's vector space (e.g. ``langgraph``), created
        on first use and checked like the three of exapt's own."""
        collection = self._open(name)
        self.collections.setdefault(name, collection)
        return collection

    def extra_names(self) -> list[str]:
        """Names of the collections beyond exapt's three in this database."""
        return [c.name for c in self.client.list_collections() if c.name not in KINDS]

    def stored_embedder(self) -> str:
        return str(self.collections["reflections"].metadata.get("exapt_embedder"))

    # -- vectors --------------------------------------------------------------------------

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts``, reusing recent vectors (a task is embedded for recall and again
        for learn; a skill's text for its duplicate check and its insert)."""
        with self._vectors_lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        fresh = self.embedder.embed(missing) if missing else []
        with self._vectors_lock:
            for text, vector in zip(missing, fresh, strict=True):
                self._vectors[text] = vector
            result = [self._vectors[t] for t in texts]
            while len(self._vectors) > 4096:
                self._vectors.popitem(last=False)
        return result

    # -- records --------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        ids: list[str],
        documents: list[str],
        metadatas: list[dict[str, Any]],
        embeddings: list[list[float]] | None = None,
    ) -> None:
        """Insert or overwrite records (``upsert``: writing the same id twice is safe)."""
        if not ids:
            return
        self.collections[kind].upsert(
            ids=ids,
            documents=documents,
            metadatas=[clean_metadata(m) or None for m in metadatas],  # type: ignore[misc]
            embeddings=embeddings if embeddings is not None else self.embed(documents),
        )

    def update(self, kind: str, item_id: str, metadata: dict[str, Any]) -> None:
        """Merge ``metadata`` into a record's metadata (the document and vector stay)."""
        self.collections[kind].update(ids=[item_id], metadatas=[clean_metadata(metadata)])

    def delete(self, kind: str, ids: list[str]) -> None:
        if ids:
            self.collections[kind].delete(ids=ids)

    def get(
        self,
        kind: str,
        ids: list[str] | None = None,
        where: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[Item]:
        res = self.collections[kind].get(
            ids=ids, where=where or None, limit=limit, include=["documents", "metadatas"]
        )
        return [
            Item(i, kind, doc or "", dict(meta or {}))
            for i, doc, meta in zip(res["ids"], res["documents"], res["metadatas"], strict=True)
        ]

    def find(self, item_id: str) -> Item | None:
        """The record with this id, whatever its kind."""
        for kind in KINDS:
            found = self.get(kind, ids=[item_id])
            if found:
                return found[0]
        return None

    def query(
        self,
        kind: str,
        text: str | list[float],
        k: int,
        where: dict[str, Any] | None = None,
    ) -> list[Item]:
        """The ``k`` records nearest to ``text`` (or a precomputed vector), best first."""
        collection = self.collections[kind]
        if k <= 0:
            return []
        vector = self.embed([text])[0] if isinstance(text, str) else text
        res = collection.query(
            query_embeddings=[vector],
            n_results=k,
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Item(i, kind, doc or "", dict(meta or {}), similarity=1.0 - float(dist))
            for i, doc, meta, dist in zip(
                res["ids"][0],
                res["documents"][0],
                res["metadatas"][0],
                res["distances"][0],
                strict=True,
            )
        ]

    def count(self, kind: str) -> int:
        return int(self.collections[kind].count())

    def iter_items(self, kind: str, page: int = 500) -> list[Item]:
        """Every record of ``kind`` (paged reads: a server limits response sizes)."""
        out: list[Item] = []
        offset = 0
        while True:
            res = self.collections[kind].get(
                limit=page, offset=offset, include=["documents", "metadatas"]
            )
            batch = [
                Item(i, kind, doc or "", dict(meta or {}))
                for i, doc, meta in zip(res["ids"], res["documents"], res["metadatas"], strict=True)
            ]
            out.extend(batch)
            if len(batch) < page:
                return out
            offset += page
