"""The transformers engine: our own server over ``model.generate`` (``server.py``) for a
transformers checkpoint folder. The fallback for checkpoints llama.cpp cannot convert or load,
and for machines where llama.cpp is not built (``EXAPT_LOCAL_ENGINE=transformers`` picks it).

- ``TransformersServer(checkpoint)`` runs ``python -m exapt.agents.models.server`` as a
  ``LocalServer`` child; its ``/health`` names the checkpoint it serves.
- ``TransformersEngine`` routes every request to the shared server of its checkpoint (the
  converted Gemma for ``local``); chat is rendered and tool calls parsed by the server itself
  (``/v1/chat/completions``), with the same template and parser as the llama engine.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from exapt.agents.models.base import ModelError
from exapt.agents.models.chat_prompt import ChatPrompt
from exapt.agents.models.engine import Route
from exapt.agents.models.server_process import LocalServer
from exapt.errors import ConfigError


class TransformersServer(LocalServer):
    """Our OpenAI-compatible server for one transformers checkpoint, in a child process.

    Example:
        with TransformersServer(checkpoint) as server:
            httpx.post(f"{server.url}/completions", json={"prompt": "def f(", "max_tokens": 8})
    """

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        max_batch: int = 8,
        threads: int = 0,
        extra_args: list[str] | None = None,
        **options: Any,
    ) -> None:
        self.checkpoint = Path(checkpoint).expanduser().resolve()
        self.max_batch = max_batch
        self.threads = threads  # torch threads of the server; 0: all cores unless oversubscribed
        self.extra_args = list(extra_args or [])
        super().__init__(**options)

    headers: ClassVar[dict[str, str]] = {}

    def describe(self) -> str:
        return str(self.checkpoint)

    def log_name(self) -> str:
        return f"server-{self.checkpoint.name}"

    def _check_before_launch(self) -> None:
        if not (self.checkpoint / "config.json").exists():
            raise ModelError(
                f"cannot serve {self.checkpoint}: not a transformers checkpoint (no config.json)",
                hint="pass a folder written by save_pretrained (config.json, weights, tokenizer)",
            )

    def command(self, port: int) -> list[str]:
        return [
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

    def _identify(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=2) as r:
                body = json.loads(r.read() or b"{}")
                return r.status == 200 and body.get("checkpoint") == str(self.checkpoint)
        except urllib.error.URLError:
            return False


class TransformersEngine:
    """Requests of ``local`` / ``local:PATH`` to the transformers server of the checkpoint."""

    name = "transformers"
    chat_on_server = True
    _shared: ClassVar[dict[Path | None, TransformersEngine]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, checkpoint: Path | None = None, *, max_batch: int = 8) -> None:
        if checkpoint is not None and not (checkpoint / "config.json").is_file():
            raise ConfigError(
                f"the transformers engine serves checkpoint folders; {checkpoint} has no "
                "config.json",
                hint="point local:PATH at a folder written by save_pretrained",
            )
        self.checkpoint = checkpoint
        self.max_batch = max_batch

    @classmethod
    def shared(cls, checkpoint: Path | None = None, **options: Any) -> TransformersEngine:
        with cls._shared_lock:
            engine = cls._shared.get(checkpoint)
            if engine is None:
                engine = cls._shared[checkpoint] = cls(checkpoint, **options)
            return engine

    def server(self) -> TransformersServer:
        """The shared server of this engine's checkpoint, started (converting Gemma first)."""
        from exapt.agents.models.gemma import ensure_gemma_checkpoint

        checkpoint = self.checkpoint or ensure_gemma_checkpoint()
        server: TransformersServer = TransformersServer.shared(checkpoint, max_batch=self.max_batch)
        return server.start()  # type: ignore[return-value]

    def chat_prompt(self) -> ChatPrompt | None:
        return None  # the server renders chat itself

    def bos_text(self) -> str | None:
        return None

    @contextmanager
    def route(self, adapter: str | None) -> Iterator[Route]:
        if adapter is not None:
            raise ConfigError(
                f"LoRA adapter {adapter!r}: adapters are served by the llama engine only",
                hint="unset EXAPT_LOCAL_ENGINE (or set it to llama) and build llama.cpp "
                "(bash scripts/setup.sh)",
            )
        server = self.server()
        yield Route(server.url, {}, {}, server)
