"""The text-action format: what the text coder's prompts teach is what the parser accepts."""

from __future__ import annotations

import pytest

from exapt.agents.graphs.text_actions import FormatError, parse_actions


def test_each_action_kind_maps_onto_its_tool() -> None:
    reply = (
        "Let me fix it.\n"
        "```edit add.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n"
        ">>>>>>> REPLACE\n```\n"
        "```bash\npython3 -c 'print(1)'\n```\n"
        "```write notes/todo.txt\nline 1\nline 2\n```\n"
        "```submit\n```\n"
    )
    calls = parse_actions(reply)
    assert [c.name for c in calls] == ["str_replace", "shell", "create", "submit"]
    assert calls[0].arguments == {
        "path": "add.py",
        "old_str": "    return a - b",
        "new_str": "    return a + b",
    }
    assert calls[1].arguments == {"command": "python3 -c 'print(1)'"}
    assert calls[2].arguments == {"path": "notes/todo.txt", "content": "line 1\nline 2\n"}


def test_code_blocks_that_are_not_actions_are_a_format_error() -> None:
    with pytest.raises(FormatError, match="no action"):
        parse_actions("Here is the fix:\n```python\ndef add(a, b):\n    return a + b\n```\n")


def test_plain_prose_is_a_format_error_that_says_what_to_write() -> None:
    with pytest.raises(FormatError) as info:
        parse_actions("I think the bug is in the minus sign.")
    assert "```bash```" in info.value.message and "```submit```" in info.value.message


def test_one_line_submit_and_empty_replacement() -> None:
    assert [c.name for c in parse_actions("done\n```submit```")] == ["submit"]
    edit = "```edit a.py\n<<<<<<< SEARCH\nx = 1\n=======\n>>>>>>> REPLACE\n```"
    assert parse_actions(edit)[0].arguments["new_str"] == ""


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("```edit a.py\nreturn a + b\n```", "SEARCH"),
        ("```write\nx = 1\n```", "needs a path"),
        ("```bash\n\n```", "empty"),
    ],
)
def test_malformed_actions_say_what_is_wrong(reply: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_actions(reply)
