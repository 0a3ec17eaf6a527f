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


def test_kill_all_cannot_reach_the_server(session_box: BwrapSandbox) -> None:
    # The server runs as another uid: `kill -9 -1` kills the command's processes only (it
    # used to kill the server too and end the session).
    session_box.exec("mkdir d; cd d")
    assert session_box._session is not None
    server = session_box._session.channel.proc.pid
    session_box.exec("sleep 100 & kill -9 -1; sleep 1")
    assert session_box.exec("pwd").stdout == "/workspace/d\n"  # cwd kept
    assert session_box._session is not None and session_box._session.channel.proc.pid == server


def test_session_restarts_if_its_server_dies(session_box: BwrapSandbox) -> None:
    session_box.exec("mkdir d; cd d")
    assert session_box._session is not None
    session_box._session.channel.close()  # as if the server were killed
    assert session_box.exec("pwd").stdout == "/workspace/d\n"  # a new session, same cwd


def test_only_the_session_processes_remain_between_commands(session_box: BwrapSandbox) -> None:
    session_box.exec("sleep 100 & (sleep 200 &); echo")
    assert set(session_box.cgroup.pids()) == session_box._session.keepers
