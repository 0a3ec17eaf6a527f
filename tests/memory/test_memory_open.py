"""``open_memory``: the AgentMemory the runner uses, end to end (real Chroma, embedder, bwrap)."""

from __future__ import annotations

from pathlib import Path

import pytest
from memory_helpers import make_task, make_trajectory

from exapt.agents.models.scripted import ScriptedModel
from exapt.agents.writer import text_writer
from exapt.engine.skill_check import sandbox_skill_check
from exapt.memory import AgentMemory, open_memory
from exapt.tasks.base import SandboxFactory, Score

SOLUTION = b'''
def reverse_words(s: str) -> str:
    """Reverse the order of the words of a sentence.

    >>> reverse_words("hello big world")
    'world big hello'
    """
    return " ".join(reversed(s.split()))
'''
FAIL = Score(reward=0.0, passed=False, feedback="E   AssertionError: assert 'a b' == 'b a'")
PASS = Score(reward=1.0, passed=True, evidence="judge")  # a pass the Python judge saw
INSTRUCTION = "Write reverse_words(s) that reverses the order of the words in a sentence."


@pytest.mark.bwrap
def test_reflexion_then_skill_then_reuse(
    tmp_path: Path, sandbox_factory: SandboxFactory, embedder: object
) -> None:
    memory = open_memory(str(tmp_path), check=sandbox_skill_check(sandbox_factory))
    assert isinstance(memory, AgentMemory)
    task = make_task("rev", INSTRUCTION)
    assert memory.recall(task).model_dump() == {
        "reflections": [],
        "skills": [],
        "insights": [],
        "files": {},
        "ids": [],
    }
    memory.learn(task, make_trajectory("rev", trial=0), FAIL, {"solution.py": b"x = 1\n"})
    again = memory.recall(task)
    assert len(again.reflections) == 1 and "this task, trial 0" in again.reflections[0]
    assert "AssertionError" in again.reflections[0]

    memory.learn(task, make_trajectory("rev", trial=1), PASS, {"solution.py": SOLUTION})
    assert {"event": "skill", "action": "inserted"}.items() <= memory.events[-1].items()

    other = make_task("other", "Given a sentence, return it with its words in reverse order.")
    found = memory.recall(other)
    assert found.skills == [
        "def reverse_words(s: str) -> str: Reverse the order of the words of a sentence."
    ]
    assert "def reverse_words" in found.files["skills.py"]
    assert "skill:reverse_words:v1" in found.ids
    assert any("similar task rev" in r for r in found.reflections)

    # the next solution calls the skill and passes: usage is counted
    uses = b"from skills import reverse_words\n\ndef solve(s):\n    return reverse_words(s)\n"
    memory.learn(other, make_trajectory("other"), PASS, {"solution.py": uses})
    meta = memory.store.get("skills", ids=["skill:reverse_words:v1"])[0].metadata
    assert (meta["retrieved"], meta["used"], meta["passed_when_used"]) == (1, 1, 1)


@pytest.mark.bwrap
def test_chat_model_distills_insights_from_a_failure_then_success(
    tmp_path: Path, sandbox_factory: SandboxFactory, embedder: object
) -> None:
    model = ScriptedModel(
        {
            "Lesson": "Split on whitespace and join reversed.",
            "operations": "ADD: Compare your output with the expected value in the assertion.",
        }
    )
    memory = open_memory(
        str(tmp_path),
        write=text_writer(model),
        check=sandbox_skill_check(sandbox_factory),
        learn_skills=False,
    )
    task = make_task("rev", INSTRUCTION)
    memory.learn(task, make_trajectory("rev", trial=0), FAIL, {})
    memory.learn(task, make_trajectory("rev", trial=1), PASS, {"solution.py": SOLUTION})
    recalled = memory.recall(make_task("x", "Sort a list of names alphabetically."))
    assert recalled.insights == ["Compare your output with the expected value in the assertion."]
    assert memory.store.count("skills") == 0


def test_memory_options_turn_kinds_off(tmp_path: Path, embedder: object) -> None:
    memory = open_memory(str(tmp_path), k_reflections=0)
    task = make_task("rev", INSTRUCTION)
    memory.reflections.add(task, make_trajectory("rev"), FAIL, text="a lesson")
    assert memory.recall(task).reflections == []
