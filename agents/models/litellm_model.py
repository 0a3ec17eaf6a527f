"""``LiteLLMModel``: every HTTP model — hosted providers, vLLM, Ollama, our local server —
through litellm (``litellm.completion`` for chat, ``litellm.text_completion`` for prompts).

Contract (see ``base.py``): a reply carries the tokens of the provider's ``usage``, the cost from
``litellm.completion_cost`` (0.0 when litellm does not know the model's price, e.g. local
models) and the wall time of the call. Transient errors (rate limits, 5xx, dropped
connections) are retried by litellm (``num_retries``, with backoff); what is left becomes a
``ModelError`` whose hint says what to do (which variable to export, which URL did not answer).
Tool-call arguments are JSON-decoded; arguments that are not a JSON object are kept as the raw
string under ``RAW_ARGUMENTS_KEY`` with the decoding error under ``ARGUMENTS_ERROR_KEY``, so the
agent can show the model its mistake instead of crashing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from exapt.agents.models.base import (
    ARGUMENTS_ERROR_KEY,
    RAW_ARGUMENTS_KEY,
    ContextWindowExceeded,
    Message,
    ModelError,
    ModelReply,
    ToolCall,
)
from exapt.errors import ConfigError

_import_lock = threading.Lock()


def _litellm() -> Any:
    """Import litellm once, quietly (it prints provider lists and banners on errors)."""
    with _import_lock:
        import litellm

        litellm.suppress_debug_info = True
        return litellm


def check_model_name(model: str) -> None:
    """Raise ``ConfigError`` unless litellm knows a provider for ``model`` (no network)."""
    litellm = _litellm()
    try:
        litellm.get_llm_provider(model)
    except Exception as exc:
        raise ConfigError(
            f"unknown model {model!r}: litellm knows no provider for it",
            hint="use 'local', 'local:PATH' or a litellm model string such as "
            "'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest', 'ollama/qwen2.5' or "
            "'hosted_vllm/NAME' with api_base (see https://docs.litellm.ai/docs/providers)",
        ) from exc


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Tool-call arguments as a dict; a malformed string is kept raw with the error beside it."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {RAW_ARGUMENTS_KEY: raw, ARGUMENTS_ERROR_KEY: f"arguments are not valid JSON: {exc}"}
    if not isinstance(value, dict):
        return {RAW_ARGUMENTS_KEY: raw, ARGUMENTS_ERROR_KEY: "arguments must be a JSON object"}
    return value


class LiteLLMModel:
    """A model reached through litellm.

    ``model`` is a litellm model string; ``api_base`` an OpenAI-compatible (or provider) URL.
    ``defaults`` are request parameters sent with every call (``temperature``, ``max_tokens``,
    ...); per-call parameters override them. ``supports_tools`` defaults to what litellm knows
    of the model, and to True for models it does not know (custom servers usually do tools).

    Example:
        model = LiteLLMModel("hosted_vllm/Qwen2.5-7B", api_base="http://gpu:8000/v1")
        model.chat([{"role": "user", "content": "hi"}], temperature=0.0).text
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        supports_tools: bool | None = None,
        is_base: bool = False,
        num_retries: int = 2,
        timeout: float = 600.0,
        **defaults: Any,
    ) -> None:
        self.model = model
        self.name = name or model
        self.is_base = is_base
        self.num_retries = num_retries
        self.timeout = timeout
        self.defaults = defaults
        self._api_base = api_base
        self._api_key = api_key
        if supports_tools is None:
            supports_tools = self._litellm_supports_tools(model)
        self.supports_tools = supports_tools

    # -- the Model protocol --------------------------------------------------------------

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        request = {**self.defaults, **params, "messages": messages}
        if tools:
            request["tools"] = tools
        response, duration = self._call("completion", request)
        choice = response.choices[0]
        message = choice.message
        calls = [
            ToolCall(
                id=getattr(call, "id", None) or f"call_{uuid.uuid4().hex[:12]}",
                name=call.function.name or "",
                arguments=parse_arguments(call.function.arguments),
            )
            for call in (getattr(message, "tool_calls", None) or [])
        ]
        return self._reply(response, message.content or "", calls, choice.finish_reason, duration)

    def complete(self, prompt: str, *, stop: list[str] | None = None, **params: Any) -> ModelReply:
        request = {**self.defaults, **params, "prompt": prompt}
        if stop:
            request["stop"] = stop
        response, duration = self._call("text_completion", request)
        choice = response.choices[0]
        return self._reply(response, choice.text or "", [], choice.finish_reason, duration)

    # -- where requests go (LocalModel overrides this to start its server) -----------------

    def endpoint(self) -> tuple[str | None, str | None]:
        """``(api_base, api_key)`` for the next request."""
        api_key = self._api_key
        if api_key is None and self._api_base and not self._env_keys_present():
            # An OpenAI-compatible server of the user's needs no key, but the client wants one.
            api_key = "not-needed"
        return self._api_base, api_key

    # -- internals -------------------------------------------------------------------------

    def _call(self, kind: str, request: dict[str, Any]) -> tuple[Any, float]:
        litellm = _litellm()
        api_base, api_key = self.endpoint()
        if api_base is None and api_key is None:
            self._check_keys()
        kwargs = {
            "model": self.model,
            "num_retries": self.num_retries,
            "timeout": self.timeout,
            **request,
        }
        if api_base is not None:
            kwargs["api_base"] = api_base
        if api_key is not None:
            kwargs["api_key"] = api_key
        started = time.perf_counter()
        try:
            response = getattr(litellm, kind)(**kwargs)
        except Exception as exc:
            raise self._error(exc, api_base) from exc
        return response, time.perf_counter() - started

    def _reply(
        self,
        response: Any,
        text: str,
        calls: list[ToolCall],
        finish_reason: str | None,
        duration: float,
    ) -> ModelReply:
        usage = getattr(response, "usage", None)
        return ModelReply(
            text=text,
            tool_calls=calls,
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=self._cost(response),
            duration_s=duration,
            finish_reason=finish_reason,
            model=self.name,
        )

    def _cost(self, response: Any) -> float:
        try:
            return float(_litellm().completion_cost(completion_response=response) or 0.0)
        except Exception:  # litellm raises for models without a price (local, custom servers)
            return 0.0

    def _check_keys(self) -> None:
        """Fail fast, without network, when the provider's API key is not in the environment."""
        try:
            env = _litellm().validate_environment(model=self.model)
        except Exception:  # unknown provider details: let the call itself report
            return
        missing = env.get("missing_keys") or []
        if not env.get("keys_in_environment", True) and missing:
            raise ModelError(
                f"model {self.name!r} needs an API key: {', '.join(missing)} is not set",
                hint=f"export {missing[0]}=<your key> (or pass api_key=...)",
            )

    def _env_keys_present(self) -> bool:
        try:
            env = _litellm().validate_environment(model=self.model)
        except Exception:
            return True
        return bool(env.get("keys_in_environment", True))

    def _error(self, exc: Exception, api_base: str | None) -> ModelError:
        litellm = _litellm()
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = api_base or "the provider"
        lowered = str(exc).lower()
        if (
            isinstance(exc, litellm.AuthenticationError)
            or "api key" in lowered
            or ("credentials" in lowered)
        ):
            try:
                missing = litellm.validate_environment(model=self.model).get("missing_keys") or []
            except Exception:
                missing = []
            hint = (
                f"export {missing[0]}=<your key> (or pass api_key=...)"
                if missing
                else "check the API key for this provider (or pass api_key=...)"
            )
            return ModelError(f"model {self.name!r}: authentication failed: {detail}", hint=hint)
        if isinstance(exc, litellm.APIConnectionError | litellm.Timeout) or (
            "connection error" in lowered
        ):
            return ModelError(
                f"model {self.name!r}: cannot reach {where}: {detail}",
                hint=f"is the server at {where} running and reachable?"
                if api_base
                else "check the network connection and the provider's status",
            )
        if isinstance(exc, litellm.NotFoundError):
            return ModelError(
                f"model {self.name!r}: not found at {where}: {detail}",
                hint="check the model name (and api_base)",
            )
        if isinstance(exc, litellm.ContextWindowExceededError) or any(
            words in lowered for words in ("context window", "context length")
        ):
            return ContextWindowExceeded(
                f"model {self.name!r}: the prompt is longer than the context window: {detail}",
                hint="shorten the conversation or lower max_tokens",
            )
        return ModelError(
            f"model {self.name!r} failed: {type(exc).__name__}: {detail}",
            hint=f"the request to {where} failed after {self.num_retries} retries",
        )

    @staticmethod
    def _litellm_supports_tools(model: str) -> bool:
        litellm = _litellm()
        try:
            litellm.get_model_info(model)
        except Exception:
            return True  # not in litellm's map: a custom server; most of them do tools
        try:
            return bool(litellm.supports_function_calling(model))
        except Exception:
            return True
