"""``submit``: the agent declares it is done; its workspace is then scored."""

from __future__ import annotations

from typing import Any, ClassVar

from exapt.tools.base import Submitted, ToolContext


class SubmitTool:
    name = "submit"
    description = (
        "Call when the task is solved and the files in the workspace are final. The workspace "
        "is then scored by hidden tests; you cannot act after this."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"message": {"type": "string", "description": "optional closing note"}},
        "required": [],
    }

    def run(self, ctx: ToolContext, **args: Any) -> str:
        raise Submitted(str(args.get("message") or ""))
