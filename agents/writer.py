"""``text_writer``: a chat model as memory's ``Writer`` (``prompt -> text``).

Memory writes reflections and insight operations with a plain callable and knows nothing of
models; this is where a model becomes one. A base model writes no useful prose from a
bare instruction, so it gives no writer (memory then writes structured summaries).

Example:
    memory = open_memory(write=text_writer(model))
"""

from __future__ import annotations

from exapt.agents.models.base import Model
from exapt.memory.base import Writer


def text_writer(model: Model | None) -> Writer | None:
    """``prompt -> reply text`` through ``model.chat``, or None for no model or a base
    model. The writer raises ``ModelError`` (an ``ExaptError``) when the call fails."""
    if model is None or getattr(model, "is_base", False):
        return None

    def write(prompt: str) -> str:
        return model.chat([{"role": "user", "content": prompt}]).text or ""

    return write
