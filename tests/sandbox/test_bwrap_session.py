"""bwrap's session mode: one bubblewrap per sandbox, a server forking each command."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from exapt.sandbox import Limits, open_sandbox
from exapt.sandbox.bwrap import BwrapSandbox

pytestmark = pytest.mark.bwrap


@pytest.fixture
def session_box(need: Callable[[str], None], small: Limits) -> Iterator[BwrapSandbox]:
    need("bwrap")
    with open_sandbox("bwrap", limits=small) as box:
        assert isinstance(box, BwrapSandbox)
        if not box.session_mode:
            pytest.skip("session mode needs root and a cgroup")
        yield box


def test_session_outlives_the_thread_that_started_it(session_box: BwrapSandbox) -> None:
    thread = threading.Thread(target=lambda: session_box.exec("true"))
    thread.start()
    thread.join()
    assert session_box._session is not None
    pid = session_box._session.channel.proc.pid
    assert session_box.exec("echo alive").stdout == "alive\n"
    assert session_box._session.channel.proc.pid == pid


def test_tmp_persists_in_a_session_and_reset_clears_it(session_box: BwrapSandbox) -> None:
    session_box.exec("echo x > /tmp/keep")
    assert session_box.exec("cat /tmp/keep").stdout == "x\n"
    session_box.reset()
    assert session_box.exec("ls -A /tmp").stdout == ""


def test_session_restarts_after_kill_all(session_box: BwrapSandbox) -> None:
    session_box.exec("mkdir d; cd d")
    result = session_box.exec("kill -9 -1")
    assert result.exit_code != 0
    assert session_box.exec("pwd").stdout == "/workspace/d\n"  # cwd kept across the restart


def test_only_the_session_processes_remain_between_commands(session_box: BwrapSandbox) -> None:
    session_box.exec("sleep 100 & (sleep 200 &); echo")
    assert set(session_box.cgroup.pids()) == session_box._session.keepers
