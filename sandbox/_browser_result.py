"""A browser episode's files and its result, signed with a key only this process holds, so
a scorer reads the environment's reward, never one the agent wrote (``browser.py``'s doc)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from exapt.sandbox.base import SandboxError

EPISODE_FILE = "episode.json"
RESULT_FILE = "result.json"
RESULT_SCHEMA = 1

_KEY = secrets.token_bytes(32)  # per process: results are verified where the episode ran


def _mac(body: str) -> str:
    return hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()


def sign_result(result: dict[str, Any]) -> bytes:
    """``result`` as the ``result.json`` of a snapshot: the record and its signature."""
    body = json.dumps(result, sort_keys=True, default=str)
    return json.dumps({"result": json.loads(body), "signature": _mac(body)}, indent=1).encode()


def verify_result(data: bytes | str) -> dict[str, Any]:
    """The episode result in ``data`` (a snapshot's ``result.json``) if this process's
    environment wrote it; ``SandboxError`` otherwise (forged, edited, or from elsewhere)."""
    try:
        wrapped = json.loads(data)
        result, signature = wrapped["result"], wrapped["signature"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"{RESULT_FILE} is not an episode result: {exc}") from exc
    expected = _mac(json.dumps(result, sort_keys=True, default=str))
    if not isinstance(signature, str) or not hmac.compare_digest(signature, expected):
        raise SandboxError(f"{RESULT_FILE} was not written by this process's browser environment")
    return dict(result)
