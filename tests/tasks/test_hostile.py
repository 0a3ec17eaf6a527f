"""Hostile solutions: each must score as a failure, with its reason recorded, next to
positive controls (canonical/reference solutions) that still pass and stubs that still
fail. HumanEval, JSONL and Polyglot Python on bwrap and docker; the compiled languages and
JavaScript on bwrap (the docker image carries python3 only; the toolchains are the host's,
bound read-only, which only bwrap does).

Every attack class of issue 7: exiting with status 0 at import (os._exit, sys.exit,
process.exit, System.exit in a static block, a C++ global constructor's _Exit, a Rust
.init_array constructor); shadowing what the tests import (unittest.py, json.py);
patching the test framework from the solution module; the build is the solution's
(Cargo.toml autotests = false, a build.rs rewriting the tests); forged reports and
verdicts; reading the harness's frames and token; forging the sandbox's control channel;
objects that equal everything; a solution.py that defines no function.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exapt.records import Score
from exapt.tasks import SandboxFactory, Task, load_suite, suite_sandbox_factory
from exapt.tasks.humaneval import canonical_workspace
from exapt.tasks.jsonl import JsonlSuite
from exapt.tasks.polyglot import PolyglotSuite, reference_workspace, toolchain

from .conftest import as_bytes


def assert_fails(score: Score, *reasons: str) -> None:
    assert not score.passed and score.reward == 0.0, score
    assert not score.trusted
    assert score.failure in reasons, (score.failure, score.feedback)
    assert score.error is None, score.error  # the solution's doing, not a broken sandbox


# -- HumanEval --------------------------------------------------------------------------

# Control-channel forging: every descriptor and FIFO it can find gets exit-0 replies, a
# forged verdict and forged judge replies.
_FORGE = """
import os, glob
lines = b'1-0 0\\n{"verdict":{"nonce":"x","tests":[{"name":"check","outcome":"pass"}]}}\\n'
lines += b'{"re":1,"ok":true}\\n{"re":2,"ok":true}\\n{"re":3,"ok":true}\\n'
for path in glob.glob('/run/exapt/io/*') + glob.glob('/proc/*/fd/*'):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, lines * 20)
        os.close(fd)
    except OSError:
        pass
"""

HUMANEVAL_TRICKS = {
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "sys.exit(0) in the function": "    import sys\n    sys.exit(0)\n",
    # the 4-line solution that scored 164/164: no function, a pass marker, exit 0
    "no function, a pass marker, exit 0": (
        "import os, sys\n"
        "sys.stdout.write('EXAPT-PASSED ' + sys.stdin.readline())\n"
        "sys.stdout.flush()\n"
        "os._exit(0)\n"
    ),
    "an object equal to everything": (
        "    class Same:\n"
        "        def __eq__(self, other): return True\n"
        "        def __bool__(self): return True\n"
        "    return Same()\n"
    ),
    "a str subclass equal to everything": (
        "    class S(str):\n        def __eq__(self, other): return True\n    return S('x')\n"
    ),
    "patching the interpreter's assert and AssertionError": (
        "import builtins\n"
        "builtins.AssertionError = type('Never', (Exception,), {})\n"
        "builtins.abs = lambda x: 0\n"
    ),
    "forging the control channel and the judge's wire": _FORGE,
    "forging from inside the call": "    exec(" + repr(_FORGE) + ")\n    return True\n",
    "printing a pass to its stdout": (
        "print('all 1 hidden tests passed')\nprint('{\"verdict\": 1}')\n"
    ),
}


@pytest.fixture(scope="module")
def humaneval_tasks() -> list[Task]:
    return list(load_suite("humaneval").tasks())


@pytest.mark.parametrize("trick", sorted(HUMANEVAL_TRICKS))
def test_humaneval_tricks_fail(
    humaneval_tasks: list[Task], any_factory: SandboxFactory, trick: str
) -> None:
    task = humaneval_tasks[0]
    code = HUMANEVAL_TRICKS[trick]
    # appended to the stub: inside the function if indented, else at module level
    solution = task.files["solution.py"] + ("    return None\n" if not code.startswith(" ") else "")
    solution += code
    score = (
        load_suite("humaneval")
        .scorer()
        .score(task, {"solution.py": solution.encode()}, any_factory)
    )
    assert_fails(score, "tests_failed", "solution_died", "import_error", "missing")


def test_humaneval_controls(humaneval_tasks: list[Task], any_factory: SandboxFactory) -> None:
    scorer = load_suite("humaneval").scorer()
    task = humaneval_tasks[0]
    good = scorer.score(task, canonical_workspace(task), any_factory)
    assert good.passed and good.trusted
    stub = scorer.score(task, as_bytes(task.files), any_factory)
    assert_fails(stub, "tests_failed")
    hang = task.files["solution.py"] + "    while True:\n        pass\n"
    assert_fails(
        load_suite("humaneval")
        .scorer()
        .__class__(timeout_s=3)
        .score(task, {"solution.py": hang.encode()}, any_factory),
        "timeout",
    )


# -- JSONL ------------------------------------------------------------------------------

UNIT = (
    "import unittest\nfrom add import add\n"
    "class T(unittest.TestCase):\n"
    "    def test_small(self): self.assertEqual(add(2, 3), 5)\n"
    "    def test_zero(self): self.assertEqual(add(0, 0), 0)\n"
)
WRONG = "def add(a, b):\n    return 7\n"
JSONL_TRICKS = {
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "patching unittest from the solution": (
        "import unittest\n"
        "unittest.TestCase.run = lambda self, result=None: None\n"
        "unittest.TestCase.assertEqual = lambda self, *a, **k: None\n" + WRONG
    ),
    "shadowing unittest with a workspace unittest.py": WRONG,
    "an object equal to everything": (
        "class Same(int):\n    def __eq__(self, other): return True\n"
        "def add(a, b):\n    return Same(1)\n"
    ),
    "forging the control channel and the judge's wire": _FORGE + WRONG,
}
SHADOWS = {
    "unittest.py": "class TestCase:\n    pass\ndef main(*a, **k):\n    pass\n",
    "json.py": "def loads(*a, **k):\n    return {}\ndumps = loads\n",
}


@pytest.fixture
def jsonl_suites(tmp_path: Path) -> dict[str, JsonlSuite]:
    base = {"id": "demo/add", "instruction": "Write add(a, b) in add.py.", "files": {}}
    lines = {
        "script": {
            **base,
            "tests": {"test_add.py": "from add import add\nassert add(2, 3) == 5\n"},
            "test_command": "python3 test_add.py",
        },
        "unittest": {
            **base,
            "tests": {"test_unit.py": UNIT},
            "test_command": "python3 -m unittest",
        },
    }
    suites = {}
    for name, line in lines.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(line) + "\n")
        suites[name] = JsonlSuite(path)
    return suites


@pytest.mark.parametrize("kind", ["script", "unittest"])
@pytest.mark.parametrize("trick", sorted(JSONL_TRICKS))
def test_jsonl_tricks_fail(
    jsonl_suites: dict[str, JsonlSuite], any_factory: SandboxFactory, trick: str, kind: str
) -> None:
    suite = jsonl_suites[kind]
    task = next(suite.tasks())
    workspace = {
        "add.py": JSONL_TRICKS[trick].encode(),
        **{k: v.encode() for k, v in SHADOWS.items()},
    }
    score = suite.scorer().score(task, workspace, any_factory)
    assert_fails(score, "tests_failed", "solution_died", "import_error")


def test_jsonl_controls(jsonl_suites: dict[str, JsonlSuite], any_factory: SandboxFactory) -> None:
    for suite in jsonl_suites.values():
        task = next(suite.tasks())
        good = suite.scorer().score(
            task, {"add.py": b"def add(a, b):\n    return a + b\n"}, any_factory
        )
        assert good.passed and good.trusted, good
        assert_fails(
            suite.scorer().score(task, {"add.py": WRONG.encode()}, any_factory), "tests_failed"
        )


# -- Polyglot ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def polyglot(polyglot_path: Path) -> PolyglotSuite:
    return PolyglotSuite(polyglot_path)


def _task(suite: PolyglotSuite, task_id: str) -> Task:
    return next(t for t in suite.all_tasks() if t.id == task_id)


def _need(language: str) -> None:
    reason = toolchain(language).reason
    if reason:
        pytest.skip(f"{language} cannot be scored here: {reason}")


PY_STUB_TRICKS = {
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "patching unittest from the solution module": (
        "import unittest\n"
        "unittest.TestCase.run = lambda self, result=None: None\n"
        "unittest.TestCase.assertEqual = lambda self, *a, **k: None\n"
        "unittest.TestCase.assertRaises = (\n"
        "    lambda self, *a, **k: __import__('contextlib').suppress(BaseException))\n"
    ),
    "answers equal to everything": (
        "class Same(str):\n"
        "    def __eq__(self, other): return True\n"
        "    def __ne__(self, other): return False\n"
        "    __hash__ = str.__hash__\n"
        "def encode(*a):\n    return Same('')\n"
        "def decode(*a):\n    return Same('')\n"
    ),
    "forging the control channel and the judge's wire": _FORGE,
}


@pytest.mark.parametrize("trick", sorted(PY_STUB_TRICKS))
def test_polyglot_python_tricks_fail(
    polyglot: PolyglotSuite, any_factory: SandboxFactory, trick: str
) -> None:
    task = _task(polyglot, "polyglot/python/affine-cipher")
    workspace = {
        **as_bytes(task.files),
        "affine_cipher.py": (task.files["affine_cipher.py"] + PY_STUB_TRICKS[trick]).encode(),
        **{k: v.encode() for k, v in SHADOWS.items()},
    }
    score = polyglot.scorer().score(task, workspace, any_factory)
    assert_fails(score, "tests_failed", "solution_died", "import_error")


def test_polyglot_python_controls(polyglot: PolyglotSuite, any_factory: SandboxFactory) -> None:
    task = _task(polyglot, "polyglot/python/affine-cipher")
    good = polyglot.scorer().score(task, reference_workspace(task), any_factory)
    assert good.passed and good.trusted
    assert_fails(polyglot.scorer().score(task, as_bytes(task.files), any_factory), "tests_failed")


def _bwrap(polyglot: PolyglotSuite, bwrap_ok: None) -> SandboxFactory:
    return suite_sandbox_factory(polyglot, "bwrap")


@pytest.mark.bwrap
def test_javascript_process_exit_and_a_planted_report(
    polyglot: PolyglotSuite, bwrap_ok: None
) -> None:
    _need("javascript")
    task = _task(polyglot, "polyglot/javascript/binary")
    factory = _bwrap(polyglot, bwrap_ok)
    report = {
        "numTotalTests": 10,
        "testResults": [
            {"assertionResults": [{"fullName": f"t{i}", "status": "passed"} for i in range(10)]}
        ],
    }
    exiting = task.files["binary.js"] + "\nprocess.exit(0);\n"
    cases = {
        "process.exit(0) at import": {**as_bytes(task.files), "binary.js": exiting.encode()},
        "a planted report": {
            **as_bytes(task.files),
            ".exapt/report.json": json.dumps(report).encode(),
        },
        "its own jest config and babel config": {
            **as_bytes(task.files),
            "jest.config.js": b"module.exports = { testMatch: ['x'], passWithNoTests: true };",
            "babel.config.js": b"throw new Error('no');\n",
            "package.json": b'{"jest": {"testMatch": ["**/none/**"]}}',
        },
    }
    for name, workspace in cases.items():
        assert_fails(polyglot.scorer().score(task, workspace, factory), "tests_failed", "no_report")
        assert name
    control = polyglot.scorer().score(task, reference_workspace(task), factory)
    assert control.passed and control.evidence == "report"


@pytest.mark.slow
@pytest.mark.bwrap
@pytest.mark.timeout(1800)
def test_java_system_exit_in_a_static_block(polyglot: PolyglotSuite, bwrap_ok: None) -> None:
    _need("java")
    task = _task(polyglot, "polyglot/java/bank-account")
    factory = _bwrap(polyglot, bwrap_ok)
    path = "src/main/java/BankAccount.java"
    exiting = task.files[path].replace(
        "class BankAccount {", "class BankAccount {\n    static { System.exit(0); }", 1
    )
    assert_fails(
        polyglot.scorer().score(task, {**as_bytes(task.files), path: exiting.encode()}, factory),
        "no_report",
    )
    planted = {**as_bytes(task.files), ".exapt/TEST-junit-jupiter.xml": b"<testsuite/>"}
    assert_fails(polyglot.scorer().score(task, planted, factory), "tests_failed", "no_report")
    # a correct solution that exits early: the tests never ran
    ref = reference_workspace(task)
    ref[path] = (
        ref[path]
        .decode()
        .replace("class BankAccount {", "class BankAccount {\n    static { System.exit(0); }", 1)
        .encode()
    )
    assert_fails(polyglot.scorer().score(task, ref, factory), "no_report")
    control = polyglot.scorer().score(task, reference_workspace(task), factory)
    assert control.passed and control.evidence == "report"


@pytest.mark.slow
@pytest.mark.bwrap
@pytest.mark.timeout(1800)
def test_cpp_global_constructor_exits_0(polyglot: PolyglotSuite, bwrap_ok: None) -> None:
    _need("cpp")
    task = _task(polyglot, "polyglot/cpp/all-your-base")
    factory = _bwrap(polyglot, bwrap_ok)
    ref = reference_workspace(task)
    ref["all_your_base.cpp"] = (
        b"#include <cstdlib>\n[[maybe_unused]] static int exapt_trick = (std::_Exit(0), 0);\n"
        + ref["all_your_base.cpp"]
    )
    # its own CMakeLists.txt that builds no test is not used either
    ref["CMakeLists.txt"] = b"cmake_minimum_required(VERSION 3.5)\nproject(x)\n"
    assert_fails(polyglot.scorer().score(task, ref, factory), "no_report")
    control = polyglot.scorer().score(task, reference_workspace(task), factory)
    assert control.passed and control.evidence == "report"


@pytest.mark.slow
@pytest.mark.bwrap
@pytest.mark.timeout(1800)
def test_rust_owns_no_build(polyglot: PolyglotSuite, bwrap_ok: None) -> None:
    _need("rust")
    task = _task(polyglot, "polyglot/rust/accumulate")
    factory = _bwrap(polyglot, bwrap_ok)
    stub = as_bytes(task.files)
    stub["src/lib.rs"] = b"pub fn map(input: Vec<i32>, _f: fn(i32) -> i32) -> Vec<i32> { input }\n"
    cases = {
        "Cargo.toml autotests = false": {
            **stub,
            "Cargo.toml": stub["Cargo.toml"] + b"autotests = false\n[lib]\ntest = false\n",
        },
        "a build.rs rewriting the tests": {
            **stub,
            "build.rs": b'fn main() { let _ = std::fs::write("tests/accumulate.rs", ""); }\n',
            "Cargo.toml": stub["Cargo.toml"].replace(
                b"[package]\n", b'[package]\nbuild = "build.rs"\n'
            ),
        },
        "a .cargo/config.toml": {
            **stub,
            ".cargo/config.toml": b'[build]\nrustc-wrapper = "/bin/true"\n',
        },
        "a planted report": {
            **stub,
            ".exapt/report.jsonl": b'{"type":"test","event":"ok","name":"x"}\n',
        },
        "an .init_array constructor exiting 0": {
            **reference_workspace(task),
            "src/lib.rs": reference_workspace(task)["src/lib.rs"]
            + b'\n#[used]\n#[link_section = ".init_array"]\nstatic EXIT: extern "C" fn() = {\n'
            b'    extern "C" fn f() { std::process::exit(0) }\n    f\n};\n',
        },
    }
    for name, workspace in cases.items():
        score = polyglot.scorer().score(task, workspace, factory)
        assert_fails(score, "tests_failed", "no_report", "count_mismatch")
        assert name
    control = polyglot.scorer().score(task, reference_workspace(task), factory)
    assert control.passed and control.evidence == "report"
