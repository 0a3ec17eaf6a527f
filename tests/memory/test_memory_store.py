"""Opening the store: cosine space, embedder recorded, mismatches and damage reported."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from exapt.errors import ConfigError
from exapt.memory.embeddings import register_embedder
from exapt.memory.reembed import reembed
from exapt.memory.store import KINDS, MemoryStore


class HashEmbedder:
    """A second vector space for the tests (letters hashed into 16 buckets)."""

    name = "hash16"
    dim = 16

    def embed(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * 16
            for word in text.lower().split():
                v[hashlib.md5(word.encode()).digest()[0] % 16] += 1.0
            norm = sum(x * x for x in v) ** 0.5 or 1.0
            out.append([x / norm for x in v])
        return out


register_embedder("hash16", HashEmbedder)


def test_collections_record_embedder_and_use_cosine(tmp_path: Path, embedder: object) -> None:
    store = MemoryStore(str(tmp_path))
    for kind in KINDS:
        col = store.collections[kind]
        assert col.metadata["exapt_embedder"] == "minilm"
        assert col.metadata["exapt_dim"] == 384
        assert col.configuration_json["hnsw"]["space"] == "cosine"
    store.add("reflections", ["a", "b"], ["reverse a string", "parse a date"], [{}, {}])
    hits = store.query("reflections", "return the string backwards", 2)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].similarity is not None and 0.5 < hits[0].similarity <= 1.0


def test_reopened_collection_embeds_with_raw_chroma_calls(tmp_path: Path, embedder: object) -> None:
    import chromadb

    store = MemoryStore(str(tmp_path))
    store.add("skills", ["s1", "s2"], ["reverse a string", "sum of a list"], [{}, {}])
    del store
    raw = chromadb.PersistentClient(str(tmp_path)).get_collection("skills")
    assert raw.query(query_texts=["add up all the numbers"], n_results=1)["ids"] == [["s2"]]


def test_opening_with_another_embedder_names_both(tmp_path: Path, embedder: object) -> None:
    MemoryStore(str(tmp_path))
    with pytest.raises(ConfigError) as err:
        MemoryStore(str(tmp_path), embedder="hash16")
    assert "'minilm'" in err.value.message and "'hash16'" in err.value.message
    assert "reembed" in (err.value.hint or "")


def test_reembed_migrates_and_keeps_every_record(tmp_path: Path, embedder: object) -> None:
    store = MemoryStore(str(tmp_path))
    store.add("reflections", ["a", "b"], ["reverse a string", "parse a date"], [{"x": 1}, {}])
    counts = reembed(str(tmp_path), "hash16")
    assert counts["reflections"] == 2
    moved = MemoryStore(str(tmp_path), embedder="hash16")
    assert moved.stored_embedder() == "hash16"
    assert {i.id for i in moved.iter_items("reflections")} == {"a", "b"}
    assert moved.get("reflections", ids=["a"])[0].metadata == {"x": 1}
    with pytest.raises(ConfigError):
        MemoryStore(str(tmp_path))  # now minilm is the stranger
    reembed(str(tmp_path), "minilm")
    assert MemoryStore(str(tmp_path)).query("reflections", "reverse a string", 1)[0].id == "a"


def test_corrupt_database_is_reported_not_reset(tmp_path: Path) -> None:
    db = tmp_path / "chroma.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="corrupt"):
        MemoryStore(str(tmp_path))
    assert db.read_bytes() == b"this is not a database" * 100


def test_damaged_sqlite_is_reported(tmp_path: Path, embedder: object) -> None:
    MemoryStore(str(tmp_path)).add("reflections", ["a"], ["x"], [{}])
    import chromadb

    chromadb.api.client.SharedSystemClient.clear_system_cache()  # forget the open client
    db = tmp_path / "chroma.sqlite3"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, destroy the schema page
    db.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"could not be opened|corrupt|not an exapt"):
        MemoryStore(str(tmp_path))


def test_foreign_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my files")
    with pytest.raises(ConfigError, match="not a Chroma store"):
        MemoryStore(str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "my files"


def test_foreign_collection_is_reported(tmp_path: Path) -> None:
    import chromadb

    client = chromadb.PersistentClient(str(tmp_path))
    client.create_collection("reflections", embedding_function=HashEmbedderFn())
    with pytest.raises(ConfigError, match=r"not an exapt collection|not made by exapt"):
        MemoryStore(str(tmp_path))


class HashEmbedderFn:
    """A minimal foreign Chroma embedding function (no exapt metadata)."""

    def __call__(self, input: list[str]) -> list[list[float]]:
        return HashEmbedder().embed(list(input))

    @staticmethod
    def name() -> str:
        return "default"

    def is_legacy(self) -> bool:
        return True
