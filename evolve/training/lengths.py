"""Token lengths of dataset rows, counted the way TRL tokenizes them, so that ``max_length``
can come from the data and nothing is truncated silently.

- prompt-completion text: ``tokenizer(prompt + completion + eos)`` (TRL appends the EOS token);
- prompt-completion chat: the chat template over ``prompt + completion`` with the row's tools;
- DPO: the longer of prompt + chosen and prompt + rejected.
"""

from __future__ import annotations

from typing import Any


def row_length(row: dict[str, Any], tokenizer: Any) -> int:
    """Tokens of one row as a trainer will see it (see the module docstring)."""
    if "chosen" in row:
        return max(
            _length(row["prompt"], row["chosen"], row.get("tools"), tokenizer),
            _length(row["prompt"], row["rejected"], row.get("tools"), tokenizer),
        )
    return _length(row["prompt"], row["completion"], row.get("tools"), tokenizer)


def token_lengths(rows: Any, tokenizer: Any) -> list[int]:
    """``row_length`` of every row (a list of dicts or a ``datasets.Dataset``)."""
    return [row_length(row, tokenizer) for row in rows]


def _length(prompt: Any, completion: Any, tools: Any, tokenizer: Any) -> int:
    if isinstance(prompt, list):
        ids = tokenizer.apply_chat_template(
            list(prompt) + list(completion), tools=tools or None, tokenize=True, return_dict=True
        )["input_ids"]
        return len(ids)
    eos = tokenizer.eos_token or ""
    text = str(prompt) + str(completion)
    if eos and not text.endswith(eos):
        text += eos
    return len(tokenizer(text=text)["input_ids"])
