"""``create`` and ``str_replace``: write a whole file, or replace one exact snippet in it."""

from __future__ import annotations

from typing import Any, ClassVar

from exapt.tools.base import PATH, ToolContext, ToolError, object_schema


def _text_arg(args: dict[str, Any], name: str, tool: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise ToolError(f"{tool} needs a string argument {name!r}")
    return value


class CreateTool:
    name = "create"
    description = "Create a file in the workspace, or overwrite it, with the given content."
    parameters: ClassVar[dict[str, Any]] = object_schema(
        ("path", "content"), path=PATH, content="the whole new content of the file"
    )

    def run(self, ctx: ToolContext, **args: Any) -> str:
        path = _text_arg(args, "path", self.name)
        content = _text_arg(args, "content", self.name)
        ctx.sandbox.write(path, content)
        return f"wrote {path} ({len(content.splitlines())} lines)"


class StrReplaceTool:
    name = "str_replace"
    description = (
        "Replace one exact occurrence of old_str in a workspace file by new_str. old_str must "
        "occur exactly once (include surrounding lines to make it unique); whitespace counts."
    )
    parameters: ClassVar[dict[str, Any]] = object_schema(
        ("path", "old_str", "new_str"),
        path=PATH,
        old_str="the exact text to replace",
        new_str="the text to put in its place",
    )

    def run(self, ctx: ToolContext, **args: Any) -> str:
        path = _text_arg(args, "path", self.name)
        old = _text_arg(args, "old_str", self.name)
        new = _text_arg(args, "new_str", self.name)
        if not old:
            raise ToolError("old_str is empty; to write a whole file use create")
        try:
            text = ctx.sandbox.read(path).decode("utf-8")
        except FileNotFoundError as exc:
            raise ToolError(f"no file {path!r}; use create to make it") from exc
        count = text.count(old)
        if count == 0:
            raise ToolError(
                f"old_str does not occur in {path}; view the file and copy the text exactly "
                "(whitespace and indentation included)"
            )
        if count > 1:
            lines = [text[:i].count("\n") + 1 for i in _positions(text, old)]
            raise ToolError(
                f"old_str occurs {count} times in {path} (lines {lines}); include more "
                "surrounding lines so that it occurs exactly once"
            )
        ctx.sandbox.write(path, text.replace(old, new, 1))
        line = text[: text.index(old)].count("\n") + 1
        return f"replaced 1 occurrence in {path} at line {line}"


def _positions(text: str, part: str) -> list[int]:
    found, start = [], text.find(part)
    while start >= 0:
        found.append(start)
        start = text.find(part, start + 1)
    return found
