"""Run one of llama.cpp's converters (``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py``)
from the toolchain folder, with one fix: a byte-level BPE tokenizer it does not recognise.

Run as ``python -m exapt.agents.models.convert_gguf LLAMA_CPP_DIR SCRIPT [ARGS...]``
(``exapt.agents.models.llama_cpp`` does this, in a child process: the converters import torch
and transformers and print a lot). ``SCRIPT`` is ``hf`` or ``lora``; ARGS go to the script.

The fix: llama.cpp names a BPE pre-tokenizer by hashing how a test string tokenizes, so any
tokenizer trained locally (the tiny test model's, a user's own) is "not recognized" and the
conversion stops. When the checkpoint's ``tokenizer.json`` declares exactly GPT-2's byte-level
pre-tokenizer (``ByteLevel`` with its regex, no prefix space), llama.cpp's ``gpt-2``
pre-tokenizer is that same regex, so the conversion goes on with it; anything else still fails.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import exapt  # noqa: F401  (offline environment: the converters must not reach the hub)

SCRIPTS = {"hf": "convert_hf_to_gguf.py", "lora": "convert_lora_to_gguf.py"}


def gpt2_byte_level(model_dir: Path) -> bool:
    """True if ``model_dir/tokenizer.json`` pre-tokenizes exactly like GPT-2."""
    try:
        pre = json.loads((model_dir / "tokenizer.json").read_text()).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return False
    return (
        pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True) is True
        and pre.get("add_prefix_space", False) is False
    )


def _patch_pre_tokenizer() -> None:
    from conversion.base import TextModel  # from the toolchain folder on sys.path

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return str(original(self, tokenizer))
        except NotImplementedError:
            if gpt2_byte_level(Path(self.dir_model)):
                return "gpt-2"
            raise

    TextModel.get_vocab_base_pre = get_vocab_base_pre  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in SCRIPTS:
        raise SystemExit(f"usage: convert_gguf LLAMA_CPP_DIR {{{','.join(SCRIPTS)}}} [ARGS...]")
    root = Path(argv[0])
    script = root / SCRIPTS[argv[1]]
    sys.path[:0] = [str(root), str(root / "gguf-py")]
    _patch_pre_tokenizer()
    sys.argv = [str(script), *argv[2:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
