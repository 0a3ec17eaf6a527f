"""Datasets from a store filled by scripted runs through the engine: per-call examples with the
context each call saw, the formats TRL reads, the test split kept out, Re-ReST repairs,
dedupe/best-of/caps, content hash and datasheet, and the errors for nothing to train on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exapt.errors import ConfigError
from exapt.evolve.training.datasets import (
    DatasetConfig,
    build_dataset,
    load_saved,
    save_dataset,
)
from exapt.memory.trajectories import TrajectoryStore

from .helpers import function_prompt


def _store(home: Path) -> TrajectoryStore:
    return TrajectoryStore(home / "trajectories.sqlite")


def _build(home: Path, **config: object):  # type: ignore[no-untyped-def]
    with _store(home) as store:
        return build_dataset(store, DatasetConfig(**config))  # type: ignore[arg-type]


def test_sft_rows_are_trusted_passes_of_the_train_split_only(function_home: Path) -> None:
    built = _build(function_home)
    rows = built.dataset.to_list()
    assert {r["split"] for r in rows} == {"train"}
    # f1 (test) and f2 (dev) passed in both runs, but stay out; f5 never passed.
    assert {r["task_id"] for r in rows} == {"toy/f0", "toy/f3", "toy/f4"}
    assert all(r["passed"] and r["reward"] == 1.0 and r["source"] == "attempt" for r in rows)
    by_task = {r["task_id"]: r for r in rows}
    # Each completion is the text the model returned for the prompt it was really sent.
    assert by_task["toy/f4"]["prompt"] == function_prompt(4)
    assert by_task["toy/f4"]["completion"] == "    return x + 4\n"
    assert by_task["toy/f4"]["trajectory_id"] == "collect-s1/toy/f4/0"
    # f3 passed on the retry: its row is the retry's call, whose prompt quotes the failure.
    f3 = [r for r in rows if r["task_id"] == "toy/f3"]
    assert [r["completion"] for r in f3] == ["    return x + 3\n"]  # same in both runs: deduped
    assert "# A previous attempt at this function failed" in f3[0]["prompt"]
    assert f3[0]["prompt"].endswith(function_prompt(3))
    assert sorted(r["completion"] for r in rows if r["task_id"] == "toy/f0") == [
        "    return 0 + x\n",
        "    return x + 0\n",
    ]
    assert built.datasheet["counts"]["duplicates_dropped"] == 1
    assert set(built.dataset.column_names) >= {
        "prompt", "completion", "task_id", "split", "reward", "passed", "variant_id", "model",
        "trajectory_id",
    }  # fmt: skip
    assert "tools" not in built.dataset.column_names  # plain completion calls


def test_the_test_split_is_read_only_when_named(function_home: Path) -> None:
    every = {r["task_id"] for r in _build(function_home, splits=["all"]).dataset}
    assert every == {"toy/f0", "toy/f2", "toy/f3", "toy/f4"}  # all = train + dev
    named = {r["task_id"] for r in _build(function_home, splits=["train", "test"]).dataset}
    assert "toy/f1" in named and "toy/f2" not in named
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        DatasetConfig(splits=["tset"])


def test_best_of_and_caps_per_task(function_home: Path) -> None:
    one = _build(function_home, best_of=1).dataset.to_list()
    assert len([r for r in one if r["task_id"] == "toy/f0"]) == 1
    capped = _build(function_home, max_per_task=1)
    assert (
        max(sum(r["task_id"] == t for r in capped.dataset) for t in ("toy/f0", "toy/f3", "toy/f4"))
        == 1
    )
    assert capped.datasheet["counts"]["capped_per_task"] == 1  # the second f0


def test_rerest_repairs_train_the_uncorrected_prompt(function_home: Path) -> None:
    built = _build(function_home, repairs=True)
    repairs = [r for r in built.dataset if r["source"] == "repair"]
    # f3 failed its first draft, then passed with the error in the prompt: the repair asks
    # for the corrected answer from the first prompt, which carries no error.
    assert [(r["task_id"], r["prompt"], r["completion"]) for r in repairs] == [
        ("toy/f3", function_prompt(3), "    return x + 3\n")
    ]
    assert built.datasheet["by_source"] == {"attempt": 4, "repair": 1}


def test_dpo_pairs_a_good_and_a_bad_answer_to_the_same_prompt(function_home: Path) -> None:
    built = _build(function_home, format="dpo", repairs=True)
    pairs = {(r["task_id"], r["chosen"], r["rejected"]) for r in built.dataset}
    assert ("toy/f4", "    return x + 4\n", "    return 5\n") in pairs  # hidden-test failure
    assert ("toy/f3", "    return x + 3\n", "    return x * 3\n") in pairs  # a repair
    for row in built.dataset:
        assert row["prompt"] in {function_prompt(3), function_prompt(4), function_prompt(0)}
        assert row["trajectory_id"] != row["rejected_trajectory_id"] or row["task_id"] == "toy/f3"
    assert not any(r["task_id"] == "toy/f5" for r in built.dataset)  # nothing good to pair


def test_kto_labels_good_and_bad_calls(function_home: Path) -> None:
    built = _build(function_home, format="kto")
    labels = {(r["task_id"], r["completion"]): r["label"] for r in built.dataset}
    assert labels[("toy/f4", "    return 5\n")] is False
    assert labels[("toy/f4", "    return x + 4\n")] is True
    assert labels[("toy/f5", "    return None\n")] is False
    assert built.datasheet["by_label"]["desirable"] >= 3


def test_chat_examples_have_the_context_each_call_saw_and_arguments_as_objects(
    chat_home: Path,
) -> None:
    built = _build(chat_home)
    rows = built.dataset.to_list()
    assert {r["task_id"] for r in rows} == {"chat/t0", "chat/t3"}  # t1 failed, t2 is dev
    first = next(r for r in rows if r["task_id"] == "chat/t0" and len(r["prompt"]) == 2)
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert "TASK 0:" in first["prompt"][1]["content"]
    call = first["completion"][0]["tool_calls"][0]
    assert call["function"]["arguments"] == {"path": "f0.py", "content": "x = 0\n"}
    assert {t["function"]["name"] for t in first["tools"]} >= {"create", "submit"}
    # The second call saw the first reply and the tool's observation, arguments as objects.
    second = next(r for r in rows if r["task_id"] == "chat/t0" and len(r["prompt"]) == 4)
    assert second["prompt"][2]["tool_calls"][0]["function"]["arguments"]["path"] == "f0.py"
    assert second["prompt"][3]["role"] == "tool" and "wrote" in second["prompt"][3]["content"]
    assert second["completion"][0]["tool_calls"][0]["function"]["name"] == "submit"


def test_chat_repair_replaces_the_reflection_laden_opening(chat_home: Path) -> None:
    built = _build(chat_home, repairs=True)
    repairs = [r for r in built.dataset if r["source"] == "repair"]
    assert repairs and {r["task_id"] for r in repairs} == {"chat/t3"}
    for row in repairs:
        text = json.dumps(row["prompt"])
        assert "LESSON-t3" not in text  # trial 0's opening: no lesson
        assert "TASK 3:" in row["prompt"][1]["content"]
    passed = [r for r in built.dataset if r["source"] == "attempt" and r["task_id"] == "chat/t3"]
    assert passed and all("LESSON-t3" in json.dumps(r["prompt"]) for r in passed)
    assert {r["completion"][0]["content"] for r in repairs} >= {"Using the lesson."}


def test_the_training_prompt_renders_as_the_call_was_sent(chat_home: Path, tiny: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    with _store(chat_home) as store:
        trajectory = store.trajectories("chat-1", "chat/t0")[0]
        built = build_dataset(store, DatasetConfig())
    sent = [s.input for s in trajectory.steps if s.kind == "model"][1]
    row = next(r for r in built.dataset if r["task_id"] == "chat/t0" and len(r["prompt"]) == 4)
    as_sent = tokenizer.apply_chat_template(
        [{k: v for k, v in m.items() if v is not None} for m in sent["messages"]],
        tools=sent["tools"], tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    as_trained = tokenizer.apply_chat_template(
        row["prompt"], tools=row["tools"], tokenize=False, add_generation_prompt=True
    )
    assert as_trained == as_sent


def test_same_store_same_hash_and_saved_with_a_datasheet(
    function_home: Path, tmp_path: Path, tiny: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    with _store(function_home) as store:
        built = build_dataset(store, DatasetConfig(repairs=True), tokenizer=tokenizer)
        again = build_dataset(store, DatasetConfig(repairs=True))
    assert built.hash == again.hash and len(built.hash) == 16
    assert _build(function_home).hash != built.hash  # other content, other hash
    path = save_dataset(built, tmp_path / "datasets")
    assert path == tmp_path / "datasets" / built.hash
    sheet = json.loads((path / "datasheet.json").read_text())
    assert sheet["rows"] == len(built) and sheet["tasks"] == 3
    assert sheet["sources"]["runs"] == ["collect-s0", "collect-s1"]
    assert sheet["splits_skipped"] == {"dev": 2, "test": 2}
    assert 0 < sheet["tokens"]["min"] <= sheet["tokens"]["max"] and sheet["tokens"]["total"] > 0
    loaded = load_saved(path)
    assert loaded.hash == built.hash and loaded.dataset.to_list() == built.dataset.to_list()
    assert save_dataset(built, tmp_path / "datasets") == path  # content-addressed: reused


def test_nothing_to_train_on_is_a_clear_error(function_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"empty sft dataset: no trusted passes .*12 attempts"):
        _build(function_home, models=["someone-else"])
    with pytest.raises(ConfigError, match="no run 'nope'"):
        _build(function_home, runs=["nope"])
    with (
        pytest.raises(ConfigError, match="empty sft dataset"),
        TrajectoryStore(tmp_path / "empty.sqlite") as store,
    ):
        build_dataset(store, DatasetConfig())
    with pytest.raises(ConfigError, match="not a saved exapt dataset"):
        load_saved(tmp_path)


def test_chat_and_completion_calls_do_not_mix(
    function_home: Path, chat_home: Path, tmp_path: Path
) -> None:
    with TrajectoryStore(tmp_path / "mixed.sqlite") as mixed:
        for home in (function_home, chat_home):
            with _store(home) as store:
                for t in store.trajectories():
                    mixed.add(t)
        with pytest.raises(ConfigError, match="both chat calls and plain completion calls"):
            build_dataset(mixed, DatasetConfig())
        chat = build_dataset(mixed, DatasetConfig(kind="chat"))
        assert {r["task_id"].split("/")[0] for r in chat.dataset} == {"chat"}
