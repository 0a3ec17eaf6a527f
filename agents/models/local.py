"""``LocalModel``: the models exapt serves itself on 127.0.0.1, started on first use.

Model strings (parsed in ``local_names.py``): ``local`` (the embedded Gemma 3 270M, a base
model), ``local:PATH`` (a transformers checkpoint folder, or a ``.gguf`` file), each optionally
followed by ``+adapter:NAME`` (a LoRA adapter registered with ``LocalEngine.add_adapter``) or
``+adapter:PATH`` (a peft adapter folder), e.g. ``local+adapter:sft-1``.

Engines (``engine=`` or ``EXAPT_LOCAL_ENGINE``):

- ``llama`` — llama.cpp's ``llama-server`` (``LocalEngine``): continuous batching over 8 slots,
  LoRA adapters per request, the Gemma GGUF served as shipped.
- ``transformers`` — our server over ``model.generate`` (``TransformersEngine``): for
  checkpoints llama.cpp cannot convert; no adapters.
- ``auto`` (the default) — ``llama`` when llama.cpp is built here and can convert the
  checkpoint, else ``transformers``, saying why once on stderr.

Both engines get the same prompts: chat is rendered with the model's chat template (Gemma's,
tools listed) by transformers' renderer, and a reply that is a JSON tool call becomes one
(``chat_prompt.py``). Requests (``local_request.py``: the body, the answer's checks) go over
HTTP with ``httpx`` rather than litellm: litellm took ~35 ms of CPU per call against ~1 ms
(measured on the tiny model's server), and the llama engine must bind each request to the
server process (and adapter ids) it picked.

Errors: a request the server rejects is a ``LocalRequestError`` (a ``ConfigError``) naming the
problem, a prompt past the context window ``ContextWindowExceeded``, a server that does not
start or dies during a request ``LocalServerError`` (with its log's tail; the next request
starts it again).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from exapt.agents.models.base import (
    Message,
    ModelError,
    ModelReply,
    ToolCall,
)
from exapt.agents.models.chat_prompt import checkpoint_chat_template, tool_call
from exapt.agents.models.engine import LocalEngine, note
from exapt.agents.models.gemma import (  # noqa: F401  (re-exported: where they used to live)
    ensure_gemma_checkpoint,
    ensure_gemma_gguf,
    gemma_checkpoint_dir,
)
from exapt.agents.models.litellm_model import parse_arguments
from exapt.agents.models.local_names import (  # noqa: F401  (ENGINES re-exported: it lived here)
    ADAPTER_SEPARATOR,
    ENGINES,
    check_adapter_name,
    engine_choice,
    is_adapter_path,
    parse_local_name,
)
from exapt.agents.models.local_request import (  # noqa: F401  (DEFAULT_MAX_TOKENS: it lived here)
    DEFAULT_MAX_TOKENS,
    PARAMS,
    LocalRequestError,
    check_response,
    request_body,
)
from exapt.agents.models.server_process import LocalServer, LocalServerError
from exapt.errors import ConfigError, UnavailableError

__all__ = [
    "LocalModel",
    "LocalRequestError",
    "LocalServer",
    "LocalServerError",
    "parse_local_name",
]


class LocalModel:
    """``local``, ``local:PATH`` and their ``+adapter:`` forms, served on demand (see module).

    Nothing happens until the first call: then the model is prepared (Gemma's GGUF assembled,
    a checkpoint converted) and the shared server starts. ``is_base`` is True for the embedded
    Gemma and for a model without a chat template; tool calls are off by default (a base model
    does not make them reliably; pass ``supports_tools=True``). Other keyword options are
    default request parameters (``temperature``, ``max_tokens``...).

    Example:
        model = LocalModel()  # the embedded Gemma
        model.complete("def add(a, b):\\n    return", stop=["\\ndef "], temperature=0)
    """

    def __init__(
        self,
        checkpoint: Path | None = None,
        *,
        adapter: str | None = None,
        engine: str | LocalEngine | None = None,
        is_base: bool | None = None,
        supports_tools: bool = False,
        timeout: float = 600.0,
        max_batch: int = 8,
        **defaults: Any,
    ) -> None:
        if checkpoint is not None:
            checkpoint = checkpoint.expanduser().resolve()
            if checkpoint.suffix == ".gguf" and checkpoint.is_file():
                pass
            elif not (checkpoint / "config.json").is_file():
                raise ConfigError(
                    f"local:{checkpoint} is not a transformers checkpoint folder (no "
                    "config.json) nor a .gguf file",
                    hint="point local:PATH at a folder written by save_pretrained",
                )
            name = f"local:{checkpoint}"
        else:
            name = "local"
        unknown = sorted(set(defaults) - PARAMS - {"num_retries"})
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the local model: {', '.join(unknown)}",
                hint=f"request parameters it takes: {', '.join(sorted(PARAMS))}",
            )
        defaults.pop("num_retries", None)  # a litellm option: the local server needs no retry
        self.checkpoint = checkpoint
        self.adapter = adapter
        self._engine: Any = engine if isinstance(engine, LocalEngine) else None
        self.engine = (
            "llama"
            if self._engine is not None
            else engine_choice(engine if isinstance(engine, str) else None)
        )
        if adapter is not None:
            if self.engine == "transformers":
                raise ConfigError(
                    f"LoRA adapter {adapter!r}: adapters are served by the llama engine only",
                    hint="unset EXAPT_LOCAL_ENGINE, or set it to llama",
                )
            if not is_adapter_path(adapter):
                check_adapter_name(adapter)
            name += f"{ADAPTER_SEPARATOR}{adapter}"
        self.name = name
        self.supports_tools = supports_tools
        self.is_base = self._default_is_base() if is_base is None else is_base
        self.timeout = timeout
        self.max_batch = max_batch
        self.defaults = defaults
        self._engine_lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._client: Any = None

    # -- the Model protocol ------------------------------------------------------------------

    def complete(self, prompt: str, *, stop: list[str] | None = None, **params: Any) -> ModelReply:
        if not isinstance(prompt, str):
            raise LocalRequestError(f"prompt must be a string, got {type(prompt).__name__}")
        if not prompt:
            raise LocalRequestError("the prompt is empty", hint="send at least one character")
        body = request_body(self.name, {**self.defaults, **params}, stop)
        body["prompt"] = prompt
        started = time.perf_counter()
        data = self._post("/completions", body)
        choice = data["choices"][0]
        return self._reply(data, choice.get("text") or "", [], choice.get("finish_reason"), started)

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        engine = self.engine_instance()
        body = request_body(self.name, {**self.defaults, **params}, None)
        started = time.perf_counter()
        if engine.chat_on_server:
            body["messages"] = messages
            if tools:
                body["tools"] = tools
            data = self._post("/chat/completions", body)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            calls = [
                ToolCall(
                    id=call.get("id") or "",
                    name=call["function"]["name"],
                    arguments=parse_arguments(call["function"].get("arguments")),
                )
                for call in message.get("tool_calls") or []
            ]
            text = message.get("content") or ""
            return self._reply(data, text, calls, choice.get("finish_reason"), started)
        prompt = engine.chat_prompt()
        if prompt is None:
            raise LocalRequestError(
                f"{self.name} has no chat template: use complete() (plain text completion)"
            )
        rendered = prompt.render(messages, tools)
        bos = engine.bos_text()
        if bos and rendered.startswith(bos):
            rendered = rendered[len(bos) :]  # llama-server adds BOS itself
        body["prompt"] = rendered
        data = self._post("/completions", body)
        choice = data["choices"][0]
        text = choice.get("text") or ""
        finish = choice.get("finish_reason")
        call = tool_call(text, tools) if tools else None
        if call is None:
            return self._reply(data, text, [], finish, started)
        parsed = ToolCall(
            id=call["id"],
            name=call["function"]["name"],
            arguments=parse_arguments(call["function"]["arguments"]),
        )
        return self._reply(data, "", [parsed], "tool_calls", started)

    # -- the engine ---------------------------------------------------------------------------

    def engine_instance(self) -> Any:
        """The engine serving this model (``LocalEngine`` or ``TransformersEngine``)."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._pick_engine()
            return self._engine

    def server(self) -> LocalServer:
        """The started server of this model (for tests, benchmarks and logs)."""
        with self.engine_instance().route(self.adapter) as route:
            return route.server

    def _pick_engine(self) -> Any:
        if self.engine in ("auto", "llama"):
            try:
                from exapt.agents.models.llama_cpp import ConversionError, find_llama_cpp

                find_llama_cpp()
                engine = LocalEngine.shared(self.checkpoint)
                engine.gguf()  # converts a checkpoint now: a failure can still fall back
                return engine
            except (UnavailableError, ConversionError) as exc:
                if self.engine == "llama" or self.adapter is not None:
                    raise
                if self.checkpoint is not None and self.checkpoint.suffix == ".gguf":
                    raise
                note(
                    f"serving {self.name} with the transformers engine (slower): "
                    f"{exc.message.splitlines()[0]}"
                )
        from exapt.agents.models.transformers_engine import TransformersEngine

        return TransformersEngine.shared(self.checkpoint, max_batch=self.max_batch)

    def _default_is_base(self) -> bool:
        if self.checkpoint is None:
            return True
        if self.checkpoint.is_dir():
            return checkpoint_chat_template(self.checkpoint) is None
        from exapt.agents.models.llama_cpp import read_gguf_info

        return not read_gguf_info(self.checkpoint).chat_template

    # -- HTTP -----------------------------------------------------------------------------------

    def _http(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import httpx

                limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
                self._client = httpx.Client(timeout=self.timeout, limits=limits)
            return self._client

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        engine = self.engine_instance()
        with engine.route(self.adapter) as route:
            url = f"{route.url}{path}"
            try:
                response = self._http().post(
                    url, json={**body, **route.extra}, headers=route.headers
                )
            except httpx.TimeoutException as exc:
                raise ModelError(
                    f"model {self.name!r}: no answer from {route.url} within {self.timeout:.0f} s",
                    hint="lower max_tokens, or raise the model's timeout",
                ) from exc
            except httpx.HTTPError as exc:
                if route.server.exited_within(1.0):
                    raise route.server.died_error(f"{type(exc).__name__}: {exc}") from exc
                raise ModelError(
                    f"model {self.name!r}: cannot reach {route.url}: {type(exc).__name__}: {exc}",
                    hint="is the machine out of memory or file descriptors?",
                ) from exc
        return check_response(self.name, response, route.server)

    def _reply(
        self,
        data: dict[str, Any],
        text: str,
        calls: list[ToolCall],
        finish_reason: str | None,
        started: float,
    ) -> ModelReply:
        usage = data.get("usage") or {}
        return ModelReply(
            text=text,
            tool_calls=calls,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            cost_usd=0.0,
            duration_s=time.perf_counter() - started,
            finish_reason=finish_reason,
            model=self.name,
        )
