"""``build_tiny_checkpoint``: a tiny random causal LM checkpoint, built locally in seconds.

No tiny model ships in any package and nothing may download, so tests of serving (and of
training code) build one: a Llama config with ~120k parameters and a byte-level BPE tokenizer
trained with ``tokenizers`` on the short text below, wrapped in ``PreTrainedTokenizerFast``
(``AutoTokenizer`` can silently swap in another tokenizer class for some configs; the saved
``tokenizer_config.json`` names ``PreTrainedTokenizerFast`` so reloading gives this one back).
It carries the same Gemma-style chat template as the converted local Gemma, so chat requests
work. Weights are random but seeded: greedy output is deterministic and meaningless.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Turn markers shared with the local Gemma checkpoint (Gemma's own tokens).
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"

# A Gemma-style template: system and tool messages become user turns (Gemma has no system
# role), assistant turns are "model" turns; tool calls of earlier turns are shown as JSON.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}<start_of_turn>user\nYou can call these tools. To call one, answer with only "
    'a JSON object {"name": <tool name>, "arguments": {<arguments>}}.\n'
    "{% for tool in tools %}{{ (tool['function'] if tool.get('function') else tool) | tojson }}\n"
    "{% endfor %}<end_of_turn>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% elif message['role'] in ['system', 'tool'] %}{% set role = 'user' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{% set content = message['content'] if message['content'] is string else '' %}"
    "{% if message['role'] == 'tool' %}{% set content = 'Tool result:\n' + content %}"
    "{% endif %}"
    "<start_of_turn>{{ role }}\n{{ content | trim }}"
    "{% for call in message.get('tool_calls') or [] %}"
    "{% set arguments = call['function']['arguments'] %}"
    "\n{\"name\": {{ call['function']['name'] | tojson }}, \"arguments\": "
    "{{ arguments if arguments is string else arguments | tojson }}}"
    "{% endfor %}"
    "<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

_TEXT = '''
def add(a, b):
    """Return the sum of a and b."""
    return a + b


def greet(name: str) -> str:
    return f"Hello, {name}!"


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def increment(self, step: int = 1) -> int:
        self.count += step
        return self.count


for i in range(10):
    if i % 2 == 0:
        print(i, "is even")
    else:
        print(i, "is odd")

The quick brown fox jumps over the lazy dog. A user asks a question and the model answers.
Run the tests, read the error, edit the file, and submit when every test passes.
'''


def build_tiny_checkpoint(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny Llama checkpoint (weights, config, tokenizer, chat template) to ``path``.

    ``path`` must not exist or be an empty folder; it is written atomically (built in a
    sibling temp folder, then renamed). Returns ``path``. Takes about a second on one core.

    Example:
        ckpt = build_tiny_checkpoint(tmp_path / "tiny")
        AutoModelForCausalLM.from_pretrained(ckpt)
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty")
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", START_OF_TURN, END_OF_TURN]

    # Byte-level BPE: every string is encodable, whatever a test sends.
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([_TEXT] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=[START_OF_TURN, END_OF_TURN],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"  # decoder-only batching pads on the left

    eos_ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
