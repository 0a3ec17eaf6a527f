"""Render a spec's prompts: Jinja templates with ``StrictUndefined`` (a typo is an error).

Prompts come from specs and from evolved variants (a mutator model wrote them), and they
render in the exapt process, so they render in Jinja's ``SandboxedEnvironment``: no
attribute starting with ``_``, no unsafe callables (``str.format`` of objects, function
globals), so a template cannot reach the interpreter (``''.__class__.__mro__``...).

Templates may include each other by prompt name (``{% include "memory" %}``) and use the
``comment`` filter (prefix every line with ``# ``, for prompts that are Python code).
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from exapt.errors import ConfigError


def _comment(text: Any) -> str:
    return "\n".join(f"# {line}".rstrip() for line in str(text).splitlines())


def render(prompts: dict[str, str], name: str, spec_name: str = "", /, **variables: Any) -> str:
    """Render prompt ``name`` of ``prompts`` with ``variables``.

    Raises ``ConfigError`` naming the spec and prompt when the prompt is missing or uses a
    variable that is not given.
    """
    if name not in prompts:
        raise ConfigError(
            f"agent spec {spec_name!r} has no prompt {name!r}",
            hint=f"add prompts.{name} to the spec (it has {sorted(prompts)})",
        )
    env = SandboxedEnvironment(
        loader=jinja2.DictLoader(prompts),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,  # a file's final newline is not part of the prompt
        autoescape=False,  # prompts are plain text, not HTML
    )
    env.filters["comment"] = _comment
    try:
        return env.get_template(name).render(**variables)
    except jinja2.sandbox.SecurityError as exc:
        raise ConfigError(
            f"agent spec {spec_name!r}, prompt {name!r}: not allowed in a prompt: {exc}",
            hint="prompts use variables, attributes, if/for/include and filters only",
        ) from exc
    except (jinja2.UndefinedError, jinja2.TemplateNotFound) as exc:
        raise ConfigError(
            f"agent spec {spec_name!r}, prompt {name!r}: {exc}",
            hint=f"prompts may use: {', '.join(sorted(variables))}; and include {sorted(prompts)}",
        ) from exc
