"""Render a spec's prompts: Jinja templates with ``StrictUndefined`` (a typo is an error).

Templates may include each other by prompt name (``{% include "memory" %}``) and use the
``comment`` filter (prefix every line with ``# ``, for prompts that are Python code).
"""

from __future__ import annotations

from typing import Any

import jinja2

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
    env = jinja2.Environment(
        loader=jinja2.DictLoader(prompts),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,  # a file's final newline is not part of the prompt
        autoescape=False,  # prompts are plain text, not HTML
    )
    env.filters["comment"] = _comment
    try:
        return env.get_template(name).render(**variables)
    except (jinja2.UndefinedError, jinja2.TemplateNotFound) as exc:
        raise ConfigError(
            f"agent spec {spec_name!r}, prompt {name!r}: {exc}",
            hint=f"prompts may use: {', '.join(sorted(variables))}; and include {sorted(prompts)}",
        ) from exc
