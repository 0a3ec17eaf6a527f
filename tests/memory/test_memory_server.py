"""Several processes share one memory through a Chroma server (``chroma run``) and lose
nothing when they write at the same time."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exapt.errors import UnavailableError
from exapt.memory.store import MemoryStore

pytestmark = pytest.mark.slow

WRITER = """
import sys, time
from pathlib import Path
from exapt.memory.store import MemoryStore

url, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = MemoryStore(url)
store.embed(["warm up"])  # load the model before the race starts
Path(str(go) + "." + name).touch()
while not go.exists():
    time.sleep(0.01)
for i in range(200):
    text = f"{name} lesson {i}: check the edge case number {i}"
    store.add("reflections", [f"{name}-{i}"], [text], [{"writer": name, "i": i}])
print("done", name)
"""


def _tail(folder: Path) -> str:
    return "\n".join(p.read_text()[-1500:] for p in sorted(folder.glob("*.log")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> str:
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("the chroma CLI is not installed")
    port = _free_port()
    log = (tmp_path / "chroma.log").open("w")
    server = subprocess.Popen(
        [exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "db")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                MemoryStore(url)
                break
            except UnavailableError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"chroma run did not start: {(tmp_path / 'chroma.log').read_text()}"
                    )
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_two_processes_write_200_each_and_all_400_are_there(
    chroma_server: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("alpha", "beta")}
    writers = [  # output to files: a full pipe nobody reads would stall a writer
        subprocess.Popen(
            [sys.executable, "-c", WRITER, chroma_server, name, str(go)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for name, log in logs.items()
    ]
    deadline = time.monotonic() + 180
    while not all(Path(f"{go}.{n}").exists() for n in ("alpha", "beta")):
        for w in writers:
            if w.poll() is not None:
                pytest.fail(f"a writer died before the start: {_tail(tmp_path)}")
        assert time.monotonic() < deadline, "writers did not get ready"
        time.sleep(0.05)
    go.touch()  # both start writing now
    for w in writers:
        assert w.wait(timeout=300) == 0, _tail(tmp_path)
    for log in logs.values():
        log.close()
    store = MemoryStore(chroma_server)
    items = store.iter_items("reflections")
    assert store.count("reflections") == 400
    assert {i.id for i in items} == {f"{n}-{i}" for n in ("alpha", "beta") for i in range(200)}
    assert {i.metadata["writer"] for i in items} == {"alpha", "beta"}
    hit = store.query("reflections", "beta lesson 17: check the edge case number 17", 1)[0]
    assert hit.id == "beta-17"


def test_no_server_is_a_clear_error() -> None:
    with pytest.raises(UnavailableError, match="no Chroma server answers") as err:
        MemoryStore(f"http://127.0.0.1:{_free_port()}")
    assert "chroma run --host 127.0.0.1" in (err.value.hint or "")
