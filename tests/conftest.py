"""Shared fixtures. Sandbox: ``sandbox_backend`` is the default isolating backend of this
machine, or skips the test naming what is missing."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sandbox_backend() -> str:
    """``default_backend()`` (bwrap, else docker); skips with the reason if neither works."""
    from exapt.errors import UnavailableError
    from exapt.sandbox import default_backend

    try:
        return default_backend()
    except UnavailableError as exc:
        pytest.skip(f"no sandbox backend: {exc.message}")
