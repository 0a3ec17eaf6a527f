"""The HTTP requests of the local models: the body a ``LocalModel`` sends, and what the
server's answer means.

- ``request_body(name, params, stop)``: the sampling fields of a request from OpenAI request
  parameters (``PARAMS``), checked: ``LocalRequestError`` names a bad one. llama-server's own
  sampling defaults (top_k, min_p) are turned off, so both engines sample alike.
- ``check_response(name, response, server)``: the answer's JSON when it holds choices, else
  ``ContextWindowExceeded`` (a prompt past the context window), ``LocalRequestError`` (the
  server rejected the request) or ``ModelError`` (pointing at the server's log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exapt.agents.models.base import ContextWindowExceeded, ModelError
from exapt.errors import ConfigError

if TYPE_CHECKING:
    from exapt.agents.models.server_process import LocalServer

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


def request_body(name: str, params: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
    """The sampling fields of a request body for model ``name``; ``LocalRequestError`` for a
    bad value."""
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise LocalRequestError(
            f"unknown request parameter(s) for {name}: {', '.join(unknown)}",
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
            raise LocalRequestError(f"stop must be a string or a list of strings, got {stops!r}")
        if stops:
            body["stop"] = [s for s in stops if s]
    return body


def check_response(name: str, response: Any, server: LocalServer) -> dict[str, Any]:
    """The JSON of the server's answer if it holds choices, else the error it means."""
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
            f"model {name!r}: the prompt is longer than the context window: {message}",
            hint="shorten the conversation or lower max_tokens",
        )
    if 400 <= response.status_code < 500:
        raise LocalRequestError(f"model {name!r} rejected the request: {message}")
    raise ModelError(
        f"model {name!r} failed: HTTP {response.status_code}: {message}",
        hint=f"see the server log {server.log_path}",
    )


def _number(params: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise LocalRequestError(f"{key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)
