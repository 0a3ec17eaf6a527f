"""Chat for local models that only complete text: the chat template, and tool calls in replies.

Both local engines use these, so a conversation becomes the same prompt whoever serves it:

- ``ChatPrompt(template, special_tokens).render(messages, tools)`` renders the model's Jinja
  chat template with transformers' own renderer (what ``tokenizer.apply_chat_template``
  calls), after the same clean-up the transformers server does (content parts joined into
  text, keys whose value is None dropped). The result starts with the BOS token's text when
  the template writes it.
- ``tool_call(text, tools)``: a reply that is a JSON object ``{"name": ..., "arguments": ...}``
  naming one of the offered tools (optionally in a ```` ```json ```` fence) is that tool call.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from exapt.errors import ConfigError


class BadChatRequest(ConfigError):
    """Messages or tools that cannot be rendered (not a list of role/content messages...)."""


def message_text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise BadChatRequest(f"message content must be a string or a list of parts, got {content!r}")


def clean_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages as the template sees them; ``BadChatRequest`` naming a malformed one."""
    if not isinstance(messages, list) or not messages:
        raise BadChatRequest("messages must be a non-empty list")
    clean = []
    for sent in messages:
        if not isinstance(sent, dict) or "role" not in sent:
            raise BadChatRequest(f"each message needs a role, got {sent!r}")
        message = {**sent, "content": message_text(sent.get("content"))}
        # apply_chat_template drops None values (an OpenAI reply's tool_calls=None...).
        clean.append({k: v for k, v in message.items() if v is not None})
    return clean


class ChatPrompt:
    """A chat template and the special tokens it may use (``bos_token``...)."""

    def __init__(self, template: str, special_tokens: dict[str, str] | None = None) -> None:
        self.template = template
        self.special_tokens = dict(special_tokens or {})

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        from transformers.utils import chat_template_utils

        # Annotated as returning str, it returns (rendered chats, generation indices).
        render: Any = chat_template_utils.render_jinja_template
        try:
            rendered, _ = render(
                conversations=[clean_messages(messages)],
                tools=tools or None,
                chat_template=self.template,
                add_generation_prompt=True,
                **self.special_tokens,
            )
        except BadChatRequest:
            raise
        except Exception as exc:  # jinja2 errors: a message the template cannot take
            raise BadChatRequest(
                f"the chat template cannot render these messages: {type(exc).__name__}: {exc}"
            ) from exc
        return str(rendered[0])


def tool_call(text: str, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The reply as an OpenAI tool call, if it is a JSON object naming one of ``tools``."""
    names = {t.get("function", {}).get("name") for t in tools}
    candidate = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    try:
        value = json.loads(candidate.strip())
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    return {
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": value["name"], "arguments": json.dumps(arguments)},
    }
