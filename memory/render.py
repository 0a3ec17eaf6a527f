"""Text that memory shows a model: prompt templates (``memory/prompts/*.md``, Jinja with
``StrictUndefined``) and short digests of trajectories and test output.

Digests are deterministic and bounded in size: they go into prompts and into stored records.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from exapt.records import Trajectory

PROMPTS = Path(__file__).parent / "prompts"

# Lines of test output that say what failed (pytest, unittest, plain asserts, tracebacks).
_ERROR_LINE = re.compile(
    r"(Error|Exception|assert|FAILED|Traceback|expected|Expected|!=|failed|timed out|Killed)"
)


@cache
def _template(name: str) -> Any:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((PROMPTS / f"{name}.md").read_text())


def render(name: str, **values: Any) -> str:
    """Fill the template ``memory/prompts/<name>.md``; a missing value raises."""
    return str(_template(name).render(**values))


def clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def error_lines(feedback: str, n: int = 3, width: int = 200) -> list[str]:
    """The last ``n`` distinct lines of ``feedback`` that name an error or a failed assert."""
    lines = [ln.strip() for ln in feedback.splitlines() if ln.strip()]
    hits = [ln for ln in lines if _ERROR_LINE.search(ln)]
    picked = list(dict.fromkeys(reversed(hits or lines[-n:])))[:n]
    return [clip(ln, width) for ln in reversed(picked)]


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"text": value}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}


def tried(trajectory: Trajectory, n: int = 5) -> list[str]:
    """What the agent did, as short phrases (``ran `pytest```, ``wrote solution.py``),
    the last ``n`` distinct ones in order."""
    actions: list[str] = []
    for step in trajectory.steps:
        if step.kind != "tool" or not isinstance(step.input, dict):
            continue
        name = str(step.input.get("name", "tool"))
        args = _arguments(step.input.get("arguments"))
        path = args.get("path") or args.get("file") or args.get("filename")
        command = args.get("command") or args.get("cmd") or args.get("code")
        if path:
            actions.append(f"{name} {path}")
        elif command:
            actions.append(
                f"{name} `{clip(str(command).splitlines()[0] if str(command) else '', 60)}`"
            )
        else:
            actions.append(name)
    return list(dict.fromkeys(reversed(actions)))[:n][::-1]


def actions_digest(trajectory: Trajectory, n: int = 12, width: int = 300) -> str:
    """The agent's own last ``n`` actions as lines a model can read: the tools it called
    (with their arguments) and what it said. Never observations, notes or the score: what
    the solution printed reaches those, and it must not become a lesson."""
    lines: list[str] = []
    for step in trajectory.steps:
        if step.kind == "tool" and isinstance(step.input, dict):
            args = json.dumps(_arguments(step.input.get("arguments")), default=str)
            lines.append(f"- call {step.input.get('name', 'tool')}({clip(args, width)})")
        elif step.kind == "model":
            out = step.output
            text = out.get("content") if isinstance(out, dict) else out
            if text:
                lines.append(f"- said: {clip(str(text), width)}")
    return "\n".join(lines[-n:]) or "(no actions recorded)"


def hidden_lines(hidden: Any, min_chars: int = 8) -> set[str]:
    """Every line (stripped, at least ``min_chars`` long) of the text in a task's ``hidden``
    data: what must never reach a stored lesson or a prompt."""
    found: set[str] = set()
    todo = [hidden]
    while todo:
        value = todo.pop()
        if isinstance(value, str):
            found |= {ln.strip() for ln in value.splitlines() if len(ln.strip()) >= min_chars}
        elif isinstance(value, dict):
            todo += list(value.values())
        elif isinstance(value, list | tuple):
            todo += list(value)
    return found


def scrub(text: str, secret_lines: set[str]) -> str:
    """``text`` without the lines that quote one of ``secret_lines`` (hidden test text)."""
    if not secret_lines:
        return text
    kept = [ln for ln in text.splitlines() if not any(s in ln for s in secret_lines)]
    return "\n".join(kept)


def solution_code(workspace: dict[str, bytes], exclude: tuple[str, ...] = ("skills.py",)) -> str:
    """The Python the agent wrote (test files and generated skills excluded)."""
    parts = []
    for path, data in sorted(workspace.items()):
        name = Path(path).name
        if not path.endswith(".py") or name in exclude or _is_test_file(name):
            continue
        parts.append(data.decode("utf-8", "replace"))
    return "\n\n".join(parts)


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def is_test_file(path: str) -> bool:
    return _is_test_file(Path(path).name)
