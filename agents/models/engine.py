"""``LocalEngine``: the llama.cpp engine for one base model, with LoRA adapters served per request.

One ``llama-server`` process serves the base model (``local``: the Gemma GGUF as shipped;
``local:PATH``: a transformers checkpoint converted to GGUF once, or a ``.gguf`` file) and every
registered adapter, loaded at scale 0. A request picks its adapter with the model string
``<base>+adapter:NAME`` (e.g. ``local+adapter:my-policy``): the client sends llama-server's
per-request ``lora`` field for it, so several policies share one base process without merging.

Adapters:

- ``add_adapter(name, peft_dir)`` converts a peft LoRA folder once to a GGUF adapter
  (llama.cpp's ``convert_lora_to_gguf.py``) and registers it, also on disk
  (``<exapt home>/models/adapters/NAME.json``, ``adapter_registry.py``), so
  ``local+adapter:NAME`` works in later processes too. ``<base>+adapter:PATH`` (a peft
  folder; the path contains a ``/``) needs no registration.
- llama-server loads adapters only at start, so a changed adapter set is served by a new
  process: ``add_adapter`` starts it beside the running one (same model file, mmapped, so the
  weights are shared in memory), waits until it answers, then routes new requests to it; the
  old process finishes the requests it has and stops (drained, never cut off). Nothing is
  restarted when no server runs yet, and ``remove_adapter`` restarts nothing: the adapter
  stays loaded until the next change, but no request can pick it.

Requests whose adapters differ are not batched together by llama-server (each batch runs one
adapter set), so mixing policies costs some throughput.

Example:
    engine = LocalEngine.shared()               # the base `local`
    engine.add_adapter("sft-1", "runs/sft-1/adapter")
    policy = engine.model("sft-1")              # == resolve_model("local+adapter:sft-1")
    policy.complete("def add(a, b):\\n", max_tokens=32, temperature=0)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from exapt.agents.models.adapter_registry import (  # noqa: F401  (registry_dir: it lived here)
    Adapter,
    base_config,
    delete_record,
    read_record,
    recorded_names,
    registry_dir,
    write_record,
)
from exapt.agents.models.chat_prompt import (  # noqa: F401  (checkpoint_*: they lived here)
    ChatPrompt,
    base_chat_prompt,
    checkpoint_chat_template,
    checkpoint_special_tokens,
)
from exapt.agents.models.local_names import ADAPTER_SEPARATOR, check_adapter_name, is_adapter_path
from exapt.agents.models.server_process import LocalServer, LocalServerError
from exapt.errors import ConfigError

if TYPE_CHECKING:
    from exapt.agents.models.llama_server import LlamaServer
    from exapt.agents.models.local import LocalModel


class Route(NamedTuple):
    """Where one request goes: the server's base URL, headers, and body fields to add."""

    url: str
    headers: dict[str, str]
    extra: dict[str, Any]
    server: LocalServer


@dataclass(eq=False)
class _Generation:
    """One llama-server process and the adapter set it was started with."""

    server: LlamaServer
    files: dict[str, Path]  # adapter name -> GGUF, in --lora order (the n-th has id n)
    in_flight: int = 0
    retired: bool = False
    ids: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = {name: i for i, name in enumerate(self.files)}

    def lora(self, adapter: str | None) -> list[dict[str, Any]]:
        """The request's ``lora`` field: the adapter at scale 1, every other one at 0."""
        return [{"id": i, "scale": 1.0 if name == adapter else 0.0} for name, i in self.ids.items()]


class LocalEngine:
    """llama.cpp serving one base model and its LoRA adapters (see the module docstring).

    ``base``: None for the embedded Gemma (``local``), a transformers checkpoint folder or a
    ``.gguf`` file. ``threads`` (default: the idle cores, or ``EXAPT_LOCAL_THREADS``), ``slots``
    (concurrent requests, default 8) and ``slot_context`` (tokens per request, default 8192)
    go to ``LlamaServer``.
    """

    name = "llama"
    chat_on_server = False
    _shared: ClassVar[dict[Path | None, LocalEngine]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, base: str | Path | None = None, *, swap_timeout: float = 300.0, **server_options: Any
    ) -> None:
        self.base = Path(base).expanduser().resolve() if base is not None else None
        if self.base is not None and not (
            (self.base / "config.json").is_file() or self.base.suffix == ".gguf"
        ):
            raise ConfigError(
                f"local:{self.base} is neither a transformers checkpoint folder (no config.json) "
                "nor a .gguf file",
                hint="point local:PATH at a folder written by save_pretrained, or a GGUF file",
            )
        self.server_options = server_options
        self.swap_timeout = swap_timeout
        self._registry: dict[str, Adapter] = {}
        self._gen: _Generation | None = None
        self._retired: list[_Generation] = []
        self._cond = threading.Condition()
        self._swap_lock = threading.Lock()
        self._gguf: Path | None = None
        self._prompt: ChatPrompt | bool | None = False  # False: not read yet

    @classmethod
    def shared(cls, base: str | Path | None = None, **options: Any) -> LocalEngine:
        """The process-wide engine of ``base`` (``options`` apply when it is first created)."""
        key = Path(base).expanduser().resolve() if base is not None else None
        with cls._shared_lock:
            engine = cls._shared.get(key)
            if engine is None:
                engine = cls._shared[key] = cls(key, **options)
            return engine

    @property
    def base_name(self) -> str:
        """The model string of the base: ``local`` or ``local:PATH``."""
        return "local" if self.base is None else f"local:{self.base}"

    def model_string(self, adapter: str | None = None) -> str:
        """``local``, ``local+adapter:NAME``, ``local:PATH+adapter:NAME``..."""
        return (
            self.base_name if adapter is None else f"{self.base_name}{ADAPTER_SEPARATOR}{adapter}"
        )

    def model(self, adapter: str | None = None, **options: Any) -> LocalModel:
        """The ``Model`` for the base, or for one of its adapters."""
        from exapt.agents.models.local import LocalModel

        return LocalModel(self.base, adapter=adapter, engine=self, **options)

    # -- the base model ------------------------------------------------------------------------

    def gguf(self) -> Path:
        """The base model's GGUF file (assembled or converted on first use).

        Raises ``ConversionError`` for a checkpoint llama.cpp cannot convert."""
        if self._gguf is None:
            if self.base is None:
                from exapt.agents.models.gemma import ensure_gemma_gguf

                self._gguf = ensure_gemma_gguf()
            elif self.base.suffix == ".gguf":
                self._gguf = self.base
            else:
                from exapt.agents.models.llama_cpp import convert_checkpoint

                self._gguf = convert_checkpoint(self.base)
        return self._gguf

    def chat_prompt(self) -> ChatPrompt | None:
        """The chat template (None: the model has none, so it only completes text)."""
        if self._prompt is False:
            self._prompt = base_chat_prompt(self.base, self.gguf)
        return self._prompt  # type: ignore[return-value]

    def bos_text(self) -> str | None:
        """The BOS token's text if llama-server adds BOS to prompts itself (then a rendered
        chat must not start with it too)."""
        from exapt.agents.models.llama_cpp import read_gguf_info

        info = read_gguf_info(self.gguf())
        return info.bos_token if info.add_bos else None

    # -- adapters --------------------------------------------------------------------------------

    def adapters(self) -> dict[str, Path]:
        """Registered adapters in this process: name -> peft folder."""
        with self._cond:
            return {name: a.peft_dir for name, a in self._registry.items()}

    def add_adapter(self, name: str, peft_dir: str | Path, *, persist: bool = True) -> None:
        """Register (or replace) adapter ``name`` from a peft LoRA folder, converting it once.

        If a server is running, a new one with the new adapter set is started and swapped in
        (the old one drains); returns when ``<base>+adapter:name`` requests are served by it.
        ``persist`` also records the name on disk for later processes. Raises ``ConfigError``
        for a bad name or folder, ``ConversionError`` if llama.cpp cannot convert it, and
        ``LocalServerError`` if the new server does not start (the old one keeps serving, and
        the previous registration of ``name`` is restored).
        """
        if not is_adapter_path(name):
            check_adapter_name(name)
        peft = Path(peft_dir).expanduser().resolve()
        from exapt.agents.models.llama_cpp import convert_adapter

        gguf = convert_adapter(peft, base_config(self.base, peft))
        adapter = Adapter(name, peft, gguf)
        with self._cond:
            previous = self._registry.get(name)
            self._registry[name] = adapter
        try:
            self._swap()
        except BaseException:
            with self._cond:
                if previous is None:
                    self._registry.pop(name, None)
                else:
                    self._registry[name] = previous
                self._cond.notify_all()
            raise
        if persist and not is_adapter_path(name):
            write_record(name, peft, self.base_name)

    def remove_adapter(self, name: str) -> None:
        """Unregister ``name`` (here and on disk). Requests for it fail from now on with a
        ``ConfigError``; the running server is not restarted (the adapter leaves it at the
        next change of the adapter set)."""
        with self._cond:
            known = self._registry.pop(name, None)
        on_disk = not is_adapter_path(name) and delete_record(name)
        if known is None and not on_disk:
            raise ConfigError(f"no LoRA adapter named {name!r}", hint=self._known_hint())

    # -- serving ---------------------------------------------------------------------------------

    @contextmanager
    def route(self, adapter: str | None) -> Iterator[Route]:
        """Where a request for the base (``adapter`` None) or an adapter goes, held for the
        request: the server it names is not stopped until every request routed to it ends."""
        if adapter is not None:
            self._ensure_registered(adapter)
        gen = self._acquire(adapter)
        try:
            gen.server.start()  # starts it the first time; restarts a server that died
            extra = {"lora": gen.lora(adapter)} if gen.files else {}
            yield Route(gen.server.url, gen.server.headers, extra, gen.server)
        finally:
            self._release(gen)

    @property
    def server(self) -> LlamaServer | None:
        """The server new requests go to (None before the first request)."""
        gen = self._gen
        return gen.server if gen is not None else None

    def start(self) -> LlamaServer:
        """Start the server now (requests start it anyway); returns it."""
        gen = self._acquire(None)
        try:
            return gen.server.start()  # type: ignore[return-value]
        finally:
            self._release(gen)

    def stop(self) -> None:
        """Stop every server of this engine (the next request starts one again)."""
        with self._cond:
            gens = [g for g in (self._gen, *self._retired) if g is not None]
            self._gen = None
            self._retired = []
        for gen in gens:
            gen.server.stop()

    # -- internals -------------------------------------------------------------------------------

    def _new_generation(self, files: dict[str, Path]) -> _Generation:
        from exapt.agents.models.llama_server import LlamaServer

        server = LlamaServer(self.gguf(), adapters=list(files.values()), **self.server_options)
        return _Generation(server, files)

    def _wanted(self) -> dict[str, Path]:
        return {name: a.gguf for name, a in self._registry.items()}

    def _acquire(self, adapter: str | None) -> _Generation:
        for _ in range(5):
            with self._cond:
                if self._gen is None:
                    self._gen = self._new_generation(self._wanted())
                gen = self._gen
                wanted = self._registry.get(adapter) if adapter is not None else None
                if adapter is not None and wanted is None:
                    raise ConfigError(f"no LoRA adapter named {adapter!r}", hint=self._known_hint())
                if wanted is None or gen.files.get(adapter or "") == wanted.gguf:
                    gen.in_flight += 1
                    return gen
            self._swap()  # the adapter (or its new version) is not in the serving set yet
        raise LocalServerError(f"LoRA adapter {adapter!r} kept changing while being served")

    def _release(self, gen: _Generation) -> None:
        with self._cond:
            gen.in_flight -= 1
            drained = gen.retired and gen.in_flight == 0
            if drained and gen in self._retired:
                self._retired.remove(gen)
        if drained:
            gen.server.stop()

    def _swap(self) -> None:
        """Serve the registered adapter set: start a server for it beside the running one, then
        route new requests to it and let the old one drain."""
        with self._swap_lock:
            with self._cond:
                old = self._gen
                wanted = self._wanted()
                if old is None or old.files == wanted:
                    return
            new = self._new_generation(wanted)
            if old.server.pid is not None:  # serving now: start the new one first
                new.server.startup_timeout = min(new.server.startup_timeout, self.swap_timeout)
                new.server.start()
            with self._cond:
                self._gen = new
                old.retired = True
                drained = old.in_flight == 0
                if not drained:
                    self._retired.append(old)
                self._cond.notify_all()
            if drained:
                old.server.stop()

    def _ensure_registered(self, adapter: str) -> None:
        with self._cond:
            if adapter in self._registry:
                return
        if is_adapter_path(adapter):
            self.add_adapter(adapter, adapter, persist=False)
            return
        check_adapter_name(adapter)
        recorded = read_record(adapter)
        if recorded is None:
            raise ConfigError(f"no LoRA adapter named {adapter!r}", hint=self._known_hint())
        peft_dir, base = recorded
        if base != self.base_name:
            raise ConfigError(
                f"LoRA adapter {adapter!r} was registered for {base}, not {self.base_name}",
                hint=f"use the model string {base}{ADAPTER_SEPARATOR}{adapter}",
            )
        self.add_adapter(adapter, peft_dir, persist=False)

    def _known_hint(self) -> str:
        names = sorted(set(self.adapters()) | recorded_names())
        known = ", ".join(names) if names else "none"
        return (
            f"registered adapters: {known}; add one with LocalEngine.shared().add_adapter(name, "
            f"peft_dir), or name a peft folder: {self.base_name}{ADAPTER_SEPARATOR}/path/to/adapter"
        )


def note(message: str) -> None:
    print(f"exapt: {message}", file=sys.stderr, flush=True)
