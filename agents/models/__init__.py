"""Model access: one way to name a model everywhere (``resolve_model``).

Names:

- ``local`` — the embedded default, Gemma 3 270M (base model, ``is_base=True``), converted once
  into ``<exapt home>/models/gemma3-270m/`` and served on 127.0.0.1 on first use;
- ``local:PATH`` — any transformers checkpoint folder, served the same way;
- ``policy:NAME`` — a LoRA policy of ``<home>/policies/`` (``policy.py``): its base + adapter;
- any litellm model string (``openai/gpt-4o-mini``, ``anthropic/...``, ``ollama/...``,
  ``hosted_vllm/...`` with ``api_base=``).

Every HTTP model — hosted or local — goes through one class, ``LiteLLMModel``. Test doubles:
``ScriptedModel`` (replies from a script) and ``LangChainModel`` (any LangChain chat model,
e.g. its fake models).

Heavy libraries (litellm, transformers, torch) load only when a model is used, so importing
this package is fast.

Example:
    model = resolve_model("openai/gpt-4o-mini")
    reply = model.chat([{"role": "user", "content": "Say hi"}])
    print(reply.text, reply.tokens_in, reply.tokens_out, reply.cost_usd)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from exapt.agents.models.base import Message, Model, ModelError, ModelReply, ToolCall
from exapt.agents.models.scripted import ScriptedModel, ScriptExhausted
from exapt.errors import ConfigError

if TYPE_CHECKING:
    from exapt.agents.models.langchain_model import LangChainModel
    from exapt.agents.models.litellm_model import LiteLLMModel
    from exapt.agents.models.local import LocalModel, LocalServer

__all__ = [
    "LangChainModel",
    "LiteLLMModel",
    "LocalModel",
    "LocalServer",
    "Message",
    "Model",
    "ModelError",
    "ModelReply",
    "ScriptExhausted",
    "ScriptedModel",
    "ToolCall",
    "resolve_model",
]

# Loaded on first access (PEP 562) so that `import exapt.agents.models` stays fast.
_LAZY = {
    "LangChainModel": "exapt.agents.models.langchain_model",
    "LiteLLMModel": "exapt.agents.models.litellm_model",
    "LocalModel": "exapt.agents.models.local",
    "LocalServer": "exapt.agents.models.local",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_model(name: str, *, api_base: str | None = None, **params: Any) -> Model:
    """The model called ``name``: ``local``, ``local:PATH`` or a litellm model string.

    ``api_base`` points a litellm string at a server (``hosted_vllm/...``, ``ollama/...``, or
    ``openai/...`` for any OpenAI-compatible endpoint). Other ``params`` are passed to the
    backend: for litellm strings, the ``LiteLLMModel`` options (``api_key``, ``num_retries``,
    ``timeout``, ``supports_tools``, ``is_base``) and default request parameters (e.g.
    ``temperature``). Nothing is loaded or started here: a local model converts and starts
    its server on the first call.

    Raises ``ConfigError`` for a name that is neither ``local[:PATH]`` nor a model string
    litellm knows a provider for, and for a ``local:PATH`` that is not a checkpoint folder.

    Example:
        resolve_model("local").complete("def add(a, b):\\n", stop=["\\ndef "], max_tokens=64)
        resolve_model("openai/my-model", api_base="http://127.0.0.1:8000/v1")
    """
    name = name.strip()
    if name.startswith("policy:"):  # a LoRA policy of <home>/policies (evolve writes them)
        from exapt.agents.models.policy import policy_model

        return policy_model(name.removeprefix("policy:"), api_base=api_base, **params)
    if name == "local" or name.startswith("local:"):
        from exapt.agents.models.local import LocalModel

        if api_base is not None:
            raise ConfigError(
                f"model {name!r} is served by exapt itself; api_base={api_base!r} does not apply",
                hint="to use a server you started, name it as openai/<model> with api_base",
            )
        path = name.partition(":")[2].strip()
        return LocalModel(Path(path) if path else None, **params)
    from exapt.agents.models.litellm_model import LiteLLMModel, check_model_name

    check_model_name(name)
    return LiteLLMModel(name, api_base=api_base, **params)
