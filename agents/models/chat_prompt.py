"""Chat for local models that only complete text: the chat template, and tool calls in replies.

Both local engines use these, so a conversation becomes the same prompt whoever serves it:

- ``ChatPrompt(template, special_tokens).render(messages, tools)`` renders the model's Jinja
  chat template with transformers' own renderer (what ``tokenizer.apply_chat_template``
  calls), after the same clean-up the transformers server does (content parts joined into
  text, keys whose value is None dropped). The result starts with the BOS token's text when
  the template writes it.
- ``base_chat_prompt(base, gguf)``: the ``ChatPrompt`` of a local base model, read from where
  it lives (Gemma's, a checkpoint's template files, a GGUF's metadata) without loading a
  tokenizer (``checkpoint_chat_template``, ``checkpoint_special_tokens``).
- ``tool_call(text, tools)``: a reply that is a JSON object ``{"name": ..., "arguments": ...}``
  naming one of the offered tools (optionally in a ```` ```json ```` fence) is that tool call.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
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


def base_chat_prompt(base: Path | None, gguf: Any) -> ChatPrompt | None:
    """The chat template of a local base model: Gemma's for ``local`` (``base`` None), the
    checkpoint's own (as transformers reads it) for a folder, the GGUF's metadata for a file
    (``gguf()`` gives the file, converted or assembled on first use)."""
    if base is None:
        from exapt.agents.models.gemma import GEMMA_CHAT_TEMPLATE, GEMMA_SPECIAL_TOKENS

        return ChatPrompt(GEMMA_CHAT_TEMPLATE, GEMMA_SPECIAL_TOKENS)
    if base.is_dir():
        template = checkpoint_chat_template(base)
        return ChatPrompt(template, checkpoint_special_tokens(base)) if template else None
    from exapt.agents.models.llama_cpp import read_gguf_info

    info = read_gguf_info(gguf())
    if not info.chat_template:
        return None
    return ChatPrompt(info.chat_template, {"bos_token": info.bos_token or ""})


def checkpoint_chat_template(checkpoint: Path) -> str | None:
    """A checkpoint's chat template: ``chat_template.jinja``, ``chat_template.json`` or
    ``tokenizer_config.json``'s ``chat_template`` (the first found, as transformers looks)."""
    jinja = checkpoint / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    for name in ("chat_template.json", "tokenizer_config.json"):
        try:
            template = json.loads((checkpoint / name).read_text()).get("chat_template")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(template, str) and template:
            return template
        if isinstance(template, list):  # named templates: the default one
            for entry in template:
                if isinstance(entry, dict) and entry.get("name") == "default":
                    return str(entry.get("template") or "") or None
    return None


def checkpoint_special_tokens(checkpoint: Path) -> dict[str, str]:
    """``bos_token``, ``eos_token``... of a checkpoint's tokenizer files (what its template
    may use), without loading the tokenizer."""
    tokens: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        try:
            data = json.loads((checkpoint / name).read_text())
        except (OSError, ValueError):
            continue
        for key, value in data.items() if isinstance(data, dict) else ():
            if not key.endswith("_token"):
                continue
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                tokens.setdefault(key, value)
    return tokens


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
