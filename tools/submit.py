"""``submit``: the agent declares it is done; its workspace is then scored."""

from __future__ import annotations

from typing import Any, ClassVar

from exapt.tools.base import Submitted, ToolContext, object_schema


class SubmitTool:
    name = "submit"
    description = (
        "Call when the task is solved and the files in the workspace are final. The workspace "
        "is then scored by hidden tests; you cannot act after this."
    )
    parameters: ClassVar[dict[str, Any]] = object_schema(message="optional closing note")

    def run(self, ctx: ToolContext, **args: Any) -> str:
        raise Submitted(str(args.get("message") or ""))
