"""One end of the judge's wire: plain data, and objects by handle, between two processes.

Part 3 of 3 (shipped as ``exapt_wire``, after ``exapt_ops``: proxies, and
``exapt_values``: the codec).

Shipped as source text into both processes of a Python judgement (the judge that runs the
hidden tests, the server that imports the solution), so it uses the standard library only
and nothing of exapt. One JSON object per line; the host relays lines between the two.

Values cross **by value** when they are plain data (None, bool, int, float, str, bytes,
list, tuple, dict, set, frozenset, complex, range, dates and times, Decimal, Fraction;
subclasses are sent as their base type, so no ``__eq__`` of the sender travels along)
and **by handle** otherwise: the receiver gets a ``Proxy`` whose every use (call,
attribute, operator, iteration) is a request back to the owner. Receiving one's own handle
gives back the original object. Exceptions cross as their builtin class (or a mirror class
per foreign exception class, subclassing its nearest builtin base) with their arguments.

What an end may do with the other's objects is limited by its ``Policy``:
- ``plain``: a reply to a call or an operator must be plain data (HumanEval: the candidate
  returns values, never objects whose methods would decide an ``==``);
- ``serve_public``: requests on our objects may only call them, read public attributes
  (no ``_name``) and use the operators below; never set an attribute or import a module
  (the judge's end, so the solution can only use the test's objects as their API allows).
A proxy equals only another proxy of the same peer: ``proxy == 5`` is False here, never
decided by the peer.

Request: ``{"id": n, "op": ..., ...}``; reply: ``{"re": n, "ok": value}`` or
``{"re": n, "raise": {...}}``. While waiting for its reply an end serves the peer's requests
(callbacks), so calls nest. EOF, a malformed line or a reply out of turn raise ``Gone``.
"""

from __future__ import annotations

import os
import sys

from exapt_ops import OPS, ProxyModule, holds_handle  # type: ignore[import-not-found]
from exapt_values import (  # type: ignore[import-not-found]
    _FORBIDDEN_EXC,
    Codec,
    Gone,
    PeerError,
    dumps,
    loads,
)

# Not `from typing import Any`: importing typing costs 16 ms here (re, collections), and
# these modules start two processes for every judgement; annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["Endpoint", "Gone", "PeerError", "Policy", "ProxyModule", "private_stdio"]
MAX_LINE = 16_000_000


class Policy:
    def __init__(self, *, plain: bool = False, serve_public: bool = False) -> None:
        self.plain = plain
        self.serve_public = serve_public


class Endpoint(Codec):
    """One end: its exported objects, the peer's proxies, and the request loop."""

    def __init__(self, rfd: int, wfd: int, policy: Policy) -> None:
        super().__init__()
        self._r = os.fdopen(rfd, "rb", buffering=1 << 16)
        self._w = wfd
        self.policy = policy
        self._calls = 0
        self.gone: str | None = None

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self._policy = policy
        self.plain = policy.plain

    # -- lines -------------------------------------------------------------------------

    def write(self, msg: dict[str, Any]) -> None:
        data = (dumps(msg) + "\n").encode()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._w, view) :]
        except OSError as exc:
            self._fail(f"cannot write: {exc}")

    def read(self) -> dict[str, Any] | None:
        """The next message; None at a clean end of input (nothing pending)."""
        line = self._r.readline(MAX_LINE + 1)
        if not line:
            return None
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            self._fail("a line too long or cut")
        try:
            msg = loads(line.decode("utf-8"))
        except (ValueError, TypeError, RecursionError, StopIteration):
            self._fail("a line that is not JSON")
        if not isinstance(msg, dict):
            self._fail("a message that is not an object")
        if "gone" in msg:
            self._fail(str(msg.get("gone"))[:200])
        return msg

    def _fail(self, why: str) -> NoReturn:
        self.gone = self.gone or why
        raise Gone(why)

    # -- requests ----------------------------------------------------------------------

    def request(self, op: str, obj: int | None = None, **fields: Any) -> Any:
        """Send one request and wait for its reply, serving the peer's requests meanwhile."""
        if self.gone:
            raise Gone(self.gone)
        self._calls += 1
        n = self._calls
        self.write({"id": n, "op": op, "obj": obj, **fields})
        while True:
            msg = self.read()
            if msg is None:
                self._fail("the other end closed the connection")
            if "re" in msg:
                if msg["re"] != n:
                    self._fail("a reply out of turn")
                if "raise" in msg:
                    raise self._exception(msg["raise"])
                value = self.decode(msg.get("ok"))
                if self.policy.plain and op in ("call", "op") and holds_handle(value):
                    raise TypeError("the solution returned an object, not plain data")
                return value
            self.serve(msg)

    def serve(self, msg: dict[str, Any]) -> None:
        """Answer one request of the peer (on our own objects)."""
        n = msg.get("id")
        try:
            value, handles = self._apply(msg)
            self.write({"re": n, "ok": self.encode(value, handles)})
        except Gone:
            raise
        except BaseException as exc:  # the request's own failure: the peer's to handle
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.write({"re": n, "raise": self._describe(exc)})

    def _apply(self, msg: dict[str, Any]) -> tuple[Any, bool]:
        op = msg.get("op")
        public = self.policy.serve_public
        plain_reply = not self.policy.plain
        if op == "import":
            if public:
                raise PermissionError("imports are not served here")
            name = str(msg.get("name", ""))
            __import__(name)
            return sys.modules[name], True
        target = self._exported.get(int(msg.get("obj") or 0))
        if target is None:
            raise LookupError("no such object")
        name = str(msg.get("name", ""))
        if op == "getattr":
            if public and name.startswith("_"):
                raise AttributeError(f"{name!r} is not served")
            return getattr(target, name), True
        if op in ("setattr", "delattr"):
            if public:
                raise PermissionError("the judge's objects are read-only here")
            if op == "setattr":
                setattr(target, name, self.decode(msg.get("value")))
            else:
                delattr(target, name)
            return None, False
        if op == "dir":
            return [n for n in dir(target) if not n.startswith("_")], False
        args = self.decode(msg.get("args") or [])
        if op == "call":
            kwargs = self.decode(msg.get("kwargs") or {"$d": []})
            return target(*args, **kwargs), plain_reply
        if op == "op" and name in OPS:
            return OPS[name](target, *args), plain_reply
        raise LookupError(f"unknown request {op!r} {name!r}")

    def _describe(self, exc: BaseException) -> dict[str, Any]:
        cls = type(exc)
        info: dict[str, Any] = {"str": _safe(str, exc)[:2000], "name": cls.__name__[:100]}
        try:
            info["cls"] = self.encode(cls, handles=not self.policy.plain)
        except Exception:
            info["cls"] = {"$exc": "Exception"}
        try:
            info["args"] = self.encode(exc.args, handles=not self.policy.plain)
        except Exception:
            info["args"] = {"$t": [info["str"]]}
        if not self.policy.plain:
            try:  # noqa: SIM105 - contextlib costs 3 ms to import here
                info["inst"] = self.encode(exc)
            except Exception:
                pass  # without a handle the exception still crosses by value
        return info

    def _exception(self, info: Any) -> BaseException:
        if not isinstance(info, dict):
            self._fail("a malformed exception")
        inst = info.get("inst")
        if isinstance(inst, dict) and "$p" in inst:
            own = self.decode(inst)
            if isinstance(own, BaseException):
                return own  # our own exception, back from the peer: the same object
        cls = self.decode(info.get("cls", {"$exc": "Exception"}))
        if not (isinstance(cls, type) and issubclass(cls, BaseException)) or issubclass(
            cls, _FORBIDDEN_EXC
        ):
            cls = PeerError
        args = self.decode(info.get("args", {"$t": []}))
        args = tuple(args) if isinstance(args, list | tuple) else (str(info.get("str", "")),)
        try:
            exc = cls(*args)
        except Exception:
            exc = cls.__new__(cls)
            exc.args = args
        try:
            exc._exapt_remote = True  # type: ignore[attr-defined]
            if isinstance(inst, dict) and "$h" in inst:
                exc._exapt_peer = (id(self), int(inst["$h"]))  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            pass
        return exc


def _safe(fn: Any, v: Any) -> str:
    try:
        return str(fn(v))
    except BaseException:
        return "?"


def private_stdio() -> tuple[int, int]:
    """Keep the wire on descriptors of our own (not inherited by children) and point
    stdin at /dev/null and stdout at stderr, so nothing printed can corrupt the wire."""
    rfd, wfd = os.dup(0), os.dup(1)  # non-inheritable (PEP 446)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr
    return rfd, wfd
