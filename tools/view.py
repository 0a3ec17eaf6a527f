"""``view``: show a workspace file with line numbers (or a directory listing)."""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from exapt.sandbox.base import SandboxError
from exapt.tools.base import PATH, ToolContext, ToolError, cut, object_schema


class ViewTool:
    name = "view"
    description = (
        "Show a file of the workspace with line numbers, optionally only lines start..end "
        "(1-based, inclusive). For a directory, list its files."
    )
    parameters: ClassVar[dict[str, Any]] = object_schema(
        ("path",),
        path=PATH,
        start={"type": "integer", "description": "first line to show (default 1)"},
        end={"type": "integer", "description": "last line to show (default: the end)"},
    )

    def run(self, ctx: ToolContext, **args: Any) -> str:
        path = str(args.get("path") or "").strip() or "."
        try:
            data = ctx.sandbox.read(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError, SandboxError):
            # not a readable regular file: a directory is listed, anything else is absent
            return self._listing(ctx, path)
        text = data.decode("utf-8", errors="replace")
        lines = text.splitlines()
        start = max(1, int(args.get("start") or 1))
        end = min(len(lines), int(args.get("end") or len(lines)))
        if not lines:
            return f"{path} is empty"
        if start > end:
            raise ToolError(f"{path} has {len(lines)} lines; ask for start <= end <= {len(lines)}")
        width = len(str(end))
        numbered = [f"{n:>{width}}  {lines[n - 1]}" for n in range(start, end + 1)]
        return cut("\n".join(numbered), ctx.max_output_chars)

    def _listing(self, ctx: ToolContext, path: str) -> str:
        quoted = shlex.quote(path)
        result = ctx.sandbox.exec(
            f"test -d {quoted} && find {quoted} -maxdepth 2 -not -path '*/.*'"
        )
        if result.exit_code != 0:
            raise ToolError(f"no file or directory {path!r}; use view with path '.' to list files")
        return cut(result.stdout, ctx.max_output_chars)
