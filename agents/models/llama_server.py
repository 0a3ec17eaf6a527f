"""``LlamaServer``: llama.cpp's ``llama-server`` for one GGUF model and a fixed set of LoRA
adapters, as a ``LocalServer`` child process.

The command line (see ``command``): ``-t THREADS`` (default: the idle cores, see
``default_threads``), ``-np SLOTS`` (default 8: continuous batching over 8 requests at once)
and ``-c SLOTS x SLOT_CONTEXT``, so that each slot holds ``slot_context`` tokens (default 8192,
capped at what the model was trained for); ``--lora FILE`` per adapter with
``--lora-init-without-apply`` (every adapter starts at scale 0; a request picks its own in its
``lora`` field); ``--offline``; a random API key (in the environment, not the command line) so
that no other local process uses or reads the server; ``--cache-ram`` bounded (llama-server's
default keeps up to 8 GB of prompt caches). ``GET /props`` must name our model file before the
server counts as started.

llama-server loads adapters only at start: serving a new adapter set means a new process
(``LocalEngine`` starts it beside the old one and swaps; see ``engine.py``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from exapt.agents.models.llama_cpp import GGUFInfo, LlamaCpp, find_llama_cpp, read_gguf_info
from exapt.agents.models.server_process import LocalServer
from exapt.errors import ConfigError

DEFAULT_SLOTS = 8
DEFAULT_SLOT_CONTEXT = 8192
#: MiB of RAM for the prompt caches of idle slots (llama-server's default is 8192).
CACHE_RAM_MIB = 256


def default_threads() -> int:
    """``EXAPT_LOCAL_THREADS`` if set, else the cores that are idle now (at least 1).

    llama.cpp's threads meet at a barrier after every operation, so a thread that waits for a
    core stalls the others: measured on 2 cores at load ~8, Gemma 270M decoded 15 tokens/s with
    1 thread and 2-3 tokens/s with 2 (``--poll 0`` did not help). On a quiet machine every
    core is used (2 cores: ``-t 2``).
    """
    value = os.environ.get("EXAPT_LOCAL_THREADS", "")
    if value.strip():
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(
                f"EXAPT_LOCAL_THREADS={value!r} is not a positive integer",
                hint="unset it to use the idle cores, or set e.g. EXAPT_LOCAL_THREADS=2",
            )
        return threads
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


class LlamaServer(LocalServer):
    """``llama-server`` serving ``model`` (a GGUF file) with ``adapters`` (GGUF LoRA files; the
    n-th is id n in a request's ``lora`` field).

    Example:
        with LlamaServer(gguf) as server:
            httpx.post(f"{server.url}/completions", headers=server.headers,
                       json={"prompt": "def f(", "max_tokens": 8, "temperature": 0})
    """

    def __init__(
        self,
        model: str | Path,
        *,
        adapters: list[Path] | tuple[Path, ...] = (),
        threads: int | None = None,
        slots: int = DEFAULT_SLOTS,
        slot_context: int = DEFAULT_SLOT_CONTEXT,
        alias: str = "local",
        llama: LlamaCpp | None = None,
        extra_args: list[str] | None = None,
        **options: Any,
    ) -> None:
        self.model = Path(model).expanduser().resolve()
        self.adapters = tuple(Path(a).resolve() for a in adapters)
        self.threads = threads or default_threads()
        if slots < 1 or slot_context < 16:
            raise ConfigError(f"slots={slots} and slot_context={slot_context} must be positive")
        self.slots = slots
        self.slot_context = slot_context
        self.alias = alias
        self.extra_args = list(extra_args or [])
        self._llama = llama
        self._info: GGUFInfo | None = None
        self.api_key = secrets.token_hex(16)
        super().__init__(env={"LLAMA_API_KEY": self.api_key}, **options)

    @property
    def headers(self) -> dict[str, str]:
        """What every request to this server carries (its API key)."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def info(self) -> GGUFInfo:
        if self._info is None:
            self._info = read_gguf_info(self.model)
        return self._info

    def context_per_slot(self) -> int:
        """Tokens each slot holds: ``slot_context``, capped at the model's training context."""
        trained = self.info.context_length
        return min(self.slot_context, trained) if trained > 0 else self.slot_context

    def describe(self) -> str:
        extra = f" with {len(self.adapters)} LoRA adapter(s)" if self.adapters else ""
        return f"{self.model}{extra}"

    def log_name(self) -> str:
        return f"llama-server-{self.model.stem}"

    def _check_before_launch(self) -> None:
        if not self.model.is_file():
            raise ConfigError(f"cannot serve {self.model}: no such GGUF file")
        for adapter in self.adapters:
            if not adapter.is_file():
                raise ConfigError(f"cannot serve the LoRA adapter {adapter}: no such file")
        self.info  # noqa: B018  (reads the header: a clear error for a file that is not GGUF)
        if self._llama is None:
            self._llama = find_llama_cpp()

    def command(self, port: int) -> list[str]:
        llama = self._llama or find_llama_cpp()
        command = [
            str(llama.server),
            "--model",
            str(self.model),
            "--alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(port),
            "--threads",
            str(self.threads),
            "--parallel",
            str(self.slots),
            "--ctx-size",
            str(self.slots * self.context_per_slot()),
            "--cache-ram",
            str(CACHE_RAM_MIB),
            "--no-ui",
            "--offline",
            "--log-colors",
            "off",
        ]
        for adapter in self.adapters:
            command += ["--lora", str(adapter)]
        if self.adapters:
            command.append("--lora-init-without-apply")
        return command + self.extra_args

    def _identify(self) -> bool:
        import httpx

        try:
            response = httpx.get(
                f"http://{self.host}:{self.port}/props", headers=self.headers, timeout=2
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        path = response.json().get("model_path")
        return path is not None and Path(path).resolve() == self.model
