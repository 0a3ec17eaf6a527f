"""Policies as models: the ``Policy`` record, how ``<home>/policies/`` is read, and the
``policy:NAME`` model string.

A policy is a LoRA adapter trained on a base model, kept in ``<home>/policies/<name>/``:
``policy.json`` (this record) and ``adapter/`` (peft's files). ``exapt.evolve.policies`` writes
them (training, promotion, rollback); this module only reads, so agents can use a policy
without importing evolve (agents never do).

``policy:NAME`` names the policy NAME, or — when NAME is a *line* (the lineage an ``exapt
improve`` run grows) — the line's promoted policy. It resolves to the base model with the
adapter, served:

- on CPU by the llama.cpp engine (``LocalEngine``): base + adapter per request, no merge;
- on a GPU by vLLM (``VLLMEngine``, ``vllm.py``): the adapter hot-loaded under the policy's
  name as a stable alias.

``EXAPT_POLICY_ENGINE`` picks the engine: ``llama``, ``vllm`` or ``auto`` (default: vLLM when
the ``vllm`` command and an NVIDIA GPU are present, else llama.cpp). The model's ``name`` is
``policy:<the policy's own name>``, so attempts are stored and cached under the exact weights.

Before serving, the adapter is checked against its base: the adapter's
``base_model_name_or_path`` must be the policy's base checkpoint, and the base's config.json
must still be the one trained on (its hash is in the record). A mismatch is a ``ConfigError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exapt import paths
from exapt.agents.models.base import Model
from exapt.errors import ConfigError, UnavailableError

POLICY_SCHEMA = 1
PREFIX = "policy:"
Status = Literal["candidate", "promoted", "retired"]
STATUSES: tuple[str, ...] = ("candidate", "promoted", "retired")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Policy(BaseModel):
    """One policy (see the module docstring); ``policy.json`` holds it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    schema_version: int = Field(POLICY_SCHEMA, alias="schema")
    name: str
    line: str = Field(description="its lineage: at most one promoted policy per line")
    parent: str | None = Field(None, description="the policy it must beat (None: the base)")
    base_model: str = Field(description="model string of the base: local | local:PATH")
    base_checkpoint: str = Field(description="the transformers checkpoint it was trained on")
    base_config_sha: str = Field("", description="sha256 of that checkpoint's config.json")
    is_base: bool = Field(True, description="the base is a base model (no chat tuning)")
    adapter: str = Field("adapter", description="the adapter folder, inside the policy folder")
    lora_rank: int = Field(ge=1)
    method: str
    dataset_hash: str
    dataset_path: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict, description="loss, tokens/s, ...")
    metrics_before: dict[str, Any] = Field(default_factory=dict, description="the parent's")
    metrics_after: dict[str, Any] = Field(default_factory=dict, description="this policy's")
    status: Status = "candidate"
    created: float = 0.0
    history: list[dict[str, Any]] = Field(default_factory=list, description="status changes")

    @property
    def folder(self) -> Path:
        return policies_root() / self.name

    @property
    def adapter_dir(self) -> Path:
        return self.folder / self.adapter

    @property
    def model_name(self) -> str:
        return PREFIX + self.name


def policies_root() -> Path:
    return paths.policies_dir()


def check_policy_name(name: str, what: str = "policy name") -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"bad {what} {name!r}",
            hint="use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def config_sha(checkpoint: Path | str) -> str:
    """sha256 of a checkpoint's config.json ('' when it has none)."""
    try:
        return hashlib.sha256((Path(checkpoint) / "config.json").read_bytes()).hexdigest()
    except OSError:
        return ""


def load_policy(name: str) -> Policy:
    """The policy called ``name``; ``ConfigError`` when there is none or its record is bad."""
    check_policy_name(name)
    path = policies_root() / name / "policy.json"
    if not path.is_file():
        raise ConfigError(f"no policy {name!r} (no {path})", hint=_known_hint())
    try:
        policy = Policy.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a valid policy record: {exc}") from exc
    if policy.schema_version > POLICY_SCHEMA:
        raise ConfigError(
            f"{path} has policy schema {policy.schema_version}; this exapt reads {POLICY_SCHEMA}",
            hint="upgrade exapt",
        )
    if policy.name != name:
        raise ConfigError(f"{path}: names policy {policy.name!r}, but lives in {name!r}")
    return policy


def list_policies() -> list[Policy]:
    """Every policy, oldest first (folders without a readable record are skipped)."""
    out = []
    for folder in sorted(policies_root().iterdir()):
        if folder.name.startswith(".") or not (folder / "policy.json").is_file():
            continue
        try:
            out.append(load_policy(folder.name))
        except ConfigError:
            continue
    return sorted(out, key=lambda p: (p.created, p.name))


def find_policy(reference: str) -> Policy:
    """``reference`` is a policy name, or a line whose promoted policy is meant."""
    check_policy_name(reference)
    if (policies_root() / reference / "policy.json").is_file():
        return load_policy(reference)
    line = [p for p in list_policies() if p.line == reference]
    if not line:
        raise ConfigError(f"no policy or line {reference!r}", hint=_known_hint())
    promoted = [p for p in line if p.status == "promoted"]
    if not promoted:
        names = ", ".join(f"{p.name} ({p.status})" for p in line)
        raise ConfigError(
            f"line {reference!r} has no promoted policy (its policies: {names})",
            hint=f"name one of them (policy:{line[-1].name}), or promote one "
            "with `exapt policy promote NAME`",
        )
    return promoted[-1]


def check_adapter(policy: Policy, folder: Path | None = None) -> dict[str, Any]:
    """The adapter's ``adapter_config.json`` (from ``folder``, default the policy's adapter
    folder), after checking it belongs to the policy's base (``ConfigError`` otherwise)."""
    folder = folder or policy.adapter_dir
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"policy {policy.name!r}: {folder} is not a peft adapter: {exc}") from exc
    trained_on = config.get("base_model_name_or_path")
    if not trained_on or not _same_path(trained_on, policy.base_checkpoint):
        raise ConfigError(
            f"policy {policy.name!r}: its adapter was trained on {trained_on!r}, not on the "
            f"policy's base {policy.base_checkpoint}",
            hint="register the adapter with the base it was trained on",
        )
    if policy.base_config_sha and config_sha(policy.base_checkpoint) != policy.base_config_sha:
        raise ConfigError(
            f"policy {policy.name!r}: the base checkpoint {policy.base_checkpoint} is not the one "
            "it was trained on (its config.json changed)",
            hint="restore the base checkpoint, or train the policy again",
        )
    if int(config.get("r") or 0) != policy.lora_rank:
        raise ConfigError(
            f"policy {policy.name!r}: adapter rank {config.get('r')} differs from the record's "
            f"{policy.lora_rank}"
        )
    return dict(config)


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def _known_hint() -> str:
    known = [p.name for p in list_policies()]
    shown = ", ".join(known[-10:]) if known else "none yet"
    return f"known policies: {shown} (see `exapt policy list`; train one with `exapt improve`)"


# --- serving -------------------------------------------------------------------------------


def policy_engine() -> str:
    """``llama`` or ``vllm``: ``EXAPT_POLICY_ENGINE``, or by what the machine has (``auto``)."""
    choice = os.environ.get("EXAPT_POLICY_ENGINE", "auto").strip().lower() or "auto"
    if choice not in ("auto", "llama", "vllm"):
        raise ConfigError(
            f"EXAPT_POLICY_ENGINE={choice!r} is not an engine", hint="use llama, vllm or auto"
        )
    if choice != "auto":
        return choice
    gpu = Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None
    return "vllm" if gpu and shutil.which("vllm") else "llama"


def policy_model(reference: str, *, api_base: str | None = None, **params: Any) -> Model:
    """The ``Model`` for ``policy:<reference>`` (see the module docstring)."""
    if api_base is not None:
        raise ConfigError(
            f"model {PREFIX}{reference} is served by exapt; api_base={api_base!r} does not apply",
            hint="to reach a server you started, name the adapter as hosted_vllm/<alias>",
        )
    policy = find_policy(reference)
    adapter = check_adapter(policy)
    engine = policy_engine()
    if engine == "vllm":
        from exapt.agents.models.vllm import VLLMEngine

        vllm = VLLMEngine.shared(policy.base_checkpoint)
        vllm.load_adapter(policy.name, policy.adapter_dir, rank=int(adapter.get("r") or 0))
        model = vllm.model(policy.name, is_base=policy.is_base, **params)
    else:
        model = _llama_model(policy, **params)
    model.name = policy.model_name
    model.is_base = policy.is_base  # as recorded: the agent chosen for it is the base's
    return model  # type: ignore[no-any-return]


def _llama_model(policy: Policy, **params: Any) -> Any:
    try:
        from exapt.agents.models.engine import LocalEngine
    except ImportError as exc:
        raise UnavailableError(
            f"serving {policy.model_name} on CPU needs the llama.cpp engine with LoRA adapters "
            f"(exapt.agents.models.engine): {exc}",
            hint="set EXAPT_POLICY_ENGINE=vllm on a GPU machine",
        ) from exc
    base = None if policy.base_model == "local" else policy.base_model.partition(":")[2]
    engine = LocalEngine.shared(base)
    # A folder path is an adapter reference the engine converts once and serves per request.
    return engine.model(str(policy.adapter_dir.resolve()), **params)
