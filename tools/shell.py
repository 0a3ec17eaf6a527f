"""``shell``: run a command in the task's sandbox; the observation is the labelled output."""

from __future__ import annotations

from typing import Any, ClassVar

from exapt.tools.base import ToolContext, ToolError, cut, object_schema


class ShellTool:
    name = "shell"
    description = (
        "Run a shell command (/bin/sh -c) in the workspace of the task's sandbox and return "
        "its exit code, stdout and stderr. The working directory persists between calls. "
        "There is no network. Long outputs are cut in the middle."
    )
    parameters: ClassVar[dict[str, Any]] = object_schema(("command",), command="the command to run")

    def run(self, ctx: ToolContext, **args: Any) -> str:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("shell needs a non-empty 'command' string, e.g. {'command': 'ls'}")
        result = ctx.sandbox.exec(command, timeout=ctx.timeout_s, env=ctx.env or None)
        status = f"exit code: {result.exit_code}"
        if result.timed_out:
            status += f" (timed out after {ctx.timeout_s:.0f} s: make the command faster)"
        if result.oom_killed:
            status += " (killed: out of memory)"
        half = ctx.max_output_chars // 2
        parts = [status]
        if result.stdout:
            parts.append("stdout:\n" + cut(result.stdout, half))
        if result.stderr:
            parts.append("stderr:\n" + cut(result.stderr, half))
        if not result.stdout and not result.stderr:
            parts.append("(no output)")
        return "\n".join(parts)
