"""Hostile programs on every isolating backend (bwrap, docker): each must be contained, the
sandbox must stay usable or fail cleanly, and the host must be unchanged afterwards
(no file written, nothing read, no process or container left)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from exapt.sandbox import Limits, Sandbox, SandboxError, open_sandbox

HOST_TARGETS = [
    "/usr/exapt-escape",
    "/etc/exapt-escape",
    "/exapt-escape",
    "/root/exapt-escape",
    "/var/tmp/exapt-escape",
    "/tmp/exapt-escape",
]
WATCHED = ["/etc/passwd", "/etc/shadow", "/etc/hosts"]


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.errno}"


def _processes_with(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture
def marker() -> str:
    """A token hostile programs put in their argv, to find their processes on the host."""
    return f"exaptmark{uuid.uuid4().hex[:10]}"


@pytest.fixture
def hostile(isolating: str, small: Limits, marker: str, clean_host: None) -> Iterator[Sandbox]:
    """A sandbox with small limits; afterwards the host must be exactly as before."""
    before = {p: _digest(p) for p in WATCHED}
    with open_sandbox(isolating, files={"ok.py": "print('ok')\n"}, limits=small) as box:
        yield box
        # Still usable after the attack (or, for kill -9 -1, usable again).
        assert box.exec("python3 ok.py").stdout == "ok\n"
    assert {p: _digest(p) for p in WATCHED} == before
    for target in HOST_TARGETS:
        assert not os.path.lexists(target), f"{target} was created on the host"
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_with(marker), "processes of the sandbox are still alive"


def _py(code: str, marker: str) -> list[str]:
    return ["python3", "-c", code, marker]


# -- network -------------------------------------------------------------------------------


def test_no_tcp_to_host_loopback(hostile: Sandbox, marker: str) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1); print('IN')"
    result = hostile.exec(_py(code, marker))
    thread.join()
    server.close()
    assert "IN" not in result.stdout and result.exit_code != 0 and not accepted


def test_no_tcp_to_outside(hostile: Sandbox, marker: str) -> None:
    code = (
        "import socket\n"
        "for addr in [('1.1.1.1', 80), ('8.8.8.8', 53), ('151.101.0.223', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=1); print('OUT', addr)\n"
        "    except OSError as e: print('blocked', e.errno)\n"
    )
    result = hostile.exec(_py(code, marker))
    assert "OUT" not in result.stdout and result.stdout.count("blocked") == 3


def test_no_dns(hostile: Sandbox, marker: str) -> None:
    code = "import socket; print(socket.gethostbyname('deb.debian.org'))"
    result = hostile.exec(_py(code, marker))
    assert result.exit_code != 0 and "gaierror" in result.stderr


def test_only_loopback_interface(hostile: Sandbox) -> None:
    result = hostile.exec("cat /proc/net/dev")
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines() if ":" in line]
    assert interfaces == ["lo"]


# -- host secrets --------------------------------------------------------------------------


def test_cannot_read_root_home_or_shadow(hostile: Sandbox) -> None:
    host_root = set(os.listdir("/root")) if os.access("/root", os.R_OK) else set()
    result = hostile.exec("ls -a /root; cat /etc/shadow; cat /root/.ssh/id_rsa /root/.bash_history")
    listed = set(result.stdout.split()) - {".", ".."}
    assert not (listed & (host_root - {".", ".."})), "host /root is visible"
    assert result.exit_code != 0 and "root:" not in result.stdout


def test_cannot_read_planted_host_secret(hostile: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    secret.chmod(0o644)
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    (ssh / "id_ed25519").write_text("TOPSECRET-KEY")
    result = hostile.exec(f"cat {secret} {ssh}/id_ed25519 $HOME/.ssh/* ~/.ssh/* 2>&1; true")
    assert "TOPSECRET" not in result.stdout


def test_parent_environment_is_not_visible(
    hostile: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-escape-test-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-escape-test-secret")
    result = hostile.exec("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert "escape-test-secret" not in result.stdout


def test_cannot_see_host_processes_or_docker_socket(hostile: Sandbox) -> None:
    result = hostile.exec(
        "cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; echo; "
        "ls /var/run/docker.sock /run/docker.sock 2>&1"
    )
    assert "pytest" not in result.stdout and "dockerd" not in result.stdout
    assert "No such file" in result.stdout


# -- writes --------------------------------------------------------------------------------


def test_cannot_write_outside_workspace(hostile: Sandbox) -> None:
    cmds = "; ".join(f"echo x > {t}" for t in HOST_TARGETS)
    result = hostile.exec(f"{cmds}; echo x > /workspace/inside; true")
    assert hostile.read("inside") == b"x\n"
    assert result.stderr.count("exapt-escape") >= len(HOST_TARGETS) - 2  # /tmp ones may succeed
    # /tmp and /var/tmp are the sandbox's private tmpfs: nothing reaches the host's.


def test_no_privilege_escalation(hostile: Sandbox) -> None:
    result = hostile.exec(
        "id -u; grep CapEff /proc/self/status; "
        "mount -t tmpfs none /usr 2>&1; echo 1 > /proc/sys/kernel/sysrq; "
        "mknod /workspace/mem c 1 1 2>&1; hostname evil 2>&1; su -c id 2>&1; true"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "65534"
    assert lines[1].split()[1] == "0000000000000000"
    assert not os.path.exists(hostile_path(hostile, "mem"))
    assert "uid=0" not in result.stdout


def hostile_path(box: Sandbox, name: str) -> str:
    workspace = getattr(box, "workspace", None)
    return str(Path(str(workspace)) / name) if workspace else f"/nonexistent/{name}"


# -- resources -----------------------------------------------------------------------------


def test_fork_bomb(hostile: Sandbox, marker: str) -> None:
    start = time.monotonic()
    result = hostile.exec(
        _py("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", marker)
    )
    assert time.monotonic() - start < 8
    assert result.timed_out or result.exit_code != 0


def test_shell_fork_bomb(hostile: Sandbox) -> None:
    result = hostile.exec("bomb() { bomb | bomb & }; bomb; sleep 5")
    assert result.timed_out or result.exit_code != 0


def test_memory_bomb(hostile: Sandbox, marker: str) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))"
    result = hostile.exec(_py(code, marker))
    assert result.oom_killed and result.exit_code != 0


def test_cpu_spin_past_cpu_limit(hostile: Sandbox, marker: str) -> None:
    start = time.monotonic()
    # wall 20 s: on a loaded machine 2 CPU-seconds can take several wall-seconds
    result = hostile.exec(_py("while True: pass", marker), timeout=20)
    assert not result.timed_out and result.exit_code != 0  # SIGXCPU at cpu_s=2
    assert time.monotonic() - start < 20


def test_sleep_past_wall_limit(hostile: Sandbox, marker: str) -> None:
    start = time.monotonic()
    result = hostile.exec(_py("import time; time.sleep(60)", marker))
    assert result.timed_out and time.monotonic() - start < 6


def test_100mb_of_output(hostile: Sandbox, small: Limits) -> None:
    start = time.monotonic()
    result = hostile.exec("head -c 100000000 /dev/zero")
    assert result.truncated and len(result.stdout) == small.output_bytes
    assert time.monotonic() - start < 10


def test_orphans_die_with_the_command(hostile: Sandbox, marker: str) -> None:
    sleeper = f"python3 -c 'import time; time.sleep(300)' {marker}"
    result = hostile.exec(
        f"({sleeper} &); nohup {sleeper} >/dev/null 2>&1 & "
        f"setsid {sleeper} >/dev/null 2>&1 < /dev/null & echo started"
    )
    assert result.stdout.strip() == "started" and not result.timed_out
    time.sleep(0.3)
    assert not _processes_with(marker), "an orphan outlived exec"


def test_daemon_holding_the_pipe_is_killed(hostile: Sandbox, marker: str) -> None:
    start = time.monotonic()
    result = hostile.exec(f"python3 -c 'import time; time.sleep(300)' {marker} & echo bg")
    assert "bg" in result.stdout and time.monotonic() - start < 5


def test_filling_tmp(hostile: Sandbox, small: Limits) -> None:
    before = os.statvfs("/tmp")
    result = hostile.exec(
        "for i in 1 2 3 4 5 6; do head -c 10000000 /dev/zero > /tmp/fill$i; done; du -sk /tmp"
    )
    assert "No space" in result.stderr
    used_kb = int(result.stdout.split()[-2])
    assert used_kb <= small.disk_mb * 1024
    after = os.statvfs("/tmp")
    # the host's /tmp did not lose 60 MB (others may write there: allow 40 MB of slack)
    assert (before.f_bavail - after.f_bavail) * after.f_frsize < 40 * 1024 * 1024


def test_filling_the_workspace_is_bounded(hostile: Sandbox, small: Limits) -> None:
    hostile.exec("head -c 100000000 /dev/zero > big")
    assert os.path.getsize(hostile_path(hostile, "big")) <= small.disk_mb * 1024 * 1024


def test_kill_everything(hostile: Sandbox) -> None:
    result = hostile.exec("kill -9 -1; sleep 1; echo survived")
    assert result.exit_code != 0 or result.stdout in ("", "survived\n")
    assert os.getpid() and Path(f"/proc/{os.getpid()}").exists()


# -- symlinks and the host-side file API ---------------------------------------------------


def test_symlinks_are_not_followed_by_host_side_read(hostile: Sandbox) -> None:
    hostile.exec("ln -s /etc/passwd leak; ln -s / root; mkdir d; ln -s /etc d/etc; mkfifo fifo")
    for path in ("leak", "root/etc/passwd", "d/etc/passwd"):
        with pytest.raises(SandboxError):
            hostile.read(path)
    with pytest.raises(SandboxError):
        hostile.read("fifo")  # and it must not hang
    snap = hostile.snapshot()
    assert set(snap) == {"ok.py"}


def test_symlinks_are_not_followed_by_host_side_write(hostile: Sandbox) -> None:
    hostile.exec("ln -s /etc/exapt-escape evil; ln -s /etc etcdir; ln -s /etc/passwd pw")
    for path in ("evil", "etcdir/exapt-escape", "pw"):
        with pytest.raises(SandboxError):
            hostile.write(path, "pwned")


def test_symlink_swap_during_reset(hostile: Sandbox) -> None:
    hostile.exec("mkdir -p keep && ln -s /etc keep/etc && ln -s /usr/bin bin")
    hostile.reset({"ok.py": "print('ok')\n"})
    assert Path("/etc/passwd").exists() and Path("/usr/bin/python3").exists()
    assert hostile.snapshot() == {"ok.py": b"print('ok')\n"}


def test_hardlink_to_host_file_fails(hostile: Sandbox) -> None:
    result = hostile.exec("ln /etc/passwd hl 2>&1; ln /usr/bin/python3 py 2>&1; ls")
    assert "hl" not in result.stdout.split() and "py" not in result.stdout.split()


def test_forged_requests_to_the_session_server_are_ignored(hostile: Sandbox) -> None:
    # In session mode a command can reach the server's request channel (same uid): lines
    # it writes there must not be taken for the replies to our own requests.
    hostile.exec(
        "for f in /run/exapt/io/req /proc/*/fd/0; do "
        "for i in 1 2 3 4 5 6 7 8 9; do echo $i; done > $f 2>/dev/null; done; true"
    )
    for i in range(3):
        result = hostile.exec(f"exit {i + 3}")
        assert result.exit_code == i + 3


# -- the control channel (session server, its io files and pipes) ---------------------------

_FIND_OTHERS = (
    "import os\n"
    "me = os.getuid()\n"
    "others = []\n"
    "for p in os.listdir('/proc'):\n"
    "    if p.isdigit():\n"
    "        try:\n"
    "            if os.stat('/proc/' + p).st_uid != me: others.append(int(p))\n"
    "        except OSError: pass\n"
)


def test_control_channel_is_out_of_reach(hostile: Sandbox, marker: str) -> None:
    """Whatever runs as a command cannot read the io folder, write a reply pipe, open the
    server's descriptors or signal it; the exit codes of later commands stay exact."""
    code = _FIND_OTHERS + (
        "import ctypes, signal\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "hits = []\n"
        "for path in ['/run/exapt/io', '/run/exapt/io/req', '/run/exapt/io/rep']:\n"
        "    try: os.listdir(path); hits.append('list ' + path)\n"
        "    except OSError: pass\n"
        "    try:\n"
        "        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))\n"
        "        hits.append('open ' + path)\n"
        "    except OSError: pass\n"
        "for pid in others:\n"
        "    for fd in range(8):\n"
        "        try:\n"
        "            os.close(os.open('/proc/%d/fd/%d' % (pid, fd), os.O_WRONLY | os.O_NONBLOCK))\n"
        "            hits.append('fd %d/%d' % (pid, fd))\n"
        "        except OSError: pass\n"
        "    try: os.kill(pid, signal.SIGKILL); hits.append('kill %d' % pid)\n"
        "    except OSError: pass\n"
        "    if libc.ptrace(16, pid, 0, 0) == 0: hits.append('ptrace %d' % pid)\n"  # ATTACH
        "print('others', len(others), 'hits', hits)\n"
    )
    result = hostile.exec(_py(code, marker))
    assert result.exit_code == 0, result.stderr
    assert "hits []" in result.stdout, result.stdout
    assert "others 0 " not in result.stdout  # there was something to attack (the server, pid 1)
    for i in range(3):  # nothing was forged: each command's own exit code comes back
        assert hostile.exec(f"exit {i + 5}").exit_code == i + 5


def test_commands_hold_only_their_own_stdio(hostile: Sandbox) -> None:
    result = hostile.exec(
        ["python3", "-c", "import os; print(sorted(os.listdir('/proc/self/fd')))"]
    )
    fds = [int(x) for x in result.stdout.strip()[1:-1].replace("'", "").split(", ")]
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, fds  # 3 (if any) is listdir's own
    caps = hostile.exec("grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status").stdout
    assert [line.split()[1] for line in caps.splitlines()] == ["0000000000000000"] * 4


def test_no_command_can_take_the_servers_uid(hostile: Sandbox) -> None:
    result = hostile.exec(
        "for u in 0 65533; do setpriv --reuid=$u --regid=$u --clear-groups id 2>&1; done; true"
    )
    assert "uid=0" not in result.stdout and "uid=65533" not in result.stdout
    assert result.stdout.count("not permitted") == 2


# -- workspace quota -------------------------------------------------------------------------


@pytest.fixture
def quota_box(isolating: str, clean_host: None) -> Iterator[Sandbox]:
    limits = Limits(wall_s=20, cpu_s=20, memory_mb=512, workspace_mb=8, workspace_files=200)
    with open_sandbox(isolating, limits=limits) as box:
        yield box


def test_workspace_quota_bounds_bytes_and_files(quota_box: Sandbox) -> None:
    if not getattr(quota_box, "quota", False):
        pytest.skip("no quota mount here (needs root); snapshot limits still apply")
    big = quota_box.exec("head -c 20000000 /dev/zero > big; echo $?")
    assert "No space left" in big.stderr
    assert os.path.getsize(hostile_path(quota_box, "big")) <= 8 * 1024 * 1024
    quota_box.exec("rm -f big")
    many = quota_box.exec(
        "i=0; while [ $i -lt 400 ]; do touch f$i || break; i=$((i+1)); done; ls | wc -l"
    )
    assert int(many.stdout.split()[-1]) <= 200
    quota_box.reset({"a.txt": "fresh"})  # reset empties it: the quota is free again
    assert quota_box.snapshot() == {"a.txt": b"fresh"}
    assert quota_box.exec("head -c 1000000 /dev/zero > mid && echo ok").stdout == "ok\n"


def test_snapshot_refuses_a_huge_workspace_with_its_own_error(quota_box: Sandbox) -> None:
    from exapt.sandbox import WorkspaceTooLarge

    quota_box.exec("i=0; while [ $i -lt 150 ]; do echo $i > f$i; i=$((i+1)); done")
    assert len(quota_box.snapshot()) == 150
    quota_box.exec("head -c 3000000 /dev/zero > big")
    with pytest.raises(WorkspaceTooLarge) as info:
        quota_box.snapshot(max_bytes=1_000_000)
    assert info.value.what == "bytes"
    assert isinstance(info.value, SandboxError)


def test_deep_trees_are_refused_not_a_crash(quota_box: Sandbox) -> None:
    from exapt.sandbox import WorkspaceTooLarge

    code = "import os\nfor i in range(150): os.mkdir('d'); os.chdir('d')\nopen('x', 'w').write('1')"
    result = quota_box.exec(["python3", "-c", code])
    assert result.exit_code == 0, result.stderr
    with pytest.raises(WorkspaceTooLarge) as info:
        quota_box.snapshot()
    assert info.value.what == "depth"
    quota_box.reset({"a.txt": "a"})
    assert quota_box.snapshot() == {"a.txt": b"a"}
