"""Parse actions out of plain text, for models without tool calling.

The format (what the ``text_coder`` prompts teach), one fenced block per action:

    ```bash
    python3 -m pytest -q
    ```
    ```write path/to/file.py
    <the whole new content of the file>
    ```
    ```edit path/to/file.py
    <<<<<<< SEARCH
    <exact lines to replace>
    =======
    <new lines>
    >>>>>>> REPLACE
    ```
    ```submit
    ```

Blocks of other languages (```python ...```) are not actions. Each action maps onto a tool
call (``shell``, ``create``, ``str_replace``, ``submit``), so both loops share the tools.
A reply with no action raises ``FormatError`` whose message tells the model what to write.
"""

from __future__ import annotations

import re

from exapt.agents.models.base import ToolCall
from exapt.errors import ExaptError

FENCE = re.compile(
    r"^```[ \t]*([A-Za-z_]+)[ \t]*([^\n`]*?)[ \t]*(?:\n(.*?))?^```[ \t]*$", re.M | re.S
)
ONE_LINE_SUBMIT = re.compile(r"^```[ \t]*submit[ \t]*```[ \t]*$", re.M)
SEARCH_REPLACE = re.compile(
    r"^<<<<<<< SEARCH\n(.*?)\n?^=======\n(.*?)\n?^>>>>>>> REPLACE[ \t]*$", re.M | re.S
)
SHELLS = {"bash", "sh", "shell", "console"}


class FormatError(ExaptError):
    """The reply holds no valid action; the message says what was wrong and what to write."""


def parse_actions(text: str) -> list[ToolCall]:
    """All actions of ``text`` in order. Raises ``FormatError`` when there is none, or when
    a block that looks like an action is malformed."""
    actions: list[tuple[int, ToolCall]] = []
    for match in FENCE.finditer(text):
        kind, arg, body = match.group(1).lower(), match.group(2).strip(), match.group(3) or ""
        call = _action(kind, arg, body, len(actions))
        if call is not None:
            actions.append((match.start(), call))
    for match in ONE_LINE_SUBMIT.finditer(text):
        actions.append((match.start(), ToolCall(id=f"text-{len(actions)}", name="submit")))
    if not actions:
        raise FormatError(
            "your reply contains no action. Reply with exactly one fenced block: ```bash``` to "
            "run a command, ```write PATH``` to write a file, ```edit PATH``` with a SEARCH/"
            "REPLACE block to change one, or ```submit``` when the task is done."
        )
    return [call for _, call in sorted(actions, key=lambda item: item[0])]


def _action(kind: str, arg: str, body: str, index: int) -> ToolCall | None:
    call_id = f"text-{index}"
    if kind in SHELLS:
        if not body.strip():
            raise FormatError("the ```bash``` block is empty; put the command inside it")
        return ToolCall(id=call_id, name="shell", arguments={"command": body.rstrip("\n")})
    if kind == "write":
        if not arg:
            raise FormatError(
                "```write``` needs a path on its first line: ```write path/to/file.py"
            )
        return ToolCall(id=call_id, name="create", arguments={"path": arg, "content": body})
    if kind == "edit":
        if not arg:
            raise FormatError("```edit``` needs a path on its first line: ```edit path/to/file.py")
        found = SEARCH_REPLACE.search(body)
        if found is None:
            raise FormatError(
                f"the ```edit {arg}``` block needs <<<<<<< SEARCH, the old lines, =======, the "
                "new lines and >>>>>>> REPLACE, each marker on its own line"
            )
        arguments = {"path": arg, "old_str": found.group(1), "new_str": found.group(2)}
        return ToolCall(id=call_id, name="str_replace", arguments=arguments)
    if kind == "submit":
        return ToolCall(id=call_id, name="submit", arguments={"message": body.strip()})
    return None  # a code block shown, not an action
