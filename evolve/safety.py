"""What evolve checks because variants and mutator replies are untrusted input.

- ``check_template``: prompts are Jinja templates rendered *in the exapt process* (by
  ``exapt.agents.templates``, a plain ``jinja2.Environment``). A template that calls
  methods or reaches dunder attributes (``''.__class__.__mro__``...) would run host code,
  so a mutated prompt is held to what prompts need: variables, attributes and items by
  plain names, ``if``/``for``/``include``, and a list of side-effect-free filters.
  (The built-in prompts use nothing else.)
- ``redact_feedback``: the scorer's visible feedback goes to a mutator model; lines that
  repeat text of the task's hidden data are cut out, so a scorer whose log echoes a hidden
  test cannot leak it (defence in depth: scorers are meant never to put it there).
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2 import nodes

from exapt.errors import ConfigError

#: Filters a prompt may use: none reaches attributes by a name given in the template.
SAFE_FILTERS = frozenset(
    {
        "comment", "list", "join", "format", "default", "d", "upper", "lower", "title",
        "capitalize", "trim", "length", "count", "indent", "replace", "truncate", "wordwrap",
        "first", "last", "string", "int", "float", "round", "abs", "unique", "reverse",
        "center", "striptags", "wordcount", "tojson", "batch", "slice", "e", "escape",
    }
)  # fmt: skip
_FORBIDDEN_STATEMENTS = (nodes.Import, nodes.FromImport, nodes.Extends, nodes.Macro,
                         nodes.CallBlock, nodes.FilterBlock, nodes.Assign, nodes.AssignBlock,
                         nodes.With)  # fmt: skip


def check_template(name: str, text: str) -> None:
    """Raise ``ConfigError`` if prompt ``name`` uses anything beyond what prompts need."""
    try:
        tree = jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"prompt {name!r}: Jinja syntax error line {exc.lineno}: {exc.message}"
        ) from exc
    for node in tree.find_all(nodes.Node):
        problem = _problem(node)
        if problem:
            raise ConfigError(
                f"prompt {name!r} line {getattr(node, 'lineno', '?')}: {problem}",
                hint="prompts may use variables, attributes by plain names, if/for/include and "
                f"the filters {', '.join(sorted(SAFE_FILTERS))}",
            )


def _problem(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Call):
        return "calls are not allowed in a prompt"
    if isinstance(node, _FORBIDDEN_STATEMENTS):
        return f"{type(node).__name__.lower()} is not allowed in a prompt"
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return f"attribute {node.attr!r} is not allowed"
    if isinstance(node, nodes.Name) and node.name.startswith("_"):
        return f"name {node.name!r} is not allowed"
    if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
        return f"string {node.value[:40]!r} (with '__') is not allowed in an expression"
    if isinstance(node, nodes.Filter | nodes.Test):
        if isinstance(node, nodes.Filter) and node.name not in SAFE_FILTERS:
            return f"filter {node.name!r} is not allowed"
        if any(kw.key == "attribute" for kw in node.kwargs):
            return "the 'attribute' argument is not allowed"
    if isinstance(node, nodes.Include) and not isinstance(node.template, nodes.Const):
        return "include takes a prompt name, not an expression"
    return None


def redact_feedback(feedback: str, hidden: dict[str, Any], *, min_chars: int = 12) -> str:
    """``feedback`` without the lines whose text (stripped, at least ``min_chars`` long)
    occurs in any string of ``hidden`` (the task's scorer-only data)."""
    haystack = "\n".join(_strings(hidden))
    if not haystack:
        return feedback
    kept = []
    cut = 0
    for line in feedback.splitlines():
        probe = line.strip()
        if len(probe) >= min_chars and probe in haystack:
            cut += 1
            continue
        kept.append(line)
    if cut:
        kept.append(f"[{cut} line(s) that quoted hidden test data were removed]")
    return "\n".join(kept)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []
