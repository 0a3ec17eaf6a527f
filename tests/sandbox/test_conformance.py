"""The contract every backend passes (bwrap, docker, local): sandbox/base.py's docstring."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from exapt.errors import ConfigError, UnavailableError
from exapt.sandbox import (
    DEFAULT_ENV,
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxPool,
    available_backends,
    default_backend,
    open_sandbox,
)


def test_runs_python_in_the_workspace(box: Sandbox, backend: str) -> None:
    assert isinstance(box, Sandbox)
    result = box.exec("python3 a.py")
    assert isinstance(result, ExecResult)
    assert (result.exit_code, result.stdout, result.backend) == (0, "1\n", box.backend)
    assert backend.startswith(box.backend) or backend.endswith(("FreshSandbox", "ExecSandbox"))
    assert result.ok and not result.timed_out and not result.truncated
    assert 0 < result.duration_s < 3


def test_exit_codes_and_stderr(box: Sandbox) -> None:
    result = box.exec("echo oops >&2; exit 3")
    assert result.exit_code == 3 and result.stderr == "oops\n" and not result.ok


def test_argv_form_keeps_arguments_whole(box: Sandbox) -> None:
    result = box.exec(["python3", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME", "*"])
    assert result.stdout == "['a b', '$HOME', '*']\n"


def test_stdin(box: Sandbox) -> None:
    assert box.exec("tr a-z A-Z", stdin="hello").stdout == "HELLO"
    big = b"x" * 300_000  # more than a pipe buffer
    assert box.exec("wc -c", stdin=big).stdout.strip() == "300000"


def test_cwd_persists_between_execs(box: Sandbox, backend: str) -> None:
    box.exec("mkdir -p sub/deeper")
    assert box.exec("cd sub").exit_code == 0
    pwd = box.exec("pwd").stdout.strip()
    assert pwd.endswith("/sub")
    if backend != "local":
        assert pwd == "/workspace/sub"
    box.exec("cd deeper && touch here")
    assert box.read("sub/deeper/here") == b""
    assert (
        box.exec(["python3", "-c", "import os; print(os.getcwd())"])
        .stdout.strip()
        .endswith("/sub/deeper")
    )
    box.exec("cd /")  # leaving the workspace is not remembered
    assert box.exec("pwd").stdout.strip().endswith("/sub/deeper")


def test_environment_is_only_defaults_and_env(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    result = box.exec("env", env={"EXTRA": "1"})
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "OPENAI_API_KEY" not in seen and "sk-parent-secret" not in result.stdout
    assert seen["EXTRA"] == "1"
    for key, value in DEFAULT_ENV.items():
        assert seen[key] == value
    assert box.exec("command -v python3").stdout.strip().endswith("/python3")


def test_write_read_snapshot(box: Sandbox) -> None:
    box.write("d/x.txt", "hi")
    box.write("/workspace/bin.dat", b"\x00\xff")
    assert box.read("d/x.txt") == b"hi"
    assert box.exec("cat d/x.txt && echo more >> d/x.txt").stdout == "hi"
    assert box.read("/workspace/d/x.txt") == b"himore\n"
    snap = box.snapshot()
    assert snap == {"a.py": b"print(1)\n", "d/x.txt": b"himore\n", "bin.dat": b"\x00\xff"}
    with pytest.raises(FileNotFoundError):
        box.read("missing.txt")
    for bad in ("../x", "/etc/passwd", "/workspace/../etc/passwd", ""):
        with pytest.raises(SandboxError):
            box.write(bad, "x")
        with pytest.raises(SandboxError):
            box.read(bad)


def test_snapshot_respects_max_bytes(box: Sandbox) -> None:
    box.write("big", b"x" * 10_000)
    with pytest.raises(SandboxError):
        box.snapshot(max_bytes=5_000)


def test_timeout_is_reported_and_fast(box: Sandbox) -> None:
    start = time.monotonic()
    result = box.exec("echo before; sleep 30", timeout=1)
    assert result.timed_out and not result.ok and result.stdout == "before\n"
    assert time.monotonic() - start < 4
    assert box.exec("echo after").stdout == "after\n"  # still usable


def test_output_is_truncated_not_buffered(box: Sandbox, small: Limits) -> None:
    result = box.exec("head -c 5000000 /dev/zero | tr '\\0' x; echo done >&2")
    assert result.truncated and len(result.stdout) == small.output_bytes
    assert result.stderr == "done\n" and result.exit_code == 0


def test_memory_limit_reports_oom(box: Sandbox) -> None:
    result = box.exec("python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'")
    assert result.exit_code != 0 and result.oom_killed and result.stdout == "", result


def test_reset_empties_and_reseeds(box: Sandbox) -> None:
    box.exec("mkdir -p s && cd s && touch junk")
    box.reset({"new.txt": "n"})
    assert box.snapshot() == {"new.txt": b"n"}
    assert box.exec("pwd").stdout.strip().endswith("workspace")
    assert box.exec("ls").stdout == "new.txt\n"


def test_close_is_idempotent_and_final(backend: str, small: Limits, clean_host: None) -> None:
    box = open_sandbox(backend, files={"f": "1"}, limits=small)
    with box:
        assert box.exec("cat f").stdout == "1"
    box.close()
    with pytest.raises(SandboxError):
        box.exec("true")
    with pytest.raises(SandboxError):
        box.read("f")


def test_pool_reuses_and_resets(backend: str, small: Limits, clean_host: None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with SandboxPool(backend, size=2, limits=small) as pool:

        def job(i: int) -> str:
            with pool.acquire({"n.txt": str(i)}) as box:
                box.exec("touch leftover; mkdir d; cd d")
                return box.exec("cat ../n.txt; ls ..").stdout

        with ThreadPoolExecutor(4) as ex:
            outs = list(ex.map(job, range(6)))
        assert outs == [f"{i}d\nleftover\nn.txt\n" for i in range(6)]
        assert len(pool._all) <= 2


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="bwrap, docker, local"):
        open_sandbox("nope")
    with pytest.raises(ValidationError):
        Limits(memory_mb=-1)
    with pytest.raises(ConfigError):
        open_sandbox("bwrap", limits={"wall_s": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SandboxPool("bwrap", size=0)


def test_backends_report_and_default_is_never_local() -> None:
    backends = available_backends()
    assert set(backends) >= {"bwrap", "docker", "local"} and backends["local"] is None
    for reason in backends.values():
        assert reason is None or len(reason) > 10
    try:
        assert default_backend() in ("bwrap", "docker")
    except UnavailableError as exc:
        assert exc.hint and backends["bwrap"] and backends["docker"]


def test_local_warns_loudly(small: Limits) -> None:
    from exapt.sandbox.local import LocalSandboxWarning

    with (
        pytest.warns(LocalSandboxWarning, match="NOT isolation"),
        open_sandbox("local", limits=small),
    ):
        pass


@pytest.mark.bwrap
def test_bwrap_ro_binds(tmp_path: object, small: Limits, need: Callable[[str], None]) -> None:
    from pathlib import Path

    need("bwrap")
    shared = Path(str(tmp_path)) / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "tool.txt").write_text("tool")
    (shared / "tool.txt").chmod(0o644)
    with open_sandbox("bwrap", limits=small, ro_binds=[str(shared)]) as box:
        assert box.exec(f"cat {shared}/tool.txt").stdout == "tool"
        assert box.exec(f"touch {shared}/new").exit_code != 0
    assert not (shared / "new").exists()
    with pytest.raises(ConfigError):
        open_sandbox("bwrap", ro_binds=["/does/not/exist"])


@pytest.mark.docker
def test_docker_rejects_ro_binds_and_missing_image(need: Callable[[str], None]) -> None:
    need("docker")
    with pytest.raises(ConfigError):
        open_sandbox("docker", ro_binds=["/usr"])
    with pytest.raises(UnavailableError, match="build-image"):
        open_sandbox("docker", image="exapt-no-such-image:0")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from exapt.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exec_json_and_exit_code(sandbox_backend: str) -> None:
    proc = _cli("sandbox", "exec", "--json", "--backend", sandbox_backend, "--", "echo hi; exit 5")
    assert proc.returncode == 5, proc.stderr
    data = json.loads(proc.stdout)
    assert (
        data["stdout"] == "hi\n" and data["exit_code"] == 5 and data["backend"] == sandbox_backend
    )
    proc = _cli("sandbox", "exec", "--timeout", "1", "--", "sleep", "10")
    assert proc.returncode == 124 and "timed_out" in proc.stdout


def test_cli_bad_input_exits_2() -> None:
    for args in (
        ["sandbox", "exec", "--backend", "nope", "--", "true"],
        ["sandbox", "exec", "--memory-mb", "-5", "--", "true"],
        ["sandbox", "exec", "--timeout", "0", "--", "true"],
    ):
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_json() -> None:
    proc = _cli("doctor", "--json")
    data = json.loads(proc.stdout)
    assert set(data["backends"]) >= {"bwrap", "docker", "local"}
    assert proc.returncode == (0 if data["default_backend"] else 1)
    for info in data["backends"].values():
        assert info["ok"] == (info["reason"] is None)


def test_doctor_and_exec_name_what_is_missing() -> None:
    import os

    env = {**os.environ, "PATH": "/nonexistent", "DOCKER_HOST": "unix:///nonexistent.sock"}
    run = [sys.executable, "-c", "from exapt.cli import main; main()"]
    proc = subprocess.run([*run, "doctor", "--json"], capture_output=True, text=True, env=env)
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["default_backend"] is None
    assert "apt-get install -y bubblewrap" in data["backends"]["bwrap"]["reason"]
    assert "dockerd" in data["backends"]["docker"]["reason"]
    proc = subprocess.run(
        [*run, "sandbox", "exec", "--", "true"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and "bubblewrap" in proc.stderr and "hint:" in proc.stderr


@pytest.mark.docker
def test_docker_reason_names_the_build_command(need: Callable[[str], None]) -> None:
    from exapt.sandbox import docker

    need("docker")
    reason = docker.unavailable_reason("exapt-no-such-image:0")
    assert reason is not None and "exapt sandbox build-image" in reason


def test_apt_mirror_is_read_from_sources() -> None:
    from exapt.sandbox.image import apt_mirror, build_image

    assert apt_mirror().startswith("http")
    with pytest.raises(ConfigError):
        build_image("Bad Name!")


_ECHO = (
    "import sys\n"
    "print('x' * 200_000, file=sys.stderr, flush=True)\n"  # more than a pipe holds
    "for line in sys.stdin:\n"
    "    if line.strip() == 'quit': break\n"
    "    print(line.strip()[::-1], flush=True)\n"
)


def test_spawn_talks_line_by_line(box: Sandbox, small: Limits) -> None:
    with box.spawn(["python3", "-c", _ECHO]) as proc:
        proc.send(b"hello\n")
        assert proc.readline(5) == b"olleh\n"
        proc.send(b"a" * 300_000 + b"\n")  # bigger than a pipe buffer
        assert proc.readline(5) == b"a" * 300_000 + b"\n"
        proc.send(b"quit\n")
        assert proc.readline(5) == b""  # end of file once it exited
        result = proc.close()
    assert isinstance(result, ExecResult) and result.truncated
    assert len(result.stderr) == small.output_bytes  # read alongside, capped
    assert box.exec("echo after").stdout == "after\n"  # the sandbox is free again


def test_spawn_times_out_and_refuses_long_lines(box: Sandbox) -> None:
    with box.spawn(["sleep", "30"], timeout=1) as proc:
        with pytest.raises(TimeoutError):
            proc.readline(0.2)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            proc.readline(10)
        assert time.monotonic() - start < 3
    with box.spawn("head -c 100000 /dev/zero") as proc, pytest.raises(SandboxError):
        proc.readline(5, max_bytes=1000)
    assert box.exec("echo free").stdout == "free\n"
