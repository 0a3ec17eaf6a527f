"""Moving a memory into another embedder's vector space (``exapt memory reembed``), and
reading which embedder a memory was made with."""

from __future__ import annotations

import contextlib

from exapt.errors import ConfigError
from exapt.memory.embeddings import chroma_embedding_function, get_embedder
from exapt.memory.store import KINDS, collection_metadata, open_client

_REEMBED_SUFFIX = "__reembed"  # the new collection, until it is complete


def reembed(url: str | None, embedder: str) -> dict[str, int]:
    """Move every collection of the memory at ``url`` into ``embedder``'s vector space and
    return how many records each kind has. Each collection is rebuilt beside the old one and
    swapped in only when complete; an interrupted run is finished by the next one.
    """
    from chromadb.errors import NotFoundError

    client, where = open_client(url)
    target = get_embedder(embedder)
    counts: dict[str, int] = {}
    for kind in KINDS:
        tmp_name = kind + _REEMBED_SUFFIX
        try:
            old = client.get_collection(kind)
        except NotFoundError:
            old = None
        if old is None:
            # a previous run was interrupted between delete and rename: finish it
            with contextlib.suppress(NotFoundError):
                client.get_collection(tmp_name).modify(name=kind)
            continue
        if (old.metadata or {}).get("exapt_embedder") == target.name:
            counts[kind] = old.count()
            continue
        with contextlib.suppress(NotFoundError, ValueError):
            client.delete_collection(tmp_name)
        new = client.create_collection(
            tmp_name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=collection_metadata(target),
            embedding_function=chroma_embedding_function(target.name),
        )
        offset, page = 0, 256
        while True:
            res = old.get(limit=page, offset=offset, include=["documents", "metadatas"])
            if res["ids"]:
                docs = [d or "" for d in res["documents"]]
                new.add(
                    ids=res["ids"],
                    documents=docs,
                    metadatas=res["metadatas"],
                    embeddings=target.embed(docs),
                )
            if len(res["ids"]) < page:
                break
            offset += page
        counts[kind] = new.count()
        client.delete_collection(kind)
        new.modify(name=kind)
    if not counts and not any(c.name in KINDS for c in client.list_collections()):
        raise ConfigError(f"no exapt memory in {where}", hint="nothing to re-embed")
    return counts


def stored_embedder(url: str | None) -> str | None:
    """The embedder the memory at ``url`` was made with (None if it is new or foreign)."""
    from chromadb.errors import NotFoundError

    client, _ = open_client(url)
    for kind in KINDS:
        try:
            collection = client.get_collection(kind)
        except NotFoundError:
            continue
        except ValueError:  # a foreign collection: MemoryStore reports it properly
            return None
        found = (collection.metadata or {}).get("exapt_embedder")
        return str(found) if found else None
    return None
