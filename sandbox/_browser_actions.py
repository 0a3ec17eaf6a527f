"""The actions an agent may take in a browser episode: BrowserGym's ``HighLevelActionSet``
over a fixed set of subsets, checked against the environment's policy before they run.

``check_action`` parses one action with BrowserGym's own parser (a call with literal
arguments only) and refuses what the policy forbids (module doc of ``browser.py``);
``action_code`` is what BrowserGym then executes: its action functions' own source and the
call rebuilt from the parsed literals (``to_python_code``), never the agent's text.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from exapt.errors import ExaptError


class ActionRefused(ExaptError):
    """An action the environment will not run; the message tells the agent why."""


#: BrowserGym action subsets agents get: element actions by bid, mouse/keyboard by
#: coordinates, navigation, a message to the user (BrowserGym's ``ACTION_SUBSETS``).
ACTION_SUBSETS = ("chat", "bid", "coord", "nav")
#: Actions of those subsets left out, and why (the agent is told).
REFUSED_ACTIONS = {
    "upload_file": "file uploads are disabled: they would read files of the host",
    "mouse_upload_file": "file uploads are disabled: they would read files of the host",
}
ALLOWED_SCHEMES = ("http", "https")


parse_lock = threading.Lock()  # pyparsing elements are shared module state


@functools.cache
def action_set() -> Any:
    """BrowserGym's ``HighLevelActionSet`` over ``ACTION_SUBSETS`` minus ``REFUSED_ACTIONS``;
    one action per step, parsed strictly (the whole string is one call)."""
    from browsergym.core.action.highlevel import ACTION_SUBSETS as SUBSETS
    from browsergym.core.action.highlevel import HighLevelActionSet

    functions: list[Callable[..., Any]] = []
    for subset in ACTION_SUBSETS:
        for fn in SUBSETS[subset]:
            if fn.__name__ not in REFUSED_ACTIONS and fn not in functions:
                functions.append(fn)
    return HighLevelActionSet(
        subsets=["custom"], custom_actions=functions, multiaction=False, strict=True
    )


def action_names() -> list[str]:
    """The actions an agent may use, in BrowserGym's order (``noop`` first)."""
    return list(action_set().action_set)


def describe_actions() -> str:
    """BrowserGym's own description of the action set (signatures, docs, examples)."""
    return str(action_set().describe(with_long_description=True, with_examples=True))


def check_action(action: str) -> tuple[str, list[Any]]:
    """Parse ``action`` (one BrowserGym call with literal arguments) and check it against
    the policy; return ``(name, args)``. Raises ``ActionRefused`` saying what is wrong."""
    import pyparsing as pp
    from browsergym.core.action.parsers import NamedArgument, highlevel_action_parser

    if not isinstance(action, str) or not action.strip():
        raise ActionRefused("empty action: write one call, e.g. click('12')")
    try:
        with parse_lock:
            calls = highlevel_action_parser.parse_string(action, parse_all=True).as_list()
    except pp.ParseException as exc:
        raise ActionRefused(
            f"{action[:200]!r} is not one action call with literal arguments ({exc.msg}); "
            "write e.g. click('12') or fill('7', 'some text')"
        ) from exc
    if len(calls) != 1:
        raise ActionRefused(f"one action at a time, got {len(calls)}")
    name, args = calls[0]
    if name in REFUSED_ACTIONS:
        raise ActionRefused(f"{name}: {REFUSED_ACTIONS[name]}")
    if name not in action_set().action_set:
        raise ActionRefused(f"unknown action {name!r}; use one of: {', '.join(action_names())}")
    if name == "goto":
        urls = [a.value for a in args if isinstance(a, NamedArgument) and a.name == "url"]
        urls += [a for a in args if not isinstance(a, NamedArgument)]
        if len(urls) != 1:
            raise ActionRefused("goto takes one url, e.g. goto('http://example.com/page.html')")
        check_url(urls[0])
    return name, args


def check_url(url: Any) -> None:
    """Refuse anything but an absolute http(s) URL (as a browser reads it: tabs and newlines
    removed, surrounding spaces and control characters stripped)."""
    if not isinstance(url, str):
        raise ActionRefused(f"goto: the url must be a string, got {type(url).__name__}")
    cleaned = "".join(ch for ch in url if ch not in "\t\n\r").strip("".join(map(chr, range(33))))
    scheme = urlsplit(cleaned).scheme.lower()
    if scheme == "javascript":
        raise ActionRefused("goto: javascript: URLs are refused (agents may not run script)")
    if scheme not in ALLOWED_SCHEMES or not urlsplit(cleaned).netloc:
        shown = f"{scheme}: URLs" if scheme else "relative URLs"
        raise ActionRefused(f"goto: only absolute http(s) URLs are allowed, not {shown}")


def action_code(action: str) -> str:
    """The Python code BrowserGym runs for ``action``: its action functions' own source and
    one call rebuilt from the parsed literals (``to_python_code``) — never the agent's text."""
    with parse_lock:
        return str(action_set().to_python_code(action))


def tool_descriptions() -> list[dict[str, Any]]:
    """BrowserGym's OpenAI-style tool descriptors of the action set."""
    return list(action_set().to_tool_description(api="openai"))


def find_calls(text: str) -> list[tuple[str, list[Any]]]:
    """Every action-like call in free text (BrowserGym's lenient parsing: prose between
    calls is skipped), as ``(name, args)``; nothing is checked against the policy here."""
    import pyparsing as pp
    from browsergym.core.action.parsers import highlevel_action_parser

    try:
        with parse_lock:
            found = highlevel_action_parser.search_string(text).as_list()
    except pp.ParseBaseException:
        return []
    return [(name, args) for group in found for name, args in group]
