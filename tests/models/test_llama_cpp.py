"""llama.cpp's toolchain lookup, GGUF metadata, threads and model strings: no server needed."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from exapt.agents.models.llama_cpp import find_llama_cpp, read_gguf_info, read_gguf_metadata
from exapt.agents.models.llama_server import default_threads
from exapt.agents.models.local_names import parse_local_name
from exapt.errors import ConfigError, UnavailableError


def gguf_bytes(kvs: list[tuple[str, int, bytes]]) -> bytes:
    """A GGUF v3 header with the given (key, type, encoded value) entries and no tensors."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    body = b"".join(string(key) + struct.pack("<I", kind) + value for key, kind, value in kvs)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body


def test_gguf_metadata_is_read_from_the_header(tmp_path: Path) -> None:
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    tokens = struct.pack("<IQ", 8, 3) + s("<pad>") + s("<bos>") + s("hi")
    path = tmp_path / "m.gguf"
    path.write_bytes(
        gguf_bytes([
            ("general.architecture", 8, s("llama")),
            ("llama.context_length", 4, struct.pack("<I", 2048)),
            ("tokenizer.ggml.tokens", 9, tokens),
            ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, 0, 0)),
            ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
            ("tokenizer.ggml.add_bos_token", 7, b"\x01"),
        ])
    )  # fmt: skip
    info = read_gguf_info(path)
    assert (info.architecture, info.context_length, info.add_bos) == ("llama", 2048, True)
    assert info.bos_token == "<bos>" and info.chat_template is None
    assert read_gguf_metadata(path)["llama.context_length"] == 2048


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a gguf file at all",
        b"GGUF" + struct.pack("<IQQ", 3, 0, 2**60),  # claims 2^60 entries, has none
        gguf_bytes([("a", 9, struct.pack("<IQ", 8, 2**62))]),  # an array longer than the file
        gguf_bytes([("a", 99, b"")]),  # an unknown value type
    ],
)
def test_a_malformed_gguf_is_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        read_gguf_info(path)


def test_threads_follow_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = os.cpu_count() or 1
    monkeypatch.delenv("EXAPT_LOCAL_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert default_threads() == cores
    monkeypatch.setattr(os, "getloadavg", lambda: (cores * 4.0, 0.0, 0.0))
    assert default_threads() == 1
    monkeypatch.setenv("EXAPT_LOCAL_THREADS", "3")
    assert default_threads() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("EXAPT_LOCAL_THREADS", bad)
        with pytest.raises(ConfigError, match="EXAPT_LOCAL_THREADS"):
            default_threads()


def test_the_toolchain_is_found_or_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAPT_LLAMA_CPP", str(tmp_path))
    with pytest.raises(UnavailableError, match="has no bin/llama-server") as caught:
        find_llama_cpp()
    assert "setup.sh" in (caught.value.hint or "")
    monkeypatch.delenv("EXAPT_LLAMA_CPP")
    monkeypatch.setenv("EXAPT_LLAMA_SERVER", str(tmp_path / "nope"))
    with pytest.raises(UnavailableError, match="not an executable"):
        find_llama_cpp()
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("EXAPT_LLAMA_SERVER", str(binary))
    found = find_llama_cpp()
    assert found.server == binary.resolve() and found.root == tmp_path.resolve()
    with pytest.raises(UnavailableError, match="converters are not installed"):
        found.converters()


def test_model_strings_parse() -> None:
    assert parse_local_name("local") == (None, None)
    assert parse_local_name("local:/m/ckpt") == (Path("/m/ckpt"), None)
    assert parse_local_name("local+adapter:sft-1") == (None, "sft-1")
    assert parse_local_name("local:/m/a+b+adapter:/p/lora") == (Path("/m/a+b"), "/p/lora")
    for bad in ("local+adapter:", "local+adapter:a b", "remote+adapter:x", "local+adapter:-x"):
        with pytest.raises(ConfigError):
            parse_local_name(bad)
