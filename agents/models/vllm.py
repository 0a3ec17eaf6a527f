"""``VLLMEngine``: LoRA policies on a GPU, served by vLLM with adapters hot-loaded at run time.

``vllm serve BASE --enable-lora --max-lora-rank R --max-loras N`` runs as a child process on
127.0.0.1 with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (without it vLLM does not expose the
adapter endpoints), or ``url=`` names a vLLM server already running (``EXAPT_VLLM_URL``).
vLLM cannot run on CPU-only machines; exapt's tests check this engine against a server that
implements the endpoints as vLLM documents them (tests/train/fake_vllm.py):

- ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}``: 200 with a text body on success;
  400 for a name already loaded or an adapter the engine refuses (e.g. a rank over
  ``--max-lora-rank``); 404 when the path holds no adapter;
- ``POST /v1/unload_lora_adapter {"lora_name"}``: 200, or 404 for a name not loaded;
- ``GET /v1/models``: the base, and one card per adapter (``id`` = its name, ``root`` = path);
- completions and chat requests pick an adapter by ``"model": <its name>``.

An adapter is loaded under a stable alias (the policy's name): ``load_adapter`` unloads the
alias first, then loads it — vLLM refuses to load a name twice, and reloading a name in place
can serve a stale cached copy of the old weights. Errors are ``ConfigError`` for what the user
can fix (a rank over the server's maximum, a path that is not an adapter) and ``ModelError``
for a server that does not answer.

Example:
    engine = VLLMEngine.shared("/models/gemma3-270m", max_lora_rank=16)
    engine.load_adapter("he-r1", "/home/.exapt/policies/he-r1/adapter")
    engine.model("he-r1").complete("def add(a, b):\\n", max_tokens=32)
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from exapt import paths
from exapt.agents.models.base import ModelError
from exapt.errors import ConfigError, UnavailableError

#: The ranks ``--max-lora-rank`` takes (vLLM's ``MaxLoRARanks``).
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class VLLMServerError(ModelError, UnavailableError):
    """The vLLM server did not start or stopped answering (the message holds its log's tail)."""


class VLLMEngine:
    """One vLLM server for one base model and its LoRA adapters (see the module docstring)."""

    _shared: ClassVar[dict[str, VLLMEngine]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        base: str | Path,
        *,
        url: str | None = None,
        max_lora_rank: int = 16,
        max_loras: int = 4,
        port: int | None = None,
        command: list[str] | None = None,
        extra_args: list[str] | None = None,
        startup_timeout: float = 1200.0,
        timeout: float = 600.0,
    ) -> None:
        if max_lora_rank not in MAX_LORA_RANKS:
            raise ConfigError(
                f"vLLM cannot serve LoRA rank {max_lora_rank}: --max-lora-rank takes one of "
                f"{', '.join(map(str, MAX_LORA_RANKS))}",
                hint="train with one of these ranks (--lora-r), or the next one up as the maximum",
            )
        self.base = str(base)
        self.max_lora_rank = max_lora_rank
        self.max_loras = max_loras
        self.command = command or ["vllm", "serve"]
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self.timeout = timeout
        self._external = url is not None
        self._url = url.rstrip("/").removesuffix("/v1") if url else None
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, base: str | Path, **options: Any) -> VLLMEngine:
        """The process-wide engine of ``base``; ``EXAPT_VLLM_URL`` (a running server) and
        ``EXAPT_VLLM_MAX_LORA_RANK`` apply when it is first made."""
        key = str(base)
        with cls._shared_lock:
            engine = cls._shared.get(key)
            if engine is None:
                if os.environ.get("EXAPT_VLLM_URL"):
                    options.setdefault("url", os.environ["EXAPT_VLLM_URL"])
                if os.environ.get("EXAPT_VLLM_MAX_LORA_RANK"):
                    options.setdefault("max_lora_rank", int(os.environ["EXAPT_VLLM_MAX_LORA_RANK"]))
                engine = cls._shared[key] = cls(key, **options)
            return engine

    @property
    def url(self) -> str:
        """The server's root URL (``http://127.0.0.1:PORT``); the OpenAI API is under ``/v1``."""
        self.start()
        assert self._url is not None
        return self._url

    # --- the server -------------------------------------------------------------------

    def start(self) -> VLLMEngine:
        """Start ``vllm serve`` unless a server runs (or ``url`` was given); wait until it
        answers and serves ``base``. ``VLLMServerError`` with its log's tail otherwise."""
        with self._lock:
            if self._external:
                if not getattr(self, "_checked", False):
                    self._check_base()
                    self._checked = True
                return self
            if self._process is not None and self._process.poll() is None:
                return self
            self._launch()
        return self

    def _launch(self) -> None:
        port = self._port or _free_port()
        self._url = f"http://127.0.0.1:{port}"
        logs = paths.subdir("logs")
        self._log = logs / f"vllm-{port}.log"
        args = [
            *self.command, self.base, "--host", "127.0.0.1", "--port", str(port),
            "--enable-lora", "--max-lora-rank", str(self.max_lora_rank),
            "--max-loras", str(self.max_loras), *self.extra_args,
        ]  # fmt: skip
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
        with open(self._log, "ab") as log:
            try:
                self._process = subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            except OSError as exc:
                raise VLLMServerError(
                    f"cannot start {' '.join(args[:2])}: {exc}",
                    hint="install vLLM on a GPU machine (pip install 'exapt[gpu]'), or point "
                    "EXAPT_VLLM_URL at a running server; on CPU use EXAPT_POLICY_ENGINE=llama",
                ) from exc
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise VLLMServerError(
                    f"vllm serve exited with status {self._process.returncode}:\n{self._tail()}",
                    hint=f"see {self._log}",
                )
            if self._healthy():
                self._check_base()
                return
            time.sleep(0.5)
        self.stop()
        raise VLLMServerError(
            f"vllm serve did not answer within {self.startup_timeout:.0f} s:\n{self._tail()}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _healthy(self) -> bool:
        try:
            return self._http("GET", "/health", timeout=5.0).status_code == 200
        except ModelError:
            return False

    def _check_base(self) -> None:
        ids = [card.get("id") for card in self._models() if not card.get("parent")]
        if self.base not in ids:
            raise ConfigError(
                f"the vLLM server at {self._url} serves {ids}, not the policy's base {self.base}",
                hint="start it with `vllm serve <base> --enable-lora`, or unset EXAPT_VLLM_URL",
            )

    # --- adapters ---------------------------------------------------------------------

    def load_adapter(self, alias: str, path: str | Path, *, rank: int | None = None) -> None:
        """Serve the peft adapter at ``path`` as model ``alias`` (unload, then load)."""
        folder = Path(path).expanduser().resolve()
        if rank is None:
            try:
                rank = int(json.loads((folder / "adapter_config.json").read_text())["r"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{folder} is not a peft LoRA adapter: {exc}") from exc
        if rank > self.max_lora_rank:
            raise ConfigError(
                f"adapter {alias!r} has LoRA rank {rank}; this vLLM server serves ranks up to "
                f"{self.max_lora_rank} (--max-lora-rank)",
                hint="set EXAPT_VLLM_MAX_LORA_RANK to a larger rank, or train a smaller one",
            )
        self.start()
        with self._lock:
            if alias in self.loaded():
                self._post("/v1/unload_lora_adapter", {"lora_name": alias}, allow=(404,))
            self._post("/v1/load_lora_adapter", {"lora_name": alias, "lora_path": str(folder)})
            if alias not in self.loaded():
                raise VLLMServerError(f"vLLM accepted adapter {alias!r} but does not list it")

    def unload_adapter(self, alias: str) -> None:
        """Stop serving ``alias``; ``ConfigError`` when the server has no such adapter."""
        self.start()
        response = self._post("/v1/unload_lora_adapter", {"lora_name": alias}, allow=(404,))
        if response.status_code == 404:
            raise ConfigError(f"the vLLM server has no adapter {alias!r}: {_message(response)}")

    def loaded(self) -> dict[str, str]:
        """Adapters the server serves: alias -> path."""
        return {
            str(card["id"]): str(card.get("root") or "")
            for card in self._models()
            if card.get("parent")
        }

    def model(self, alias: str | None = None, **params: Any) -> Any:
        """A ``LiteLLMModel`` for ``alias`` (None: the base) on this server."""
        from exapt.agents.models.litellm_model import LiteLLMModel

        params.setdefault("supports_tools", False)
        params.setdefault("timeout", self.timeout)
        return LiteLLMModel(
            f"hosted_vllm/{alias or self.base}", api_base=f"{self.url}/v1", **params
        )

    # --- HTTP -------------------------------------------------------------------------

    def _models(self) -> list[dict[str, Any]]:
        response = self._http("GET", "/v1/models")
        if response.status_code != 200:
            raise VLLMServerError(
                f"GET /v1/models: HTTP {response.status_code}: {_message(response)}"
            )
        return list(response.json().get("data") or [])

    def _post(self, path: str, body: dict[str, Any], allow: tuple[int, ...] = ()) -> Any:
        response = self._http("POST", path, json=body)
        if response.status_code == 200 or response.status_code in allow:
            return response
        message = _message(response)
        if response.status_code == 404 and "adapter" not in message.lower():
            raise VLLMServerError(
                f"the vLLM server has no {path} endpoint (HTTP 404: {message})",
                hint="start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora",
            )
        if response.status_code in (400, 404):
            raise ConfigError(f"vLLM refused {path} {body}: {message}")
        raise VLLMServerError(f"{path}: HTTP {response.status_code}: {message}")

    def _http(self, method: str, path: str, *, timeout: float = 60.0, **kwargs: Any) -> Any:
        import httpx

        try:
            return httpx.request(method, f"{self._url}{path}", timeout=timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise VLLMServerError(
                f"cannot reach the vLLM server at {self._url}: {type(exc).__name__}: {exc}"
            ) from exc

    def _tail(self, lines: int = 30) -> str:
        try:
            text = self._log.read_text(errors="replace") if self._log else ""
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _message(response: Any) -> str:
    """vLLM's error text: ``{"error": {"message"}}`` (newer), ``{"message"}`` (older), or text."""
    try:
        data = response.json()
    except ValueError:
        return str(response.text)[:500]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if data.get("message"):
            return str(data["message"])
        if data.get("detail"):
            return str(data["detail"])
    return str(data)[:500]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
