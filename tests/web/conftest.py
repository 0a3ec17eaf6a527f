"""Fixtures for web tests: the real MiniWoB++ pages in the real browser (Debian's Chromium
under bubblewrap). Tests skip, naming what is missing, on a machine without Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exapt.records import Task


@pytest.fixture(scope="session")
def isolation() -> str:
    """``bwrap`` where bubblewrap works (CI), else ``none`` (the routing still applies)."""
    from exapt.sandbox._chromium import unavailable_reason

    if unavailable_reason(isolation="none") is not None:
        pytest.skip(f"no browser: {unavailable_reason(isolation='none')}")
    return "bwrap" if unavailable_reason(isolation="bwrap") is None else "none"


@pytest.fixture(scope="session")
def suite() -> Any:
    from exapt.tasks.miniwob import MiniWoBSuite

    return MiniWoBSuite()


@pytest.fixture(scope="session")
def tasks(suite: Any) -> dict[str, Task]:
    return {task.id.removeprefix("miniwob/"): task for task in suite.tasks()}


@pytest.fixture(scope="session")
def factory(suite: Any, isolation: str) -> Callable[[dict[str, str | bytes]], Any]:
    """Opens MiniWoB episodes on the suite's shared browser pool."""
    return suite.environment_factory("local" if isolation == "none" else "bwrap")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("EXAPT_HOME", str(path))
    return path


def bid(axtree: str, role: str, name: str) -> str:
    """The id of the element ``[id] role 'name'`` in an accessibility tree."""
    found = re.search(rf"\[(\w+)\] {re.escape(role)} '{re.escape(name)}'", axtree)
    assert found, f"no {role} {name!r} in:\n{axtree}"
    return found.group(1)


def bids(axtree: str, role: str) -> dict[str, str]:
    """name -> id of every ``role`` element."""
    return {name: b for b, name in re.findall(rf"\[(\w+)\] {re.escape(role)} '([^']*)'", axtree)}
