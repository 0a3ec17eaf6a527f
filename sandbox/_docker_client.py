"""The Docker engine as the docker backend sees it: one client per process, whether the
backend can run here, and the removal of containers whose owner process is gone.

Containers carry the label ``exapt.sandbox=1`` plus the owning host and pid.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

from exapt.errors import UnavailableError

DEFAULT_IMAGE = "exapt-sandbox:latest"
LABEL = "exapt.sandbox"
BUILD_HINT = "build it with `exapt sandbox build-image` (debootstrap + docker import, ~1-2 min)"

_lock = threading.Lock()
_client: Any = None


def docker_client() -> Any:
    """The process-wide docker client; raises ``UnavailableError`` if no engine answers."""
    global _client
    with _lock:
        if _client is not None:
            return _client
        try:
            import docker
        except ImportError as exc:  # pragma: no cover - docker is a dependency
            raise UnavailableError(
                "the docker SDK is not installed", hint="pip install docker"
            ) from exc
        try:
            client = docker.from_env(timeout=60)
            client.ping()
        except Exception as exc:  # the SDK raises several kinds for "no engine"
            raise UnavailableError(
                f"no Docker engine answers ({type(exc).__name__})",
                hint="start one: dockerd --bridge=none --iptables=false --ip-forward=false &"
                " (or set DOCKER_HOST)",
            ) from exc
        _client = client
        return client


def unavailable_reason(image: str = DEFAULT_IMAGE) -> str | None:
    """None if the docker backend works here with ``image``, else why not and what to do."""
    try:
        client = docker_client()
    except UnavailableError as exc:
        return f"{exc.message}; {exc.hint}"
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return f"image {image} is not built: {BUILD_HINT}"
    except docker.errors.APIError as exc:
        return f"docker engine error: {exc}"
    return None


def cleanup_stale(client: Any) -> int:
    """Remove labelled containers whose owner process on this host is gone; returns count."""
    removed = 0
    host = socket.gethostname()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        labels = c.labels or {}
        pid = labels.get("exapt.pid", "")
        if labels.get("exapt.host") == host and pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue  # a live sandbox of a running exapt process
        with contextlib.suppress(Exception):
            c.remove(force=True)
            removed += 1
    return removed


_cleaned = False


def cleanup_once(client: Any) -> None:
    """``cleanup_stale`` the first time a sandbox is opened in this process."""
    global _cleaned
    with _lock:
        if _cleaned:
            return
        _cleaned = True
    cleanup_stale(client)
