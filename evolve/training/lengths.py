"""Token lengths of dataset rows, counted the way TRL tokenizes them, so that ``max_length``
can come from the data and nothing is truncated silently.

- prompt-completion text: the prompt tokenized alone, then the completion tokenized alone,
  then EOS (``text_ids``: how exapt's trainer tokenizes these rows, see ``pretokenize``);
- prompt-completion chat: the chat template over ``prompt + completion`` with the row's tools;
- DPO: the longer of prompt + chosen and prompt + rejected.

``fit_lengths`` keeps the rows that fit a training's ``max_length`` (and gives it);
``pretokenize`` tokenizes plain prompt-completion rows the way ``text_ids`` does.
"""

from __future__ import annotations

from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.training.config import TrainConfig


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
    return len(text_ids(str(prompt), str(completion), tokenizer)[0])


def text_ids(prompt: str, completion: str, tokenizer: Any) -> tuple[list[int], list[int]]:
    """``(input_ids, completion_mask)`` of a plain prompt-completion row: the prompt tokenized
    as a server tokenizes it (with BOS), the completion alone after it, then EOS.

    Tokenizing ``prompt + completion`` as one text (what TRL does) merges tokens across the
    boundary (Gemma: the prompt's last "\n" and the completion's indent become one token), so
    the model would learn to continue a context it never sees when serving, where the prompt
    is tokenized alone and generation starts after its last token."""
    prompt_ids = list(tokenizer(text=prompt)["input_ids"])
    completion_ids = list(tokenizer(text=completion, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        completion_ids.append(tokenizer.eos_token_id)
    return prompt_ids + completion_ids, [0] * len(prompt_ids) + [1] * len(completion_ids)


def fit_lengths(
    dataset: Any, tokenizer: Any, config: TrainConfig, context: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """The rows that fit, and ``{max_length, dropped, tokens, lengths}``: ``max_length`` is the
    longest row kept, so a trainer given it truncates nothing. Too-long rows are dropped (and
    counted) or, with ``too_long="error"``, raise ``ConfigError`` naming the first."""
    lengths = token_lengths(dataset, tokenizer)
    limit = config.max_length or min(config.max_length_cap, context or config.max_length_cap)
    too_long = [i for i, n in enumerate(lengths) if n > limit]
    if too_long and config.too_long == "error":
        first = too_long[0]
        raise ConfigError(
            f"{len(too_long)} of {len(lengths)} rows are longer than max_length={limit} tokens "
            f"(row {first}: {lengths[first]} tokens, task {dataset[first].get('task_id')!r})",
            hint="raise --max-length, or drop them with too_long='drop'",
        )
    if too_long:
        keep = [i for i in range(len(lengths)) if i not in set(too_long)]
        if not keep:
            raise ConfigError(
                f"every row is longer than max_length={limit} tokens (shortest: {min(lengths)})",
                hint="raise --max-length",
            )
        dataset = dataset.select(keep)
        lengths = [lengths[i] for i in keep]
    return dataset, {
        "max_length": max(lengths),
        "dropped": len(too_long),
        "tokens": sum(lengths),
        "lengths": lengths,
    }


def pretokenize(dataset: Any, tokenizer: Any) -> Any:
    """Plain prompt-completion rows as ``input_ids`` + ``completion_mask`` (TRL trains
    tokenized rows as they are), prompt and completion tokenized apart (``text_ids``)."""

    def tokenize(row: dict[str, Any]) -> dict[str, Any]:
        ids, mask = text_ids(row["prompt"], row["completion"], tokenizer)
        return {"input_ids": ids, "completion_mask": mask}

    return dataset.map(tokenize, remove_columns=["prompt", "completion"])
