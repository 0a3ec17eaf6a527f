"""``LocalServer``: a model server in a child process on 127.0.0.1, started on demand.

What every local engine shares (``LlamaServer`` for llama.cpp, ``TransformersServer`` for the
transformers fallback; each supplies its command line and how to recognise itself):

- ``start()`` launches the child on a free port, logs to ``<exapt home>/logs/``, and returns
  once the server answers as itself (another program on a reused port is not it). A child that
  exits or stays silent for ``startup_timeout`` raises ``LocalServerError`` with its log tail.
  ``start()`` on a running server is cheap (no HTTP: the child process is alive) and restarts a
  server that died: every request calls it first. A live server is never restarted because a
  health check was slow: on a loaded machine that would cut off the requests it is serving.
- ``stop()`` (also at interpreter exit, and by the context manager) terminates the child.
- The child dies with its parent, even a parent killed with SIGKILL: it is started with
  ``PR_SET_PDEATHSIG`` (util-linux ``setpriv --pdeathsig``, else ``prctl`` in the child). That
  signal fires when the *thread* that forked the child ends, so every child is forked by one
  launcher thread that lives as long as the process (not by whichever worker thread sent the
  first request and may end with its pool).
- ``LocalServer.shared(key)`` is the one server per key that all threads of a process share.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from exapt import paths
from exapt.agents.models.base import ModelError
from exapt.errors import UnavailableError


class LocalServerError(ModelError, UnavailableError):
    """The local model server did not start or died (its message holds the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return "(no log)"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- children that die with their parent ----------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _pdeathsig_in_child(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def set_pdeathsig() -> None:  # runs in the child between fork and exec
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_pdeathsig


class _Launcher:
    """Forks every child from one daemon thread, so PDEATHSIG means "when this process ends"."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], dict[str, Any], queue.Queue[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = 0

    def popen(self, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()  # a forked process needs its own launcher thread
                self._thread = threading.Thread(
                    target=self._run, name="exapt-launcher", daemon=True
                )
                self._thread.start()
        answer: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._jobs.put((command, kwargs, answer))
        result = answer.get()
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    def _run(self) -> None:
        setpriv = shutil.which("setpriv")
        while True:
            command, kwargs, answer = self._jobs.get()
            try:
                if setpriv:
                    command = [setpriv, "--pdeathsig", "KILL", "--", *command]
                else:
                    kwargs = {**kwargs, "preexec_fn": _pdeathsig_in_child(os.getpid())}
                answer.put(subprocess.Popen(command, **kwargs))
            except BaseException as exc:
                answer.put(exc)


_launcher = _Launcher()


def spawn_with_parent(command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(command, **kwargs)`` for a child that is killed when we exit."""
    return _launcher.popen(command, **kwargs)


# -- the server process ------------------------------------------------------------------------


class LocalServer:
    """A model server child process on 127.0.0.1 (base class of the engines' servers).

    Subclasses define ``key`` (what the server serves), ``command(port)``, ``_identify()``
    (True if the server on our port is ours and ready) and ``describe()`` for messages.

    Example:
        with LlamaServer(gguf) as server:
            httpx.post(f"{server.url}/completions", json={"prompt": "def f(", "max_tokens": 8})
    """

    _shared: ClassVar[dict[tuple[type, Any], LocalServer]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 300.0,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.env = env
        self._fixed_port = port is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False  # the process answered as itself since it was launched
        self._lock = threading.Lock()

    # -- what a subclass supplies --------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def describe(self) -> str:
        """What is served, for messages (a path, a model name)."""
        raise NotImplementedError

    def log_name(self) -> str:
        return "server"

    def _identify(self) -> bool:
        """True if the server answering on our port is this one, and ready."""
        raise NotImplementedError

    def _check_before_launch(self) -> None:
        """Raise a clear error for what cannot be served, before starting anything."""

    # -- shared per process --------------------------------------------------------------------

    @classmethod
    def shared(cls, key: Any, **options: Any) -> Any:
        """The process-wide server of this class for ``key`` (created, not started, on first
        use; ``options`` apply only then)."""
        with cls._shared_lock:
            server = cls._shared.get((cls, key))
            if server is None:
                server = cls._shared[(cls, key)] = cls(key, **options)  # type: ignore[call-arg]
            return server

    # -- the API --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def running(self) -> bool:
        """True if the child process is alive and answers as itself."""
        if self._process is None or self._process.poll() is not None:
            return False
        return self._healthy()

    def start(self) -> LocalServer:
        """Start the server unless it is running; restart it if it died. Thread-safe."""
        process = self._process
        if self._ready and process is not None and process.poll() is None:
            return self  # the common case, once per request: no lock, no HTTP
        with self._lock:
            process = self._process
            if self._ready and process is not None and process.poll() is None:
                return self
            self._stop_locked()
            self._launch()
            self._ready = True
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def exit_status(self) -> int | None:
        """The child's exit code if it has exited, else None."""
        process = self._process
        return None if process is None else process.poll()

    def exited_within(self, seconds: float) -> bool:
        """True if the child has exited, or exits within ``seconds``: a server killed during a
        request resets its connections a moment before its exit can be seen (``poll``)."""
        process = self._process
        if process is None:
            return True
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def died_error(self, detail: str) -> LocalServerError:
        """The error for a request that failed because the server is gone."""
        code = self.exit_status()
        state = f"exited with code {code}" if code is not None else "stopped answering"
        return LocalServerError(
            f"the local model server for {self.describe()} {state} ({detail}); "
            f"log {self.log_path}:\n{log_tail(self.log_path)}",
            hint="the next request starts it again; see the log for why it died",
        )

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------

    def _launch(self) -> None:
        self._check_before_launch()
        port = self.port if self._fixed_port and self.port else free_port(self.host)
        self.port = port
        if self.log_path is None:
            self.log_path = paths.subdir("logs") / f"{self.log_name()}-{port}.log"
        command = self.command(port)
        env = None if self.env is None else {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self._process = spawn_with_parent(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us; we stop it
            )
        _launched.add(self)
        _register_atexit()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise LocalServerError(
                    f"the local model server for {self.describe()} exited with code {code} "
                    f"while starting; log {self.log_path}:\n{log_tail(self.log_path)}",
                    hint="see the log above; is the model complete and loadable?",
                )
            if self._healthy():
                return
            time.sleep(0.1)
        self._stop_locked()
        raise LocalServerError(
            f"the local model server for {self.describe()} did not answer within "
            f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{log_tail(self.log_path)}",
            hint="the machine may be overloaded; raise startup_timeout or see the log",
        )

    def _healthy(self) -> bool:
        try:
            return self._identify()
        except (OSError, ValueError):
            return False

    def _stop_locked(self) -> None:
        self._ready = False
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_stop_all)


def _stop_all() -> None:
    for server in list(_launched):
        with contextlib.suppress(Exception):
            server.stop()


# Every server this process launched (shared or not), so that exit stops them all.
_launched: weakref.WeakSet[LocalServer] = weakref.WeakSet()
