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
(``chat_prompt.py``). Requests go over HTTP with ``httpx`` rather than litellm: litellm took
~35 ms of CPU per call against ~1 ms (measured on the tiny model's server), and the llama
engine must bind each request to the server process (and adapter ids) it picked.

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
    ContextWindowExceeded,
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
from exapt.agents.models.server_process import LocalServer, LocalServerError
from exapt.errors import ConfigError, UnavailableError

__all__ = [
    "LocalModel",
    "LocalRequestError",
    "LocalServer",
    "LocalServerError",
    "parse_local_name",
]

#: Request parameters a local model takes (OpenAI names), beside prompt/messages and tools.
PARAMS = {
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "n",
    "stream",
    "presence_penalty",
    "frequency_penalty",
}
DEFAULT_MAX_TOKENS = 256


class LocalRequestError(ModelError, ConfigError):
    """The local server cannot serve the request as sent (a bad parameter, an empty prompt)."""


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
        body = self._body({**self.defaults, **params}, stop)
        body["prompt"] = prompt
        started = time.perf_counter()
        data = self._post("/completions", body)
        choice = data["choices"][0]
        return self._reply(data, choice.get("text") or "", [], choice.get("finish_reason"), started)

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        engine = self.engine_instance()
        body = self._body({**self.defaults, **params}, None)
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

    def _body(self, params: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
        """The request body's sampling fields; ``LocalRequestError`` for a bad value."""
        unknown = sorted(set(params) - PARAMS)
        if unknown:
            raise LocalRequestError(
                f"unknown request parameter(s) for {self.name}: {', '.join(unknown)}",
                hint=f"it takes: {', '.join(sorted(PARAMS))}",
            )
        if params.get("stream"):
            raise LocalRequestError("stream=true is not supported by exapt's local models")
        if params.get("n", 1) != 1:
            raise LocalRequestError(f"n must be 1, got {params.get('n')!r}")
        max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
        max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise LocalRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        body: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": _number(params, "temperature", 1.0, 0.0, 2.0),
            "top_p": _number(params, "top_p", 1.0, 0.0, 1.0) or 1.0,
            # llama-server's own sampling defaults (top_k 40, min_p 0.05) are off: the same
            # sampling as the transformers engine (temperature and top_p only).
            "top_k": 0,
            "min_p": 0.0,
        }
        for key in ("presence_penalty", "frequency_penalty"):
            if params.get(key) is not None:
                body[key] = _number(params, key, 0.0, -2.0, 2.0)
        seed = params.get("seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise LocalRequestError(f"seed must be an integer, got {seed!r}")
            body["seed"] = seed
        stops = stop if stop is not None else params.get("stop")
        if stops is not None:
            if isinstance(stops, str):
                stops = [stops]
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise LocalRequestError(
                    f"stop must be a string or a list of strings, got {stops!r}"
                )
            if stops:
                body["stop"] = [s for s in stops if s]
        return body

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
                if route.server.pid is None:
                    raise route.server.died_error(f"{type(exc).__name__}: {exc}") from exc
                raise ModelError(
                    f"model {self.name!r}: cannot reach {route.url}: {type(exc).__name__}: {exc}",
                    hint="is the machine out of memory or file descriptors?",
                ) from exc
        return self._check(response, route.server)

    def _check(self, response: Any, server: LocalServer) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code == 200 and isinstance(data, dict) and data.get("choices"):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        message = (error or {}).get("message") if isinstance(error, dict) else None
        message = str(message or response.text[:500] or f"HTTP {response.status_code}")
        kind = (error or {}).get("type", "") if isinstance(error, dict) else ""
        if (
            kind == "exceed_context_size_error"
            or "context size" in message
            or ("context window" in message)
        ):
            raise ContextWindowExceeded(
                f"model {self.name!r}: the prompt is longer than the context window: {message}",
                hint="shorten the conversation or lower max_tokens",
            )
        if 400 <= response.status_code < 500:
            raise LocalRequestError(f"model {self.name!r} rejected the request: {message}")
        raise ModelError(
            f"model {self.name!r} failed: HTTP {response.status_code}: {message}",
            hint=f"see the server log {server.log_path}",
        )

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


def _number(params: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise LocalRequestError(f"{key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)
