"""The training chat template: the serving template with TRL's ``{% generation %}`` markers
around each assistant turn, so ``assistant_only_loss`` trains on the agent's own tokens only.

TRL computes the assistant mask from ``{% generation %}...{% endgeneration %}`` blocks
(``return_assistant_tokens_mask``); a template without them gives no mask. The markers do
not change what the template renders: ``training_template(t)`` renders every conversation
exactly as ``t`` does (checked in tests/train), so training sees the prompts serving sends.

Known templates are marked by rewriting the one place that writes a turn's body; a template
this module does not know is returned as None (training then relies on prompt-completion
rows, whose loss TRL already limits to the completion).
"""

from __future__ import annotations

_GENERATION_TAGS = ("{% generation %}", "{%- generation %}", "{% generation -%}")

# exapt's Gemma-style template (agents/models/tiny.py CHAT_TEMPLATE, also the local Gemma's):
# a turn is "<start_of_turn>{{ role }}\n" BODY "<end_of_turn>\n", the messages loop ends after.
_TURN_OPEN = "<start_of_turn>{{ role }}\n"
_TURN_CLOSE = "<end_of_turn>\n"
_LOOP_END = "{% endfor %}"


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and any(tag in str(template) for tag in _GENERATION_TAGS)


def training_template(template: str | None) -> str | None:
    """``template`` with assistant turns marked for TRL (itself if it already has markers),
    or None when this module does not know how to mark it."""
    if not template:
        return None
    if has_generation_markers(template):
        return template
    return _mark_gemma_style(template)


def _mark_gemma_style(template: str) -> str | None:
    start = template.find(_TURN_OPEN)
    if start < 0 or "{% set role = 'model' %}" not in template:
        return None
    body_start = start + len(_TURN_OPEN)
    body_end = template.find(_TURN_CLOSE + _LOOP_END, body_start)
    if body_end < 0:
        return None
    # The turn's end marker belongs to the assistant's tokens: the model must learn to stop.
    body = template[body_start:body_end] + _TURN_CLOSE
    marked = (
        "{% if role == 'model' %}{% generation %}" + body + "{% endgeneration %}"
        "{% else %}" + body + "{% endif %}"
    )
    return template[:body_start] + marked + template[body_end + len(_TURN_CLOSE) :]
