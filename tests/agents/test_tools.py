"""Tools against a real bwrap sandbox: observations are what the model needs to go on."""

from __future__ import annotations

import pytest

from exapt.errors import ConfigError
from exapt.sandbox.base import Sandbox
from exapt.tasks.base import SandboxFactory
from exapt.tools import Submitted, ToolContext, ToolError, get_tool, get_tools, openai_schema


@pytest.fixture
def box(sandbox_factory: SandboxFactory) -> Sandbox:
    sandbox = sandbox_factory({"a.py": "x = 1\ny = 2\nx = 1\n", "pkg/b.txt": "hello\n"})
    yield sandbox
    sandbox.close()


def test_view_numbers_lines_and_lists_directories(box: Sandbox) -> None:
    ctx = ToolContext(sandbox=box)
    assert get_tool("view").run(ctx, path="a.py") == "1  x = 1\n2  y = 2\n3  x = 1"
    assert get_tool("view").run(ctx, path="a.py", start=2, end=2) == "2  y = 2"
    assert "pkg/b.txt" in get_tool("view").run(ctx, path="pkg")
    with pytest.raises(ToolError, match="no file or directory"):
        get_tool("view").run(ctx, path="missing.py")


def test_str_replace_refuses_ambiguous_and_absent_text(box: Sandbox) -> None:
    ctx, tool = ToolContext(sandbox=box), get_tool("str_replace")
    with pytest.raises(ToolError, match=r"occurs 2 times in a.py \(lines \[1, 3\]\)"):
        tool.run(ctx, path="a.py", old_str="x = 1", new_str="x = 3")
    with pytest.raises(ToolError, match="does not occur"):
        tool.run(ctx, path="a.py", old_str="z = 9", new_str="z = 0")
    with pytest.raises(ToolError, match="use create"):
        tool.run(ctx, path="nope.py", old_str="a", new_str="b")
    assert box.read("a.py") == b"x = 1\ny = 2\nx = 1\n"  # refused edits change nothing
    assert "line 2" in tool.run(ctx, path="a.py", old_str="y = 2", new_str="y = 5")
    assert box.read("a.py") == b"x = 1\ny = 5\nx = 1\n"


def test_create_writes_inside_the_sandbox_only(box: Sandbox) -> None:
    ctx = ToolContext(sandbox=box)
    get_tool("create").run(ctx, path="new/c.py", content="print('c')\n")
    assert get_tool("shell").run(ctx, command="python3 new/c.py").endswith("stdout:\nc\n")


def test_shell_labels_and_cuts_output(box: Sandbox) -> None:
    ctx = ToolContext(sandbox=box, max_output_chars=200)
    out = get_tool("shell").run(
        ctx, command="python3 -c \"print('x' * 5000)\"; echo oops >&2; exit 3"
    )
    assert out.startswith("exit code: 3\nstdout:\n")
    assert "characters cut" in out and "stderr:\noops" in out
    assert len(out) < 400


def test_shell_timeout_is_reported(box: Sandbox) -> None:
    out = get_tool("shell").run(ToolContext(sandbox=box, timeout_s=1), command="sleep 5")
    assert "timed out" in out


def test_submit_raises_submitted() -> None:
    with pytest.raises(Submitted):
        get_tool("submit").run(ToolContext(sandbox=None), message="done")  # type: ignore[arg-type]


def test_registry_and_schemas() -> None:
    tools = get_tools(["shell", "view", "create", "str_replace", "submit"])
    assert list(tools) == ["shell", "view", "create", "str_replace", "submit"]
    schema = openai_schema(tools["str_replace"])
    assert schema["function"]["parameters"]["required"] == ["path", "old_str", "new_str"]
    with pytest.raises(ConfigError, match="unknown tool 'browser'"):
        get_tool("browser")
