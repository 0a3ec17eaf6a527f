"""``ChromaStore``: a LangGraph ``BaseStore`` on exapt's Chroma memory, so any LangGraph
graph can read and write exapt memory through ``store`` (``graph.compile(store=...)``).

Namespaces:
- ``("reflections", ...)``, ``("skills", ...)``, ``("insights", ...)`` live in exapt's own
  collections: a graph sees exapt's records (namespace ``(kind,)``, key = the record id,
  value = the record as JSON) and can add its own beside them;
- any other namespace lives in a ``langgraph`` collection of the same Chroma database, in
  the same vector space.

Values are JSON objects. The text embedded for semantic search is the ``index`` fields of a
put (LangGraph's path syntax), else ``value["text"]`` / ``value["content"]``, else the whole
value as JSON. ``filter`` matches value fields by equality (applied after the vector search,
which fetches extra candidates for it). TTL is not supported.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path

from exapt.memory.store import KINDS, MemoryStore
from exapt.memory.store import Item as MemoryItem

GENERIC = "langgraph"
_MAX_DEPTH = 6  # namespace labels are kept as ns0..ns5 metadata fields for prefix filters


class ChromaStore(BaseStore):
    """LangGraph's key-value + vector store interface over a ``MemoryStore``.

    Example:
        store = ChromaStore(MemoryStore())
        store.put(("user", "42"), "prefs", {"text": "likes short answers"})
        store.search(("user",), query="answer length")[0].value
        graph = builder.compile(store=store)
    """

    supports_ttl = False

    def __init__(self, memory: MemoryStore) -> None:
        self.memory = memory
        self._generic: Any = None

    # -- routing --------------------------------------------------------------------------

    def _collection(self, namespace: tuple[str, ...]) -> tuple[str, Any]:
        if namespace and namespace[0] in KINDS:
            return namespace[0], self.memory.collections[namespace[0]]
        if self._generic is None:
            self._generic = self.memory.open_extra(GENERIC)
        return GENERIC, self._generic

    @staticmethod
    def _where(prefix: tuple[str, ...], native_kind: str | None) -> dict[str, Any] | None:
        """Metadata filter for a namespace prefix. Native records of an exapt collection
        have no ``ns*`` fields: they belong to ``(kind,)`` and match a prefix of length 1."""
        labels = prefix[1:] if native_kind else prefix
        if len(prefix) > _MAX_DEPTH:
            labels = labels[:_MAX_DEPTH]
        offset = 1 if native_kind else 0
        conds = [{f"ns{i + offset}": label} for i, label in enumerate(labels)]
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else {"$and": conds}

    # -- conversions ----------------------------------------------------------------------

    @staticmethod
    def _namespace(kind: str, meta: dict[str, Any]) -> tuple[str, ...]:
        raw = meta.get("lg_ns")
        if isinstance(raw, str):
            return tuple(json.loads(raw))
        return (kind,)

    @staticmethod
    def _value(record: MemoryItem) -> dict[str, Any]:
        raw = record.metadata.get("lg_value")
        if isinstance(raw, str):
            value = json.loads(raw)
            return value if isinstance(value, dict) else {"value": value}
        return record.to_json()  # an exapt record seen through LangGraph

    @staticmethod
    def _times(meta: dict[str, Any]) -> tuple[datetime, datetime]:
        created = float(meta.get("lg_created", meta.get("created_at", 0.0)) or 0.0)
        updated = float(meta.get("lg_updated", meta.get("updated_at", created)) or created)
        return datetime.fromtimestamp(created, UTC), datetime.fromtimestamp(updated, UTC)

    def _item(self, kind: str, record: MemoryItem) -> Item:
        created, updated = self._times(record.metadata)
        return Item(
            value=self._value(record),
            key=str(record.metadata.get("lg_key", record.id)),
            namespace=self._namespace(kind, record.metadata),
            created_at=created,
            updated_at=updated,
        )

    @staticmethod
    def _id(namespace: tuple[str, ...], key: str) -> str:
        if namespace and namespace[0] in KINDS and len(namespace) == 1:
            return key  # (kind,) + key addresses exapt's own record ids
        return "lg:" + json.dumps([*namespace, key])

    @staticmethod
    def _text(value: dict[str, Any], index: list[str] | None) -> str:
        if index:
            parts = [t for path in index for t in get_text_at_path(value, path)]
            if parts:
                return "\n".join(parts)
        for field in ("text", "content", "document"):
            if isinstance(value.get(field), str) and value[field].strip():
                return str(value[field])
        return json.dumps(value, sort_keys=True, default=str)

    # -- operations -----------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order; results line up with them (``None`` for a put)."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list(op))
            else:
                raise TypeError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        # Chroma's clients are synchronous; a worker thread keeps the event loop free.
        return await asyncio.to_thread(self.batch, list(ops))

    def _get(self, op: GetOp) -> Item | None:
        kind, collection = self._collection(op.namespace)
        res = collection.get(
            ids=[self._id(op.namespace, op.key)], include=["documents", "metadatas"]
        )
        if not res["ids"]:
            return None
        return self._item(
            kind,
            MemoryItem(
                res["ids"][0], kind, res["documents"][0] or "", dict(res["metadatas"][0] or {})
            ),
        )

    def _put(self, op: PutOp) -> None:
        _, collection = self._collection(op.namespace)
        item_id = self._id(op.namespace, op.key)
        if op.value is None:
            collection.delete(ids=[item_id])
            return
        value = dict(op.value)
        now = time.time()
        old = collection.get(ids=[item_id], include=["metadatas"])
        created = (old["metadatas"][0] or {}).get("lg_created", now) if old["ids"] else now
        meta: dict[str, Any] = {
            "lg_ns": json.dumps(list(op.namespace)),
            "lg_key": op.key,
            "lg_value": json.dumps(value, default=str),
            "lg_created": created,
            "lg_updated": now,
        }
        for i, label in enumerate(op.namespace[:_MAX_DEPTH]):
            meta[f"ns{i}"] = label
        text = self._text(value, op.index if isinstance(op.index, list) else None)
        collection.upsert(
            ids=[item_id],
            documents=[text],
            metadatas=[meta],
            embeddings=self.memory.embed([text]),
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = op.namespace_prefix
        kinds = [prefix[0]] if prefix and prefix[0] in KINDS else []
        targets = [(k, self.memory.collections[k]) for k in kinds] or [self._collection(prefix)]
        want = op.offset + op.limit
        found: list[tuple[float | None, str, MemoryItem]] = []
        for kind, collection in targets:
            where = self._where(prefix, kind if kind in KINDS else None)
            if op.query:
                n = max(want * (4 if op.filter else 1), want)
                res = collection.query(
                    query_embeddings=self.memory.embed([op.query]),
                    n_results=max(1, n),
                    where=where,
                    include=["documents", "metadatas", "distances"],
                )
                rows = zip(
                    res["ids"][0],
                    res["documents"][0],
                    res["metadatas"][0],
                    res["distances"][0],
                    strict=True,
                )
                found += [
                    (1.0 - float(d), kind, MemoryItem(i, kind, doc or "", dict(m or {})))
                    for i, doc, m, d in rows
                ]
            else:
                res = collection.get(where=where, include=["documents", "metadatas"])
                rows2 = zip(res["ids"], res["documents"], res["metadatas"], strict=True)
                records = [MemoryItem(i, kind, doc or "", dict(m or {})) for i, doc, m in rows2]
                records.sort(
                    key=lambda r: (
                        -float(r.metadata.get("lg_updated", r.metadata.get("updated_at", 0)) or 0)
                    )
                )
                found += [(None, kind, r) for r in records]
        out: list[SearchItem] = []
        for score, kind, record in found:
            item = self._item(kind, record)
            if not _prefix_ok(item.namespace, prefix) or not _filter_ok(item.value, op.filter):
                continue
            out.append(
                SearchItem(
                    namespace=item.namespace,
                    key=item.key,
                    value=item.value,
                    created_at=item.created_at,
                    updated_at=item.updated_at,
                    score=score,
                )
            )
        return out[op.offset : op.offset + op.limit]

    def _list(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        names: set[tuple[str, ...]] = set()
        for kind in (*KINDS, GENERIC):
            if kind == GENERIC:
                if self._generic is None and GENERIC not in self.memory.extra_names():
                    continue
                collection = self._collection((GENERIC,))[1]
            else:
                collection = self.memory.collections[kind]
            res = collection.get(include=["metadatas"])
            for meta in res["metadatas"]:
                names.add(self._namespace(kind, dict(meta or {})))
        matched = [n for n in names if all(_matches(n, c) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            matched = sorted({n[: op.max_depth] for n in matched})
        return sorted(matched)[op.offset : op.offset + op.limit]


def _prefix_ok(namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return namespace[: len(prefix)] == prefix


def _filter_ok(value: dict[str, Any], condition: dict[str, Any] | None) -> bool:
    if not condition:
        return True
    for key, want in condition.items():
        got = value.get(key)
        if isinstance(want, dict) and any(k.startswith("$") for k in want):
            for op_name, arg in want.items():
                ok = {
                    "$eq": got == arg,
                    "$ne": got != arg,
                    "$gt": got is not None and got > arg,
                    "$gte": got is not None and got >= arg,
                    "$lt": got is not None and got < arg,
                    "$lte": got is not None and got <= arg,
                }.get(op_name, False)
                if not ok:
                    return False
        elif got != want:
            return False
    return True


def _matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))
