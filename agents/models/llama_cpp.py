"""llama.cpp as exapt uses it: where the toolchain is, GGUF conversions, GGUF metadata.

The toolchain is built once by ``scripts/build_llama_cpp.sh`` (run by ``scripts/setup.sh``)
from the llama.cpp sources that PyPI's ``llama-cpp-python==0.3.36`` sdist vendors, into
``~/.cache/exapt/llama.cpp-0.3.36/``: ``bin/llama-server`` (with its ``.so`` files),
``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py`` and their ``conversion/`` and
``gguf-py/`` packages. ``find_llama_cpp()`` looks, in order, at ``EXAPT_LLAMA_SERVER`` (a
``llama-server`` binary; converters in the folder above its ``bin/``), ``EXAPT_LLAMA_CPP`` (an
installed folder), the default folder, and ``llama-server`` on the PATH. Nothing is built or
downloaded at run time.

Conversions run llama.cpp's own converters in a child process (``convert_gguf``), once: the
result is cached under ``<exapt home>/models/`` by a fingerprint of the input files (names,
sizes, modification times), built in a temp file and renamed into place under a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exapt import paths
from exapt.errors import ConfigError, UnavailableError

#: The llama-cpp-python sdist whose vendored llama.cpp the toolchain is built from.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BUILD_HINT = (
    "bash scripts/setup.sh builds it once (about 3-5 min on 2 cores; or run "
    "scripts/build_llama_cpp.sh), or set EXAPT_LLAMA_SERVER to a llama-server binary"
)


class ConversionError(ConfigError):
    """llama.cpp's converter could not turn a checkpoint or adapter into GGUF."""


def default_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "exapt" / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"


@dataclass(frozen=True)
class LlamaCpp:
    """An installed llama.cpp: the server binary and (if present) the converters' folder."""

    server: Path
    root: Path | None

    def converters(self) -> Path:
        """The folder holding ``convert_hf_to_gguf.py`` and ``convert_lora_to_gguf.py``."""
        root = self.root
        if root is None or not all(
            (root / name).is_file() for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")
        ):
            raise UnavailableError(
                f"llama.cpp's GGUF converters are not installed beside {self.server}",
                hint=BUILD_HINT,
            )
        return root


def find_llama_cpp() -> LlamaCpp:
    """The llama.cpp toolchain of this machine; ``UnavailableError`` saying how to build it."""
    explicit = os.environ.get("EXAPT_LLAMA_SERVER")
    if explicit:
        server = Path(explicit).expanduser()
        if not (server.is_file() and os.access(server, os.X_OK)):
            raise UnavailableError(
                f"EXAPT_LLAMA_SERVER={explicit} is not an executable file", hint=BUILD_HINT
            )
        return LlamaCpp(server.resolve(), server.resolve().parent.parent)
    folder = os.environ.get("EXAPT_LLAMA_CPP")
    root = Path(folder).expanduser() if folder else default_root()
    server = root / "bin" / "llama-server"
    if server.is_file() and os.access(server, os.X_OK):
        return LlamaCpp(server.resolve(), root.resolve())
    if folder:
        raise UnavailableError(f"EXAPT_LLAMA_CPP={folder} has no bin/llama-server", hint=BUILD_HINT)
    on_path = shutil.which("llama-server")
    if on_path:
        resolved = Path(on_path).resolve()
        return LlamaCpp(resolved, resolved.parent.parent)
    raise UnavailableError(
        f"llama.cpp's llama-server is not built (looked in {root}/bin and on the PATH)",
        hint=BUILD_HINT,
    )


# -- GGUF metadata -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GGUFInfo:
    """What exapt needs to know of a GGUF file before serving it."""

    architecture: str
    context_length: int
    add_bos: bool
    bos_token: str | None
    chat_template: str | None
    file_type: str


# GGUF value types (gguf spec): sizes of the fixed-size ones; 8 = string, 9 = array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_FORMATS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file: scalars and strings; arrays are skipped, except
    that ``tokenizer.ggml.tokens`` gives its BOS entry as ``tokenizer.ggml.bos_token``.

    Our own reader of the header because ``gguf.GGUFReader`` builds every tensor and token
    record first: 10.4 s for the Gemma GGUF (262k tokens) against ~0.1 s here.
    """
    import mmap
    import struct

    try:
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m,
        ):
            if m[:4] != b"GGUF":
                raise ValueError("no GGUF magic number")
            offset = 4
            version, _tensors, count = struct.unpack_from("<IQQ", m, offset)
            if version < 2:
                raise ValueError(f"GGUF version {version} is too old")
            offset += 20
            metadata: dict[str, Any] = {}
            tokens_at = None

            def string(at: int) -> tuple[str, int]:
                (length,) = struct.unpack_from("<Q", m, at)
                return m[at + 8 : at + 8 + length].decode("utf-8", "replace"), at + 8 + length

            for _ in range(count):
                key, offset = string(offset)
                (kind,) = struct.unpack_from("<I", m, offset)
                offset += 4
                if kind == 8:
                    metadata[key], offset = string(offset)
                elif kind == 9:
                    item, length = struct.unpack_from("<IQ", m, offset)
                    offset += 12
                    if key == "tokenizer.ggml.tokens":
                        tokens_at = (offset, length)
                    if item == 8:
                        for _ in range(length):
                            offset += 8 + struct.unpack_from("<Q", m, offset)[0]
                    elif item in _GGUF_SIZES:
                        offset += _GGUF_SIZES[item] * length
                    else:
                        raise ValueError(f"nested array in {key}")
                elif kind in _GGUF_SIZES:
                    metadata[key] = struct.unpack_from("<" + _GGUF_FORMATS[kind], m, offset)[0]
                    offset += _GGUF_SIZES[kind]
                else:
                    raise ValueError(f"unknown value type {kind} for {key}")
            bos = metadata.get("tokenizer.ggml.bos_token_id")
            if tokens_at is not None and isinstance(bos, int) and 0 <= bos < tokens_at[1]:
                at = tokens_at[0]
                for _ in range(bos):
                    at += 8 + struct.unpack_from("<Q", m, at)[0]
                metadata["tokenizer.ggml.bos_token"] = string(at)[0]
            return metadata
    except (OSError, ValueError, struct.error) as exc:
        raise ConfigError(f"{path} is not a readable GGUF model file: {exc}") from exc


def read_gguf_info(path: Path) -> GGUFInfo:
    """What exapt needs of a GGUF model file; ``ConfigError`` if it is not one."""
    metadata = read_gguf_metadata(path)
    architecture = str(metadata.get("general.architecture") or "")
    template = metadata.get("tokenizer.chat_template")
    return GGUFInfo(
        architecture=architecture,
        context_length=int(metadata.get(f"{architecture}.context_length") or 0),
        add_bos=bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
        bos_token=metadata.get("tokenizer.ggml.bos_token"),
        chat_template=template if isinstance(template, str) else None,
        file_type=str(metadata.get("general.file_type", "")),
    )


# -- conversions ---------------------------------------------------------------------------------


def fingerprint(folder: Path, names: list[str] | None = None) -> str:
    """A short hash of a folder's files (name, size, mtime) and its resolved path."""
    digest = hashlib.sha256(str(folder.resolve()).encode())
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for file in files:
        if names is not None and file.name not in names:
            continue
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"exapt: waiting for another process writing {target}", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run_converter(kind: str, args: list[str], target: Path, what: str, hint: str) -> None:
    """Run a converter writing ``target`` (via a temp file renamed into place)."""
    root = find_llama_cpp().converters()
    tmp = Path(tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")[1])
    log_path = paths.subdir("logs") / f"convert-{target.stem}.log"
    command = [
        sys.executable,
        "-m",
        "exapt.agents.models.convert_gguf",
        str(root),
        kind,
        *args,
        "--outfile",
        str(tmp),
    ]
    started = time.perf_counter()
    try:
        with open(log_path, "wb") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or tmp.stat().st_size == 0:
            from exapt.agents.models.server_process import log_tail

            raise ConversionError(
                f"llama.cpp could not convert {what} to GGUF (exit {done.returncode}); "
                f"log {log_path}:\n{log_tail(log_path, 12)}",
                hint=hint,
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    print(
        f"exapt: converted {what} to {target} ({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )


def _checkpoint_outtype(checkpoint: Path) -> str:
    """``f32`` for an fp32 checkpoint (the same weights as the transformers engine), else the
    checkpoint's own 16-bit type (``auto``)."""
    try:
        config = json.loads((checkpoint / "config.json").read_text())
    except (OSError, ValueError):
        return "auto"
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return "f32" if dtype in ("float32", "fp32") else "auto"


def convert_checkpoint(checkpoint: Path) -> Path:
    """The GGUF of a transformers checkpoint folder, converted once into
    ``<exapt home>/models/gguf/``. ``ConversionError`` if llama.cpp cannot convert it."""
    checkpoint = checkpoint.resolve()
    if not (checkpoint / "config.json").is_file():
        raise ConfigError(f"{checkpoint} is not a transformers checkpoint folder (no config.json)")
    target = paths.models_dir() / "gguf" / f"{checkpoint.name}-{fingerprint(checkpoint)}.gguf"
    if target.exists():
        return target
    with _locked(target):
        if not target.exists():
            outtype = _checkpoint_outtype(checkpoint)
            _run_converter(
                "hf",
                [str(checkpoint), "--outtype", outtype],
                target,
                str(checkpoint),
                "serve it with the transformers engine: EXAPT_LOCAL_ENGINE=transformers",
            )
    return target


ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"]


def convert_adapter(adapter: Path, base_config: Path) -> Path:
    """The GGUF of a peft LoRA adapter folder for the base whose ``config.json`` is in
    ``base_config``, converted once into ``<exapt home>/models/adapters/gguf/``."""
    adapter = adapter.resolve()
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(
            f"{adapter} is not a peft adapter folder (no adapter_config.json)",
            hint="pass the folder written by PeftModel.save_pretrained",
        )
    key = fingerprint(adapter, ADAPTER_FILES)
    target = paths.models_dir() / "adapters" / "gguf" / f"{adapter.name}-{key}.gguf"
    if target.exists():
        return target
    with _locked(target):
        if not target.exists():
            args = [str(adapter), "--base", str(base_config), "--outtype", "f32"]
            _run_converter(
                "lora",
                args,
                target,
                f"the LoRA adapter {adapter}",
                f"is it a peft LoRA adapter of the base in {base_config}? (only linear-layer "
                "LoRA adapters convert)",
            )
    return target
