"""exapt's mini-jest: the jest subset the Polyglot JavaScript tests use, judged by node."""

from __future__ import annotations

import re
import shutil

import pytest

from exapt.tasks import SandboxFactory, minijest

SPEC = """\
import { double, later, fails } from './lib';

describe('matchers', () => {
  let base;
  beforeEach(() => { base = 2; });
  test('toEqual deep', () =>
    expect({ a: [1, { b: 2 }], u: undefined }).toEqual({ a: [1, { b: 2 }] }));
  test('toBe', () => expect(double(base)).toBe(4));
  xtest('xtest runs too', () => expect(double(1)).not.toBe(3));
  test('toThrow message', () => expect(() => fails()).toThrow('bad input'));
  test('toThrow class', () => expect(() => fails()).toThrow(RangeError));
  test('toThrow regexp', () => expect(() => fails()).toThrow(/bad/));
  test('resolves', () => expect(later(3)).resolves.toEqual(6));
  test('rejects', () => expect(Promise.reject(new Error('nope'))).rejects.toThrow('nope'));
  test('instance', () => expect(later(1)).toBeInstanceOf(Promise));
  test('undefined', () => { expect(undefined).toBeUndefined(); expect(0).toBeDefined(); });
  test('WRONG equal', () => expect(double(2)).toEqual(5));
  test('WRONG not', () => expect(double(2)).not.toEqual(4));
  test('WRONG no throw', () => expect(() => double(1)).toThrow());
  test('WRONG unsupported matcher', () => expect(1).toSatisfyAll(() => true));
  test('WRONG resolves', () => expect(Promise.reject(new Error('x'))).resolves.toEqual(1));
  test('WRONG throws', () => { throw new TypeError('boom'); });
  test('WRONG hangs', () => new Promise(() => {}));
});
"""

LIB = """\
export const double = (x) => x * 2;
export const later = (x) => new Promise((resolve) => setTimeout(() => resolve(x * 2), 5));
export const fails = () => { throw new RangeError('bad input given'); };
"""


@pytest.fixture
def node(bwrap_ok: None) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")


def run(factory: SandboxFactory, files: dict[str, str], tests: list[str]) -> tuple[int, str]:
    with factory({**files, **minijest.FILES}) as box:
        result = box.exec(minijest.command(tests), timeout=60)
    return result.exit_code, result.stdout + result.stderr


def test_matchers_pass_and_fail_as_jest_would(node: None, factory: SandboxFactory) -> None:
    code, log = run(factory, {"lib.js": LIB, "lib.spec.js": SPEC}, ["lib.spec.js"])
    assert code == 1
    passed = set(re.findall(r"\u2713 matchers > (.+)", log))
    failed = set(re.findall(r"  \u2715 matchers > (.+)", log))
    assert passed == {
        "toEqual deep",
        "toBe",
        "xtest runs too",
        "toThrow message",
        "toThrow class",
        "toThrow regexp",
        "resolves",
        "rejects",
        "instance",
        "undefined",
    }, log
    assert failed == {n for n in failed if n.startswith("WRONG")} and len(failed) == 7, log
    assert "matcher toSatisfyAll is not supported" in log
    assert "TypeError: boom" in log
    assert "test timed out after 5 s" in log
    assert "Tests: 7 failed, 10 passed, 17 total" in log


def test_all_passing_exits_0_and_nothing_to_run_exits_1(
    node: None, factory: SandboxFactory
) -> None:
    ok_spec = "import { double } from './lib';\ntest('t', () => expect(double(1)).toBe(2));\n"
    code, log = run(factory, {"lib.js": LIB, "ok.spec.js": ok_spec}, ["ok.spec.js"])
    assert code == 0, log
    code, log = run(factory, {"lib.js": LIB, "empty.spec.js": "// nothing\n"}, ["empty.spec.js"])
    assert code == 1 and "0 total" in log
    code, log = run(factory, {"bad.spec.js": "import { x } from './missing';\n"}, ["bad.spec.js"])
    assert code == 1 and "cannot load bad.spec.js" in log
