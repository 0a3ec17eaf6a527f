"""``ChromaStore``: LangGraph's BaseStore over exapt's memory (put/get/search/delete/list)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph.store.base import BaseStore
from memory_helpers import make_task, make_trajectory

from exapt.memory.langgraph_store import ChromaStore
from exapt.memory.reflections import Reflections
from exapt.memory.store import MemoryStore
from exapt.tasks.base import Score


@pytest.fixture
def store(tmp_path: Path, embedder: object) -> ChromaStore:
    return ChromaStore(MemoryStore(str(tmp_path)))


def test_put_get_update_delete(store: ChromaStore) -> None:
    assert isinstance(store, BaseStore)
    assert store.get(("users", "42"), "prefs") is None
    store.put(("users", "42"), "prefs", {"text": "likes short answers", "lang": "en"})
    item = store.get(("users", "42"), "prefs")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (
        ("users", "42"),
        "prefs",
        {"text": "likes short answers", "lang": "en"},
    )
    store.put(("users", "42"), "prefs", {"text": "likes long answers"})
    again = store.get(("users", "42"), "prefs")
    assert again is not None and again.value == {"text": "likes long answers"}
    assert again.created_at == item.created_at and again.updated_at >= item.updated_at
    store.delete(("users", "42"), "prefs")
    assert store.get(("users", "42"), "prefs") is None


def test_semantic_search_with_prefix_and_filter(store: ChromaStore) -> None:
    store.put(("docs", "a"), "1", {"text": "how to reverse a string in python", "lang": "py"})
    store.put(("docs", "a"), "2", {"text": "baking sourdough bread at home", "lang": "en"})
    store.put(("docs", "b"), "3", {"text": "reverse the characters of a text", "lang": "en"})
    store.put(("other",), "4", {"text": "reverse a string"})
    hits = store.search(("docs",), query="string reversal", limit=2)
    assert [h.key for h in hits] == ["1", "3"]
    assert hits[0].score is not None and hits[0].score > hits[1].score - 1
    assert [h.key for h in store.search(("docs", "b"), query="string reversal")] == ["3"]
    filtered = store.search(("docs",), query="string reversal", filter={"lang": "en"}, limit=1)
    assert [h.key for h in filtered] == ["3"]
    assert {h.key for h in store.search(("docs",))} == {"1", "2", "3"}  # no query: list
    assert [h.key for h in store.search(("docs",), query="reverse", limit=1, offset=1)] == ["3"]


def test_index_fields_choose_the_embedded_text(store: ChromaStore) -> None:
    store.put(("n",), "a", {"title": "prime numbers", "body": "zzz"}, index=["title"])
    store.put(("n",), "b", {"title": "zzz", "body": "prime numbers"}, index=["title"])
    assert store.search(("n",), query="primes", limit=1)[0].key == "a"


def test_exapt_records_are_visible_to_graphs(store: ChromaStore) -> None:
    task = make_task("rev", "Reverse the words of a sentence.")
    fail = Score(reward=0.0, passed=False, feedback="AssertionError")
    item = Reflections(store.memory).add(task, make_trajectory("rev"), fail, text="split, reverse")
    found = store.search(("reflections",), query="words in reverse order", limit=1)
    assert found[0].key == item.id
    assert found[0].value["metadata"]["text"] == "split, reverse"
    got = store.get(("reflections",), item.id)
    assert got is not None and got.value["metadata"]["task_id"] == "rev"


def test_list_namespaces_and_async(store: ChromaStore) -> None:
    store.put(("users", "1", "prefs"), "k", {"text": "a"})
    store.put(("users", "2", "prefs"), "k", {"text": "b"})
    store.put(("docs",), "k", {"text": "c"})
    assert store.list_namespaces(prefix=("users",)) == [
        ("users", "1", "prefs"),
        ("users", "2", "prefs"),
    ]
    assert store.list_namespaces(suffix=("prefs",), max_depth=2) == [("users", "1"), ("users", "2")]
    assert ("docs",) in store.list_namespaces()

    async def roundtrip() -> object:
        await store.aput(("async",), "x", {"text": "hello"})
        return await store.aget(("async",), "x")

    got = asyncio.run(roundtrip())
    assert got is not None and got.value == {"text": "hello"}  # type: ignore[attr-defined]


def test_a_graph_uses_it_through_store(store: ChromaStore) -> None:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        question: str
        answer: str

    def remember(state: State, *, store: BaseStore) -> dict[str, str]:
        store.put(("notes",), "q", {"text": state["question"]})
        hits = store.search(("notes",), query=state["question"], limit=1)
        return {"answer": hits[0].value["text"]}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    out = builder.compile(store=store).invoke({"question": "what is a skill?", "answer": ""})
    assert out["answer"] == "what is a skill?"
