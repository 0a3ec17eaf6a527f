"""One end of the judge's wire: plain data, and objects by handle, between two processes.

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

import _json  # json's C core: ``import json`` pulls in re and enum (10 of a process's 25 ms)
import binascii
import builtins
import math
import operator
import os
import sys
import types

# Not `from typing import Any`: importing typing costs 16 ms here (re, collections), and
# this module starts two processes for every judgement; annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = 16_000_000
MAX_DEPTH = 100

#: operators a proxy forwards; value: how the owner applies it to (target, *args)
OPS: dict[str, Any] = {
    "__eq__": operator.eq,
    "__ne__": operator.ne,
    "__lt__": operator.lt,
    "__le__": operator.le,
    "__gt__": operator.gt,
    "__ge__": operator.ge,
    "__hash__": hash,
    "__bool__": bool,
    "__len__": len,
    "__str__": str,
    "__repr__": repr,
    "__format__": format,
    "__iter__": iter,
    "__next__": next,
    "__reversed__": reversed,
    "__contains__": lambda t, x: x in t,
    "__getitem__": operator.getitem,
    "__setitem__": operator.setitem,
    "__delitem__": operator.delitem,
    "__enter__": lambda t: t.__enter__(),
    "__exit__": lambda t, *a: t.__exit__(*a),
    "__int__": int,
    "__float__": float,
    "__index__": operator.index,
    "__round__": round,
    "__abs__": abs,
    "__neg__": operator.neg,
    "__pos__": operator.pos,
    "__invert__": operator.invert,
    "__instancecheck__": lambda t, x: isinstance(x, t),
    "__subclasscheck__": lambda t, x: issubclass(x, t),
}
_BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "and": operator.and_,
    "or": operator.or_,
    "xor": operator.xor,
    "lshift": operator.lshift,
    "rshift": operator.rshift,
    "matmul": operator.matmul,
}
for _name, _fn in _BINARY.items():
    OPS[f"__{_name}__"] = _fn
    OPS[f"__r{_name}__"] = lambda t, x, _fn=_fn: _fn(x, t)

_FORBIDDEN_EXC = (SystemExit, KeyboardInterrupt, GeneratorExit)
_BUILTIN_TYPES = {
    t.__name__: t
    for t in (int, float, str, bytes, bool, list, tuple, dict, set, frozenset, complex, object)
}
_PLAIN_SCALARS = (type(None), bool, int, float, str)


class Gone(BaseException):
    """The other end ended, or broke the protocol: nothing it says can be trusted now."""


class PeerError(Exception):
    """An exception of the other end that may not be raised here as such (SystemExit...)."""


def builtin_exception(name: str) -> type[BaseException] | None:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in _FORBIDDEN_EXC:
        return cls
    return None


class _Syntax:
    """What ``_json.make_scanner`` reads off a decoder (strict JSON: no NaN, no Infinity)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo: dict[str, Any] = {}  # noqa: RUF012 - the scanner's own cache, as json's decoder


_scan = _json.make_scanner(_Syntax())
_dump = _json.make_encoder(
    None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def dumps(value: Any) -> str:
    """Compact, strict JSON (ASCII) of lists, dicts, strings, numbers, booleans, None."""
    return "".join(_dump(value, 0))


def loads(text: str) -> Any:
    """The one JSON value ``text`` holds (ValueError for anything else)."""
    text = text.strip()
    value, end = _scan(text, 0)
    if end != len(text):
        raise ValueError("trailing data")
    return value


class Policy:
    def __init__(self, *, plain: bool = False, serve_public: bool = False) -> None:
        self.plain = plain
        self.serve_public = serve_public


class Endpoint:
    """One end: its exported objects, the peer's proxies, and the request loop."""

    def __init__(self, rfd: int, wfd: int, policy: Policy) -> None:
        self._r = os.fdopen(rfd, "rb", buffering=1 << 16)
        self._w = wfd
        self.policy = policy
        self._exported: dict[int, Any] = {}
        self._ids: dict[int, int] = {}
        self._proxies: dict[int, Any] = {}
        self._mirrors: dict[int, type] = {}
        self._next = 0
        self._calls = 0
        self.gone: str | None = None

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

    def _fail(self, why: str) -> Any:
        self.gone = self.gone or why
        raise Gone(why)

    # -- values ------------------------------------------------------------------------

    def encode(self, v: Any, handles: bool | None = None, depth: int = 0) -> Any:
        """``v`` as wire data; objects by handle unless ``handles`` is False (default: not
        in plain mode). TypeError for an object that may not be sent."""
        if handles is None:
            handles = not self.policy.plain
        if depth > MAX_DEPTH:
            raise ValueError("a value nested too deeply to send")
        t = type(v)
        if t in _PLAIN_SCALARS:
            if t is float and not math.isfinite(v):
                return {"$f": repr(v)}
            if t is int and abs(v) >= 1 << 62:
                return {"$i": hex(v)}
            return v
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, int):
            return self.encode(int.__int__(v), handles, depth)
        if isinstance(v, float):
            return self.encode(float.__float__(v), handles, depth)
        if isinstance(v, str):
            return str.__str__(v)
        d = depth + 1
        if isinstance(v, bytes | bytearray):
            key = "$b" if isinstance(v, bytes) else "$ba"
            return {key: binascii.b2a_base64(bytes(v), newline=False).decode()}
        if isinstance(v, list):
            return [self.encode(x, handles, d) for x in list(v)]
        if isinstance(v, tuple):
            return {"$t": [self.encode(x, handles, d) for x in tuple(v)]}
        if isinstance(v, dict):
            return {
                "$d": [
                    [self.encode(k, handles, d), self.encode(x, handles, d)] for k, x in v.items()
                ]
            }
        if isinstance(v, set | frozenset):
            key = "$s" if isinstance(v, set) else "$fs"
            return {key: [self.encode(x, handles, d) for x in v]}
        if isinstance(v, complex):
            return {"$c": [self.encode(v.real), self.encode(v.imag)]}
        if isinstance(v, range):
            return {"$r": [v.start, v.stop, v.step]}
        # (a value of these types exists only once its module was imported: no import here)
        datetime = sys.modules.get("datetime")
        if datetime is not None:
            if isinstance(v, datetime.datetime):
                return {"$dt": v.isoformat()}
            if isinstance(v, datetime.date):
                return {"$date": v.isoformat()}
            if isinstance(v, datetime.time):
                return {"$time": v.isoformat()}
            if isinstance(v, datetime.timedelta):
                return {"$td": [v.days, v.seconds, v.microseconds]}
        decimal = sys.modules.get("decimal")
        if decimal is not None and isinstance(v, decimal.Decimal):
            return {"$dec": str(v)}
        fractions = sys.modules.get("fractions")
        if fractions is not None and isinstance(v, fractions.Fraction):
            return {"$fr": [self.encode(v.numerator), self.encode(v.denominator)]}
        if isinstance(v, types.TracebackType | types.FrameType):
            return None  # never sent: frames hold everything of a process
        if v is Ellipsis:
            return {"$e": 1}
        if isinstance(v, Proxy) and object.__getattribute__(v, "_ep") is self:
            return {"$p": object.__getattribute__(v, "_h")}
        peer = getattr(v, "_exapt_peer", None) if isinstance(v, type | BaseException) else None
        if isinstance(peer, tuple) and peer[0] == id(self):
            return {"$p": peer[1]}
        if isinstance(v, type):
            if issubclass(v, BaseException) and builtin_exception(v.__name__) is v:
                return {"$exc": v.__name__}
            if _BUILTIN_TYPES.get(v.__name__) is v:
                return {"$bt": v.__name__}
        if not handles:
            raise TypeError(f"a {t.__name__} object cannot be sent: plain data only")
        return self._export(v)

    def _export(self, v: Any) -> dict[str, Any]:
        h = self._ids.get(id(v))
        if h is None or self._exported.get(h) is not v:
            self._next += 1
            h = self._next
            self._exported[h] = v
            self._ids[id(v)] = h
        ref: dict[str, Any] = {"$h": h, "name": str(getattr(type(v), "__name__", "?"))[:100]}
        if isinstance(v, type) and issubclass(v, BaseException):
            ref["kind"] = "exccls"
            ref["name"] = v.__name__[:100]
            ref["bases"] = [c.__name__ for c in v.__mro__ if builtin_exception(c.__name__) is c]
        elif isinstance(v, types.ModuleType):
            ref["kind"] = "module"
        return ref

    def decode(self, x: Any) -> Any:
        if x is None or type(x) in (bool, int, float, str):
            return x
        if isinstance(x, list):
            return [self.decode(v) for v in x]
        if not isinstance(x, dict) or (len(x) != 1 and "$h" not in x):
            self._fail("a malformed value")
        key, val = next(iter(x.items()))
        try:
            return self._decode_tagged(key, val, x)
        except Gone:
            raise
        except Exception as exc:
            return self._fail(f"a malformed value ({type(exc).__name__})")

    def _decode_tagged(self, key: str, val: Any, x: dict[str, Any]) -> Any:
        if key in ("$dt", "$date", "$time", "$td"):
            import datetime
        elif key == "$dec":
            import decimal
        elif key == "$fr":
            import fractions
        if key == "$t":
            return tuple(self.decode(v) for v in val)
        if key == "$d":
            return {self.decode(k): self.decode(v) for k, v in val}
        if key in ("$s", "$fs"):
            items = (self.decode(v) for v in val)
            return set(items) if key == "$s" else frozenset(items)
        if key in ("$b", "$ba"):
            raw = binascii.a2b_base64(val.encode("ascii"))
            return raw if key == "$b" else bytearray(raw)
        simple = {
            "$f": lambda: float(val) if val in ("nan", "inf", "-inf") else self._fail("bad float"),
            "$i": lambda: int(val, 16),
            "$c": lambda: complex(float(self.decode(val[0])), float(self.decode(val[1]))),
            "$r": lambda: range(int(val[0]), int(val[1]), int(val[2])),
            "$dt": lambda: datetime.datetime.fromisoformat(val),
            "$date": lambda: datetime.date.fromisoformat(val),
            "$time": lambda: datetime.time.fromisoformat(val),
            "$td": lambda: datetime.timedelta(int(val[0]), int(val[1]), int(val[2])),
            "$dec": lambda: decimal.Decimal(str(val)),
            "$fr": lambda: fractions.Fraction(int(self.decode(val[0])), int(self.decode(val[1]))),
            "$e": lambda: Ellipsis,
            "$exc": lambda: builtin_exception(str(val)) or PeerError,
            "$bt": lambda: _BUILTIN_TYPES[str(val)],
            "$p": lambda: self._exported[int(val)],
        }
        if key in simple:
            return simple[key]()
        if "$h" in x:
            return self._proxy(int(x["$h"]), x)
        return self._fail(f"an unknown tag {key[:20]!r}")

    def _proxy(self, h: int, ref: dict[str, Any]) -> Any:
        if ref.get("kind") == "exccls":
            if h not in self._mirrors:
                base: type[BaseException] = Exception
                for name in ref.get("bases") or []:
                    found = builtin_exception(str(name))
                    if found is not None:
                        base = found
                        break
                name = str(ref.get("name") or "PeerError")
                name = name if name.isidentifier() else "PeerError"
                mirror = type(name, (base,), {"__module__": "exapt_peer"})
                mirror._exapt_peer = (id(self), h)  # type: ignore[attr-defined]
                self._mirrors[h] = mirror
            return self._mirrors[h]
        if h not in self._proxies:
            cls = ProxyModule if ref.get("kind") == "module" else Proxy
            self._proxies[h] = cls._make(self, h, str(ref.get("name", "?")))
        return self._proxies[h]

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
                if self.policy.plain and op in ("call", "op") and _holds_handle(value):
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


def _holds_handle(v: Any, depth: int = 0) -> bool:
    if isinstance(v, Proxy):
        return True
    if depth > MAX_DEPTH:
        return False
    if isinstance(v, list | tuple | set | frozenset):
        return any(_holds_handle(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return any(_holds_handle(k, depth + 1) or _holds_handle(x, depth + 1) for k, x in v.items())
    return False


def _forward(name: str) -> Any:
    def method(self: Proxy, *args: Any) -> Any:
        ep, h = object.__getattribute__(self, "_ep"), object.__getattribute__(self, "_h")
        return ep.request("op", h, name=name, args=ep.encode(list(args)))

    method.__name__ = name
    return method


def _equality(name: str) -> Any:
    def method(self: Proxy, other: Any) -> Any:
        ep = object.__getattribute__(self, "_ep")
        if not (isinstance(other, Proxy) and object.__getattribute__(other, "_ep") is ep):
            return NotImplemented  # never the peer's to decide for our own values
        return ep.request(
            "op", object.__getattribute__(self, "_h"), name=name, args=ep.encode([other])
        )

    method.__name__ = name
    return method


class Proxy:
    """The other end's object: every use is a request to its owner."""

    __slots__ = ("_ep", "_h", "_name")

    @classmethod
    def _make(cls, ep: Endpoint, h: int, name: str) -> Any:
        obj = object.__new__(cls)
        object.__setattr__(obj, "_ep", ep)
        object.__setattr__(obj, "_h", h)
        object.__setattr__(obj, "_name", name)
        return obj

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        ep = object.__getattribute__(self, "_ep")
        return ep.request("getattr", object.__getattribute__(self, "_h"), name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        ep = object.__getattribute__(self, "_ep")
        h = object.__getattribute__(self, "_h")
        ep.request("setattr", h, name=name, value=ep.encode(value))

    def __delattr__(self, name: str) -> None:
        ep = object.__getattribute__(self, "_ep")
        ep.request("delattr", object.__getattribute__(self, "_h"), name=name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ep = object.__getattribute__(self, "_ep")
        return ep.request(
            "call",
            object.__getattribute__(self, "_h"),
            args=ep.encode(list(args)),
            kwargs=ep.encode(kwargs),
        )

    def __dir__(self) -> list[str]:
        ep = object.__getattribute__(self, "_ep")
        return list(ep.request("dir", object.__getattribute__(self, "_h")))

    def __copy__(self) -> Proxy:
        return self  # a handle: copies of the peer's object are the peer's business

    def __deepcopy__(self, memo: Any) -> Proxy:
        return self

    __eq__ = _equality("__eq__")
    __ne__ = _equality("__ne__")


for _op in OPS:
    if _op not in ("__eq__", "__ne__"):
        setattr(Proxy, _op, _forward(_op))


class ProxyModule(types.ModuleType):
    """The other end's module: its attributes are requests (``from solution import f``)."""

    _exapt: tuple[Endpoint, int]

    @classmethod
    def _make(cls, ep: Endpoint, h: int, name: str) -> Any:
        mod = cls(name)
        object.__setattr__(mod, "_exapt", (ep, h))
        return mod

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_exapt":
            raise AttributeError(name)
        ep, h = object.__getattribute__(self, "_exapt")
        return ep.request("getattr", h, name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__"):
            object.__setattr__(self, name, value)  # the import system's own attributes
            return
        ep, h = object.__getattribute__(self, "_exapt")
        ep.request("setattr", h, name=name, value=ep.encode(value))

    def __delattr__(self, name: str) -> None:
        if name.startswith("__"):
            object.__delattr__(self, name)
            return
        ep, h = object.__getattribute__(self, "_exapt")
        ep.request("delattr", h, name=name)

    def __dir__(self) -> list[str]:
        ep, h = object.__getattribute__(self, "_exapt")
        return list(ep.request("dir", h))


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
