"""The judge's end of a Python judgement: run the hidden tests here, the solution elsewhere.

Reads its spec (the first line of stdin, from the host), runs the tests in this process,
where no solution code ever runs: the modules the tests import from the solution are
``ProxyModule``s whose every use is a request over the wire to the solution's process.
Writes one ``{"verdict": ...}`` line carrying the host's nonce: per test, its name and
``pass``/``fail``/``error`` with the exception's type name. Test text, assertion messages
and anything printed never leave this process.

Modes (``spec["mode"]``):
- ``check``: HumanEval: ``prelude`` (the task's prompt: imports and helpers), then the
  ``test`` code, then ``check(candidate)`` with the solution module's ``entry_point``;
- ``asserts``: each of ``asserts`` (Python source) run in a namespace holding the public
  names of the solution module ``module``; one test each;
- ``scripts``: each file of ``run`` executed as ``__main__`` (a ``SystemExit`` of 0 passes);
- ``unittest``: the ``unittest`` tests of the modules ``run``, one result per test method.
``sources`` (module name -> text) are the task's own test modules, importable here;
``solution_modules`` the names the solution's workspace provides (proxied), never a
standard-library name.
"""

import importlib
import importlib.machinery
import os
import sys

from exapt_wire import Endpoint, Gone, Policy, ProxyModule, private_stdio  # type: ignore


class _Source:
    def __init__(self, name, text):
        self.name, self.text = name, text

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.name.replace(".", "/") + ".py"
        exec(compile(self.text, module.__file__, "exec"), module.__dict__)


class _Remote:
    def __init__(self, endpoint, name):
        self.endpoint, self.name = endpoint, name

    def create_module(self, spec):
        module = self.endpoint.request("import", name=self.name)
        if not isinstance(module, ProxyModule):
            raise ImportError(f"the solution's {self.name} is not a module")
        module.__path__ = []  # so that its submodules are asked for too
        return module

    def exec_module(self, module):
        pass


class Finder:
    """Test modules from the spec's text; the solution's modules from its process."""

    def __init__(self, endpoint, sources, solution_modules):
        self.endpoint = endpoint
        self.sources = dict(sources)
        taken = set(sys.stdlib_module_names) | set(sys.builtin_module_names) | set(sys.modules)
        self.remote = {m for m in solution_modules if m not in taken and m not in self.sources}

    def find_spec(self, name, path=None, target=None):
        if name in self.sources:
            return importlib.machinery.ModuleSpec(name, _Source(name, self.sources[name]))
        if name.split(".")[0] in self.remote:
            return importlib.machinery.ModuleSpec(name, _Remote(self.endpoint, name))
        return None


def _trace(exc):
    """To this process's stderr, which the host only logs (at debug level)."""
    print(f"{type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)


def _outcome(name, exc):
    if exc is None:
        return {"name": name, "outcome": "pass"}
    kind = "fail" if isinstance(exc, AssertionError) else "error"
    return {
        "name": name,
        "outcome": kind,
        "error": type(exc).__name__[:80],
        "remote": bool(getattr(exc, "_exapt_remote", False) or isinstance(exc, Gone)),
    }


def _run(name, fn):
    try:
        fn()
    except SystemExit as exc:
        if exc.code not in (0, None):
            return _outcome(name, exc)
    except BaseException as exc:  # the test's verdict, whatever it raised
        _trace(exc)
        return _outcome(name, exc)
    return _outcome(name, None)


VISIBLE: list = []  # outcomes of the visible examples (check mode), reported beside the tests


def _load(endpoint, name):
    """(the solution's module, None) or (None, the outcome of a failed import)."""
    found = {}

    def load():
        found["module"] = endpoint.request("import", name=name)

    outcome = _run("import", load)
    return found.get("module"), (None if outcome["outcome"] == "pass" else outcome)


def run_check(spec, endpoint):
    namespace = {"__name__": "__exapt_test__"}
    exec(compile(spec.get("prelude", ""), "<prompt>", "exec"), namespace)
    exec(compile(spec["test"], "<hidden test>", "exec"), namespace)
    module, failed = _load(endpoint, spec["module"])
    if failed:
        return [failed]
    try:
        candidate = getattr(module, spec["entry_point"])
    except AttributeError:
        return [{"name": "check", "outcome": "error", "error": "missing", "remote": True}]
    for i, source in enumerate(spec.get("visible", [])):  # the docstring's own examples
        scope = {**namespace, spec["entry_point"]: candidate}
        VISIBLE.append(_run(i, lambda s=source, ns=scope, i=i: _exec_in(s, ns, f"<visible {i}>")))
    namespace[spec["entry_point"]] = candidate  # some tests call it by name (humaneval/33)
    return [_run("check", lambda: namespace["check"](candidate))]


def _exec_in(source, namespace, label):
    exec(compile(source, label, "exec"), namespace)


def run_asserts(spec, endpoint):
    module, failed = _load(endpoint, spec["module"])
    if failed:
        return [failed]
    names = {n: getattr(module, n) for n in dir(module)}
    results = []
    for i, source in enumerate(spec["asserts"]):
        namespace = {"__name__": "__exapt_test__", **names}
        results.append(
            _run(f"test {i}", lambda s=source, ns=namespace, i=i: _exec_in(s, ns, f"<test {i}>"))
        )
    return results


def run_scripts(spec, endpoint):
    results = []
    for name in spec["run"]:
        text = spec["sources"][name]

        def script(text=text, name=name):
            namespace = {"__name__": "__main__", "__file__": name.replace(".", "/") + ".py"}
            exec(compile(text, namespace["__file__"], "exec"), namespace)

        results.append(_run(name, script))
    return results


def _collector():
    """A unittest result that keeps, per test id, its outcome and exception type only."""
    import unittest

    class Collect(unittest.TestResult):
        def __init__(self):
            super().__init__()
            self.outcomes = {}

        def _set(self, test, kind, err=None):
            if self.outcomes.get(test.id(), {}).get("outcome", "pass") != "pass":
                return  # a failed subtest already decided this test
            if err is not None:
                self.outcomes[test.id()] = _outcome(test.id(), err[1])
            else:
                self.outcomes[test.id()] = {"name": test.id(), "outcome": kind}

        def addSuccess(self, test):
            self._set(test, "pass")

        def addFailure(self, test, err):
            self._set(test, "fail", err)

        def addError(self, test, err):
            self._set(test, "error", err)

        def addSubTest(self, test, subtest, err):
            if err is not None:
                self._set(test, "fail", err)

        def addSkip(self, test, reason):
            self._set(test, "skip")

        def addExpectedFailure(self, test, err):
            self._set(test, "skip")

        def addUnexpectedSuccess(self, test):
            self._set(test, "skip")

    return Collect()


def run_unittest(spec, endpoint):
    import unittest

    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    result = _collector()
    for name in spec["run"]:
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # e.g. `from solution import f` when f is missing
            _trace(exc)
            result.outcomes[name] = {**_outcome(name, exc), "name": f"{name} (import)"}
            continue
        suite.addTests(loader.loadTestsFromModule(module))
    suite.run(result)
    # errors outside any test (a module that does not import, a broken setUpClass)
    for test, _ in result.errors:
        if test.id() not in result.outcomes:
            result.outcomes[test.id()] = {"name": test.id(), "outcome": "error", "error": "setup"}
    return list(result.outcomes.values())


MODES = {
    "check": run_check,
    "asserts": run_asserts,
    "scripts": run_scripts,
    "unittest": run_unittest,
}


def main():
    rfd, wfd = private_stdio()
    endpoint = Endpoint(rfd, wfd, Policy(serve_public=True))
    first = endpoint.read()
    spec = first["spec"]
    endpoint.policy = Policy(plain=bool(spec.get("plain")), serve_public=True)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
    sys.meta_path.insert(
        0, Finder(endpoint, spec.get("sources", {}), spec.get("solution_modules", []))
    )
    try:
        tests = MODES[spec["mode"]](spec, endpoint)
    except BaseException as exc:  # before any test ran (the prelude, loading the tests)
        _trace(exc)
        tests = [_outcome("load", exc)]
    verdict = {"nonce": spec["nonce"], "tests": tests, "visible": VISIBLE, "gone": endpoint.gone}
    endpoint.write({"verdict": verdict})
    os._exit(0)


main()
