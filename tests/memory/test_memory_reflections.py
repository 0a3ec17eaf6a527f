"""Reflections: written by a chat model or summarised, found again for paraphrased tasks."""

from __future__ import annotations

from pathlib import Path

from memory_helpers import make_task, make_trajectory

from exapt.agents.models.base import ModelError
from exapt.agents.models.scripted import ScriptedModel
from exapt.agents.writer import text_writer
from exapt.memory.reflections import Reflections, summarize
from exapt.memory.store import MemoryStore
from exapt.tasks.base import Score

FAIL = Score(
    reward=0.0,
    passed=False,
    feedback="test_rev.py:3: in test_rev\nE   AssertionError: assert 'a b' == 'b a'\n1 failed",
)

TASKS = {
    "rev": "Write a function reverse_words(s) that reverses the order of the words in a sentence.",
    "prime": "Implement is_prime(n): return True when n is a prime number.",
    "csv": "Parse a CSV file and return the sum of the 'amount' column.",
    "date": "Convert a date string like 2024-01-31 to the weekday name.",
}


def _store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(str(tmp_path))


def test_summary_names_the_error_and_what_was_tried() -> None:
    task = make_task("rev", TASKS["rev"])
    text = summarize(task, make_trajectory("rev"), FAIL)
    assert "AssertionError: assert 'a b' == 'b a'" in text
    assert "bash `python3 -m pytest -q`" in text and "write_file solution.py" in text


def test_paraphrased_task_retrieves_the_relevant_reflection(
    tmp_path: Path, embedder: object
) -> None:
    refl = Reflections(_store(tmp_path))
    for task_id, instruction in TASKS.items():
        task = make_task(task_id, instruction)
        refl.add(task, make_trajectory(task_id), FAIL, text=f"lesson about {task_id}")
    query = make_task("new", "Given a sentence, return it with its words in reverse order.")
    found = refl.search(query, k=2)
    assert found[0].metadata["task_id"] == "rev"
    assert found[0].metadata["text"] == "lesson about rev"
    query = make_task("new2", "Check whether an integer is prime.")
    assert refl.search(query, k=1)[0].metadata["task_id"] == "prime"


def test_same_task_comes_first_latest_trial_first(tmp_path: Path, embedder: object) -> None:
    refl = Reflections(_store(tmp_path))
    other = make_task("rev2", TASKS["rev"] + " Words are separated by spaces.")
    refl.add(other, make_trajectory("rev2"), FAIL, text="other task")
    date = make_task("date", TASKS["date"])  # its own text is far from its instruction
    refl.add(date, make_trajectory("date", trial=0), FAIL, text="trial 0")
    refl.add(date, make_trajectory("date", trial=1), FAIL, text="trial 1")
    found = refl.search(date, k=3)
    assert [i.metadata["text"] for i in found[:2]] == ["trial 1", "trial 0"]
    rev = make_task("rev", TASKS["rev"])
    assert refl.search(rev, k=1)[0].metadata["task_id"] == "rev2"
    # metadata kept for filtering and reports
    meta = found[0].metadata
    assert (meta["suite"], meta["variant"], meta["model"], meta["trial"]) == (
        "demo",
        "v0",
        "scripted",
        1,
    )
    assert meta["passed"] is False and meta["reward"] == 0.0


def test_chat_model_writes_the_lesson(tmp_path: Path, embedder: object) -> None:
    model = ScriptedModel(["Split on whitespace, then join the words in reverse order."])
    refl = Reflections(_store(tmp_path))
    task = make_task("rev", TASKS["rev"])
    item = refl.add(task, make_trajectory("rev"), FAIL, write=text_writer(model))
    assert item.metadata["source"] == "model"
    assert item.metadata["text"].startswith("Split on whitespace")
    prompt = model.calls[0]["messages"][-1]["content"]
    assert TASKS["rev"] in prompt and "AssertionError" in prompt and "python3 -m pytest" in prompt


def test_base_model_or_failing_model_gives_a_summary(tmp_path: Path, embedder: object) -> None:
    refl = Reflections(_store(tmp_path))
    task = make_task("rev", TASKS["rev"])
    base = ScriptedModel(["never used"], is_base=True)
    assert (
        refl.add(task, make_trajectory("rev"), FAIL, write=text_writer(base)).metadata["source"]
        == "summary"
    )
    assert base.calls == []

    class Down:
        name, supports_tools, is_base = "down", False, False

        def chat(self, *a: object, **k: object) -> object:
            raise ModelError("provider unreachable")

    down = text_writer(Down())  # type: ignore[arg-type]
    item = refl.add(task, make_trajectory("rev", trial=1), FAIL, write=down)
    assert item.metadata["source"] == "summary" and "AssertionError" in item.metadata["text"]
