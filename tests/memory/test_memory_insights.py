"""Insights: ExpeL's operations, a tolerant parser, counters, the strongest rules first."""

from __future__ import annotations

from pathlib import Path

from exapt.agents.models.scripted import ScriptedModel
from exapt.agents.writer import text_writer
from exapt.memory.insights import Insights, Op, parse_ops
from exapt.memory.store import MemoryStore


def test_parser_reads_ops_and_skips_junk() -> None:
    reply = """Sure! Here are my operations:
1. ADD: Run the visible tests before submitting.
- **EDIT 2**: Read the whole task statement before writing code.
AGREE 3
* REMOVE rule #4
ADD 3
EDIT: no number here
AGREE: none
REMOVE 1: because it is wrong
ADD: short
I think that is all.
"""
    assert parse_ops(reply) == [
        Op("ADD", None, "Run the visible tests before submitting."),
        Op("EDIT", 2, "Read the whole task statement before writing code."),
        Op("AGREE", 3, ""),
        Op("REMOVE", 4, ""),
        Op("REMOVE", 1, ""),
    ]


def test_counters_follow_expel(tmp_path: Path, embedder: object) -> None:
    ins = Insights(MemoryStore(str(tmp_path)))
    done = ins.apply(
        [
            Op("ADD", None, "Run the visible tests before submitting."),
            Op("ADD", None, "Handle empty inputs first."),
        ]
    )
    assert done["ADD"] == 2
    shown = ins.top(10)
    assert [i.metadata["count"] for i in shown] == [2, 2]
    first, second = shown[0].metadata["text"], shown[1].metadata["text"]
    ins.apply([Op("AGREE", 2), Op("AGREE", 2), Op("REMOVE", 1), Op("AGREE", 9)], shown)
    top = ins.top(10)
    assert [(i.metadata["text"], i.metadata["count"]) for i in top] == [(second, 4), (first, 1)]
    ins.apply([Op("REMOVE", 2)], top)  # first reaches 0 and is deleted
    assert [i.metadata["text"] for i in ins.top(10)] == [second]
    ins.apply([Op("EDIT", 1, "Handle empty and one-element inputs first.")])
    (only,) = ins.top(10)
    assert (only.metadata["text"], only.metadata["count"]) == (
        "Handle empty and one-element inputs first.",
        5,
    )
    assert ins.store.query("insights", "edge cases such as an empty list", 1)[0].id == only.id
    # an ADD that repeats a rule agrees with it instead of duplicating it
    ins.apply([Op("ADD", None, "Handle empty and one-element inputs first.")])
    assert [i.metadata["count"] for i in ins.top(10)] == [6]


def test_distill_asks_a_chat_model_and_applies_its_ops(tmp_path: Path, embedder: object) -> None:
    ins = Insights(MemoryStore(str(tmp_path)))
    ins.apply([Op("ADD", None, "Read the task statement twice.")])
    model = ScriptedModel(["ADD: Check the order of arguments in assertions.\nAGREE 1\nnonsense"])
    done = ins.distill(
        text_writer(model),  # type: ignore[arg-type]
        instruction="reverse words",
        failure="assert 'a b' == 'b a'",
        success="return ' '.join(...)",
    )
    assert done == {"ADD": 1, "EDIT": 0, "AGREE": 1, "REMOVE": 0}
    assert "1: Read the task statement twice. [2]" in model.calls[0]["messages"][0]["content"]
    assert [i.metadata["text"] for i in ins.top(1)] == ["Read the task statement twice."]
